//! `plot` statements: each figure's spec is built and checked against the
//! report's columns while the program is lowered, so a figure that could
//! not be drawn fails the check, before anything runs.

use super::env::Env;
use super::plot_domain::{Domain, Site};
use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::plot::spec::{self, ArgValue, Spec};
use crate::plot::Format;
use crate::syntax::ast::{Arg, ExprKind, PlotStmt, StrPart};
use std::collections::HashMap;
use std::path::PathBuf;

/// A figure the run draws once the report is complete.
#[derive(Clone, Debug)]
pub struct FigureJob {
    pub spec: Spec,
    pub format: Format,
    /// The target, resolved against the program's folder.
    pub path: PathBuf,
    pub span: Span,
}

/// Each eval statement of a name, with the sweep variables around it.
pub type EvalSites = HashMap<String, Vec<Site>>;

/// Parameters that name a report column rather than take a value.
fn names_column(position: usize, name: Option<&str>) -> bool {
    match name {
        None => position == 0,
        Some(name) => matches!(name, "x" | "y" | "by"),
    }
}

impl Lowerer<'_> {
    pub(super) fn plot_stmt(&mut self, env: &mut Env, stmt: &PlotStmt) {
        let args: Vec<spec::Arg> = stmt
            .args
            .iter()
            .enumerate()
            .map(|(k, arg)| self.plot_arg(env, k, arg))
            .collect();
        let spec = spec::build(&stmt.kind.node, stmt.kind.span, &args);
        let target = self.expect_string(env, &stmt.target, "the path of `plot`");
        let format = target.as_deref().and_then(|t| self.figure_format(t, stmt.target.span));
        let spec = match spec {
            Ok(spec) => Some(spec),
            Err(diags) => {
                diags.into_iter().for_each(|d| self.error(d));
                None
            }
        };
        let (Some(spec), Some(target), Some(format)) = (spec, target, format) else {
            return;
        };
        let path = self.resolve_path(&target);
        if !self.save_targets.insert(super::path_identity(&path)) {
            let diag = Diagnostic::new(
                "tv::save_target",
                format!("`plot` would overwrite another output: {target}"),
            )
            .at(stmt.target.span, "this path")
            .help("give each figure and each save its own path");
            return self.error(diag);
        }
        self.figures.push(FigureJob {
            spec,
            format,
            path,
            span: stmt.target.span,
        });
    }

    /// Records an eval statement and the sweep variables around it.
    pub(super) fn note_eval_site(&mut self, name: &crate::syntax::ast::Ident) {
        let sites = self.eval_sites.entry(name.node.clone()).or_default();
        match sites.iter_mut().find(|s| s.span == name.span) {
            Some(site) => site.merge(&self.sweep_scope),
            None => sites.push(Site {
                span: name.span,
                vars: self.sweep_scope.clone(),
            }),
        }
    }

    /// The domain of a sweep variable, as the figure check keeps it.
    pub(super) fn domain_summary(&self, values: Option<&super::domain::Values>) -> Domain {
        Domain::of(values, &self.graph.scalars)
    }

    fn figure_format(&mut self, target: &str, span: Span) -> Option<Format> {
        let format = Format::of(std::path::Path::new(target));
        if format.is_none() {
            self.error(spec::unknown_format(&format!("\"{target}\"")).at(span, "this path"));
        }
        format
    }

    /// A column is named by a bare name (never looked up); an option's
    /// value is computed, except a bare name that means nothing here,
    /// which the spec then refuses with the choices it takes.
    fn plot_arg(&mut self, env: &mut Env, position: usize, arg: &Arg) -> spec::Arg {
        let name = arg.name.as_ref().map(|n| (n.node.clone(), n.span));
        let column = names_column(position, arg.name.as_ref().map(|n| n.node.as_str()));
        let value = match &arg.value.node {
            ExprKind::Var(v) if column || self.lookup(env, v).is_none() => ArgValue::Name(v.clone()),
            ExprKind::List(items) if column => {
                spec::column_list(items).map_or(ArgValue::Other("a list that is not of names"), ArgValue::Names)
            }
            ExprKind::Str(parts) if column => match StrPart::literal(parts) {
                Some(text) => ArgValue::Name(text.to_string()),
                None => ArgValue::Other(expression_kind(&arg.value.node)),
            },
            _ if column => ArgValue::Other(expression_kind(&arg.value.node)),
            _ => self.option_value(env, arg),
        };
        spec::Arg {
            name,
            value,
            span: arg.value.span,
        }
    }

    fn option_value(&mut self, env: &mut Env, arg: &Arg) -> ArgValue {
        match self.expr(env, &arg.value) {
            Value::Str(s) => ArgValue::Str(s),
            Value::Num(s) => match self.graph.scalars.known(s) {
                Some(v) => ArgValue::Num(v),
                None => ArgValue::Other("a number measured by the run"),
            },
            Value::Error => ArgValue::Error,
            other => ArgValue::Other(other.type_name()),
        }
    }

    /// Checks every figure against the report's columns, once the whole
    /// program is lowered.
    pub(super) fn check_figures(&mut self) {
        let figures = std::mem::take(&mut self.figures);
        for figure in &figures {
            if let Some(diag) = self.figure_problem(&figure.spec) {
                self.error(diag);
            }
        }
        self.figures = figures;
    }

    fn figure_problem(&self, spec: &Spec) -> Option<Diagnostic> {
        if let Some(eval) = spec.evals.iter().find(|e| !self.table.has_eval(&e.name)) {
            return Some(self.not_an_eval(eval));
        }
        if let Some(axis) = spec.axes().into_iter().find(|a| !self.table.has_var(&a.name)) {
            return Some(self.not_a_variable(axis));
        }
        spec.evals.iter().find_map(|eval| self.eval_problem(spec, eval))
    }

    /// The rows of `eval` must give one value per point of the axes.
    fn eval_problem(&self, spec: &Spec, eval: &spec::Column) -> Option<Diagnostic> {
        let axes: Vec<&str> = spec.axes().iter().map(|a| a.name.as_str()).collect();
        let sites = self.eval_sites.get(&eval.name)?;
        let covers = |s: &&Site| axes.iter().all(|a| s.domain(a).is_some());
        let covering: Vec<&Site> = sites.iter().filter(covers).collect();
        if covering.is_empty() {
            let message = format!(
                "`{}` is never measured inside a sweep over {}",
                eval.name,
                quoted(&axes).join(" and ")
            );
            let help = format!(
                "a {} draws the rows where `{}` is measured at each value of its axes",
                spec.kind.noun(),
                eval.name
            );
            return Some(
                Diagnostic::new("tv::plot", message)
                    .at(eval.span, "this eval")
                    .help(help),
            );
        }
        if let Some(diag) = covering.iter().find_map(|site| site_problem(spec, eval, site, &axes)) {
            return Some(diag);
        }
        // Two statements collide unless some axis takes different values
        // in each.
        let apart = |a: &Site, b: &Site| {
            axes.iter().any(|x| match (a.domain(x), b.domain(x)) {
                (Some(p), Some(q)) => p.is_disjoint(q),
                _ => true,
            })
        };
        for (k, second) in covering.iter().enumerate() {
            if covering[..k].iter().any(|first| !apart(first, second)) {
                return Some(measured_twice(eval, &axes, second.span));
            }
        }
        None
    }

    fn not_an_eval(&self, value: &spec::Column) -> Diagnostic {
        let mut diag = Diagnostic::new("tv::plot", format!("`{}` is not an eval of this program", value.name))
            .at(value.span, "not an eval");
        let evals = self.table.eval_names();
        let help = if self.table.has_var(&value.name) {
            format!(
                "`{}` is a sweep variable: a plot draws an eval, along its sweep variables",
                value.name
            )
        } else if let Some(close) = crate::diag::suggest::closest(&value.name, evals.iter().map(String::as_str)) {
            format!("did you mean `{close}`?")
        } else if evals.is_empty() {
            "the program has no eval to draw: add `eval NAME = ...` inside a sweep".to_string()
        } else {
            format!("the evals are {}", evals.join(", "))
        };
        diag = diag.help(help);
        diag
    }

    fn not_a_variable(&self, axis: &spec::Column) -> Diagnostic {
        let vars = self.table.var_names();
        let help = if self.table.has_eval(&axis.name) {
            format!("`{}` is an eval: the axes of a plot are sweep variables", axis.name)
        } else if let Some(close) = crate::diag::suggest::closest(&axis.name, vars.iter().map(String::as_str)) {
            format!("did you mean `{close}`?")
        } else if vars.is_empty() {
            "the program sweeps nothing: a plot's axes are sweep variables".to_string()
        } else {
            format!("the sweep variables are {}", vars.join(", "))
        };
        let message = format!("`{}` is not a sweep variable of this program", axis.name);
        Diagnostic::new("tv::plot", message)
            .at(axis.span, "not a sweep variable")
            .help(help)
    }
}

fn measured_twice(eval: &spec::Column, axes: &[&str], second: Span) -> Diagnostic {
    let message = format!(
        "`{}` is measured by two eval statements at the same values of {}",
        eval.name,
        quoted(axes).join(" and ")
    );
    let help = "a figure draws one value per point of its axes; give one of the evals another name";
    Diagnostic::new("tv::plot", message)
        .at(second, "measured again here")
        .help(help)
}

/// What a column argument that is not a name is, without computing it.
fn expression_kind(expr: &ExprKind) -> &'static str {
    match expr {
        ExprKind::Num(_) | ExprKind::Neg(_) => "a number",
        ExprKind::Str(_) => "a string with `{name}` in it",
        ExprKind::List(_) => "a list",
        _ => "an expression",
    }
}

fn quoted(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("`{n}`")).collect()
}

/// A repeated value of an axis, or another variable that varies around
/// the eval, would give the figure several values at one point.
fn site_problem(spec: &Spec, eval: &spec::Column, site: &Site, axes: &[&str]) -> Option<Diagnostic> {
    for axis in spec.axes() {
        if let Some(value) = site.domain(&axis.name).and_then(Domain::repeated) {
            let message = format!("the sweep over `{}` lists {value} more than once", axis.name);
            let help = "a figure draws one value per point of its axes: list each value once";
            return Some(
                Diagnostic::new("tv::plot", message)
                    .at(axis.span, "this axis")
                    .help(help),
            );
        }
    }
    let varying = |(v, d): &&(String, Domain)| !axes.contains(&v.as_str()) && !d.is_single();
    let extra: Vec<&str> = site.vars.iter().filter(varying).map(|(v, _)| v.as_str()).collect();
    if extra.is_empty() {
        return None;
    }
    let message = format!(
        "`{}` also varies over {}, which the {} does not show",
        eval.name,
        quoted(&extra).join(", "),
        spec.kind.noun()
    );
    let help = match spec.kind {
        spec::Kind::Heatmap => "a heatmap shows one value per (x, y): sweep only its two axes around this eval, or give each value of the other variable its own eval",
        spec::Kind::Lines => "a line plot shows one value per point of each curve: add the other variables to `by`, e.g. `by = [year, seed]`",
    };
    Some(
        Diagnostic::new("tv::plot", message)
            .at(eval.span, "this eval")
            .help(help),
    )
}
