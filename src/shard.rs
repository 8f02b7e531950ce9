//! Sharded runs: `tv run --shard I/N` makes a deterministic 1/N of a
//! program's model evaluations, and `tv merge` puts the parts together.
//!
//! The unit of work is a sweep point's model evaluations (`accuracy`,
//! `loss`, `perplexity`, `command`): evaluations at one point, of one
//! model, or inside one eval's formula stay together. Units are dealt to
//! shards by estimated cost, largest first, each to the least loaded
//! shard, so every shard computes the same assignment from the program
//! alone. Everything else (weight-space measurements, which are cheap
//! for a whole grid, and model evaluations that other numbers depend on)
//! is computed by every shard; saves happen in shard 0 only.
//!
//! A part is the report with the cells of other shards' units left empty;
//! `merge` takes each cell from the parts that filled it.

use crate::eval::{EvalData, ModelConfig};
use crate::graph::{Graph, Measure, MeasureId, NodeId};
use crate::lower::Plan;
use crate::report::record::ShardRecord;
use std::collections::{BTreeMap, BTreeSet};

/// `I/N`: the `I`-th of `N` shards, counted from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// More shards than this is surely a typo.
pub const MAX_SHARDS: usize = 100_000;

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("expected I/N with 0 <= I < N <= {MAX_SHARDS}, e.g. 0/4, got \"{text}\"");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: usize = index.trim().parse().map_err(|_| usage())?;
        let count: usize = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Model evaluations that go to one shard together, and what they cost.
#[derive(Clone, Debug)]
pub struct Unit {
    pub measures: Vec<MeasureId>,
    /// Estimated floating-point operations: forward passes, and the
    /// training of the models they evaluate.
    pub flops: f64,
}

/// What a `command(...)` counts as: its cost is unknown, so each counts
/// as much as a forward pass of a billion-parameter model on 500 tokens.
const COMMAND_FLOPS: f64 = 1e12;

/// The units of a plan, in the order of their first measurement.
pub fn units(plan: &Plan) -> Vec<Unit> {
    let graph = &plan.graph;
    let divisible = divisible(plan);
    let mut sets = Sets::new(&divisible);
    let mut by_node: BTreeMap<NodeId, MeasureId> = BTreeMap::new();
    for &m in &divisible {
        for node in graph.measure(m).nodes() {
            if let Some(first) = by_node.insert(node, m) {
                sets.join(first, m);
            }
        }
    }
    for row in plan.table.row_scalars() {
        let mut found = Vec::new();
        row.iter().for_each(|s| graph.scalars.measures_in(*s, &mut found));
        found.retain(|m| divisible.contains(m));
        found.windows(2).for_each(|pair| sets.join(pair[0], pair[1]));
    }
    sets.groups()
        .into_iter()
        .map(|measures| Unit {
            flops: measures.iter().map(|m| flops(graph, *m)).sum::<f64>() + training_flops(graph, &measures),
            measures,
        })
        .collect()
}

/// Each unit's shard, given the units' costs: largest first, to the least
/// loaded (the lowest index among equals), so the assignment depends on
/// the plan alone.
pub fn assign(flops: &[f64], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..flops.len()).collect();
    order.sort_by(|a, b| flops[*b].total_cmp(&flops[*a]).then(a.cmp(b)));
    let mut load = vec![0.0f64; count];
    let mut shard_of = vec![0; flops.len()];
    for unit in order {
        let lightest = (0..count).min_by(|a, b| load[*a].total_cmp(&load[*b]).then(a.cmp(b)));
        let shard = lightest.unwrap_or(0);
        load[shard] += flops[unit].max(1.0);
        shard_of[unit] = shard;
    }
    shard_of
}

/// Restricts `plan` to shard `shard`: other shards' units are skipped,
/// only shard 0 saves, and no shard draws figures (its report is partial).
pub fn restrict(plan: &mut Plan, shard: Shard) {
    let units = units(plan);
    let flops: Vec<f64> = units.iter().map(|u| u.flops).collect();
    let shard_of = assign(&flops, shard.count);
    let mut record = ShardRecord {
        index: shard.index,
        count: shard.count,
        units: 0,
        units_in_all: units.len(),
        estimated_tflop: 0.0,
    };
    for (unit, owner) in units.iter().zip(shard_of) {
        if owner == shard.index {
            record.units += 1;
            record.estimated_tflop += unit.flops / 1e12;
        } else {
            plan.skipped.extend(&unit.measures);
        }
    }
    if shard.index != 0 {
        plan.saves.clear();
    }
    plan.figures.clear();
    plan.shard = Some(record);
}

/// The needed model evaluations that only report cells outside sweeps
/// lowered once read: those a shard may leave to another.
fn divisible(plan: &Plan) -> BTreeSet<MeasureId> {
    let graph = &plan.graph;
    let needed = crate::exec::needed_measures(plan);
    let mut shared = Vec::new();
    let mut nodes: Vec<NodeId> = plan.saves.iter().map(|s| s.node).collect();
    nodes.extend(needed.iter().flat_map(|m| graph.measure(*m).nodes()));
    for node in nodes {
        crate::exec::coefficient_measures(graph, node, &mut shared);
    }
    let mut in_blocks = Vec::new();
    plan.table.blocks().iter().for_each(|b| b.level.scalars(&mut in_blocks));
    in_blocks
        .iter()
        .for_each(|s| graph.scalars.measures_in(*s, &mut shared));
    let shared: BTreeSet<MeasureId> = shared.into_iter().collect();
    needed
        .into_iter()
        .filter(|m| !matches!(graph.measure(*m), Measure::Dot(..)) && !shared.contains(m))
        .collect()
}

/// A forward pass: two operations per parameter per token or row.
fn flops(graph: &Graph, m: MeasureId) -> f64 {
    let Measure::Model(model) = graph.measure(m) else {
        return COMMAND_FLOPS;
    };
    let examples = match &*graph.datasets[model.data] {
        EvalData::Table(rows) => rows.len() as f64,
        EvalData::Text(text) => text.documents.iter().map(Vec::len).sum::<usize>() as f64,
    };
    2.0 * parameters(&graph.configs[model.config]) * examples
}

fn parameters(config: &ModelConfig) -> f64 {
    match config {
        ModelConfig::Mlp(mlp) => mlp.layers.windows(2).map(|w| (w[0] * w[1] + w[1]) as f64).sum(),
        ModelConfig::Causal(lm) => lm.parameters() as f64,
    }
}

/// The training of the models a unit evaluates (a cached model costs the
/// same here: the assignment must not depend on what a cache holds).
fn training_flops(graph: &Graph, measures: &[MeasureId]) -> f64 {
    let nodes: Vec<NodeId> = measures.iter().flat_map(|m| graph.measure(*m).nodes()).collect();
    let jobs = crate::exec::trainings_below(graph, &nodes, true);
    jobs.iter()
        .map(|j| crate::exec::plan_training::cost(graph, &graph.trainings()[*j]).1)
        .sum()
}

/// Disjoint sets of measurements (union-find with path halving).
struct Sets {
    ids: Vec<MeasureId>,
    parent: Vec<usize>,
}

impl Sets {
    fn new(ids: &BTreeSet<MeasureId>) -> Sets {
        let ids: Vec<MeasureId> = ids.iter().copied().collect();
        let parent = (0..ids.len()).collect();
        Sets { ids, parent }
    }

    fn position(&self, m: MeasureId) -> usize {
        self.ids.binary_search(&m).unwrap_or(0)
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, a: MeasureId, b: MeasureId) {
        let (a, b) = (self.position(a), self.position(b));
        let (a, b) = (self.root(a), self.root(b));
        // The smaller index stays the root, so groups keep their first member.
        self.parent[a.max(b)] = a.min(b);
    }

    /// The groups, each sorted, ordered by their first member.
    fn groups(mut self) -> Vec<Vec<MeasureId>> {
        let mut groups: BTreeMap<usize, Vec<MeasureId>> = BTreeMap::new();
        for i in 0..self.ids.len() {
            let root = self.root(i);
            groups.entry(root).or_default().push(self.ids[i]);
        }
        groups.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_what_is_not_one() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "0/0", "1", "-1/3", "a/b", "1/1000001", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_largest_units_spread_over_the_shards() {
        let units = [1.0, 10.0, 9.0, 2.0, 8.0];
        let shards = assign(&units, 2);
        let load = |s: usize| -> f64 {
            units
                .iter()
                .zip(&shards)
                .filter(|(_, o)| **o == s)
                .map(|(u, _)| *u)
                .sum()
        };
        // 10 + 2 + 1 against 9 + 8: greedy gives 13 and 17, within the largest unit.
        assert_eq!(load(0) + load(1), 30.0);
        assert!((load(0) - load(1)).abs() <= 10.0);
        assert_eq!(shards[1], 0, "the largest unit goes to the first shard");
        assert_eq!(shards[2], 1);
    }

    #[test]
    fn more_shards_than_units_leaves_some_empty() {
        let shards = assign(&[1.0, 1.0], 5);
        assert_eq!(shards, vec![0, 1]);
    }
}
