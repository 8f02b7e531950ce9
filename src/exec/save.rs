//! Saves: one streaming writer per `save`, opened before any data is read
//! and moved into place only when the whole run has succeeded.

use crate::diag::{Diagnostic, Span};
use crate::graph::{Graph, NodeId, Op};
use crate::io::{SaveOptions, TensorInfo, Writer};
use crate::lower::Plan;

pub(super) struct Saver {
    pub writer: Writer,
    pub infos: Vec<TensorInfo>,
}

/// The checkpoint that non-float tensors (and config files) come from: the
/// left-most one.
pub(super) fn carrier_leaf(graph: &Graph, node: NodeId) -> crate::graph::LeafId {
    match &graph.node(node).op {
        Op::Leaf(leaf) => *leaf,
        _ => carrier_leaf(graph, graph.inputs(node)[0]),
    }
}

/// Tensor `name` of `node` as stored in its left-most checkpoint: how a
/// non-float tensor passes through arithmetic unchanged.
pub(super) fn carried_bytes<'g>(graph: &'g Graph, node: NodeId, name: &str) -> &'g [u8] {
    let checkpoint = graph.leaf(carrier_leaf(graph, node));
    checkpoint
        .index_of(name)
        .map(|k| checkpoint.bytes(k))
        .unwrap_or_default()
}

/// Opens a writer per save, before any data is read, so a bad target path
/// fails the run early.
pub(super) fn open_savers(plan: &Plan) -> Result<Vec<Saver>, Diagnostic> {
    plan.saves
        .iter()
        .map(|job| {
            let infos = output_infos(plan, job.node);
            let options = SaveOptions {
                copy_from: plan.graph.config_folder(job.node).map(|f| f.to_path_buf()),
                max_shard_bytes: plan.settings.max_shard_bytes,
                ..SaveOptions::default()
            };
            let writer =
                Writer::create(&job.path, &infos, &options).map_err(|e| write_error(job.span, &job.path, &e))?;
            Ok(Saver { writer, infos })
        })
        .collect()
}

/// The tensors a save writes: float ones in the `set dtype` (or their
/// left-most checkpoint's dtype), the rest as they are.
pub(super) fn output_infos(plan: &Plan, node: NodeId) -> Vec<TensorInfo> {
    let chosen = plan.settings.dtype.map(|d| d.dtype());
    plan.graph
        .specs(node)
        .tensors
        .iter()
        .map(|s| TensorInfo {
            name: s.name.clone(),
            dtype: if s.float { chosen.unwrap_or(s.dtype) } else { s.dtype },
            shape: s.shape.clone(),
        })
        .collect()
}

/// Moves every save into place; returns the bytes written. Every save is
/// checked complete before any replaces an older output; if a move itself
/// fails, the saves already moved into place are removed again, so a failed
/// run leaves no partial set of outputs behind.
pub(super) fn finish_savers(plan: &Plan, savers: Vec<Saver>) -> Result<u64, Diagnostic> {
    for (job, saver) in plan.saves.iter().zip(&savers) {
        let complete = saver.writer.check_complete();
        complete.map_err(|e| write_error(job.span, &job.path, &e))?;
    }
    let mut bytes = 0;
    for (done, (job, saver)) in plan.saves.iter().zip(savers).enumerate() {
        bytes += saver.infos.iter().map(|t| t.byte_len() as u64).sum::<u64>();
        if let Err(e) = saver.writer.finish() {
            for finished in &plan.saves[..done] {
                remove_output(&finished.path);
            }
            return Err(write_error(job.span, &job.path, &e));
        }
    }
    Ok(bytes)
}

/// Best effort: the run is failing already, and this only tidies up.
fn remove_output(path: &std::path::Path) {
    let _ = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
}

pub(super) fn write_error(span: Span, path: &std::path::Path, error: &crate::io::IoError) -> Diagnostic {
    let diag = Diagnostic::new("tv::save", format!("cannot save {}: {error}", path.display())).at(span, "saving here");
    match error.help() {
        Some(help) => diag.help(help),
        None => diag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    /// An incomplete second save fails the run before the first one
    /// replaces the older file at its target.
    #[test]
    fn an_incomplete_save_replaces_no_older_output() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let bytes: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(safetensors::Dtype::F32, vec![2], &bytes).expect("view");
        safetensors::serialize_to_file([("t", view)], None, &dir.path().join("a.safetensors")).expect("write");
        let program = dir.path().join("program.tv");
        let text =
            "let a = load(\"a.safetensors\")\nsave a to \"first.safetensors\"\nsave 2 * a to \"second.safetensors\"\n";
        std::fs::write(&program, text).expect("write program");
        let plan = crate::check(&mut Default::default(), &program, &Default::default()).expect("check");
        let first = dir.path().join("first.safetensors");
        std::fs::write(&first, "older output").expect("write older output");
        let savers = open_savers(&plan).expect("open");
        savers[0].writer.write(0, &bytes).expect("write first");
        assert!(finish_savers(&plan, savers).is_err());
        assert_eq!(std::fs::read_to_string(&first).expect("read"), "older output");
        assert!(!dir.path().join("second.safetensors").exists());
    }
}
