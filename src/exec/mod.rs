//! The streaming executor: the only module that touches tensor data.
//!
//! Work is organised by families (see `family`) and, within a family,
//! tensor by tensor: each input tensor is read once from its memory map,
//! one fused loop computes every Gram entry, direct product and save that
//! needs it, and nothing of it is kept. Peak memory is a few chunks per
//! worker, never a whole model, and a sweep of any number of points reads
//! each input once: its measurements are sums over one Gram matrix.

mod atoms;
mod backend;
pub(crate) mod exact;
mod family;
mod kernel;
pub mod materialize;
mod models;
mod nonfinite;
mod pass;
mod prims;
pub mod reference;
mod save;
mod schedule;
mod summary;

pub use backend::Backend;
pub use schedule::needed_measures;
pub use summary::{summarize, Summary};

use crate::diag::{Diagnostic, Diagnostics};
use crate::graph::{MeasureId, ScalarId};
use crate::lower::Plan;
use std::time::Instant;

/// How to execute.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Worker threads; `None` for one per core.
    pub threads: Option<usize>,
    /// Draw progress bars (only ever on a terminal).
    pub progress: bool,
    /// Where the tensor arithmetic runs.
    pub backend: Backend,
}

/// What execution measured, with counters for `--stats`.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Indexed by `MeasureId`; `None` for measurements nobody needed.
    pub measured: Vec<Option<f64>>,
    pub stats: Stats,
    /// The saves, complete but not yet in place: commit them, or drop them
    /// and nothing is left.
    pub outputs: crate::io::commit::Outputs,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub passes: usize,
    pub tensors_computed: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Measurements taken from a Gram matrix.
    pub gram_measures: usize,
    /// Measurements computed directly over the tensors.
    pub direct_measures: usize,
    /// Gram results that cancelled too much, measured again directly.
    pub remeasured: usize,
    /// Models scored on datasets (accuracy, loss, perplexity) and commands run.
    pub model_measures: usize,
    /// The whole run: training and execution.
    pub seconds: f64,
    /// Of which training (`init`, `finetune`, cache checks).
    pub training_seconds: f64,
}

/// Executes a lowered plan: every measurement the report needs and every
/// save, staged for the caller to commit.
pub fn execute(plan: &Plan, options: &ExecOptions) -> Result<Outcome, Diagnostics> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(threads) = options.threads {
        builder = builder.num_threads(threads);
    }
    let pool = builder.build().map_err(|e| {
        vec![Diagnostic::new(
            "tv::threads",
            format!("cannot start worker threads: {e}"),
        )]
    })?;
    pool.install(|| Executor::new(plan, options).run()).map_err(|d| vec![d])
}

struct Executor<'a> {
    plan: &'a Plan,
    options: &'a ExecOptions,
    measured: Vec<Option<f64>>,
    stats: Stats,
}

impl<'a> Executor<'a> {
    fn new(plan: &'a Plan, options: &'a ExecOptions) -> Self {
        Executor {
            plan,
            options,
            measured: vec![None; plan.graph.measure_count()],
            stats: Stats::default(),
        }
    }

    fn run(mut self) -> Result<Outcome, Diagnostic> {
        let started = Instant::now();
        let read_before = self.bytes_read();
        let schedule = schedule::Schedule::new(self.plan);
        let savers = save::open_savers(self.plan)?;
        for level in 0..schedule.levels() {
            let saves: Vec<_> = schedule
                .saves_at(level)
                .into_iter()
                .map(|i| (i, self.plan.saves[i].node))
                .collect();
            let (dots, models): (Vec<_>, Vec<_>) = schedule
                .measures_at(level)
                .into_iter()
                .partition(|m| matches!(self.plan.graph.measure(*m), crate::graph::Measure::Dot(..)));
            let cancelled = self.pass(&dots, &saves, &[], &savers)?;
            if !cancelled.is_empty() {
                self.stats.remeasured += cancelled.len();
                self.pass(&cancelled, &[], &cancelled, &savers)?;
            }
            self.score_models(&models)?;
        }
        let (outputs, bytes_written) = save::seal_savers(self.plan, savers)?;
        self.stats.bytes_written = bytes_written;
        self.stats.bytes_read = self.bytes_read() - read_before;
        self.stats.seconds = started.elapsed().as_secs_f64();
        Ok(Outcome {
            measured: self.measured,
            stats: self.stats,
            outputs,
        })
    }

    /// One pass (none when there is nothing to stream); returns the
    /// measurements whose Gram results cancelled.
    fn pass(
        &mut self,
        measures: &[MeasureId],
        saves: &[(usize, crate::graph::NodeId)],
        direct_only: &[MeasureId],
        savers: &[save::Saver],
    ) -> Result<Vec<MeasureId>, Diagnostic> {
        if measures.is_empty() && saves.is_empty() {
            return Ok(Vec::new());
        }
        let coef = |s: ScalarId| coefficient(&self.plan.graph, &self.measured, s);
        let families = family::build(&self.plan.graph, measures, saves, direct_only, &coef);
        let pass = pass::Pass {
            plan: self.plan,
            families: &families,
            savers,
            progress: self.options.progress,
            backend: &self.options.backend,
            label: format!(
                "pass {}, {} sweep points",
                self.stats.passes + 1,
                self.plan.table.sweep_points()
            ),
            coef: &coef,
        };
        let output = pass.run()?;
        for f in &families {
            self.stats.gram_measures += f.gram.len();
            self.stats.direct_measures += f.direct.len();
        }
        for (m, value) in output.values {
            self.measured[m.0 as usize] = Some(value);
        }
        self.stats.passes += 1;
        self.stats.tensors_computed += output.tensors;
        self.stats.gram_measures -= output.cancelled.len();
        Ok(output.cancelled)
    }

    /// Materialises and scores the models of `measures`.
    fn score_models(&mut self, measures: &[MeasureId]) -> Result<(), Diagnostic> {
        if measures.is_empty() {
            return Ok(());
        }
        let device = match &self.options.backend {
            Backend::Candle(device) => device.clone(),
            Backend::Native => candle_core::Device::Cpu,
        };
        let coef = |s: ScalarId| coefficient(&self.plan.graph, &self.measured, s);
        let scored = models::measure(&self.plan.graph, measures, &coef, &device, self.options.progress)?;
        self.stats.model_measures += scored.len();
        for (m, value) in scored {
            self.measured[m.0 as usize] = Some(value);
        }
        Ok(())
    }

    fn bytes_read(&self) -> u64 {
        self.plan.graph.leaves().iter().map(|c| c.bytes_read()).sum()
    }
}

/// A coefficient's value; the schedule guarantees its measurements are made
/// by the time it is needed.
fn coefficient(graph: &crate::graph::Graph, measured: &[Option<f64>], scalar: ScalarId) -> f64 {
    let known = |m: MeasureId| measured.get(m.0 as usize).copied().flatten();
    graph.scalars.value(scalar, &known).unwrap_or(f64::NAN)
}
