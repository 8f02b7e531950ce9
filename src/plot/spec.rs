//! What a figure shows: the kind, the report columns it reads, and its
//! options. Built from the arguments of a `plot` statement or of
//! `tv plot`, and checked there, before anything runs.

use crate::diag::{Diagnostic, Span};
use crate::syntax::ast::{Expr, ExprKind, StrPart};
use std::path::Path;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One cell per (x, y), coloured by the value.
    Heatmap,
    /// One curve per value of `by`, the value against x.
    Lines,
}

impl Kind {
    pub const NAMES: [&'static str; 2] = ["heatmap", "lines"];

    fn parse(name: &str) -> Option<Kind> {
        match name {
            "heatmap" => Some(Kind::Heatmap),
            "lines" => Some(Kind::Lines),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Heatmap => "heatmap",
            Kind::Lines => "lines",
        }
    }

    /// What a reader calls it.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Heatmap => "heatmap",
            Kind::Lines => "line plot",
        }
    }

    /// The parameters that name report columns, in the order a reader
    /// meets them.
    fn columns(self) -> &'static [&'static str] {
        match self {
            Kind::Heatmap => &["x", "y"],
            Kind::Lines => &["x", "by"],
        }
    }

    /// The other parameters.
    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Heatmap => &[
                "title",
                "xlabel",
                "ylabel",
                "label",
                "normalize",
                "center",
                "min",
                "max",
                "values",
                "width",
                "height",
            ],
            Kind::Lines => &["title", "xlabel", "ylabel", "best", "width", "height"],
        }
    }
}

/// Percent change against the mean of each row or column of a heatmap.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Normalize {
    Row,
    Column,
}

/// Which point of each curve is the best.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Best {
    Min,
    Max,
}

/// Whether a heatmap writes each value in its cell.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CellValues {
    /// When every value fits its cell and there are at most 400 cells.
    Auto,
    Show,
    Hide,
}

/// A report column named by the figure, with where it was named.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub kind: Kind,
    /// The evals drawn: one, or several (a heatmap's rows, or more curves).
    pub evals: Vec<Column>,
    pub x: Column,
    /// The heatmap's rows (`y`), or the columns that group curves (`by`).
    pub groups: Vec<Column>,
    pub title: Option<String>,
    pub xlabel: Option<String>,
    pub ylabel: Option<String>,
    /// The colour scale's label.
    pub label: Option<String>,
    pub normalize: Option<Normalize>,
    /// A diverging colour scale centred here.
    pub center: Option<f64>,
    /// The colour scale's ends (values beyond take the end colours).
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub cells: CellValues,
    pub best: Option<Best>,
    pub width: u32,
    pub height: u32,
}

impl Spec {
    /// Every report column the figure reads.
    pub fn columns(&self) -> Vec<&Column> {
        let mut all: Vec<&Column> = self.evals.iter().collect();
        all.extend(self.axes());
        all
    }

    /// The sweep variables the figure spreads its values over.
    pub fn axes(&self) -> Vec<&Column> {
        std::iter::once(&self.x).chain(&self.groups).collect()
    }

    /// The evals' names, as a reader sees them.
    pub fn eval_names(&self) -> String {
        let names: Vec<String> = self.evals.iter().map(|c| format!("`{}`", c.name)).collect();
        names.join(", ")
    }
}

/// An argument's value as the figure sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    /// A bare name: a report column.
    Name(String),
    /// A list of bare names: several columns.
    Names(Vec<(String, Span)>),
    Str(String),
    Num(f64),
    /// Anything else, by its type's name (weights, a list...).
    Other(&'static str),
    /// Its own error was reported already.
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<(String, Span)>,
    pub value: ArgValue,
    pub span: Span,
}

pub const SIZE_RANGE: (f64, f64) = (240.0, 4096.0);

/// Builds the spec of `kind(args)`; every problem is reported.
pub fn build(kind: &str, kind_span: Span, args: &[Arg]) -> Result<Spec, Vec<Diagnostic>> {
    let Some(kind) = Kind::parse(kind) else {
        return Err(vec![unknown_kind(kind, kind_span)]);
    };
    let mut builder = Builder {
        kind,
        diags: Vec::new(),
        evals: None,
        named: Vec::new(),
    };
    for arg in args {
        builder.arg(arg);
    }
    builder.finish(kind_span)
}

fn unknown_kind(kind: &str, span: Span) -> Diagnostic {
    let mut diag = Diagnostic::new("tv::plot", format!("`{kind}` is not a kind of plot")).at(span, "unknown kind");
    let hint = crate::diag::suggest::closest(kind, Kind::NAMES.iter().copied());
    let kinds = "the kinds are heatmap(value, x = ..., y = ...) and lines(value, x = ..., by = ...)";
    diag = match hint {
        Some(close) => diag.help(format!("did you mean `{close}`? {kinds}")),
        None => diag.help(kinds),
    };
    diag
}

struct Builder<'a> {
    kind: Kind,
    diags: Vec<Diagnostic>,
    evals: Option<Vec<Column>>,
    named: Vec<(&'a str, Span, &'a Arg)>,
}

impl<'a> Builder<'a> {
    fn arg(&mut self, arg: &'a Arg) {
        let Some((name, name_span)) = &arg.name else {
            return self.positional(arg);
        };
        let known = self.kind.columns().contains(&name.as_str()) || self.kind.options().contains(&name.as_str());
        if !known {
            return self.unknown_parameter(name, *name_span);
        }
        if self.named.iter().any(|(n, ..)| n == name) {
            let diag = Diagnostic::new("tv::plot", format!("`{name}` is given twice"))
                .at(*name_span, "again here")
                .help("give each option once");
            return self.diags.push(diag);
        }
        self.named.push((name, *name_span, arg));
    }

    fn positional(&mut self, arg: &Arg) {
        if self.evals.is_some() || !self.named.is_empty() {
            if self
                .diags
                .iter()
                .any(|d| d.message.starts_with("a plot takes one positional"))
            {
                return;
            }
            let diag = Diagnostic::new("tv::plot", "a plot takes one positional argument, the value to draw")
                .at(arg.span, "extra argument")
                .help(format!("name the others, e.g. {}", self.example()));
            return self.diags.push(diag);
        }
        self.evals = self.columns_of(arg, "the value to draw", true);
    }

    fn unknown_parameter(&mut self, name: &str, span: Span) {
        let all: Vec<&str> = self.kind.columns().iter().chain(self.kind.options()).copied().collect();
        let mut help = format!("{} takes {}", self.kind.name(), all.join(", "));
        if let Some(close) = crate::diag::suggest::closest(name, all.iter().copied()) {
            help = format!("did you mean `{close}`? {help}");
        }
        let other = match self.kind {
            Kind::Heatmap if name == "by" || name == "best" => " (it belongs to lines)",
            Kind::Lines if ["y", "normalize", "center", "values"].contains(&name) => " (it belongs to heatmap)",
            _ => "",
        };
        let message = format!("{} has no option `{name}`{other}", self.kind.name());
        let diag = Diagnostic::new("tv::plot", message)
            .at(span, "unknown option")
            .help(help);
        self.diags.push(diag);
    }

    fn example(&self) -> &'static str {
        match self.kind {
            Kind::Heatmap => "heatmap(ppl, x = test_year, y = train_year)",
            Kind::Lines => "lines(ppl, x = alpha, by = year)",
        }
    }

    /// Columns: a bare name, a string naming a column of any spelling, or
    /// (where `many`) a list of names.
    fn columns_of(&mut self, arg: &Arg, what: &str, many: bool) -> Option<Vec<Column>> {
        match &arg.value {
            ArgValue::Name(name) | ArgValue::Str(name) => Some(vec![Column {
                name: name.clone(),
                span: arg.span,
            }]),
            ArgValue::Names(names) if many && !names.is_empty() => Some(
                names
                    .iter()
                    .map(|(name, span)| Column {
                        name: name.clone(),
                        span: *span,
                    })
                    .collect(),
            ),
            ArgValue::Names(_) if many => {
                let diag = Diagnostic::new("tv::plot", format!("{what} is an empty list"))
                    .at(arg.span, "no column")
                    .help("name at least one column");
                self.diags.push(diag);
                None
            }
            ArgValue::Names(_) => {
                let diag = Diagnostic::new("tv::plot", format!("{what} takes one column, not a list"))
                    .at(arg.span, "a list")
                    .help(format!("e.g. {}", self.example()));
                self.diags.push(diag);
                None
            }
            ArgValue::Error => None,
            other => {
                let found = type_name(other);
                let diag = Diagnostic::new("tv::plot", format!("{what} must name a report column, found {found}"))
                    .at(arg.span, found)
                    .help(format!(
                        "write the column's name: an eval or a sweep variable, e.g. {}",
                        self.example()
                    ));
                self.diags.push(diag);
                None
            }
        }
    }

    fn finish(mut self, kind_span: Span) -> Result<Spec, Vec<Diagnostic>> {
        let named = std::mem::take(&mut self.named);
        let find = |name: &str| named.iter().find(|(n, ..)| *n == name).map(|(_, _, a)| *a);
        let x = find("x")
            .and_then(|a| self.columns_of(a, "`x`", false))
            .and_then(|mut c| c.pop());
        let y_name = self.kind.columns()[1];
        let many = self.kind == Kind::Lines;
        let groups = find(y_name).and_then(|a| self.columns_of(a, &format!("`{y_name}`"), many));
        let mut spec = Spec {
            kind: self.kind,
            evals: Vec::new(),
            x: Column {
                name: String::new(),
                span: kind_span,
            },
            groups: groups.unwrap_or_default(),
            title: None,
            xlabel: None,
            ylabel: None,
            label: None,
            normalize: None,
            center: None,
            min: None,
            max: None,
            cells: CellValues::Auto,
            best: None,
            width: 0,
            height: 0,
        };
        self.options(&named, &mut spec);
        self.required(kind_span, &mut spec, x);
        self.distinct(&spec);
        let (w, h) = match self.kind {
            Kind::Heatmap => (720.0, 560.0),
            Kind::Lines => (720.0, 480.0),
        };
        spec.width = self.size(find("width"), w);
        spec.height = self.size(find("height"), h);
        match self.diags.is_empty() {
            true => Ok(spec),
            false => Err(self.diags),
        }
    }

    fn required(&mut self, kind_span: Span, spec: &mut Spec, x: Option<Column>) {
        let (kind, example) = (self.kind.name(), self.example());
        let missing = |what: &str| {
            Diagnostic::new("tv::plot", format!("{kind} needs {what}"))
                .at(kind_span, "here")
                .help(format!("e.g. {example}"))
        };
        match self.evals.take() {
            Some(evals) => spec.evals = evals,
            None if self.diags.iter().any(|d| d.message.starts_with("the value to draw")) => {}
            None => self.diags.push(missing("the value to draw, as its first argument")),
        }
        match x {
            Some(x) => spec.x = x,
            None if self.diags.iter().any(|d| d.message.starts_with("`x`")) => {}
            None => self.diags.push(missing("`x = COLUMN`, the horizontal axis")),
        }
        let several = spec.evals.len() > 1;
        let y_error = self.diags.iter().any(|d| d.message.starts_with("`y`"));
        if self.kind == Kind::Heatmap && spec.groups.is_empty() && !several && !y_error {
            self.diags.push(missing("`y = COLUMN`, the vertical axis"));
        }
        if self.kind == Kind::Heatmap && several && !spec.groups.is_empty() {
            let diag = Diagnostic::new("tv::plot", "a heatmap of several evals has one row per eval")
                .at(spec.groups[0].span, "a second vertical axis")
                .help(format!("drop `y`: the rows are {}", spec.eval_names()));
            self.diags.push(diag);
        }
    }

    /// The value and the axes must be different columns.
    fn distinct(&mut self, spec: &Spec) {
        let columns = spec.columns();
        for (k, column) in columns.iter().enumerate() {
            if column.name.is_empty() {
                continue;
            }
            if let Some(first) = columns[..k].iter().find(|c| c.name == column.name) {
                let diag = Diagnostic::new("tv::plot", format!("`{}` is used twice in one plot", column.name))
                    .at(column.span, "again here")
                    .help(format!(
                        "`{}` is already {}: the value and each axis are different columns of the report",
                        first.name,
                        role(spec, first)
                    ));
                self.diags.push(diag);
            }
        }
    }

    fn options(&mut self, named: &[(&str, Span, &Arg)], spec: &mut Spec) {
        for (name, _, arg) in named {
            match *name {
                "title" => spec.title = self.text(arg, name),
                "xlabel" => spec.xlabel = self.text(arg, name),
                "ylabel" => spec.ylabel = self.text(arg, name),
                "label" => spec.label = self.text(arg, name),
                "min" => spec.min = self.number(arg, name),
                "max" => spec.max = self.number(arg, name),
                "normalize" => {
                    spec.normalize = self.choice(arg, name, &[("row", Normalize::Row), ("column", Normalize::Column)])
                }
                "values" => {
                    let choices = [
                        ("auto", CellValues::Auto),
                        ("show", CellValues::Show),
                        ("hide", CellValues::Hide),
                    ];
                    spec.cells = self.choice(arg, name, &choices).unwrap_or(CellValues::Auto);
                }
                "best" => spec.best = self.choice(arg, name, &[("min", Best::Min), ("max", Best::Max)]),
                "center" => spec.center = self.number(arg, name),
                _ => {}
            }
        }
    }

    fn text(&mut self, arg: &Arg, name: &str) -> Option<String> {
        match &arg.value {
            ArgValue::Str(s) => Some(s.clone()),
            ArgValue::Error => None,
            other => {
                self.wrong(arg, name, "a string", other);
                None
            }
        }
    }

    fn number(&mut self, arg: &Arg, name: &str) -> Option<f64> {
        match &arg.value {
            ArgValue::Num(v) if v.is_finite() => Some(*v),
            ArgValue::Error => None,
            other => {
                self.wrong(arg, name, "a finite number", other);
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, arg: &Arg, name: &str, choices: &[(&str, T)]) -> Option<T> {
        let words: Vec<String> = choices.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        let expected = format!("one of {}", words.join(", "));
        match &arg.value {
            ArgValue::Str(s) => {
                let found = choices.iter().find(|(w, _)| w == s).map(|(_, v)| *v);
                if found.is_none() {
                    let diag = Diagnostic::new("tv::plot", format!("`{name}` cannot be \"{s}\""))
                        .at(arg.span, "not a choice")
                        .help(format!("`{name}` is {expected}"));
                    self.diags.push(diag);
                }
                found
            }
            ArgValue::Error => None,
            other => {
                self.wrong(arg, name, &expected, other);
                None
            }
        }
    }

    fn size(&mut self, arg: Option<&Arg>, default: f64) -> u32 {
        let Some(arg) = arg else {
            return default as u32;
        };
        let (lo, hi) = SIZE_RANGE;
        match &arg.value {
            ArgValue::Num(v) if (lo..=hi).contains(v) && v.fract() == 0.0 => *v as u32,
            ArgValue::Error => default as u32,
            other => {
                let name = arg.name.as_ref().map_or("size", |(n, _)| n.as_str());
                let what = format!("a whole number of pixels from {lo} to {hi}");
                self.wrong(arg, name, &what, other);
                default as u32
            }
        }
    }

    fn wrong(&mut self, arg: &Arg, name: &str, expected: &str, found: &ArgValue) {
        let found = match found {
            ArgValue::Num(v) => crate::report::format_number(*v),
            ArgValue::Str(s) => format!("\"{s}\""),
            other => type_name(other).to_string(),
        };
        let diag = Diagnostic::new("tv::plot", format!("`{name}` must be {expected}, found {found}"))
            .at(arg.span, "this value")
            .help(format!("e.g. {}", self.example()));
        self.diags.push(diag);
    }
}

/// Which part of the figure a column plays.
fn role(spec: &Spec, column: &Column) -> &'static str {
    if spec.evals.iter().any(|c| std::ptr::eq(c, column)) {
        "a value drawn"
    } else if std::ptr::eq(&spec.x, column) {
        "the x axis"
    } else {
        "another axis"
    }
}

fn type_name(value: &ArgValue) -> &'static str {
    match value {
        ArgValue::Name(_) => "a name",
        ArgValue::Names(_) => "a list of names",
        ArgValue::Str(_) => "a string",
        ArgValue::Num(_) => "a number",
        ArgValue::Other(t) => t,
        ArgValue::Error => "an error",
    }
}

/// Columns written as a list, `[a, b]` or `["a", "b"]`: the same in a
/// `plot` statement and in `tv plot`.
pub fn column_list(items: &[Expr]) -> Option<Vec<(String, Span)>> {
    let column = |item: &Expr| match &item.node {
        ExprKind::Var(v) => Some((v.clone(), item.span)),
        ExprKind::Str(parts) => StrPart::literal(parts).map(|s| (s.to_string(), item.span)),
        _ => None,
    };
    items.iter().map(column).collect()
}

/// A figure path whose extension names no format; `shown` is the path as
/// the user wrote it.
pub fn unknown_format(shown: &str) -> Diagnostic {
    Diagnostic::new("tv::plot", format!("cannot tell the format of the figure {shown}"))
        .help("a figure is written as SVG or PNG: end its path with .svg or .png")
}

/// The file format of a figure, by its extension.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "svg" => Some(Format::Svg),
            "png" => Some(Format::Png),
            _ => None,
        }
    }
}
