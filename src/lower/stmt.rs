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
        };
        let definition = matches!(keyword, "use" | "let" | "fn");
        if env.file != self.root && !definition {
            let diag = Diagnostic::new("tv::misplaced", format!("`{keyword}` in an imported file"))
                .at(keyword_span(stmt), "not allowed here")
                .help("a file brought in with `use` may hold only `use`, `let` and `fn`");
            self.error(diag);
            return false;
        }
        if !env.at_top_level() && matches!(keyword, "use" | "fn" | "set") {
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
            let binding = super::env::Binding {
                bound: Bound::Value(Value::Error),
                span: param.name.span,
            };
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
        self.calls.push((def.name.node.clone(), def.name.span));
        self.expr(&mut body_env, &def.body);
        self.calls.pop();
        self.dry -= 1;
    }

    fn sweep(&mut self, env: &mut Env, bindings: &[crate::syntax::ast::Binding], body: &[Stmt], span: Span) {
        let mut domains = Vec::new();
        for (i, binding) in bindings.iter().enumerate() {
            if bindings[..i].iter().any(|b| b.var.node == binding.var.node) {
                let diag = Diagnostic::new("tv::rebinding", format!("`{}` is swept twice", binding.var.node))
                    .at(binding.var.span, "again here")
                    .help("each variable of a sweep needs its own name");
                self.error(diag);
                domains.push(None);
                continue;
            }
            domains.push(self.domain(env, binding));
            if self.dry == 0 {
                self.table.add_var(&binding.var.node);
            }
        }
        let domains: Option<Vec<Vec<Value>>> = domains.into_iter().collect();
        let (domains, dry) = match domains {
            Some(d) => (d, self.dry > 0),
            None => (bindings.iter().map(|_| vec![Value::Error]).collect(), true),
        };
        self.dry += usize::from(dry);
        let total: usize = if dry { 1 } else { domains.iter().map(Vec::len).product() };
        for point in 0..total {
            let values = point_values(&domains, point);
            self.sweep_point(env, bindings, values, body, span);
        }
        self.dry -= usize::from(dry);
    }

    fn sweep_point(
        &mut self,
        env: &mut Env,
        bindings: &[crate::syntax::ast::Binding],
        values: Vec<Value>,
        body: &[Stmt],
        span: Span,
    ) {
        env.locals.push(Frame::default());
        let row_len = self.row.len();
        for (i, (binding, value)) in bindings.iter().zip(values).enumerate() {
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
                value: shown,
            });
            self.bind(env, &binding.var.node, Bound::Value(value), binding.var.span);
        }
        self.stmts(env, body);
        self.row.truncate(row_len);
        env.locals.pop();
    }

    fn eval_stmt(&mut self, env: &mut Env, name: &Ident, expr: &crate::syntax::ast::Expr) {
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
        if !self.table.record(&self.row, &name.node, scalar) {
            let diag = Diagnostic::new(
                "tv::duplicate_eval",
                format!("`{}` is measured twice in the same row", name.node),
            )
            .at(name.span, "measured again here")
            .help("each eval names one column; give this one another name");
            self.error(diag);
        }
    }

    fn save_stmt(&mut self, env: &mut Env, weights: &crate::syntax::ast::Expr, path: &crate::syntax::ast::Expr) {
        let node = self.expect_weights(env, weights, "`save`");
        let target = self.expect_string(env, path, "the path of `save`");
        let (Some(node), Some(target)) = (node, target) else {
            return;
        };
        let resolved = self.resolve_path(&target);
        if self.dry > 0 {
            return;
        }
        let identity = super::path_identity(&resolved);
        let is_input = self.checkpoints.keys().any(|input| *input == identity);
        let is_twice = self.saves.iter().any(|s| super::path_identity(&s.path) == identity);
        if is_input || is_twice {
            let (what, help) = if is_input {
                (
                    "a checkpoint this program reads",
                    "tv never overwrites the checkpoints it reads; choose a new path",
                )
            } else if self.row.is_empty() {
                ("another save", "give each save its own path")
            } else {
                (
                    "another save",
                    "give each sweep point its own path: \"out/{alpha}.safetensors\"",
                )
            };
            let diag = Diagnostic::new("tv::save_target", format!("`save` would overwrite {what}: {target}"))
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

/// The values of every variable at sweep point `index`; the first variable
/// varies slowest.
fn point_values(domains: &[Vec<Value>], mut index: usize) -> Vec<Value> {
    let mut values = vec![Value::Error; domains.len()];
    for (slot, domain) in values.iter_mut().zip(domains).rev() {
        *slot = domain[index % domain.len()].clone();
        index /= domain.len();
    }
    values
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
        StmtKind::Eval(..) | StmtKind::Save(..) => 4,
    };
    Span::new(stmt.span.file, stmt.span.start, stmt.span.start + len)
}
