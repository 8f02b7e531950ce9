//! The report as a figure reads it: the CSV's columns, and the grid of a
//! heatmap or the curves of a line plot taken from them. A run's figures
//! and `tv plot` both start from the CSV text, so they draw the same.

use super::spec::{Normalize, Spec};

/// A CSV table: its header and its rows, as text.
pub struct Frame {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Why a figure cannot be drawn from a table.
#[derive(Debug, PartialEq)]
pub struct DataError {
    pub message: String,
    pub help: String,
}

fn error(message: String, help: impl Into<String>) -> DataError {
    DataError {
        message,
        help: help.into(),
    }
}

impl Frame {
    pub fn from_csv(text: &str) -> Result<Frame, csv::Error> {
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
        let columns = reader.headers()?.iter().map(str::to_string).collect();
        let rows = reader
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
            .collect::<Result<_, _>>()?;
        Ok(Frame { columns, rows })
    }

    fn index(&self, name: &str) -> Result<usize, DataError> {
        if self.columns.iter().filter(|c| *c == name).count() > 1 {
            let message = format!("the report has two columns named `{name}`");
            return Err(error(
                message,
                "rename one of them: a figure must know which column it draws",
            ));
        }
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            let mut help = format!("the columns are {}", self.columns.join(", "));
            if let Some(close) = crate::diag::suggest::closest(name, self.columns.iter().map(String::as_str)) {
                help = format!("did you mean `{close}`? {help}");
            }
            error(format!("the report has no column `{name}`"), help)
        })
    }
}

/// A heatmap's cells: `values[row][column]`, rows top to bottom.
#[derive(Debug, PartialEq)]
pub struct Grid {
    pub x: Vec<String>,
    pub y: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
}

/// One curve: its legend label, the key its colour follows, its points
/// `(x, value)` in order of x.
#[derive(Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    pub key: String,
    pub points: Vec<(f64, f64)>,
}

/// The curves of a line plot, and the x axis's labels when x is not
/// numeric (then each x is the position of its label).
#[derive(Debug, PartialEq)]
pub struct Curves {
    pub curves: Vec<Curve>,
    pub categories: Option<Vec<String>>,
}

/// A measured point: the axes' values (x, then the groups'), which eval
/// it is, and its value.
struct Point {
    axes: Vec<String>,
    eval: usize,
    value: f64,
}

/// Every value of the figure's evals in a row where every axis is set.
fn points(frame: &Frame, spec: &Spec) -> Result<Vec<Point>, DataError> {
    let evals: Vec<usize> = spec
        .evals
        .iter()
        .map(|c| frame.index(&c.name))
        .collect::<Result<_, _>>()?;
    let axes: Vec<usize> = spec
        .axes()
        .iter()
        .map(|c| frame.index(&c.name))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for row in &frame.rows {
        if axes.iter().any(|&a| row[a].is_empty()) {
            continue;
        }
        for (k, &e) in evals.iter().enumerate() {
            let cell = &row[e];
            if cell.is_empty() {
                continue;
            }
            let value = parse_number(cell).ok_or_else(|| {
                let message = format!(
                    "the column `{}` holds \"{cell}\", which is not a number",
                    spec.evals[k].name
                );
                error(message, "a plot draws columns of numbers: evals")
            })?;
            let axes = axes.iter().map(|&a| row[a].clone()).collect();
            out.push(Point { axes, eval: k, value });
        }
    }
    if out.is_empty() {
        let axes: Vec<&str> = spec.axes().iter().map(|c| c.name.as_str()).collect();
        let message = format!(
            "no row of the report has {} with {}",
            spec.eval_names(),
            axes.join(" and ")
        );
        return Err(error(
            message,
            "a plot draws the rows where a value and every axis are set",
        ));
    }
    check_unique(frame, spec, &out)?;
    Ok(out)
}

/// Numbers as tv writes them, `NaN` and `inf` included.
fn parse_number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok()
}

/// One value per eval and point of the axes; otherwise the report varies
/// over another column the figure does not show.
fn check_unique(frame: &Frame, spec: &Spec, points: &[Point]) -> Result<(), DataError> {
    let mut seen = std::collections::HashSet::new();
    let Some(point) = points.iter().find(|p| !seen.insert((p.eval, p.axes.clone()))) else {
        return Ok(());
    };
    let names = spec.axes().into_iter().map(|c| c.name.as_str());
    let at: Vec<String> = names.zip(&point.axes).map(|(n, v)| format!("{n} = {v}")).collect();
    let shown: Vec<&str> = spec.columns().iter().map(|c| c.name.as_str()).collect();
    let others: Vec<&str> = frame
        .columns
        .iter()
        .map(String::as_str)
        .filter(|c| !shown.contains(c))
        .collect();
    let eval = &spec.evals[point.eval].name;
    let message = format!("the report has several values of `{eval}` at {}", at.join(", "));
    let help = match others.is_empty() {
        true => "a figure needs one value per point of its axes".to_string(),
        false => format!(
            "the report also varies over another column ({}): a figure needs one value per point of its axes",
            others.join(", ")
        ),
    };
    Err(error(message, help))
}

/// Values in order of first appearance.
fn labels<'a>(values: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

/// The grid of a heatmap: columns are x's values; rows are y's values, or
/// the evals when there are several.
pub fn grid(frame: &Frame, spec: &Spec) -> Result<Grid, DataError> {
    let points = points(frame, spec)?;
    let x = labels(points.iter().map(|p| &p.axes[0]));
    let by_eval = spec.evals.len() > 1;
    let y = match by_eval {
        true => spec.evals.iter().map(|c| c.name.clone()).collect(),
        false => labels(points.iter().map(|p| &p.axes[1])),
    };
    let mut values = vec![vec![None; x.len()]; y.len()];
    for p in &points {
        let i = x.iter().position(|l| *l == p.axes[0]).unwrap_or(0);
        let j = match by_eval {
            true => p.eval,
            false => y.iter().position(|l| *l == p.axes[1]).unwrap_or(0),
        };
        values[j][i] = Some(p.value);
    }
    if let Some(axis) = spec.normalize {
        normalize(&mut values, axis);
    }
    Ok(Grid { x, y, values })
}

/// Percent change of each value against the mean of its row or column
/// (finite values only).
fn normalize(values: &mut [Vec<Option<f64>>], axis: Normalize) {
    let rows = values.len();
    let columns = values.first().map_or(0, Vec::len);
    let mean = |cells: Vec<Option<f64>>| {
        let finite: Vec<f64> = cells.into_iter().flatten().filter(|v| v.is_finite()).collect();
        finite.iter().sum::<f64>() / finite.len() as f64
    };
    let means: Vec<f64> = match axis {
        Normalize::Row => values.iter().map(|row| mean(row.clone())).collect(),
        Normalize::Column => (0..columns)
            .map(|i| mean(values.iter().map(|r| r[i]).collect()))
            .collect(),
    };
    for j in 0..rows {
        for i in 0..columns {
            let m = match axis {
                Normalize::Row => means[j],
                Normalize::Column => means[i],
            };
            if let Some(v) = &mut values[j][i] {
                // Against the mean's size: a row of negative values keeps
                // its order.
                *v = 100.0 * (*v - m) / m.abs();
            }
        }
    }
}

/// The curves of a line plot: one per eval and combination of the `by`
/// columns' values, in order of first appearance.
pub fn curves(frame: &Frame, spec: &Spec) -> Result<Curves, DataError> {
    let points = points(frame, spec)?;
    let xs = labels(points.iter().map(|p| &p.axes[0]));
    let numeric: Option<Vec<f64>> = xs.iter().map(|x| parse_number(x).filter(|v| v.is_finite())).collect();
    let position = |label: &String| {
        let k = xs.iter().position(|l| l == label).unwrap_or(0);
        numeric.as_ref().map_or(k as f64, |values| values[k])
    };
    let key = |p: &Point| (p.eval, p.axes[1..].to_vec());
    let mut keys: Vec<(usize, Vec<String>)> = Vec::new();
    for p in &points {
        if !keys.contains(&key(p)) {
            keys.push(key(p));
        }
    }
    let curves = keys
        .into_iter()
        .map(|k| {
            let mut line: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| key(p) == k)
                .map(|p| (position(&p.axes[0]), p.value))
                .collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            curve(spec, &k, line)
        })
        .collect();
    Ok(Curves {
        curves,
        categories: numeric.is_none().then_some(xs),
    })
}

/// A curve's label (`year = 2013`, `ties, k = 2`) and colour key.
fn curve(spec: &Spec, (eval, values): &(usize, Vec<String>), points: Vec<(f64, f64)>) -> Curve {
    let mut parts: Vec<String> = Vec::new();
    if spec.evals.len() > 1 {
        parts.push(spec.evals[*eval].name.clone());
    }
    let named = spec.groups.iter().zip(values).map(|(c, v)| format!("{} = {v}", c.name));
    parts.extend(named);
    let key = match (spec.evals.len(), values.as_slice()) {
        (1, [one]) => one.clone(),
        _ => parts.join(", "),
    };
    Curve {
        label: match parts.is_empty() {
            true => spec.evals[0].name.clone(),
            false => parts.join(", "),
        },
        key,
        points,
    }
}
