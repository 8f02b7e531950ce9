//! `tv plan`: what a run will do, worked out from headers alone.

use super::family::{self, Family};
use super::kernel::CHUNK;
use super::schedule::Schedule;
use crate::eval::{EvalData, ModelConfig};
use crate::graph::{Graph, Measure, MeasureId, NodeId, Op};
use crate::lower::Plan;
use std::collections::HashSet;

/// The expected shape of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub sweep_points: usize,
    /// Of which in sweeps lowered once, whose evals are formulas.
    pub formula_points: u64,
    /// Passes over the data, not counting re-measurements of Gram results
    /// that turn out to cancel (known only once measured).
    pub passes: usize,
    pub checkpoints: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub saves: usize,
    /// The figures drawn from the report, by path.
    pub figures: Vec<String>,
    pub gram_measures: usize,
    pub direct_measures: usize,
    pub gram_entries: usize,
    /// Each eval column and how its numbers are measured: "gram",
    /// "direct", "mixed", "model" (a model evaluated on data), or "none"
    /// (no tensor data needed).
    pub evals: Vec<(String, &'static str)>,
    /// Anonymous memory (page cache not counted).
    pub peak_memory: u64,
    pub graph_nodes: usize,
    /// The training jobs the run needs, in order.
    pub trainings: Vec<super::plan_training::PlannedTraining>,
    /// The estimated cost (floating-point operations) of each unit of
    /// model evaluations a sharded run deals out (see `crate::shard`).
    pub units: Vec<f64>,
}

/// Plans the run of `plan` on `threads` workers.
pub fn summarize(plan: &Plan, threads: usize) -> Summary {
    let schedule = Schedule::new(plan);
    // Coefficients that depend on measurements are unknown yet: any nonzero
    // value gives the same structure.
    let structural = |s| plan.graph.scalars.known(s);
    let sample = |s| plan.graph.scalars.known(s).unwrap_or(1.0);
    let mut families: Vec<Family> = Vec::new();
    let mut passes = 0;
    for level in 0..schedule.levels() {
        let saves: Vec<(usize, NodeId)> = schedule
            .saves_at(level)
            .into_iter()
            .map(|i| (i, plan.saves[i].node))
            .collect();
        let work = family::Work {
            measures: &schedule.measures_at(level),
            requests: &[],
            saves: &saves,
            coef: &structural,
            sample: &sample,
        };
        let built = family::build(&plan.graph, &work);
        // A level of model measurements alone streams nothing.
        passes += usize::from(!built.is_empty());
        families.extend(built);
    }
    let gram: HashSet<MeasureId> = families.iter().flat_map(|f| f.gram.iter().map(|p| p.measure)).collect();
    let direct: HashSet<MeasureId> = families
        .iter()
        .flat_map(|f| f.direct.iter().map(|p| p.measure))
        .collect();
    let widest = families.iter().map(|f| f.atoms.len()).max().unwrap_or(0);
    Summary {
        sweep_points: plan.table.sweep_points(),
        formula_points: plan.table.blocks().iter().map(|b| b.level.innermost_points()).sum(),
        passes,
        checkpoints: plan.graph.loaded_count(),
        bytes_read: families.iter().map(|f| super::pass::read_bytes(&plan.graph, f)).sum(),
        bytes_written: written_bytes(plan),
        saves: plan.saves.len(),
        figures: plan.figures.iter().map(|f| f.path.display().to_string()).collect(),
        gram_measures: gram.len(),
        direct_measures: direct.len(),
        gram_entries: families.iter().map(|f| f.pairs.len()).sum(),
        evals: eval_paths(plan, &gram, &direct),
        peak_memory: BASE_MEMORY
            + ((threads * (widest + 3) * CHUNK * 8) as u64 + primitive_memory(plan, &families)).max(model_memory(plan)),
        graph_nodes: plan.graph.node_count(),
        trainings: super::plan_training::planned(
            plan,
            &schedule.trainings(),
            &schedule.wanted_after(&plan.graph, usize::MAX),
        ),
        units: crate::shard::units(plan).iter().map(|u| u.flops).collect(),
    }
}

/// The program itself, its threads and the parsed headers, roughly.
const BASE_MEMORY: u64 = 8 << 20;

/// Primitives work on whole tensors: for a family's largest tensor, every
/// primitive result (f32) is held until the tensor is done, and one
/// primitive's inputs (f64) while it runs.
fn primitive_memory(plan: &Plan, families: &[Family]) -> u64 {
    let graph = &plan.graph;
    let per_family = families.iter().map(|f| {
        let mut primitives = HashSet::new();
        f.atoms
            .iter()
            .for_each(|a| collect_primitives(graph, *a, &mut primitives));
        let widest = primitives.iter().map(|p| match &graph.node(*p).op {
            Op::Map { inputs, .. } => inputs.len(),
            _ => 0,
        });
        let Some(widest) = widest.max() else { return 0 };
        let specs = graph.specs(f.atoms[0]);
        let largest = specs
            .tensors
            .iter()
            .filter(|s| s.float)
            .map(|s| s.numel())
            .max()
            .unwrap_or(0);
        (primitives.len() * largest * 4 + (widest + 1) * largest * 8) as u64
    });
    per_family.max().unwrap_or(0)
}

/// Model measurements hold one whole model in f32 (a language model twice
/// where its weights are packed for the CPU kernel), and a language model's
/// activations for one batch of windows.
fn model_memory(plan: &Plan) -> u64 {
    let graph = &plan.graph;
    let measures = (0..graph.measure_count()).map(|i| graph.measure(MeasureId(i as u32)));
    let per_measure = measures.map(|m| {
        let mut copies = 1;
        let (node, activations) = match m {
            Measure::Dot(..) => return 0,
            Measure::Command { node, .. } => (node, 0),
            Measure::Model(model) => {
                let activations = match (&*graph.configs[model.config], &*graph.datasets[model.data]) {
                    (ModelConfig::Causal(config), EvalData::Text(task)) => {
                        copies += crate::eval::lm::dense::packs_weights() as u64;
                        config.activation_bytes(task.windowing).min(u64::MAX as f64 / 4.0) as u64
                    }
                    _ => 0,
                };
                (model.node, activations)
            }
        };
        let weights: u64 = graph.specs(node).tensors.iter().map(|s| s.numel() as u64 * 4).sum();
        weights.saturating_mul(copies).saturating_add(activations)
    });
    per_measure.max().unwrap_or(0)
}

fn collect_primitives(graph: &Graph, node: NodeId, out: &mut HashSet<NodeId>) {
    if matches!(graph.node(node).op, Op::Map { .. }) && !out.insert(node) {
        return;
    }
    for input in graph.inputs(node) {
        collect_primitives(graph, input, out);
    }
}

fn written_bytes(plan: &Plan) -> u64 {
    let infos = plan.saves.iter().flat_map(|s| super::save::output_infos(plan, s.node));
    infos.map(|t| t.byte_len() as u64).sum()
}

fn eval_paths(plan: &Plan, gram: &HashSet<MeasureId>, direct: &HashSet<MeasureId>) -> Vec<(String, &'static str)> {
    plan.table
        .eval_columns()
        .into_iter()
        .map(|(name, scalars)| {
            let mut measures = Vec::new();
            for s in scalars {
                plan.graph.scalars.measures_in(s, &mut measures);
            }
            let in_gram = measures.iter().any(|m| gram.contains(m));
            let in_direct = measures.iter().any(|m| direct.contains(m));
            let is_dot = |m: &MeasureId| matches!(plan.graph.measure(*m), crate::graph::Measure::Dot(..));
            let path = match (in_gram, in_direct) {
                _ if !measures.iter().all(is_dot) => "model",
                (true, true) => "mixed",
                (true, false) => "gram",
                (false, true) => "direct",
                (false, false) => "none",
            };
            (name, path)
        })
        .collect()
}
