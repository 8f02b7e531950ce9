//! The builtin functions of the core language.

use super::call::ParamSpec;
use super::env::Env;
use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::graph::{NodeId, ScalarId, Term};
use crate::syntax::ast::{Arg, BinOp, ExprKind, Ident};
use std::sync::Arc;

/// The builtins of the core language; the merge primitives are listed with
/// their parameters in `merge`.
const NAMES: &[&str] = &[
    "load",
    "only",
    "except",
    "cosine",
    "dot",
    "norm",
    "distance",
    "numel",
    "sum",
    "mean",
    "accuracy",
    "loss",
    "perplexity",
    "command",
    "init",
    "finetune",
    "take",
];

/// Whether `name` is a builtin.
pub fn is_builtin(name: &str) -> bool {
    NAMES.contains(&name) || super::merge::params(name).is_some()
}

/// Every builtin's name, for suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    let merge = super::merge::PARAMS.iter().map(|(name, _)| *name);
    NAMES.iter().copied().chain(merge)
}

/// A builtin's parameters, each with its default (`None`: required).
fn params_of(name: &str) -> &'static [(&'static str, Option<f64>)] {
    match name {
        "load" => &[("path", None)],
        "only" | "except" => &[("w", None), ("pattern", None)],
        "cosine" | "dot" | "distance" => &[("a", None), ("b", None)],
        "norm" | "numel" => &[("w", None)],
        "accuracy" => &[("w", None), ("data", None)],
        // NaN: the model's own default (see `lower::lm`); `field` defaults to "text".
        "loss" | "perplexity" => &[
            ("w", None),
            ("data", None),
            ("context", Some(f64::NAN)),
            ("stride", Some(f64::NAN)),
            ("batch", Some(f64::NAN)),
            ("field", Some(f64::NAN)),
        ],
        // NaN: no `model` argument; the weights are interpolated instead.
        "command" => &[("command", None), ("model", Some(f64::NAN))],
        "init" => &[("config", None), ("seed", Some(0.0))],
        "take" => &[("list", None), ("n", None)],
        "finetune" => &[
            ("w", None),
            ("data", None),
            ("steps", Some(200.0)),
            ("lr", Some(1e-3)),
            ("batch", Some(32.0)),
            ("seed", Some(0.0)),
            // Language models only (see `lower::train`); NaN: their default.
            ("context", Some(f64::NAN)),
            ("accumulate", Some(f64::NAN)),
            ("warmup", Some(f64::NAN)),
            ("clip", Some(f64::NAN)),
            ("weight_decay", Some(f64::NAN)),
            ("lora", Some(f64::NAN)),
            ("lora_alpha", Some(f64::NAN)),
            ("modules", Some(f64::NAN)),
            ("field", Some(f64::NAN)),
        ],
        "sum" | "mean" => &[("list", None)],
        other => {
            super::merge::params(other).unwrap_or_else(|| unreachable!("builtin `{other}` has no parameters listed"))
        }
    }
}

impl Lowerer<'_> {
    pub(super) fn builtin(&mut self, env: &mut Env, name: &Ident, args: &[Arg], span: Span) -> Value {
        let function = name.node.as_str();
        let defaults = params_of(function);
        let params: Vec<ParamSpec> = defaults
            .iter()
            .map(|(name, default)| ParamSpec {
                name,
                required: default.is_none(),
            })
            .collect();
        let Some(slots) = self.match_args(function, &params, args, span) else {
            self.check_args(env, args);
            return Value::Error;
        };
        // The command string written in a `command` call holds the weights'
        // folder (see `command_template`); a literal holds no calls, so the
        // exception reaches nothing else.
        let explicit_model = function == "command" && slots.get(1).is_some_and(Option::is_some);
        self.command_weights.clear();
        let args: Vec<(Value, Span)> = slots
            .into_iter()
            .zip(defaults)
            .map(|(slot, (param, default))| match slot {
                Some(expr) => {
                    let template = function == "command" && *param == "command";
                    if template && matches!(expr.node, ExprKind::Str(_)) {
                        self.command_template = Some(explicit_model);
                    }
                    let value = self.expr(env, expr);
                    self.command_template = None;
                    // NaN stands for "not given" (see `params_of`); a NaN
                    // that is given must not pass for that.
                    let not_given = default.is_some_and(f64::is_nan);
                    if not_given && self.is_known_nan(&value) {
                        let diag = Diagnostic::new("tv::argument", format!("`{param}` is not a number (NaN)"))
                            .at(expr.span, "NaN");
                        self.error(diag);
                        return (Value::Error, expr.span);
                    }
                    (value, expr.span)
                }
                // Seeds default to the run's seed (`set seed`, `--seed`).
                None if *param == "seed" => (Value::Num(self.graph.scalars.constant(self.settings.seed as f64)), span),
                None if *param == "field" || *param == "modules" => {
                    (Value::Str(super::train::lm_string_default(param).to_string()), span)
                }
                None => (Value::Num(self.graph.scalars.constant(default.unwrap_or(0.0))), span),
            })
            .collect();
        if args.iter().any(|(v, _)| v.is_error()) {
            return Value::Error;
        }
        // Argument errors name the parameter: found by the argument's span.
        let names = args.iter().zip(defaults).map(|((_, s), (p, _))| (*s, p.to_string()));
        let outer = std::mem::replace(&mut self.argument_names, names.collect());
        let value = self.apply_builtin(function, &args, span).unwrap_or(Value::Error);
        self.argument_names = outer;
        value
    }

    /// "argument `t` of `mix`" for the argument at `span` of the builtin
    /// being applied; "the argument of `mix`" when it has no name.
    pub(super) fn argument_of(&self, span: Span, function: &str) -> String {
        let found = self.argument_names.iter().find(|(s, _)| *s == span);
        match found {
            Some((_, name)) => format!("argument `{name}` of `{function}`"),
            None => format!("the argument of `{function}`"),
        }
    }

    /// Whether `value` is a number known to be NaN: for the parameters
    /// whose default is NaN, an argument that was not given.
    pub(super) fn is_known_nan(&self, value: &Value) -> bool {
        matches!(value, Value::Num(n) if self.graph.scalars.known(*n).is_some_and(f64::is_nan))
    }

    fn apply_builtin(&mut self, function: &str, args: &[(Value, Span)], span: Span) -> Option<Value> {
        let number = |s: ScalarId| Some(Value::Num(s));
        match function {
            "load" => {
                let path = self.string_arg(&args[0], "the path of `load`")?;
                self.load(path, args[0].1)
            }
            "only" | "except" => {
                let w = self.weights_arg(&args[0], function)?;
                let glob = self.string_arg(&args[1], "a pattern")?;
                self.select(w, &glob, function == "only", args[1].1, span)
            }
            "dot" => {
                let (a, b) = self.weight_pair(args, function, span)?;
                number(self.graph.dot(a, b))
            }
            "cosine" => {
                let (a, b) = self.weight_pair(args, function, span)?;
                number(self.cosine(a, b))
            }
            "distance" => {
                let (a, b) = self.weight_pair(args, function, span)?;
                let Value::Weights(difference) = self.add_weights(a, b, -1.0, span) else {
                    return None;
                };
                number(self.norm(difference))
            }
            "norm" => {
                let w = self.weights_arg(&args[0], function)?;
                number(self.norm(w))
            }
            "numel" => {
                let w = self.weights_arg(&args[0], function)?;
                let count = self.graph.specs(w).numel() as f64;
                number(self.graph.scalars.constant(count))
            }
            "sum" => self.sum(&args[0], span),
            "accuracy" | "loss" | "perplexity" => self.model_measure(function, args),
            "command" => self.command(args),
            "init" => self.init(args, span),
            "take" => self.take(args),
            "finetune" => self.finetune(args, span),
            "mean" => {
                let total = self.sum(&args[0], span)?;
                let Value::List(items) = &args[0].0 else { return None };
                let count = Value::Num(self.graph.scalars.constant(items.len() as f64));
                Some(self.binary(BinOp::Div, total, count, span))
            }
            other => self.merge_builtin(other, args, span),
        }
    }

    fn cosine(&mut self, a: NodeId, b: NodeId) -> ScalarId {
        let ab = self.graph.dot(a, b);
        let aa = self.graph.dot(a, a);
        let bb = self.graph.dot(b, b);
        let s = &mut self.graph.scalars;
        let product = s.binary(BinOp::Mul, aa, bb);
        let denominator = s.sqrt(product);
        s.binary(BinOp::Div, ab, denominator)
    }

    fn norm(&mut self, w: NodeId) -> ScalarId {
        let squared = self.graph.dot(w, w);
        self.graph.scalars.sqrt(squared)
    }

    fn load(&mut self, path: String, span: Span) -> Option<Value> {
        let resolved = self.resolve_path(&path);
        self.load_at(&resolved, span, "this checkpoint")
    }

    /// The weights of the checkpoint at `path`. Each file is opened once,
    /// however its path is spelt, so loading it again (at every sweep point,
    /// say) gives the same node.
    pub(super) fn load_at(&mut self, path: &std::path::Path, span: Span, label: &str) -> Option<Value> {
        let opened = self
            .checkpoints
            .entry(super::path_identity(path))
            .or_insert_with(|| crate::io::Checkpoint::open(path).map(Arc::new).map_err(|e| io_diag(&e)))
            .clone();
        match opened {
            Ok(checkpoint) => Some(Value::Weights(self.graph.load(checkpoint, span))),
            Err(diag) => {
                self.error(diag.at(span, label));
                None
            }
        }
    }

    fn select(&mut self, w: NodeId, glob: &str, keep: bool, glob_span: Span, span: Span) -> Option<Value> {
        let specs = self.graph.specs(w);
        let matching = specs
            .tensors
            .iter()
            .filter(|s| crate::graph::spec_glob_match(glob, &s.name))
            .count();
        if matching == 0 {
            let names: Vec<String> = specs.tensors.iter().take(3).map(|s| format!("`{}`", s.name)).collect();
            let diag = Diagnostic::new("tv::no_match", format!("no tensor name matches \"{glob}\""))
                .at(glob_span, "matches nothing")
                .help(format!(
                    "`*` matches any run of characters; the names look like {}",
                    names.join(", ")
                ));
            self.error(diag);
            return None;
        }
        Some(Value::Weights(self.graph.select(w, glob, keep, span)))
    }

    /// `take(list, n)`: the first `n` items.
    fn take(&mut self, args: &[(Value, Span)]) -> Option<Value> {
        let Value::List(items) = &args[0].0 else {
            self.wrong_type(args[0].1, "the first argument of `take`", "a list", &args[0].0);
            return None;
        };
        let n = self.whole_number(&args[1], "the count of `take`", 0.0)? as usize;
        if n > items.len() {
            let diag = Diagnostic::new(
                "tv::argument",
                format!("`take` of {n} items from a list of {}", items.len()),
            )
            .at(args[1].1, "too many");
            self.error(diag);
            return None;
        }
        Some(Value::List(items[..n].to_vec()))
    }

    /// `sum` of a list of numbers or of weights.
    fn sum(&mut self, arg: &(Value, Span), span: Span) -> Option<Value> {
        let Value::List(items) = &arg.0 else {
            self.wrong_type(arg.1, "the argument of `sum`", "a list", &arg.0);
            return None;
        };
        let Some(first) = items.first() else {
            let diag = Diagnostic::new("tv::empty_list", "sum of an empty list").at(arg.1, "no items");
            self.error(diag);
            return None;
        };
        match first {
            Value::Weights(first) => return self.sum_weights(*first, items, arg.1, span),
            Value::Num(_) | Value::Error => {}
            other => {
                self.wrong_type(arg.1, "every item of the list", "a number or weights", other);
                return None;
            }
        }
        let mut total = first.clone();
        for item in &items[1..] {
            total = self.binary(BinOp::Add, total, item.clone(), span);
        }
        Some(total)
    }

    fn sum_weights(&mut self, first: NodeId, items: &[Value], list_span: Span, span: Span) -> Option<Value> {
        let one = self.graph.scalars.constant(1.0);
        let mut terms = Vec::new();
        for item in items {
            match item {
                Value::Weights(w) if self.same_tensors(first, *w, span) => terms.push(Term { coef: one, node: *w }),
                Value::Weights(_) | Value::Error => return None,
                other => {
                    self.wrong_type(list_span, "every item of the list", "weights", other);
                    return None;
                }
            }
        }
        Some(Value::Weights(self.graph.lin(&terms, span)))
    }

    pub(super) fn weight_pair(
        &mut self,
        args: &[(Value, Span)],
        function: &str,
        span: Span,
    ) -> Option<(NodeId, NodeId)> {
        let a = self.weights_arg(&args[0], function);
        let b = self.weights_arg(&args[1], function);
        let (a, b) = (a?, b?);
        self.same_tensors(a, b, span).then_some((a, b))
    }

    pub(super) fn weights_arg(&mut self, (value, span): &(Value, Span), function: &str) -> Option<NodeId> {
        match value {
            Value::Weights(w) => Some(*w),
            Value::Error => None,
            other => {
                self.wrong_type(*span, &self.argument_of(*span, function), "weights", other);
                None
            }
        }
    }

    pub(super) fn string_arg(&mut self, (value, span): &(Value, Span), what: &str) -> Option<String> {
        match value {
            Value::Str(s) => Some(s.clone()),
            other => {
                self.wrong_type(*span, what, "a string", other);
                None
            }
        }
    }
}

/// A checkpoint that could not be opened, as a diagnostic (its label is
/// added where the path was written).
fn io_diag(error: &crate::io::IoError) -> Diagnostic {
    let diag = Diagnostic::new("tv::checkpoint", error.to_string());
    match error.help() {
        Some(help) => diag.help(help),
        None => diag,
    }
}
