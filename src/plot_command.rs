//! `tv plot REPORT.csv 'KIND(...)' -o FILE`: a figure of a report made
//! earlier (by tv, or any CSV with those columns), with the same kinds,
//! options and checks as the `plot` statement.

use crate::diag::{Diagnostic, Diagnostics, Sources, Span};
use crate::plot::spec::{self, ArgValue};
use crate::plot::{Format, Frame, RenderError};
use crate::syntax::ast::{Arg, ExprKind, StrPart};
use std::path::Path;

/// Largest report `tv plot` reads (a figure of more rows shows nothing
/// more).
const CSV_LIMIT: u64 = 1 << 30;

pub fn plot_report(
    sources: &mut Sources,
    csv: &Path,
    text: &str,
    output: &Path,
    overwrite: bool,
) -> Result<(), Diagnostics> {
    let spec = parse_figure(sources, text)?;
    let format = Format::of(output).ok_or_else(|| vec![spec::unknown_format(&output.display().to_string())])?;
    check_target(csv, output, overwrite)?;
    let frame = read_report(csv)?;
    let missing = missing_columns(&frame, &spec);
    if !missing.is_empty() {
        return Err(missing);
    }
    let bytes = crate::plot::render(&spec, &frame, format).map_err(|e| vec![render_error(csv, e)])?;
    write(output, &bytes, overwrite)
}

/// The figure `KIND(ARGS)`, checked on its own (its columns are checked
/// against the report when it is drawn).
pub fn parse_figure(sources: &mut Sources, text: &str) -> Result<spec::Spec, Diagnostics> {
    let file = sources.add("the figure".to_string(), None, text.to_string());
    let (kind, args) = crate::syntax::parse_plot_spec(file, text).map_err(|d| vec![d])?;
    let args: Vec<spec::Arg> = args.iter().map(literal_arg).collect();
    spec::build(&kind.node, kind.span, &args)
}

/// Arguments as written: bare names, literal strings and numbers.
fn literal_arg(arg: &Arg) -> spec::Arg {
    let value = match &arg.value.node {
        ExprKind::Var(name) => ArgValue::Name(name.clone()),
        ExprKind::Num(v) => ArgValue::Num(*v),
        ExprKind::Neg(inner) => match inner.node {
            ExprKind::Num(v) => ArgValue::Num(-v),
            _ => ArgValue::Other("an expression"),
        },
        ExprKind::Str(parts) => match StrPart::literal(parts) {
            Some(s) => ArgValue::Str(s.to_string()),
            None => ArgValue::Other("a string with `{name}` in it (tv plot has no names to fill in)"),
        },
        ExprKind::List(items) => spec::column_list(items).map_or(ArgValue::Other("a list"), ArgValue::Names),
        _ => ArgValue::Other("an expression (tv plot takes names, strings and numbers)"),
    };
    spec::Arg {
        name: arg.name.as_ref().map(|n| (n.node.clone(), n.span)),
        value,
        span: arg.value.span,
    }
}

fn read_report(csv: &Path) -> Result<Frame, Diagnostics> {
    let fail = |reason: String| {
        let message = format!("cannot read the report {}: {reason}", csv.display());
        vec![Diagnostic::new("tv::report", message)
            .help("tv plot draws a CSV report, such as `tv run exp.tv -o report.csv` writes")]
    };
    let text = crate::io::bounded::read_text(csv, CSV_LIMIT).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => fail("it is not UTF-8 text".to_string()),
        _ => fail(e.to_string()),
    })?;
    Frame::from_csv(&text).map_err(|e| fail(e.to_string()))
}

/// Each column the figure names must be in the report.
fn missing_columns(frame: &Frame, spec: &spec::Spec) -> Diagnostics {
    let names = frame.columns.iter().map(String::as_str);
    spec.columns()
        .into_iter()
        .filter(|c| !frame.columns.contains(&c.name))
        .map(|c| {
            let mut help = format!("the report's columns are {}", frame.columns.join(", "));
            if let Some(close) = crate::diag::suggest::closest(&c.name, names.clone()) {
                help = format!("did you mean `{close}`? {help}");
            }
            column_diag(c.span, &c.name).help(help)
        })
        .collect()
}

fn column_diag(span: Span, name: &str) -> Diagnostic {
    Diagnostic::new("tv::plot", format!("the report has no column `{name}`")).at(span, "not a column")
}

fn render_error(csv: &Path, e: RenderError) -> Diagnostic {
    match e {
        RenderError::Data(e) => {
            Diagnostic::new("tv::plot", format!("cannot draw {}: {}", csv.display(), e.message)).help(e.help)
        }
        RenderError::Draw(e) => Diagnostic::new("tv::plot", format!("cannot draw {}: {e}", csv.display())),
    }
}

/// The figure may not be the report, and replaces only a figure tv drew
/// (or anything, with --overwrite).
fn check_target(csv: &Path, output: &Path, overwrite: bool) -> Result<(), Diagnostics> {
    let refuse = |problem: String, help: &str| {
        let message = format!("the output {} {problem}", output.display());
        Err(vec![Diagnostic::new("tv::output", message).help(help.to_string())])
    };
    if let Some(missing) = crate::targets::detour(output) {
        let problem = format!(
            "goes through {}, which does not exist, and back out with `..`",
            missing.display()
        );
        return refuse(problem, "write the output path without it");
    }
    if crate::targets::resolve(csv) == crate::targets::resolve(output) {
        return refuse("is the report it draws".into(), "choose another output path");
    }
    let Ok(meta) = std::fs::symlink_metadata(output) else {
        return Ok(());
    };
    if !meta.is_file() {
        return refuse("exists and is not a plain file".into(), "choose a new path");
    }
    if !overwrite && !crate::plot::is_earlier_figure(output) {
        return refuse(
            "exists and is not a figure drawn by tv".into(),
            "choose a new path, or pass --overwrite to replace it",
        );
    }
    Ok(())
}

fn write(output: &Path, bytes: &[u8], overwrite: bool) -> Result<(), Diagnostics> {
    let sealed = crate::report::stage_bytes(output, bytes).map_err(|e| crate::figures::write_error(output, e))?;
    let mut outputs = crate::io::commit::Outputs::default();
    outputs.allow_overwrite(overwrite);
    outputs.push(sealed);
    outputs
        .commit(|| Ok(()))
        .map_err(|e| crate::figures::write_error(output, e.source))
}
