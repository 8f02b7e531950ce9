//! The training jobs of `tv plan`: what each trains, whether the cache
//! holds its result already, and what it costs.

use super::fingerprint::Fingerprints;
use crate::eval::{EvalData, ModelConfig};
use crate::graph::train::Settings;
use crate::graph::{Graph, TrainJob, TrainKind};
use crate::lower::Plan;
use std::collections::{BTreeSet, HashMap};

/// One training job as the plan shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTraining {
    /// As in the graph dump, with `%n` naming the input node.
    pub description: String,
    pub status: CacheStatus,
    /// Tokens (a language model) or rows (a classifier) trained on.
    pub examples: u64,
    /// "tokens" or "rows".
    pub unit: &'static str,
    /// Multiply-adds and their backward pass, about 6 per parameter per example.
    pub flops: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Found, complete and verified: the run trains nothing for it.
    Hit,
    Miss,
    /// Not run: every job that trains from it is cached.
    Skipped,
    /// Its input's coefficients wait for measurements, or there is no cache.
    Unknown,
}

/// Every job the run may need, in the order it runs them; `direct` are
/// those the report and the saves read.
pub fn planned(plan: &Plan, jobs: &[usize], direct: &BTreeSet<usize>) -> Vec<PlannedTraining> {
    let graph = &plan.graph;
    let mut fingerprints = Fingerprints::new(graph);
    let statuses: HashMap<usize, CacheStatus> = jobs
        .iter()
        .map(|&j| (j, status(plan, &mut fingerprints, &graph.trainings()[j])))
        .collect();
    let needed = super::schedule::jobs_to_run(graph, jobs, direct, &|j| statuses[&j] == CacheStatus::Hit);
    jobs.iter()
        .map(|&index| {
            let job = &graph.trainings()[index];
            let (examples, flops) = cost(graph, job);
            let unit = match &*graph.configs[job.config] {
                ModelConfig::Mlp(_) => "rows",
                ModelConfig::Causal(_) => "tokens",
            };
            PlannedTraining {
                description: crate::graph::train::describe(graph, job),
                status: match needed.contains(&index) {
                    true => statuses[&index],
                    false => CacheStatus::Skipped,
                },
                examples,
                unit,
                flops,
            }
        })
        .collect()
}

fn status(plan: &Plan, fingerprints: &mut Fingerprints, job: &TrainJob) -> CacheStatus {
    match fingerprints.key(job, &|s| plan.graph.scalars.known(s)) {
        // Without a cache (`--no-cache`) every job trains.
        Ok(Some(key)) if plan.cache.as_ref().is_some_and(|c| c.holds(job.name(), &key)) => CacheStatus::Hit,
        Ok(Some(_)) => CacheStatus::Miss,
        _ => CacheStatus::Unknown,
    }
}

pub(crate) fn cost(graph: &Graph, job: &TrainJob) -> (u64, f64) {
    let TrainKind::Finetune { data, args, .. } = &job.kind else {
        return (0, 0.0);
    };
    let parameters = match &*graph.configs[job.config] {
        ModelConfig::Mlp(_) => job.specs.numel() as f64,
        ModelConfig::Causal(lm) => lm.parameters() as f64,
    };
    // Settings up to 1e12 each: their product can pass u64.
    let product = |factors: &[usize]| factors.iter().fold(1u128, |p, f| p.saturating_mul(*f as u128));
    let examples = match (args, &*graph.datasets[*data]) {
        (Settings::Lm(a), EvalData::Text(_)) => product(&[a.steps, a.batch, a.accumulate, a.context]),
        (Settings::Mlp(a), _) => product(&[a.steps, a.batch]),
        _ => 0,
    };
    (
        examples.min(u64::MAX as u128) as u64,
        6.0 * parameters * examples as f64,
    )
}
