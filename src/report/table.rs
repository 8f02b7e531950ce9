//! The layout of the report, filled in while the program is lowered and
//! rendered once the measurements are made.

use super::format_number;
use crate::diag::Span;
use crate::graph::ScalarId;
use std::collections::HashMap;

/// One `(sweep, variable, value)` of a sweep point: the key of the report
/// row that evals made there land in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RowKeyPart {
    pub sweep: Span,
    pub var: String,
    /// The position in the variable's domain: what identifies the point.
    pub index: usize,
    /// How the value prints.
    pub value: String,
}

#[derive(Default, Debug)]
struct Row {
    vars: Vec<(String, String)>,
    cells: HashMap<String, Option<ScalarId>>,
}

/// Columns are the sweep variables (outermost first), then the evals in
/// source order. The row of evals outside any sweep comes first, then one
/// row per sweep point that measured something, in execution order.
#[derive(Default, Debug)]
pub struct Table {
    vars: Vec<String>,
    evals: Vec<String>,
    top: Option<Row>,
    rows: Vec<Row>,
    index: HashMap<Vec<RowKeyPart>, usize>,
    points: usize,
}

impl Table {
    pub fn add_var(&mut self, name: &str) {
        if !self.vars.iter().any(|v| v == name) {
            self.vars.push(name.to_string());
        }
    }

    pub fn has_eval(&self, name: &str) -> bool {
        self.evals.iter().any(|e| e == name)
    }

    pub fn has_var(&self, name: &str) -> bool {
        self.vars.iter().any(|v| v == name)
    }

    /// Records an eval at the sweep point `key`; false if that row already
    /// has a value for `eval`.
    pub fn record(&mut self, key: &[RowKeyPart], eval: &str, value: Option<ScalarId>) -> bool {
        if !self.evals.iter().any(|e| e == eval) {
            self.evals.push(eval.to_string());
        }
        let row = if key.is_empty() {
            self.top.get_or_insert_with(Row::default)
        } else {
            let next = self.rows.len();
            let index = *self.index.entry(key.to_vec()).or_insert(next);
            if index == next {
                let vars = key.iter().map(|k| (k.var.clone(), k.value.clone())).collect();
                self.rows.push(Row {
                    vars,
                    cells: HashMap::new(),
                });
            }
            &mut self.rows[index]
        };
        row.cells.insert(eval.to_string(), value).is_none()
    }

    /// Every number the report shows.
    pub fn scalars(&self) -> Vec<ScalarId> {
        let rows = self.top.iter().chain(&self.rows);
        rows.flat_map(|r| r.cells.values().flatten().copied()).collect()
    }

    /// Each eval column with the numbers it shows.
    pub fn eval_columns(&self) -> Vec<(String, Vec<ScalarId>)> {
        let rows: Vec<&Row> = self.top.iter().chain(&self.rows).collect();
        let column = |e: &String| rows.iter().filter_map(|r| r.cells.get(e).copied().flatten()).collect();
        self.evals.iter().map(|e| (e.clone(), column(e))).collect()
    }

    /// Counts a sweep point whose body holds no further sweep.
    pub fn count_point(&mut self) {
        self.points += 1;
    }

    /// Innermost sweep points run, whether or not they measured anything.
    pub fn sweep_points(&self) -> usize {
        self.points
    }

    /// The CSV's first line (without its newline); `None` when the program
    /// measures nothing.
    pub fn header_line(&self) -> Option<String> {
        if self.evals.is_empty() {
            return None;
        }
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        writer.write_record(self.vars.iter().chain(&self.evals)).ok()?;
        let bytes = writer.into_inner().ok()?;
        Some(String::from_utf8_lossy(&bytes).trim_end_matches('\n').to_string())
    }

    /// The CSV text; `value` gives each measured number.
    pub fn to_csv(&self, value: &dyn Fn(ScalarId) -> Option<f64>) -> Result<String, csv::Error> {
        if self.evals.is_empty() {
            // A program that measures nothing has no table at all.
            return Ok(String::new());
        }
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let header = self.vars.iter().chain(&self.evals);
        writer.write_record(header)?;
        for row in self.top.iter().chain(&self.rows) {
            let vars = self.vars.iter().map(|v| {
                let found = row.vars.iter().find(|(name, _)| name == v);
                found.map(|(_, shown)| shown.clone()).unwrap_or_default()
            });
            let evals = self.evals.iter().map(|e| {
                let cell = row.cells.get(e).copied().flatten();
                cell.and_then(value).map(format_number).unwrap_or_default()
            });
            writer.write_record(vars.chain(evals).collect::<Vec<_>>())?;
        }
        let bytes = writer.into_inner().map_err(|e| e.into_error())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
