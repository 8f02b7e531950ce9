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
pub(crate) mod fingerprint;
mod kernel;
pub mod materialize;
mod models;
pub(crate) mod nonfinite;
mod pass;
pub mod plan_training;
pub mod points;
pub(crate) mod precision;
mod prims;
pub mod reference;
mod save;
mod schedule;
mod summary;
mod train;

pub use backend::Backend;
pub use schedule::needed_measures;
pub(crate) use schedule::{coefficient_measures, trainings_below};
pub use summary::{summarize, Summary};

use crate::diag::{Diagnostic, Diagnostics};
use crate::eval::cache::Cache;
use crate::graph::{MeasureId, ScalarId};
use crate::lower::Plan;
use family::{Coef, Request};
use precision::GramMatrix;
use std::collections::HashMap;
use std::sync::Arc;
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
    /// Where model evaluations are journaled as they are made, and found
    /// again when an interrupted run resumes.
    pub journal: Option<Arc<crate::journal::Journal>>,
}

/// What execution measured, with counters for `--stats`.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Indexed by `MeasureId`; `None` for measurements nobody needed, and
    /// for those whose value depends on a sweep variable.
    pub measured: Vec<Option<f64>>,
    /// Measurements that depend on sweep variables: their Gram forms, to
    /// be evaluated at each point of the report.
    pub forms: HashMap<MeasureId, GramForm>,
    /// Such measurements taken directly at single points, where their Gram
    /// result could not be trusted: by measurement and point key.
    pub at_points: HashMap<(MeasureId, u64), f64>,
    pub stats: Stats,
    /// The saves, complete but not yet in place: commit them, or drop them
    /// and nothing is left.
    pub outputs: crate::io::commit::Outputs,
}

/// A measurement as a function of its coefficients: its family's Gram
/// matrix and its coefficients on the family's atoms.
#[derive(Clone, Debug)]
pub struct GramForm {
    pub gram: Arc<GramMatrix>,
    pub atoms: Arc<Vec<crate::graph::NodeId>>,
    pub a: Vec<Coef>,
    pub b: Vec<Coef>,
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
    /// Gram results whose error bound could not keep the promised
    /// accuracy, measured again directly (at sweep points: per point).
    pub remeasured: usize,
    /// Models scored on datasets (accuracy, loss, perplexity) and commands run.
    pub model_measures: usize,
    /// Their results taken from an interrupted run's journal instead.
    pub resumed_measures: usize,
    /// The whole run: training and execution.
    pub seconds: f64,
    /// Of which training (`init`, `finetune`, cache lookups).
    pub training_seconds: f64,
}

/// Executes a lowered plan: every training job, measurement and save that
/// the report and the saves need, the saves staged for the caller to
/// commit. Trained models are kept in `cache` (needed if the plan trains).
pub fn execute(plan: &Plan, options: &ExecOptions, cache: Option<&Cache>) -> Result<Outcome, Diagnostics> {
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
    pool.install(|| Executor::new(plan, options, cache).run())
        .map_err(|d| vec![d])
}

struct Executor<'a> {
    plan: &'a Plan,
    options: &'a ExecOptions,
    cache: Option<&'a Cache>,
    measured: Vec<Option<f64>>,
    forms: HashMap<MeasureId, GramForm>,
    at_points: HashMap<(MeasureId, u64), f64>,
    stats: Stats,
}

impl<'a> Executor<'a> {
    fn new(plan: &'a Plan, options: &'a ExecOptions, cache: Option<&'a Cache>) -> Self {
        Executor {
            plan,
            options,
            cache,
            measured: vec![None; plan.graph.measure_count()],
            forms: HashMap::new(),
            at_points: HashMap::new(),
            stats: Stats::default(),
        }
    }

    fn run(mut self) -> Result<Outcome, Diagnostic> {
        let started = Instant::now();
        let read_before = self.bytes_read();
        let schedule = schedule::Schedule::new(self.plan);
        let savers = save::open_savers(self.plan)?;
        for level in 0..schedule.levels() {
            let wanted = schedule.wanted_after(&self.plan.graph, level);
            self.train(&schedule.trainings_at(level), &wanted)?;
            let saves: Vec<_> = schedule
                .saves_at(level)
                .into_iter()
                .map(|i| (i, self.plan.saves[i].node))
                .collect();
            let (dots, models): (Vec<_>, Vec<_>) = schedule
                .measures_at(level)
                .into_iter()
                .partition(|m| matches!(self.plan.graph.measure(*m), crate::graph::Measure::Dot(..)));
            self.pass(&dots, &[], &saves, &savers)?;
            self.score_models(&models)?;
            self.settle(&savers)?;
        }
        let requests = points::check(self.plan, &self.measured, &self.forms, &self.at_points);
        self.remeasure_at_points(requests, &savers)?;
        let (outputs, bytes_written) = save::seal_savers(self.plan, savers)?;
        self.stats.bytes_written = bytes_written;
        self.stats.bytes_read = self.bytes_read() - read_before;
        self.stats.seconds = started.elapsed().as_secs_f64();
        self.stats.gram_measures += self.forms.keys().filter(|m| self.is_symbolic(**m)).count();
        Ok(Outcome {
            measured: self.measured,
            forms: self.forms,
            at_points: self.at_points,
            stats: self.stats,
            outputs,
        })
    }

    fn is_symbolic(&self, m: MeasureId) -> bool {
        self.plan.graph.scalars.is_symbolic_measure(m)
    }

    /// One pass (none when there is nothing to stream): Gram matrices are
    /// kept as forms, direct products answer their measurements or
    /// requests; returns each request's value by tag.
    fn pass(
        &mut self,
        measures: &[MeasureId],
        requests: &[Request],
        saves: &[(usize, crate::graph::NodeId)],
        savers: &[save::Saver],
    ) -> Result<HashMap<usize, f64>, Diagnostic> {
        if measures.is_empty() && saves.is_empty() && requests.is_empty() {
            return Ok(HashMap::new());
        }
        let graph = &self.plan.graph;
        let measured = &self.measured;
        let coef = |s: ScalarId| coefficient(graph, measured, s);
        let known = |s: ScalarId| measured_value(graph, measured, s);
        let sample = |s: ScalarId| sample(graph, measured, s);
        let work = family::Work {
            measures,
            requests,
            saves,
            coef: &known,
            sample: &sample,
        };
        let families = family::build(graph, &work);
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
        let mut answers = HashMap::new();
        for ((family, gram), direct) in families.iter().zip(output.grams).zip(output.direct) {
            let atoms = Arc::new(family.atoms.clone());
            for product in &family.gram {
                let form = GramForm {
                    gram: gram.clone(),
                    atoms: atoms.clone(),
                    a: product.a.clone(),
                    b: product.b.clone(),
                };
                self.forms.insert(product.measure, form);
            }
            for (product, value) in family.direct.iter().zip(direct) {
                self.stats.direct_measures += 1;
                match product.tag {
                    usize::MAX => self.measured[product.measure.0 as usize] = Some(value),
                    tag => drop(answers.insert(tag, value)),
                }
            }
        }
        self.stats.passes += 1;
        self.stats.tensors_computed += output.tensors;
        Ok(answers)
    }

    /// Evaluates every Gram form whose coefficients are known, in the
    /// order measurements were made (so one measured here may scale the
    /// next); those whose error bound cannot keep the promised accuracy
    /// are measured directly, and the rest go on once they are.
    fn settle(&mut self, savers: &[save::Saver]) -> Result<(), Diagnostic> {
        loop {
            let mut pending: Vec<MeasureId> = self
                .forms
                .keys()
                .filter(|m| self.measured[m.0 as usize].is_none() && !self.is_symbolic(**m))
                .copied()
                .collect();
            pending.sort();
            let mut requests = Vec::new();
            for m in pending {
                let form = &self.forms[&m];
                let graph = &self.plan.graph;
                let Some((a, b)) = coefficients(graph, &self.measured, form) else {
                    continue;
                };
                match form.gram.evaluate(&a, &b) {
                    Some(value) => {
                        self.measured[m.0 as usize] = Some(value);
                        self.stats.gram_measures += 1;
                    }
                    None => requests.push(request(m, m.0 as usize, &form.atoms, &a, &b)),
                }
            }
            if requests.is_empty() {
                return Ok(());
            }
            self.stats.remeasured += requests.len();
            let answers = self.pass(&[], &requests, &[], savers)?;
            for r in &requests {
                let value = answers.get(&r.tag).copied().unwrap_or(f64::NAN);
                self.measured[r.measure.0 as usize] = Some(value);
            }
        }
    }

    /// Measures directly, at their sweep points, the Gram results the
    /// report could not trust; repeats while results that depend on them
    /// turn out untrusted in turn.
    fn remeasure_at_points(
        &mut self,
        mut found: points::PointRequests,
        savers: &[save::Saver],
    ) -> Result<(), Diagnostic> {
        // A handful of rounds at most: each settles one more link of a chain.
        while !found.requests.is_empty() {
            self.stats.remeasured += found.requests.len();
            let batches = found
                .requests
                .chunks(points::BATCH)
                .zip(found.keys.chunks(points::BATCH));
            for (batch, keys) in batches {
                let answers = self.pass(&[], batch, &[], savers)?;
                for (r, key) in batch.iter().zip(keys) {
                    let value = answers.get(&r.tag).copied().unwrap_or(f64::NAN);
                    self.at_points.insert((r.measure, *key), value);
                }
            }
            found = points::check(self.plan, &self.measured, &self.forms, &self.at_points);
        }
        Ok(())
    }

    /// Runs the training jobs of a level (or finds them in the cache).
    fn train(&mut self, jobs: &[usize], wanted: &std::collections::BTreeSet<usize>) -> Result<(), Diagnostic> {
        if jobs.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let cache = self
            .cache
            .ok_or_else(|| Diagnostic::new("tv::cache", "this run has no training cache"))?;
        let graph = &self.plan.graph;
        let measured = &self.measured;
        let coef = |s: ScalarId| measured_value(graph, measured, s);
        let trainer = train::Trainer {
            graph,
            cache,
            device: self.device(),
            progress: self.options.progress,
            coef: &coef,
        };
        trainer.run(jobs, wanted)?;
        self.stats.training_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    fn device(&self) -> candle_core::Device {
        match &self.options.backend {
            Backend::Candle(device) => device.clone(),
            Backend::Native => candle_core::Device::Cpu,
        }
    }

    /// Materialises and scores the models of `measures`.
    fn score_models(&mut self, measures: &[MeasureId]) -> Result<(), Diagnostic> {
        if measures.is_empty() {
            return Ok(());
        }
        let graph = &self.plan.graph;
        let journal = self.options.journal.as_deref();
        let mut todo = Vec::new();
        for &m in measures {
            match journal.and_then(|j| j.done(m)) {
                Some(value) => {
                    self.measured[m.0 as usize] = Some(value);
                    self.stats.resumed_measures += 1;
                }
                None => todo.push(m),
            }
        }
        let device = self.device();
        let coef = |s: ScalarId| coefficient(graph, &self.measured, s);
        let mut journaled = |results: &[(MeasureId, f64)]| match journal {
            Some(journal) => journal.append(graph, results),
            None => Ok(()),
        };
        let scored = models::measure(graph, &todo, &coef, &device, self.options.progress, &mut journaled)?;
        self.stats.model_measures += scored.len();
        for (m, value) in scored {
            self.measured[m.0 as usize] = Some(value);
        }
        Ok(())
    }

    fn bytes_read(&self) -> u64 {
        self.plan.graph.leaves().map(|c| c.bytes_read()).sum()
    }
}

/// A direct measurement of `measure` with coefficients `a`, `b` on `atoms`.
pub(crate) fn request(measure: MeasureId, tag: usize, atoms: &[crate::graph::NodeId], a: &[f64], b: &[f64]) -> Request {
    let terms = |c: &[f64]| {
        let used = atoms.iter().zip(c).filter(|(_, c)| **c != 0.0);
        used.map(|(n, c)| (*n, *c)).collect()
    };
    Request {
        measure,
        tag,
        a: terms(a),
        b: terms(b),
    }
}

/// A form's coefficients, once every measurement they use is made.
fn coefficients(
    graph: &crate::graph::Graph,
    measured: &[Option<f64>],
    form: &GramForm,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let value = |c: &Coef| match *c {
        Coef::Known(v) => Some(v),
        Coef::Scalar(s) => measured_value(graph, measured, s),
    };
    let side = |v: &[Coef]| v.iter().map(value).collect::<Option<Vec<f64>>>();
    Some((side(&form.a)?, side(&form.b)?))
}

/// A coefficient's value at a typical point, for choosing a family's
/// reference atom: measurements not made yet count as 1, sweep variables
/// take a value that no coefficient is likely to cancel exactly.
fn sample(graph: &crate::graph::Graph, measured: &[Option<f64>], scalar: ScalarId) -> f64 {
    let known = |m: MeasureId| Some(measured.get(m.0 as usize).copied().flatten().unwrap_or(1.0));
    let var = |v: u32| Some(0.61 + 0.173 * v as f64);
    graph.scalars.value_with(scalar, &known, &var).unwrap_or(1.0)
}

/// A coefficient's value; the schedule guarantees its measurements are made
/// by the time it is needed.
fn coefficient(graph: &crate::graph::Graph, measured: &[Option<f64>], scalar: ScalarId) -> f64 {
    measured_value(graph, measured, scalar).unwrap_or(f64::NAN)
}

/// A scalar's value from the measurements made so far; `None` while one
/// it needs is missing (or it depends on a sweep variable).
fn measured_value(graph: &crate::graph::Graph, measured: &[Option<f64>], scalar: ScalarId) -> Option<f64> {
    let known = |m: MeasureId| measured.get(m.0 as usize).copied().flatten();
    graph.scalars.value(scalar, &known)
}
