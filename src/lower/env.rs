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
    /// Where the name was bound (its file is the defining file).
    pub span: Span,
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
        let previous = match env.locals.last() {
            Some(frame) => frame.names.get(name),
            None => self.modules.get(&env.file).and_then(|f| f.names.get(name)),
        };
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
        let binding = Binding { bound, span };
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
