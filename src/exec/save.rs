//! Saves: one streaming writer per `save`, opened before any data is read
//! and moved into place only when the whole run has succeeded.

use crate::diag::{Diagnostic, Span};
use crate::graph::{Graph, NodeId, Op};
use crate::io::commit::Outputs;
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
                record: plan.folder_record.clone(),
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

/// Seals every save, complete, for the run's commit; returns them with the
/// bytes written. Nothing is in place yet: the caller commits them together
/// with the report, or drops them and nothing remains.
pub(super) fn seal_savers(plan: &Plan, savers: Vec<Saver>) -> Result<(Outputs, u64), Diagnostic> {
    let mut outputs = Outputs::default();
    let mut bytes = 0;
    for (job, saver) in plan.saves.iter().zip(savers) {
        bytes += saver.infos.iter().map(|t| t.byte_len() as u64).sum::<u64>();
        let sealed = saver.writer.seal().map_err(|e| write_error(job.span, &job.path, &e))?;
        outputs.push(sealed);
    }
    Ok((outputs, bytes))
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
    /// replaces the older file at its target, and leaves no staging.
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
        assert!(seal_savers(&plan, savers).is_err());
        assert_eq!(std::fs::read_to_string(&first).expect("read"), "older output");
        assert!(!dir.path().join("second.safetensors").exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
    }
}
