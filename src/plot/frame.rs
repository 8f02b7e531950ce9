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

/// The points `(x, value)` of one curve per group, and the x axis's labels
/// when x is not numeric (then each x is the position of its label).
#[derive(Debug, PartialEq)]
pub struct Curves {
    pub groups: Vec<(String, Vec<(f64, f64)>)>,
    pub categories: Option<Vec<String>>,
}

/// The rows that hold the value and every axis, as (axes, value).
fn points(frame: &Frame, spec: &Spec) -> Result<Vec<(Vec<String>, f64)>, DataError> {
    let value = frame.index(&spec.value.name)?;
    let axes: Vec<usize> = std::iter::once(&spec.x)
        .chain(&spec.y)
        .map(|c| frame.index(&c.name))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for row in &frame.rows {
        let cell = &row[value];
        if cell.is_empty() || axes.iter().any(|&a| row[a].is_empty()) {
            continue;
        }
        let number = parse_number(cell).ok_or_else(|| {
            let message = format!(
                "the column `{}` holds \"{cell}\", which is not a number",
                spec.value.name
            );
            error(message, "a plot draws a column of numbers: an eval")
        })?;
        out.push((axes.iter().map(|&a| row[a].clone()).collect(), number));
    }
    if out.is_empty() {
        let axes: Vec<&str> = spec.columns()[1..].iter().map(|c| c.name.as_str()).collect();
        let message = format!(
            "no row of the report has `{}` with {}",
            spec.value.name,
            axes.join(" and ")
        );
        return Err(error(
            message,
            "a plot draws the rows where the value and every axis are set",
        ));
    }
    check_unique(frame, spec, &out)?;
    Ok(out)
}

/// Numbers as tv writes them, `NaN` and `inf` included.
fn parse_number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok()
}

/// One value per point of the axes; otherwise the report varies over
/// another column the figure does not show.
fn check_unique(frame: &Frame, spec: &Spec, points: &[(Vec<String>, f64)]) -> Result<(), DataError> {
    let mut seen = std::collections::HashSet::new();
    let Some((axes, _)) = points.iter().find(|(axes, _)| !seen.insert(axes.clone())) else {
        return Ok(());
    };
    let names = std::iter::once(&spec.x).chain(&spec.y).map(|c| c.name.as_str());
    let at: Vec<String> = names.zip(axes).map(|(n, v)| format!("{n} = {v}")).collect();
    let shown: Vec<&str> = spec.columns().iter().map(|c| c.name.as_str()).collect();
    let others: Vec<&str> = frame
        .columns
        .iter()
        .map(String::as_str)
        .filter(|c| !shown.contains(c))
        .collect();
    let message = format!(
        "the report has several values of `{}` at {}",
        spec.value.name,
        at.join(", ")
    );
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

pub fn grid(frame: &Frame, spec: &Spec) -> Result<Grid, DataError> {
    let points = points(frame, spec)?;
    let x = labels(points.iter().map(|(a, _)| &a[0]));
    let y = labels(points.iter().map(|(a, _)| &a[1]));
    let mut values = vec![vec![None; x.len()]; y.len()];
    for (axes, v) in &points {
        let i = x.iter().position(|l| *l == axes[0]).unwrap_or(0);
        let j = y.iter().position(|l| *l == axes[1]).unwrap_or(0);
        values[j][i] = Some(*v);
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
                *v = 100.0 * (*v - m) / m;
            }
        }
    }
}

pub fn curves(frame: &Frame, spec: &Spec) -> Result<Curves, DataError> {
    let points = points(frame, spec)?;
    let xs = labels(points.iter().map(|(a, _)| &a[0]));
    let numeric: Option<Vec<f64>> = xs.iter().map(|x| parse_number(x).filter(|v| v.is_finite())).collect();
    let position = |label: &String| match &numeric {
        Some(values) => values[xs.iter().position(|l| l == label).unwrap_or(0)],
        None => xs.iter().position(|l| l == label).unwrap_or(0) as f64,
    };
    let names = match spec.y {
        Some(_) => labels(points.iter().map(|(a, _)| &a[1])),
        None => vec![spec.value.name.clone()],
    };
    let groups = names
        .into_iter()
        .map(|name| {
            let mut curve: Vec<(f64, f64)> = points
                .iter()
                .filter(|(a, _)| spec.y.is_none() || a[1] == name)
                .map(|(a, v)| (position(&a[0]), *v))
                .collect();
            curve.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name, curve)
        })
        .collect();
    Ok(Curves {
        groups,
        categories: numeric.is_none().then_some(xs),
    })
}
