//! One streamed pass over the tensor names that a set of measurements and
//! saves needs.

use super::tensor::{dot, to_f32, TVal, TensorCtx};
use crate::diag::{Diagnostic, Span};
use crate::graph::{Graph, Measure, MeasureId, NodeId, Op};
use crate::io::{SaveOptions, TensorInfo, Writer};
use crate::lower::Plan;
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::io::IsTerminal;

pub(super) struct Saver {
    writer: Writer,
    infos: Vec<TensorInfo>,
}

pub(super) struct Pass<'a> {
    pub plan: &'a Plan,
    pub measures: &'a [MeasureId],
    pub saves: &'a [usize],
    pub savers: &'a [Saver],
    pub measured: &'a [Option<f64>],
    pub progress: bool,
}

/// What one tensor name contributed: a partial sum per measurement, and
/// how many node tensors it wrote.
type Contribution = (Vec<f64>, usize);

impl Pass<'_> {
    /// Runs the pass; returns each measurement's value and the number of
    /// tensors computed. Partial sums are combined in name order, so the
    /// result does not depend on the number of threads.
    pub fn run(&self) -> Result<(Vec<f64>, usize), Diagnostic> {
        let names = self.names();
        let bar = progress_bar(self.progress, names.len() as u64);
        let device = Device::Cpu;
        let results: Vec<Result<Contribution, Diagnostic>> = names
            .par_iter()
            .map(|name| {
                let result = self.one_tensor(name, &device);
                bar.inc(1);
                result
            })
            .collect();
        bar.finish_and_clear();
        let mut totals = vec![0.0; self.measures.len()];
        let mut computed = 0;
        for result in results {
            let (partials, count) = result?;
            for (total, partial) in totals.iter_mut().zip(partials) {
                *total += partial;
            }
            computed += count;
        }
        Ok((totals, computed))
    }

    fn graph(&self) -> &Graph {
        &self.plan.graph
    }

    /// Every tensor name some root of this pass holds, sorted.
    fn names(&self) -> Vec<&str> {
        let measure_roots = self.measures.iter().flat_map(|m| {
            let Measure::Dot(a, b) = self.graph().measure(*m);
            [a, b]
        });
        let save_roots = self.saves.iter().map(|i| self.plan.saves[*i].node);
        let mut names = BTreeSet::new();
        for root in measure_roots.chain(save_roots) {
            names.extend(self.graph().specs(root).tensors.iter().map(|s| s.name.as_str()));
        }
        names.into_iter().collect()
    }

    fn one_tensor(&self, name: &str, device: &Device) -> Result<Contribution, Diagnostic> {
        let mut ctx = TensorCtx::new(self.graph(), name, self.measured, device);
        let mut partials = Vec::with_capacity(self.measures.len());
        for m in self.measures {
            let Measure::Dot(a, b) = self.graph().measure(*m);
            let partial = self
                .partial_dot(&mut ctx, a, b)
                .map_err(|e| compute_error(self.graph(), a, name, e))?;
            partials.push(partial);
        }
        let mut written = 0;
        for &i in self.saves {
            written += self.save_tensor(&mut ctx, i)?;
        }
        Ok((partials, written))
    }

    fn partial_dot(&self, ctx: &mut TensorCtx, a: NodeId, b: NodeId) -> candle_core::Result<f64> {
        let float = self.graph().specs(a).find(ctx.name).is_some_and(|s| s.float);
        if !float {
            return Ok(0.0);
        }
        let va = ctx.value(a)?;
        let vb: TVal = if a == b { va.clone() } else { ctx.value(b)? };
        dot(&va, &vb)
    }

    /// Writes tensor `ctx.name` of save `i`, if that save holds it.
    fn save_tensor(&self, ctx: &mut TensorCtx, i: usize) -> Result<usize, Diagnostic> {
        let job = &self.plan.saves[i];
        let saver = &self.savers[i];
        let Some(index) = saver.infos.iter().position(|t| t.name == ctx.name) else {
            return Ok(0);
        };
        let info = &saver.infos[index];
        let spec_is_float = self.graph().specs(job.node).tensors[index].float;
        let result = if spec_is_float {
            let value = ctx
                .value(job.node)
                .map_err(|e| compute_error(self.graph(), job.node, ctx.name, e))?;
            let values =
                to_f32(&value, info.numel()).map_err(|e| compute_error(self.graph(), job.node, ctx.name, e))?;
            let bytes = crate::io::encode_f32(info.dtype, &values).unwrap_or_default();
            saver.writer.write(index, &bytes)
        } else {
            let checkpoint = self.graph().leaf(carrier_leaf(self.graph(), job.node));
            let source = checkpoint
                .index_of(ctx.name)
                .map(|k| checkpoint.bytes(k))
                .unwrap_or_default();
            saver.writer.write(index, source)
        };
        result.map_err(|e| write_error(job.span, &job.path, &e))?;
        Ok(1)
    }
}

/// The checkpoint that non-float tensors (and config files) come from: the
/// left-most one.
pub(super) fn carrier_leaf(graph: &Graph, node: NodeId) -> crate::graph::LeafId {
    match &graph.node(node).op {
        Op::Leaf(leaf) => *leaf,
        Op::Select { input, .. } => carrier_leaf(graph, *input),
        Op::Lin(terms) => carrier_leaf(graph, terms[0].node),
    }
}

/// The folder whose config and tokenizer files travel with a saved model:
/// that of the first checkpoint in the expression that is a folder.
fn config_folder(graph: &Graph, node: NodeId) -> Option<&std::path::Path> {
    match &graph.node(node).op {
        Op::Leaf(leaf) => graph.leaf(*leaf).folder(),
        Op::Select { input, .. } => config_folder(graph, *input),
        Op::Lin(terms) => terms.iter().find_map(|t| config_folder(graph, t.node)),
    }
}

/// Opens a writer per save, before any data is read, so a bad target path
/// fails the run early.
pub(super) fn open_savers(plan: &Plan) -> Result<Vec<Saver>, Diagnostic> {
    plan.saves
        .iter()
        .map(|job| {
            let infos = output_infos(plan, job.node);
            let options = SaveOptions {
                copy_from: config_folder(&plan.graph, job.node).map(|f| f.to_path_buf()),
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
fn output_infos(plan: &Plan, node: NodeId) -> Vec<TensorInfo> {
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

/// Moves every save into place; returns the bytes written.
/// If one fails, the saves already moved into place are removed again, so a
/// failed run leaves no output behind.
pub(super) fn finish_savers(plan: &Plan, savers: Vec<Saver>) -> Result<u64, Diagnostic> {
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

fn write_error(span: Span, path: &std::path::Path, error: &crate::io::IoError) -> Diagnostic {
    let diag = Diagnostic::new("tv::save", format!("cannot save {}: {error}", path.display())).at(span, "saving here");
    match error.help() {
        Some(help) => diag.help(help),
        None => diag,
    }
}

fn compute_error(graph: &Graph, node: NodeId, name: &str, error: candle_core::Error) -> Diagnostic {
    Diagnostic::new("tv::compute", format!("computing tensor `{name}` failed: {error}"))
        .at(graph.node(node).span, "while computing this")
}

fn progress_bar(enabled: bool, len: u64) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} tensors, eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
