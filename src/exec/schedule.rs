//! Which measurements and saves run in which pass. Tensors computed in a
//! pass (saves, primitives' inputs, models) may use only numbers measured
//! in earlier passes (`save tau / norm(tau)` needs `norm(tau)` first), so
//! they get a level one more than the deepest measurement their
//! coefficients depend on. A weight-space measurement needs no
//! coefficient during its pass: its Gram entries do not depend on them,
//! and the coefficients are applied afterwards. So `cosine(tau /
//! norm(tau), ...)` is measured in the same pass as `norm(tau)`.

use crate::graph::{Graph, Measure, MeasureId, NodeId, Op};
use crate::lower::Plan;
use std::collections::{BTreeSet, HashMap};

pub(super) struct Schedule {
    measure_levels: Vec<(MeasureId, usize)>,
    save_levels: Vec<usize>,
    /// Training jobs something needs (indices into the graph's trainings),
    /// each run at the start of its level, before the level's pass.
    train_levels: Vec<(usize, usize)>,
    /// The jobs the report and the saves read directly.
    direct: BTreeSet<usize>,
}

impl Schedule {
    pub fn new(plan: &Plan) -> Schedule {
        let mut levels = Levels {
            graph: &plan.graph,
            memo: HashMap::new(),
        };
        let measures = needed_measures(plan);
        let measure_levels: Vec<(MeasureId, usize)> = measures.into_iter().map(|m| (m, levels.of_measure(m))).collect();
        let save_levels = plan.saves.iter().map(|s| levels.of_node(s.node)).collect();
        let measures = measures_of(&measure_levels);
        let train_levels = needed_trainings(plan, &measures)
            .into_iter()
            .map(|job| (job, levels.of_job(job)))
            .collect();
        Schedule {
            measure_levels,
            save_levels,
            train_levels,
            direct: trainings_below(&plan.graph, &roots(plan, &measures), false),
        }
    }

    /// The training jobs of `level`, inputs before the jobs that use them.
    pub fn trainings_at(&self, level: usize) -> Vec<usize> {
        self.train_levels
            .iter()
            .filter(|(_, l)| *l == level)
            .map(|(job, _)| *job)
            .collect()
    }

    /// Every training job the run may need.
    pub fn trainings(&self) -> Vec<usize> {
        self.train_levels.iter().map(|(job, _)| *job).collect()
    }

    /// The jobs something other than the jobs of `level` and before needs:
    /// the report and the saves directly, or a job of a later level.
    pub fn wanted_after(&self, graph: &Graph, level: usize) -> BTreeSet<usize> {
        let later: Vec<NodeId> = self
            .train_levels
            .iter()
            .filter(|(_, l)| *l > level)
            .filter_map(|(job, _)| graph.trainings()[*job].input())
            .collect();
        let mut wanted = self.direct.clone();
        wanted.extend(trainings_below(graph, &later, false));
        wanted
    }

    /// Passes needed: at least one when anything is to be done.
    pub fn levels(&self) -> usize {
        let deepest = self
            .measure_levels
            .iter()
            .map(|(_, l)| *l)
            .chain(self.save_levels.iter().copied())
            .chain(self.train_levels.iter().map(|(_, l)| *l))
            .max();
        deepest.map_or(0, |d| d + 1)
    }

    pub fn measures_at(&self, level: usize) -> Vec<MeasureId> {
        self.measure_levels
            .iter()
            .filter(|(_, l)| *l == level)
            .map(|(m, _)| *m)
            .collect()
    }

    pub fn saves_at(&self, level: usize) -> Vec<usize> {
        (0..self.save_levels.len())
            .filter(|i| self.save_levels[*i] == level)
            .collect()
    }
}

/// Every measurement that the report or a save depends on, directly or
/// through coefficients, sorted.
pub fn needed_measures(plan: &Plan) -> Vec<MeasureId> {
    let graph = &plan.graph;
    let mut stack = Vec::new();
    for scalar in plan.table.scalars() {
        graph.scalars.measures_in(scalar, &mut stack);
    }
    stack.retain(|m| !plan.skipped.contains(m));
    let mut nodes: Vec<NodeId> = plan.saves.iter().map(|s| s.node).collect();
    let mut found = std::collections::BTreeSet::new();
    loop {
        for node in nodes.drain(..) {
            coefficient_measures(graph, node, &mut stack);
        }
        let Some(m) = stack.pop() else { break };
        if found.insert(m) {
            nodes.extend(graph.measure(m).nodes());
        }
    }
    found.into_iter().collect()
}

/// Measurements referenced by the coefficients anywhere below `node`,
/// through training jobs to the weights they train from.
pub(crate) fn coefficient_measures(graph: &Graph, node: NodeId, out: &mut Vec<MeasureId>) {
    if let Op::Lin(terms) = &graph.node(node).op {
        terms.iter().for_each(|t| graph.scalars.measures_in(t.coef, out));
    }
    for input in graph.dependencies(node) {
        coefficient_measures(graph, input, out);
    }
}

fn measures_of(levels: &[(MeasureId, usize)]) -> Vec<MeasureId> {
    levels.iter().map(|(m, _)| *m).collect()
}

/// The training jobs below the saves and the needed measurements, in the
/// graph's order (which puts a job after the jobs it trains from).
fn needed_trainings(plan: &Plan, measures: &[MeasureId]) -> Vec<usize> {
    trainings_below(&plan.graph, &roots(plan, measures), true)
        .into_iter()
        .collect()
}

/// The nodes the report and the saves read.
fn roots(plan: &Plan, measures: &[MeasureId]) -> Vec<NodeId> {
    let mut roots: Vec<NodeId> = plan.saves.iter().map(|s| s.node).collect();
    roots.extend(measures.iter().flat_map(|m| plan.graph.measure(*m).nodes()));
    roots
}

/// The training jobs whose results `roots` are computed from: all of them
/// (`through` their inputs), or only the nearest ones.
pub(crate) fn trainings_below(graph: &Graph, roots: &[NodeId], through: bool) -> BTreeSet<usize> {
    let mut stack = roots.to_vec();
    let mut seen = std::collections::HashSet::new();
    let mut jobs = BTreeSet::new();
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        if let Op::Leaf(leaf) = graph.node(node).op {
            if let Some(job) = graph.training_index(leaf) {
                jobs.insert(job);
                if !through {
                    continue;
                }
            }
        }
        stack.extend(graph.dependencies(node));
    }
    jobs
}

/// The jobs that must run (or be found cached) among `jobs` (inputs
/// first): those `wanted` by something else, and the inputs of wanted jobs
/// that are not cached. The input of a cached result is not needed: a chain
/// whose last job is cached trains nothing.
pub(super) fn jobs_to_run(
    graph: &Graph,
    jobs: &[usize],
    wanted: &BTreeSet<usize>,
    cached: &dyn Fn(usize) -> bool,
) -> BTreeSet<usize> {
    let mut needed: BTreeSet<usize> = jobs.iter().copied().filter(|j| wanted.contains(j)).collect();
    for &job in jobs.iter().rev() {
        let input = graph.trainings()[job].input();
        let below = trainings_below(graph, &input.into_iter().collect::<Vec<_>>(), false);
        // Asked only where the answer matters: a cache lookup verifies the
        // entry's checksums, which the run does again when it opens it.
        if needed.contains(&job) && !below.is_empty() && !cached(job) {
            needed.extend(below);
        }
    }
    needed
}

struct Levels<'g> {
    graph: &'g Graph,
    memo: HashMap<MeasureId, usize>,
}

impl Levels<'_> {
    fn of_measure(&mut self, m: MeasureId) -> usize {
        if let Some(level) = self.memo.get(&m) {
            return *level;
        }
        let level = match self.graph.measure(m) {
            Measure::Dot(a, b) => self.of_side(a).max(self.of_side(b)),
            other => other.nodes().into_iter().map(|n| self.of_node(n)).max().unwrap_or(0),
        };
        self.memo.insert(m, level);
        level
    }

    /// The pass in which a side of a dot product can be measured: its
    /// atoms must be computable, and the measurements its coefficients use
    /// made in that pass or before.
    fn of_side(&mut self, node: NodeId) -> usize {
        let Op::Lin(terms) = &self.graph.node(node).op else {
            return self.of_node(node);
        };
        let mut deps = Vec::new();
        terms
            .iter()
            .for_each(|t| self.graph.scalars.measures_in(t.coef, &mut deps));
        let atoms = terms.iter().map(|t| self.of_node(t.node)).max().unwrap_or(0);
        let coefs = deps.into_iter().map(|m| self.of_measure(m)).max().unwrap_or(0);
        atoms.max(coefs)
    }

    /// The level whose start a training job runs at: where its input can be
    /// computed.
    fn of_job(&mut self, job: usize) -> usize {
        match self.graph.trainings()[job].input() {
            Some(input) => self.of_node(input),
            None => 0,
        }
    }

    /// The pass in which `node` can be computed.
    fn of_node(&mut self, node: NodeId) -> usize {
        let mut deps = Vec::new();
        coefficient_measures(self.graph, node, &mut deps);
        deps.into_iter().map(|m| self.of_measure(m) + 1).max().unwrap_or(0)
    }
}
