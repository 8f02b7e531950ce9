//! The training jobs of `tv plan`: what each trains, whether the cache
//! holds its result already, and what it costs.

use super::fingerprint::Fingerprints;
use crate::eval::{EvalData, ModelConfig};
use crate::graph::train::Settings;
use crate::graph::{Graph, TrainJob, TrainKind};
use crate::lower::Plan;

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
    /// Its input's coefficients wait for measurements, or there is no cache.
    Unknown,
}

/// Every job the run needs, in the order it runs them.
pub fn planned(plan: &Plan, jobs: &[usize]) -> Vec<PlannedTraining> {
    let graph = &plan.graph;
    let mut fingerprints = Fingerprints::new(graph);
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
                status: status(plan, &mut fingerprints, job),
                examples,
                unit,
                flops,
            }
        })
        .collect()
}

fn status(plan: &Plan, fingerprints: &mut Fingerprints, job: &TrainJob) -> CacheStatus {
    let Some(cache) = &plan.cache else {
        return CacheStatus::Unknown;
    };
    match fingerprints.key(job, &|s| plan.graph.scalars.known(s)) {
        Ok(Some(key)) if cache.holds(job.name(), &key) => CacheStatus::Hit,
        Ok(Some(_)) => CacheStatus::Miss,
        _ => CacheStatus::Unknown,
    }
}

fn cost(graph: &Graph, job: &TrainJob) -> (u64, f64) {
    let TrainKind::Finetune { data, args, .. } = &job.kind else {
        return (0, 0.0);
    };
    let parameters = match &*graph.configs[job.config] {
        ModelConfig::Mlp(_) => job.specs.numel() as f64,
        ModelConfig::Causal(lm) => lm.parameters() as f64,
    };
    let examples = match (args, &*graph.datasets[*data]) {
        (Settings::Lm(a), EvalData::Text(_)) => (a.steps * a.batch * a.accumulate * a.context) as u64,
        (Settings::Mlp(a), _) => (a.steps * a.batch) as u64,
        _ => 0,
    };
    (examples, 6.0 * parameters * examples as f64)
}
