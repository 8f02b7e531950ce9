//! The streaming executor: the only module that touches tensor data.
//!
//! Work is organised tensor name by tensor name. For each name, every input
//! checkpoint's tensor is read once (memory-mapped), every node that needs
//! it is computed, the results are folded into the reductions and written
//! to the savers, and everything is dropped before the next name. Peak
//! memory is a few tensors per worker, never a whole model, and a sweep of
//! any number of points reads each input once.

mod pass;
mod schedule;
mod tensor;

use crate::diag::{Diagnostic, Diagnostics};
use crate::graph::MeasureId;
use crate::lower::Plan;
use std::time::Instant;

pub use schedule::needed_measures;

/// How to execute.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Worker threads; `None` for one per core.
    pub threads: Option<usize>,
    /// Draw progress bars (only ever on a terminal).
    pub progress: bool,
}

/// What execution measured, with counters for `--stats`.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Indexed by `MeasureId`; `None` for measurements nobody needed.
    pub measured: Vec<Option<f64>>,
    pub stats: Stats,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub passes: usize,
    pub tensors_computed: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
}

/// Executes a lowered plan: every measurement the report needs and every
/// save. Saved files appear only if the whole run succeeds.
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
    pool.install(|| execute_in_pool(plan, options))
}

fn execute_in_pool(plan: &Plan, options: &ExecOptions) -> Result<Outcome, Diagnostics> {
    let started = Instant::now();
    let read_before: u64 = plan.graph.leaves().iter().map(|c| c.bytes_read()).sum();
    let schedule = schedule::Schedule::new(plan);
    let savers = pass::open_savers(plan).map_err(|d| vec![d])?;
    let mut measured: Vec<Option<f64>> = vec![None; plan.graph.measure_count()];
    let mut stats = Stats::default();
    for level in 0..schedule.levels() {
        let measures: Vec<MeasureId> = schedule.measures_at(level);
        let saves: Vec<usize> = schedule.saves_at(level);
        let work = pass::Pass {
            plan,
            measures: &measures,
            saves: &saves,
            savers: &savers,
            measured: &measured,
            progress: options.progress,
        };
        let (values, computed) = work.run().map_err(|d| vec![d])?;
        for (m, v) in measures.iter().zip(values) {
            measured[m.0 as usize] = Some(v);
        }
        stats.passes += 1;
        stats.tensors_computed += computed;
    }
    stats.bytes_written = pass::finish_savers(plan, savers).map_err(|d| vec![d])?;
    let read_after: u64 = plan.graph.leaves().iter().map(|c| c.bytes_read()).sum();
    stats.bytes_read = read_after - read_before;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(Outcome { measured, stats })
}
