//! Expressions: arithmetic on numbers and weights, strings, lists.

use super::env::{Bound, Env};
use super::{Lowerer, Value};
use crate::diag::{closest, Diagnostic, Span};
use crate::graph::{NodeId, Term};
use crate::report::format_number;
use crate::syntax::ast::{BinOp, Expr, ExprKind, StrPart};

impl Lowerer<'_> {
    pub(super) fn expr(&mut self, env: &mut Env, expr: &Expr) -> Value {
        match &expr.node {
            ExprKind::Num(n) => Value::Num(self.graph.scalars.constant(*n)),
            ExprKind::Str(parts) => self.string(env, parts),
            ExprKind::Var(name) => self.var(env, name, expr.span),
            ExprKind::List(items) => Value::List(items.iter().map(|e| self.expr(env, e)).collect()),
            ExprKind::Call(name, args) => self.call(env, name, args, expr.span),
            ExprKind::Neg(inner) => {
                let value = self.expr(env, inner);
                self.negate(value, expr.span)
            }
            ExprKind::Binary(op, lhs, rhs) => {
                let l = self.expr(env, lhs);
                let r = self.expr(env, rhs);
                self.binary(*op, l, r, expr.span)
            }
        }
    }

    fn var(&mut self, env: &Env, name: &str, span: Span) -> Value {
        match self.lookup(env, name).map(|b| b.bound) {
            Some(Bound::Value(value)) => value,
            Some(Bound::Fn(_)) => {
                let diag = Diagnostic::new("tv::type", format!("`{name}` is a function, not a value"))
                    .at(span, "a function")
                    .help(format!("call it: `{name}(...)`"));
                self.error(diag);
                Value::Error
            }
            None => {
                self.unknown_name(env, name, span, "name");
                Value::Error
            }
        }
    }

    pub(super) fn unknown_name(&mut self, env: &Env, name: &str, span: Span, what: &str) {
        let visible = self.visible_names(env);
        let builtins = super::builtins::names().map(String::from);
        let candidates: Vec<String> = visible.into_iter().chain(builtins).collect();
        let mut diag = Diagnostic::new("tv::unknown_name", format!("unknown {what} `{name}`")).at(span, "not defined");
        if self.table.has_eval(name) {
            let help = format!(
                "`{name}` is an eval: a column of the report, not a value; to use the number, bind it with `let {name}_value = ...` and eval that"
            );
            self.error(diag.help(help));
            return;
        }
        diag = match closest(name, candidates.iter().map(String::as_str)) {
            Some(near) => diag.help(format!("did you mean `{near}`?")),
            None if self.in_default => diag.help("a default value cannot refer to the function's parameters"),
            None => diag.help("names must be bound with `let`, `fn`, a sweep or `use` before they are used"),
        };
        self.error(diag);
    }

    /// Every part is checked, so each bad `{name}` is reported.
    fn string(&mut self, env: &Env, parts: &[StrPart]) -> Value {
        let mut out = Some(String::new());
        for part in parts {
            let text = match part {
                StrPart::Lit(s) => Some(s.clone()),
                StrPart::Interp(name) => self.interpolated(env, name),
            };
            out = out.zip(text).map(|(mut s, t)| {
                s.push_str(&t);
                s
            });
        }
        out.map_or(Value::Error, Value::Str)
    }

    fn interpolated(&mut self, env: &Env, name: &crate::syntax::ast::Ident) -> Option<String> {
        let placeholder = || Some(crate::eval::command::PLACEHOLDER.to_string());
        if self.command_template == Some(true) && name.node == "model" {
            return placeholder();
        }
        match self.var(env, &name.node, name.span) {
            Value::Str(s) => Some(s),
            Value::Weights(w) if self.command_template == Some(false) => {
                self.command_weights.push(w);
                placeholder()
            }
            Value::Num(n) => {
                let known = self.graph.scalars.known(n).map(format_number);
                if known.is_none() {
                    self.not_known_yet(name.span, "interpolated into a string");
                }
                known
            }
            Value::Error => None,
            other => {
                let diag = Diagnostic::new("tv::type", format!("cannot interpolate {}", other.type_name()))
                    .at(name.span, other.type_name())
                    .help("only numbers and strings can appear in `{...}`");
                self.error(diag);
                None
            }
        }
    }

    pub(super) fn not_known_yet(&mut self, span: Span, use_: &str) {
        // A sweep variable's value is needed: the sweep is elaborated.
        self.fail_trial();
        let diag = Diagnostic::new("tv::needs_constant", format!("a measured number cannot be {use_}"))
            .at(span, "depends on a measurement")
            .help("this value is known only after the tensors are read; use a number written in the program or a sweep variable");
        self.error(diag);
    }

    fn negate(&mut self, value: Value, span: Span) -> Value {
        match value {
            Value::Num(n) => Value::Num(self.graph.scalars.neg(n)),
            Value::Weights(w) => {
                let minus_one = self.graph.scalars.constant(-1.0);
                Value::Weights(self.graph.scale(minus_one, w, span))
            }
            Value::Error => Value::Error,
            Value::List(items) => list_or_error(items.into_iter().map(|v| self.negate(v, span)).collect()),
            other => {
                let diag = Diagnostic::new("tv::type", format!("cannot negate {}", other.type_name()))
                    .at(span, other.type_name());
                self.error(diag);
                Value::Error
            }
        }
    }

    /// A division by a measured number, checked once it is measured: a
    /// zero there makes inf or NaN, which the user hears of with the place.
    fn note_division(&mut self, divisor: crate::graph::ScalarId, span: Span) {
        if self.graph.scalars.known(divisor).is_none() {
            let (line, col) = self.sources.line_col(span.file, span.start);
            let place = format!("{}:{line}:{col}", self.sources.get(span.file).name);
            self.graph.divisions.push((divisor, place));
        }
    }

    pub(super) fn binary(&mut self, op: BinOp, l: Value, r: Value, span: Span) -> Value {
        use Value::*;
        match (op, l, r) {
            (_, Error, _) | (_, _, Error) => Error,
            (_, Num(a), Num(b)) => {
                if op == BinOp::Div {
                    self.note_division(b, span);
                }
                Value::Num(self.graph.scalars.binary(op, a, b))
            }
            (BinOp::Add, Weights(a), Weights(b)) => self.add_weights(a, b, 1.0, span),
            (BinOp::Sub, Weights(a), Weights(b)) => self.add_weights(a, b, -1.0, span),
            (BinOp::Mul, Num(c), Weights(w)) | (BinOp::Mul, Weights(w), Num(c)) => {
                Weights(self.graph.scale(c, w, span))
            }
            (BinOp::Div, Weights(w), Num(c)) => {
                // Dividing weights by a sweep variable is an error at a point
                // where it is 0, which only the point's own value shows.
                if self.graph.scalars.is_symbolic(c) && self.fail_trial() {
                    return Error;
                }
                if self.graph.scalars.known(c) == Some(0.0) {
                    let diag =
                        Diagnostic::new("tv::division_by_zero", "weights divided by zero").at(span, "divisor is 0");
                    self.error(diag);
                    return Error;
                }
                self.note_division(c, span);
                let one = self.graph.scalars.constant(1.0);
                let inverse = self.graph.scalars.binary(BinOp::Div, one, c);
                Weights(self.graph.scale(inverse, w, span))
            }
            (op, List(a), List(b)) => self.zip_lists(op, a, b, span),
            (op, List(items), r) => {
                let items = items.into_iter().map(|l| self.binary(op, l, r.clone(), span)).collect();
                list_or_error(items)
            }
            (op, l, List(items)) => {
                let items = items.into_iter().map(|r| self.binary(op, l.clone(), r, span)).collect();
                list_or_error(items)
            }
            (op, l, r) => {
                self.type_mismatch(op, &l, &r, span);
                Error
            }
        }
    }

    /// Lists combine item by item (`weight * models`), so they must be
    /// equally long.
    fn zip_lists(&mut self, op: BinOp, a: Vec<Value>, b: Vec<Value>, span: Span) -> Value {
        if a.len() != b.len() {
            let diag = Diagnostic::new(
                "tv::type",
                format!(
                    "cannot apply `{}` to lists of {} and {} items",
                    op.symbol(),
                    a.len(),
                    b.len()
                ),
            )
            .at(span, "different lengths")
            .help("lists combine item by item; a number or weights combine with every item");
            self.error(diag);
            return Value::Error;
        }
        let items = a.into_iter().zip(b).map(|(l, r)| self.binary(op, l, r, span)).collect();
        list_or_error(items)
    }

    fn type_mismatch(&mut self, op: BinOp, l: &Value, r: &Value, span: Span) {
        use Value::*;
        let message = format!(
            "cannot apply `{}` to {} and {}",
            op.symbol(),
            l.type_name(),
            r.type_name()
        );
        let help = match (op, l, r) {
            (BinOp::Mul, Weights(_), Weights(_)) => "weights do not multiply elementwise; for a number use dot(a, b)",
            (BinOp::Div, _, Weights(_)) => "weights can be divided by a number, not the other way round",
            (_, Str(_), _) | (_, _, Str(_)) => "strings combine by interpolation: \"{a}_{b}\"",
            (_, Num(_), Weights(_)) | (_, Weights(_), Num(_)) => {
                "a number cannot be added to weights; scale them instead, e.g. `0.5 * w`"
            }
            _ => "numbers combine with numbers, weights with weights",
        };
        let label = format!("{} {} {}", l.type_name(), op.symbol(), r.type_name());
        self.error(Diagnostic::new("tv::type", message).at(span, label).help(help));
    }

    /// `a + sign * b`, after checking both hold the same tensors.
    pub(super) fn add_weights(&mut self, a: NodeId, b: NodeId, sign: f64, span: Span) -> Value {
        if !self.same_tensors(a, b, span) {
            return Value::Error;
        }
        let one = self.graph.scalars.constant(1.0);
        let coef = self.graph.scalars.constant(sign);
        let terms = [Term { coef: one, node: a }, Term { coef, node: b }];
        Value::Weights(self.graph.lin(&terms, span))
    }

    /// Whether `a` and `b` hold the same tensor names and shapes; reports
    /// the first few differences if not.
    pub(super) fn same_tensors(&mut self, a: NodeId, b: NodeId, span: Span) -> bool {
        let differences = self.graph.specs(a).mismatches(self.graph.specs(b));
        if differences.is_empty() {
            return true;
        }
        const SHOWN: usize = 3;
        let mut help: Vec<String> = differences.iter().take(SHOWN).map(|m| m.to_string()).collect();
        if differences.len() > SHOWN {
            help.push(format!("and {} more", differences.len() - SHOWN));
        }
        let diag = Diagnostic::new(
            "tv::tensor_mismatch",
            format!(
                "the weights hold different tensors ({} difference{})",
                differences.len(),
                if differences.len() == 1 { "" } else { "s" }
            ),
        )
        .at(span, "combined here")
        .help(help.join("; "));
        self.error(diag);
        false
    }

    pub(super) fn expect_weights(&mut self, env: &mut Env, expr: &Expr, what: &str) -> Option<NodeId> {
        match self.expr(env, expr) {
            Value::Weights(w) => Some(w),
            Value::Error => None,
            other => {
                self.wrong_type(expr.span, what, "weights", &other);
                None
            }
        }
    }

    pub(super) fn expect_string(&mut self, env: &mut Env, expr: &Expr, what: &str) -> Option<String> {
        match self.expr(env, expr) {
            Value::Str(s) => Some(s),
            Value::Error => None,
            other => {
                self.wrong_type(expr.span, what, "a string", &other);
                None
            }
        }
    }

    /// A number that must be known before execution (range bounds, settings).
    pub(super) fn known_number(&mut self, env: &mut Env, expr: &Expr, what: &str) -> Option<f64> {
        match self.expr(env, expr) {
            Value::Num(n) => {
                let known = self.graph.scalars.known(n);
                if known.is_none() {
                    self.not_known_yet(expr.span, &format!("used as {what}"));
                }
                known
            }
            Value::Error => None,
            other => {
                self.wrong_type(expr.span, what, "a number", &other);
                None
            }
        }
    }

    pub(super) fn wrong_type(&mut self, span: Span, what: &str, expected: &str, found: &Value) {
        let diag = Diagnostic::new(
            "tv::type",
            format!("{what} must be {expected}, found {}", found.type_name()),
        )
        .at(span, found.type_name().to_string());
        self.error(diag);
    }
}

/// A list computed item by item; one failed item (already reported) fails
/// the list, so nothing downstream reports it again.
fn list_or_error(items: Vec<Value>) -> Value {
    match items.iter().any(Value::is_error) {
        true => Value::Error,
        false => Value::List(items),
    }
}
