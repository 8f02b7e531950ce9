//! Scopes: a file's global names, then nested frames for sweep bodies and
//! function parameters.

use super::{Lowerer, Value};
use crate::diag::{Diagnostic, FileId, Span};
use crate::syntax::ast::FnDef;
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub enum Bound {
    Value(Value),
    Fn(Rc<FnDef>),
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub bound: Bound,
    /// Where the name was bound: its definition, or the `use` that brought
    /// it in.
    pub span: Span,
    /// Brought in by `use`: such names are not passed on to importers.
    pub imported: bool,
}

fn same(a: &Bound, b: &Bound) -> bool {
    match (a, b) {
        (Bound::Fn(x), Bound::Fn(y)) => std::rc::Rc::ptr_eq(x, y),
        (Bound::Value(x), Bound::Value(y)) => x == y,
        _ => false,
    }
}

impl Binding {
    pub fn new(bound: Bound, span: Span) -> Binding {
        Binding {
            bound,
            span,
            imported: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub names: HashMap<String, Binding>,
}

/// Where names are looked up: the innermost local frame first, then the
/// globals of `file`.
pub struct Env {
    pub file: FileId,
    pub locals: Vec<Frame>,
}

impl Env {
    pub fn new(file: FileId) -> Self {
        Env {
            file,
            locals: Vec::new(),
        }
    }

    pub fn at_top_level(&self) -> bool {
        self.locals.is_empty()
    }
}

impl Lowerer<'_> {
    pub(super) fn lookup(&self, env: &Env, name: &str) -> Option<Binding> {
        let local = env.locals.iter().rev().find_map(|f| f.names.get(name));
        let global = || self.modules.get(&env.file).and_then(|f| f.names.get(name));
        local.or_else(global).cloned()
    }

    /// Every name visible in `env`, for suggestions.
    pub(super) fn visible_names(&self, env: &Env) -> Vec<String> {
        let mut names: Vec<String> = env.locals.iter().flat_map(|f| f.names.keys().cloned()).collect();
        if let Some(globals) = self.modules.get(&env.file) {
            names.extend(globals.names.keys().cloned());
        }
        names
    }

    /// Binds `name` in the innermost scope; rebinding there is an error.
    pub(super) fn bind(&mut self, env: &mut Env, name: &str, bound: Bound, span: Span) {
        self.bind_binding(env, name, Binding::new(bound, span));
    }

    /// Binds `name` in the innermost scope, reporting a rebinding at the
    /// binding's span.
    pub(super) fn bind_binding(&mut self, env: &mut Env, name: &str, binding: Binding) {
        let span = binding.span;
        let previous = match env.locals.last() {
            Some(frame) => frame.names.get(name),
            None => self.modules.get(&env.file).and_then(|f| f.names.get(name)),
        };
        // The same definition imported twice (two `use`s of one file) is
        // not a conflict.
        if previous.is_some_and(|p| p.imported && binding.imported && same(&p.bound, &binding.bound)) {
            return;
        }
        if let Some(first) = previous.map(|b| b.span) {
            let (line, col) = self.sources.line_col(first.file, first.start);
            let file = self.sources.get(first.file).name.clone();
            let diag = Diagnostic::new("tv::rebinding", format!("`{name}` is already bound in this scope"))
                .at(span, "bound again here")
                .help(format!(
                    "names are immutable; `{name}` was first bound at {file}:{line}:{col}. Choose another name"
                ));
            self.error(diag);
            return;
        }
        match env.locals.last_mut() {
            Some(frame) => frame.names.insert(name.to_string(), binding),
            None => self
                .modules
                .entry(env.file)
                .or_default()
                .names
                .insert(name.to_string(), binding),
        };
    }
}
