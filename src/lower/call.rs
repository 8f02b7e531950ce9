//! Calls: matching arguments to parameters, and running user functions.

use super::env::{Binding, Bound, Env, Frame};
use super::{Lowerer, Value};
use crate::diag::{closest, Diagnostic, Span};
use crate::syntax::ast::{Arg, Expr, FnDef, Ident};
use std::rc::Rc;

/// A parameter as argument matching sees it.
pub(super) struct ParamSpec<'a> {
    pub name: &'a str,
    pub required: bool,
}

impl Lowerer<'_> {
    pub(super) fn call(&mut self, env: &mut Env, name: &Ident, args: &[Arg], span: Span) -> Value {
        match self.lookup(env, &name.node).map(|b| b.bound) {
            Some(Bound::Fn(def)) => self.call_fn(env, &def, args, span),
            Some(Bound::Value(_)) => {
                let mut diag = Diagnostic::new("tv::type", format!("`{}` is a value, not a function", name.node))
                    .at(name.span, "not a function");
                if super::builtins::is_builtin(&name.node) {
                    diag = diag.help(format!("a `let` or parameter named `{}` hides the builtin", name.node));
                }
                self.error(diag);
                Value::Error
            }
            None if super::builtins::is_builtin(&name.node) => self.builtin(env, name, args, span),
            None => {
                self.unknown_name(env, &name.node, name.span, "function");
                self.check_args(env, args);
                Value::Error
            }
        }
    }

    /// Which argument gives each parameter (`None`: its default).
    pub(super) fn match_args<'a>(
        &mut self,
        function: &str,
        params: &[ParamSpec],
        args: &'a [Arg],
        span: Span,
    ) -> Option<Vec<Option<&'a Expr>>> {
        let mut slots: Vec<Option<&Expr>> = vec![None; params.len()];
        let mut ok = true;
        let mut position = 0;
        for arg in args {
            let index = match &arg.name {
                None => {
                    position += 1;
                    if position > params.len() {
                        // Reported once, at the first surplus argument.
                        if position == params.len() + 1 {
                            self.error(too_many(function, params, arg.value.span));
                        }
                        ok = false;
                        continue;
                    }
                    position - 1
                }
                Some(name) => match params.iter().position(|p| p.name == name.node) {
                    Some(i) => i,
                    None => {
                        self.error(unknown_argument(function, params, name));
                        ok = false;
                        continue;
                    }
                },
            };
            if slots[index].is_some() {
                let diag = Diagnostic::new(
                    "tv::argument",
                    format!("argument `{}` of `{function}` is given twice", params[index].name),
                )
                .at(arg.value.span, "given again here")
                .help(signature(function, params));
                self.error(diag);
                ok = false;
            }
            slots[index] = Some(&arg.value);
        }
        for (param, slot) in params.iter().zip(&slots) {
            // After a misspelt or surplus argument, a "missing" one is noise.
            if ok && param.required && slot.is_none() {
                let diag = Diagnostic::new(
                    "tv::argument",
                    format!("missing argument `{}` of `{function}`", param.name),
                )
                .at(span, "in this call")
                .help(signature(function, params));
                self.error(diag);
                ok = false;
            }
        }
        ok.then_some(slots)
    }

    fn call_fn(&mut self, env: &mut Env, def: &Rc<FnDef>, args: &[Arg], span: Span) -> Value {
        let name = def.name.node.as_str();
        // A function is known by where it is defined: two files may each
        // define an `f`.
        if let Some(first) = self.calls.iter().position(|c| c.definition == def.name.span) {
            let chain: Vec<&str> = self.calls[first..]
                .iter()
                .map(|c| c.name.as_str())
                .chain([name])
                .collect();
            let diag = Diagnostic::new(
                "tv::recursion",
                format!("`{name}` calls itself ({})", chain.join(" -> ")),
            )
            .at(span, "recursive call")
            .help("tv functions cannot recurse: there is no condition to stop them");
            self.error(diag);
            return Value::Error;
        }
        let params: Vec<ParamSpec> = def
            .params
            .iter()
            .map(|p| ParamSpec {
                name: &p.name.node,
                required: p.default.is_none(),
            })
            .collect();
        let Some(slots) = self.match_args(name, &params, args, span) else {
            self.check_args(env, args);
            return Value::Error;
        };
        let def_file = def.name.span.file;
        let mut frame = Frame::default();
        let mut arguments = Vec::with_capacity(def.params.len());
        for (param, slot) in def.params.iter().zip(slots) {
            let value = match (slot, &param.default) {
                (Some(arg), _) => self.expr(env, arg),
                (None, Some(default)) => self.default_value(def_file, default),
                (None, None) => Value::Error,
            };
            arguments.push(value.clone());
            let binding = Binding::new(Bound::Value(value), param.name.span);
            frame.names.insert(param.name.node.clone(), binding);
        }
        let key = (def.name.span, arguments, self.dry > 0, self.in_default);
        if let Some(value) = self.call_results.get(&key) {
            return value.clone();
        }
        let mut body_env = Env {
            file: def_file,
            locals: vec![frame],
        };
        self.calls.push(super::Call {
            name: name.to_string(),
            site: span,
            definition: def.name.span,
        });
        let value = self.expr(&mut body_env, &def.body);
        self.calls.pop();
        self.note_call(&key);
        self.call_results.insert(key, value.clone());
        value
    }
}

impl Lowerer<'_> {
    /// Lowers the arguments of a call that cannot be made, so the errors
    /// inside them are reported too.
    pub(super) fn check_args(&mut self, env: &mut Env, args: &[Arg]) {
        self.dry += 1;
        for arg in args {
            self.expr(env, &arg.value);
        }
        self.dry -= 1;
    }

    /// A parameter's default, evaluated among the globals of the function's
    /// file (it cannot see the other parameters).
    pub(super) fn default_value(&mut self, file: crate::diag::FileId, default: &Expr) -> Value {
        let outer = std::mem::replace(&mut self.in_default, true);
        let value = self.expr(&mut Env::new(file), default);
        self.in_default = outer;
        value
    }
}

fn signature(function: &str, params: &[ParamSpec]) -> String {
    let list: Vec<String> = params
        .iter()
        .map(|p| {
            if p.required {
                p.name.to_string()
            } else {
                format!("{} = ...", p.name)
            }
        })
        .collect();
    format!("`{function}` takes ({})", list.join(", "))
}

fn too_many(function: &str, params: &[ParamSpec], span: Span) -> Diagnostic {
    let count = params.len();
    let plural = if count == 1 { "" } else { "s" };
    Diagnostic::new("tv::argument", format!("`{function}` takes {count} argument{plural}"))
        .at(span, "one too many")
        .help(signature(function, params))
}

fn unknown_argument(function: &str, params: &[ParamSpec], name: &Ident) -> Diagnostic {
    let diag = Diagnostic::new("tv::argument", format!("`{function}` has no parameter `{}`", name.node))
        .at(name.span, "unknown");
    match closest(&name.node, params.iter().map(|p| p.name)) {
        Some(near) => diag.help(format!("did you mean `{near}`? {}", signature(function, params))),
        None => diag.help(signature(function, params)),
    }
}
