//! Sweeps lowered once for all their points.
//!
//! A sweep over numbers whose evals are weight-space measurements of
//! linear combinations (`cosine(theta + a1 * tau_j + a2 * tau_k, target)`)
//! does not need its points elaborated: its variables become symbols
//! (`Scalar::Var`), its weights sums with symbolic coefficients, and its
//! evals formulas over one Gram matrix, evaluated at each point when the
//! report is written. Lowering time and memory are then those of one
//! point, whatever the number of points.
//!
//! Whether a sweep qualifies is found by trying: its body is lowered once
//! with symbolic variables, and anything that needs a variable's value
//! (a file name, a primitive's parameter, a model to evaluate, a save)
//! fails the trial, which is rolled back; the sweep is then elaborated
//! point by point as before.

use super::domain::{Values, MAX_SYMBOLIC_POINTS};
use super::env::{Bound, Env, Frame};
use super::{CallKey, Lowerer, RowKeyPart, Value};
use crate::diag::Span;
use crate::graph::{Measure, MeasureId, NodeId, Op, ScalarId};
use crate::report::block::{Item, Level, SweepBlock, SweepDomain, SweptVar};
use crate::syntax::ast::{Binding, Ident, Stmt};

/// A sweep being lowered symbolically.
#[derive(Default)]
pub(super) struct Trial {
    /// Something in the body needs a variable's value.
    failed: bool,
    /// The levels being lowered, innermost last.
    levels: Vec<Level>,
    /// Function results memoised during the trial, forgotten if it fails
    /// (their errors are rolled back with it).
    calls: Vec<CallKey>,
}

/// What a failed trial rolls back.
struct Mark {
    diags: usize,
    divisions: usize,
    nodes: usize,
    measures: usize,
    first_var: u32,
}

impl Lowerer<'_> {
    /// Lowers a sweep once for all its points, if it can be; returns
    /// whether it was (nothing is recorded otherwise). Inside a trial, a
    /// nested sweep becomes a level of the enclosing one.
    pub(super) fn symbolic_sweep(
        &mut self,
        env: &mut Env,
        bindings: &[Binding],
        domains: &[Values],
        body: &[Stmt],
        span: Span,
        points: f64,
    ) -> bool {
        if self.dry > 0 || self.training.elaborate_sweeps {
            return false;
        }
        let Some(domains) = numeric(&self.graph.scalars, domains) else {
            return self.fail_trial();
        };
        if points > MAX_SYMBOLIC_POINTS {
            if self.trial.is_some() {
                self.error(super::stmt::too_many_points(points, true, span));
            }
            return self.trial.is_some();
        }
        if self.trial.is_some() {
            let level = self.level(env, bindings, domains, body, span);
            self.current_level().items.push(Item::Sweep(level));
            return true;
        }
        let mark = Mark {
            diags: self.diags.len(),
            divisions: self.graph.divisions.len(),
            nodes: self.graph.node_count(),
            measures: self.graph.measure_count(),
            first_var: self.next_var,
        };
        self.trial = Some(Trial::default());
        let level = self.level(env, bindings, domains, body, span);
        let trial = self.trial.take().unwrap_or_default();
        if trial.failed || self.needs_values(&mark) {
            self.roll_back(&mark, trial);
            return false;
        }
        let outer = self.row.iter().map(|p| (p.var.clone(), p.value.clone())).collect();
        let block = SweepBlock {
            outer,
            level,
            first_var: mark.first_var,
            var_count: self.next_var - mark.first_var,
        };
        self.table.add_block(block);
        true
    }

    /// Marks the trial failed; true inside a trial (the caller stops).
    pub(super) fn fail_trial(&mut self) -> bool {
        match &mut self.trial {
            Some(trial) => {
                trial.failed = true;
                true
            }
            None => false,
        }
    }

    /// Notes a memoised function call, to forget it if the trial fails.
    pub(super) fn note_call(&mut self, key: &CallKey) {
        if let Some(trial) = &mut self.trial {
            trial.calls.push(key.clone());
        }
    }

    fn current_level(&mut self) -> &mut Level {
        let trial = self.trial.as_mut().expect("inside a trial");
        trial.levels.last_mut().expect("a level is being lowered")
    }

    /// Lowers one sweep statement's body once, its variables symbols.
    fn level(
        &mut self,
        env: &mut Env,
        bindings: &[Binding],
        domains: Vec<SweepDomain>,
        body: &[Stmt],
        span: Span,
    ) -> Level {
        env.locals.push(Frame::default());
        let row_len = self.row.len();
        let mut vars = Vec::new();
        for (i, (binding, domain)) in bindings.iter().zip(domains).enumerate() {
            // A variable swept twice in one sweep was reported already.
            if bindings[..i].iter().any(|b| b.var.node == binding.var.node) {
                continue;
            }
            let id = self.next_var;
            self.next_var += 1;
            let scalar = self.graph.scalars.var(id);
            self.row.push(RowKeyPart {
                sweep: span,
                var: binding.var.node.clone(),
                index: 0,
                value: String::new(),
            });
            self.bind(
                env,
                &binding.var.node,
                Bound::Value(Value::Num(scalar)),
                binding.var.span,
            );
            let name = binding.var.node.clone();
            vars.push(SweptVar { name, id, domain });
        }
        let level_points: f64 = vars.iter().map(|v| v.domain.len() as f64).product();
        if let Some(trial) = &mut self.trial {
            trial.levels.push(Level {
                vars,
                items: Vec::new(),
            });
        }
        let enclosing = self.enclosing_points;
        self.enclosing_points *= level_points;
        self.stmts(env, body);
        self.enclosing_points = enclosing;
        self.row.truncate(row_len);
        env.locals.pop();
        let trial = self.trial.as_mut().expect("inside a trial");
        trial.levels.pop().unwrap_or_default()
    }

    /// An eval inside a trial: one formula for the rows of its level.
    pub(super) fn symbolic_eval(&mut self, name: &Ident, scalar: Option<ScalarId>) {
        if self.table.has_var(&name.node) {
            self.error(super::stmt::eval_is_var(name));
            return;
        }
        if self.current_level().evals().any(|(n, _)| n == name.node) {
            self.error(super::stmt::measured_twice(name));
            return;
        }
        let item = Item::Eval(name.node.clone(), scalar);
        self.current_level().items.push(item);
    }

    /// Whether the trial made something that needs the variables' values:
    /// a primitive of weights that depend on them (its result is not
    /// linear in them), or a model evaluated on such weights.
    fn needs_values(&self, mark: &Mark) -> bool {
        let graph = &self.graph;
        let nodes = (mark.nodes..graph.node_count()).map(|i| NodeId(i as u32));
        let primitive = nodes.into_iter().any(|n| {
            let node = graph.node(n);
            node.symbolic && matches!(node.op, Op::Map { .. })
        });
        let measures = (mark.measures..graph.measure_count()).map(|i| graph.measure(MeasureId(i as u32)));
        let evaluated = measures
            .filter(|m| !matches!(m, Measure::Dot(..)))
            .any(|m| m.nodes().into_iter().any(|n| graph.is_symbolic(n)));
        primitive || evaluated
    }

    fn roll_back(&mut self, mark: &Mark, trial: Trial) {
        self.diags.truncate(mark.diags);
        self.graph.divisions.truncate(mark.divisions);
        // The symbols and graph nodes made stay, unused: symbols are never
        // reused, so blocks stay apart.
        for key in trial.calls {
            self.call_results.remove(&key);
        }
    }
}

/// The domains as numbers, if they all are.
fn numeric(scalars: &crate::graph::Scalars, domains: &[Values]) -> Option<Vec<SweepDomain>> {
    let domain = |values: &Values| match values {
        Values::Range(range) => Some(SweepDomain::Range(*range)),
        Values::List(items) => {
            let number = |v: &Value| match v {
                Value::Num(n) => scalars.known(*n),
                _ => None,
            };
            items
                .iter()
                .map(number)
                .collect::<Option<Vec<f64>>>()
                .map(SweepDomain::Values)
        }
    };
    domains.iter().map(domain).collect()
}
