//! Statements.

use super::env::{Bound, Env, Frame};
use super::{Lowerer, RowKeyPart, SaveJob, Value};
use crate::diag::{Diagnostic, Span};
use crate::report::format_number;
use crate::syntax::ast::{FnDef, Ident, Stmt, StmtKind};
use std::rc::Rc;

impl Lowerer<'_> {
    pub(super) fn stmts(&mut self, env: &mut Env, stmts: &[Stmt]) {
        for stmt in stmts {
            self.stmt(env, stmt);
        }
    }

    fn stmt(&mut self, env: &mut Env, stmt: &Stmt) {
        if !self.allowed_here(env, stmt) {
            return;
        }
        match &stmt.node {
            StmtKind::Use(path) => self.use_stmt(env, path),
            StmtKind::Let(name, expr) => {
                let value = self.expr(env, expr);
                self.bind(env, &name.node, Bound::Value(value), name.span);
            }
            StmtKind::Fn(def) => self.fn_def(env, def),
            StmtKind::Set(key, expr) => self.set_stmt(env, key, expr),
            StmtKind::Sweep(bindings, body) => self.sweep(env, bindings, body, stmt.span),
            StmtKind::Eval(name, expr) => self.eval_stmt(env, name, expr),
            StmtKind::Save(weights, path) => self.save_stmt(env, weights, path),
            StmtKind::Plot(plot) => self.plot_stmt(env, plot),
        }
    }

    /// `use`, `fn` and `set` belong at the top level; an imported file holds
    /// only definitions.
    fn allowed_here(&mut self, env: &Env, stmt: &Stmt) -> bool {
        let keyword = match &stmt.node {
            StmtKind::Use(_) => "use",
            StmtKind::Let(..) => "let",
            StmtKind::Fn(_) => "fn",
            StmtKind::Set(..) => "set",
            StmtKind::Sweep(..) => "sweep",
            StmtKind::Eval(..) => "eval",
            StmtKind::Save(..) => "save",
            StmtKind::Plot(..) => "plot",
        };
        let definition = matches!(keyword, "use" | "let" | "fn");
        if env.file != self.root && !definition {
            let diag = Diagnostic::new("tv::misplaced", format!("`{keyword}` in an imported file"))
                .at(keyword_span(stmt), "not allowed here")
                .help("a file brought in with `use` may hold only `use`, `let` and `fn`");
            self.error(diag);
            return false;
        }
        if !env.at_top_level() && matches!(keyword, "use" | "fn" | "set" | "plot") {
            let diag = Diagnostic::new("tv::misplaced", format!("`{keyword}` inside a sweep"))
                .at(keyword_span(stmt), "not allowed here")
                .help(format!("move `{keyword}` to the top level of the file"));
            self.error(diag);
            return false;
        }
        true
    }

    fn fn_def(&mut self, env: &mut Env, def: &FnDef) {
        let mut params = Frame::default();
        for param in &def.params {
            if params.names.contains_key(&param.name.node) {
                let diag = Diagnostic::new(
                    "tv::duplicate_parameter",
                    format!("parameter `{}` appears twice", param.name.node),
                )
                .at(param.name.span, "again here");
                self.error(diag);
            }
            self.dry += 1;
            if let Some(default) = &param.default {
                self.default_value(env.file, default);
            }
            self.dry -= 1;
            let binding = super::env::Binding::new(Bound::Value(Value::Error), param.name.span);
            params.names.insert(param.name.node.clone(), binding);
        }
        self.bind(env, &def.name.node, Bound::Fn(Rc::new(def.clone())), def.name.span);
        // Check the body once, with parameters of unknown value: unknown
        // names and bad calls show even in a function that is never called.
        let mut body_env = Env {
            file: env.file,
            locals: vec![params],
        };
        self.dry += 1;
        self.calls.push(super::Call {
            name: def.name.node.clone(),
            site: def.name.span,
            definition: def.name.span,
        });
        self.expr(&mut body_env, &def.body);
        self.calls.pop();
        self.dry -= 1;
    }

    fn sweep(&mut self, env: &mut Env, bindings: &[crate::syntax::ast::Binding], body: &[Stmt], span: Span) {
        let depth = self.sweep_scope.len();
        self.sweep_points(env, bindings, body, span);
        self.sweep_scope.truncate(depth);
    }

    fn sweep_points(&mut self, env: &mut Env, bindings: &[crate::syntax::ast::Binding], body: &[Stmt], span: Span) {
        let mut domains = Vec::new();
        for (i, binding) in bindings.iter().enumerate() {
            if let Some(problem) = self.sweep_variable_problem(&bindings[..i], &binding.var) {
                self.error(problem);
                domains.push(None);
                continue;
            }
            let domain = self.domain(env, binding);
            let summary = self.domain_summary(domain.as_ref());
            self.sweep_scope.push((binding.var.node.clone(), summary));
            domains.push(domain);
            if self.dry == 0 {
                self.table.add_var(&binding.var.node);
            }
        }
        let domains: Option<Vec<super::domain::Values>> = domains.into_iter().collect();
        // Nested sweeps multiply: the limit holds for the product, checked
        // before any point is elaborated.
        let points = domains
            .as_ref()
            .map(|d| d.iter().map(|values| values.len() as f64).product::<f64>() * self.enclosing_points);
        if let (Some(d), Some(n)) = (&domains, points) {
            if self.symbolic_sweep(env, bindings, d, body, span, n) {
                return;
            }
        }
        let (domains, dry) = match (domains, points) {
            (Some(d), Some(n)) if n <= super::domain::MAX_POINTS => {
                let listed: Vec<Vec<Value>> = d.into_iter().map(|values| self.listed(values)).collect();
                (listed, self.dry > 0)
            }
            (d, points) => {
                if let (Some(_), Some(n)) = (d, points) {
                    self.error(too_many_points(n, self.enclosing_points > 1.0, span));
                    self.too_many_points = true;
                }
                (bindings.iter().map(|_| vec![Value::Error]).collect(), true)
            }
        };
        self.dry += usize::from(dry);
        let total: usize = if dry { 1 } else { domains.iter().map(Vec::len).product() };
        let enclosing = self.enclosing_points;
        self.enclosing_points *= total as f64;
        for point in 0..total {
            // Past the limit, a sweep checked once (dry) is still checked;
            // the points of the sweeps around it are not elaborated.
            if self.too_many_points && !dry {
                break;
            }
            let values = point_values(&domains, point);
            self.sweep_point(env, bindings, values, body, span);
        }
        self.enclosing_points = enclosing;
        self.dry -= usize::from(dry);
    }

    /// A sweep variable that repeats one of the same sweep or of an
    /// enclosing one, or names an eval column: the report could not tell
    /// the columns apart.
    fn sweep_variable_problem(&self, earlier: &[crate::syntax::ast::Binding], var: &Ident) -> Option<Diagnostic> {
        let name = &var.node;
        let message = if earlier.iter().any(|b| b.var.node == *name) {
            format!("`{name}` is swept twice")
        } else if self.row.iter().any(|p| p.var == *name) {
            format!("`{name}` is already swept by an enclosing sweep")
        } else if self.table.has_eval(name) {
            format!("`{name}` is already the name of an eval column")
        } else {
            return None;
        };
        let diag = Diagnostic::new("tv::rebinding", message)
            .at(var.span, "again here")
            .help("each sweep variable needs its own name: it is a column of the report");
        Some(diag)
    }

    fn sweep_point(
        &mut self,
        env: &mut Env,
        bindings: &[crate::syntax::ast::Binding],
        values: Vec<(usize, Value)>,
        body: &[Stmt],
        span: Span,
    ) {
        env.locals.push(Frame::default());
        let row_len = self.row.len();
        for (i, (binding, (index, value))) in bindings.iter().zip(values).enumerate() {
            // A variable swept twice in one sweep was reported already.
            if bindings[..i].iter().any(|b| b.var.node == binding.var.node) {
                continue;
            }
            let shown = match &value {
                Value::Num(s) => self.graph.scalars.known(*s).map(format_number).unwrap_or_default(),
                Value::Str(s) => s.clone(),
                _ => String::new(),
            };
            self.row.push(RowKeyPart {
                sweep: span,
                var: binding.var.node.clone(),
                index,
                value: shown,
            });
            self.bind(env, &binding.var.node, Bound::Value(value), binding.var.span);
        }
        let innermost = !body.iter().any(|s| matches!(s.node, StmtKind::Sweep(..)));
        if innermost && self.dry == 0 {
            self.table.count_point();
        }
        self.stmts(env, body);
        self.row.truncate(row_len);
        env.locals.pop();
    }

    fn eval_stmt(&mut self, env: &mut Env, name: &Ident, expr: &crate::syntax::ast::Expr) {
        self.note_eval_site(name);
        let value = self.expr(env, expr);
        let scalar = match value {
            Value::Num(s) => Some(s),
            Value::Error => None,
            other => {
                let diag = Diagnostic::new(
                    "tv::type",
                    format!("`eval` needs a number, found {}", other.type_name()),
                )
                .at(expr.span, other.type_name())
                .help(eval_hint(&other));
                self.error(diag);
                None
            }
        };
        if self.dry > 0 {
            return;
        }
        if self.trial.is_some() {
            return self.symbolic_eval(name, scalar);
        }
        if self.table.has_var(&name.node) {
            self.error(eval_is_var(name));
            return;
        }
        if !self.table.record(&self.row, &name.node, scalar) {
            self.error(measured_twice(name));
        }
    }

    fn save_stmt(&mut self, env: &mut Env, weights: &crate::syntax::ast::Expr, path: &crate::syntax::ast::Expr) {
        // Each point's save is a file of its own: elaborate the sweep.
        if self.fail_trial() {
            return;
        }
        let node = self.expect_weights(env, weights, "`save`");
        let target = self.expect_string(env, path, "the path of `save`");
        let (Some(node), Some(target)) = (node, target) else {
            return;
        };
        let resolved = self.resolve_path(&target);
        if self.dry > 0 {
            return;
        }
        // Saves over inputs are found once all loads are known (see
        // `check_saves_against_inputs`); here, two saves to one path.
        if !self.save_targets.insert(super::path_identity(&resolved)) {
            let help = match self.row.last() {
                None => "give each save its own path".to_string(),
                Some(part) => format!(
                    "give each sweep point its own path, e.g. \"out/{{{}}}.safetensors\"",
                    part.var
                ),
            };
            let diag = Diagnostic::new(
                "tv::save_target",
                format!("`save` would overwrite another save: {target}"),
            )
            .at(path.span, "this path")
            .help(help);
            self.error(diag);
            return;
        }
        self.saves.push(SaveJob {
            node,
            path: resolved,
            span: path.span,
        });
    }
}

/// The position in its domain and the value of every variable at sweep
/// point `index`; the first variable varies slowest.
fn point_values(domains: &[Vec<Value>], mut index: usize) -> Vec<(usize, Value)> {
    let mut values = vec![(0, Value::Error); domains.len()];
    for (slot, domain) in values.iter_mut().zip(domains).rev() {
        let position = index % domain.len();
        *slot = (position, domain[position].clone());
        index /= domain.len();
    }
    values
}

pub(super) fn too_many_points(points: f64, nested: bool, span: Span) -> Diagnostic {
    let with = if nested { " with the sweeps around it" } else { "" };
    let help = "at most 100 million points in all where every eval is a weight-space measurement \
                (norm, dot, cosine, distance) of sums of the sweep variables times weights, \
                and at most 10 million otherwise: use larger steps or fewer values";
    Diagnostic::new("tv::bad_range", format!("the sweep has {points:.0} points{with}"))
        .at(Span::new(span.file, span.start, span.start + 5), "this sweep")
        .help(help)
}

pub(super) fn eval_is_var(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "tv::duplicate_eval",
        format!("`{}` is already the name of a sweep variable", name.node),
    )
    .at(name.span, "this eval")
    .help("each eval names a column of the report; give this one another name")
}

pub(super) fn measured_twice(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "tv::duplicate_eval",
        format!("`{}` is measured twice in the same row", name.node),
    )
    .at(name.span, "measured again here")
    .help("each eval names one column; give this one another name")
}

fn eval_hint(value: &Value) -> &'static str {
    match value {
        Value::Weights(_) => "measure weights with a function that returns a number: norm(w), cosine(a, b), dot(a, b), distance(a, b), numel(w)",
        _ => "an eval becomes a CSV column of numbers",
    }
}

/// The span of a statement's keyword (its first word).
fn keyword_span(stmt: &Stmt) -> Span {
    let len = match &stmt.node {
        StmtKind::Use(_) | StmtKind::Let(..) | StmtKind::Set(..) => 3,
        StmtKind::Fn(_) => 2,
        StmtKind::Sweep(..) => 5,
        StmtKind::Eval(..) | StmtKind::Save(..) | StmtKind::Plot(..) => 4,
    };
    Span::new(stmt.span.file, stmt.span.start, stmt.span.start + len)
}
