//! The layout of the report, filled in while the program is lowered and
//! rendered once the measurements are made.

use super::block::{Item, Level, SweepBlock};
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

/// Rows in execution order: one elaborated row, or all the rows of a sweep
/// lowered once.
#[derive(Copy, Clone, Debug)]
enum Entry {
    Row(usize),
    Block(usize),
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
    blocks: Vec<SweepBlock>,
    entries: Vec<Entry>,
    index: HashMap<Vec<RowKeyPart>, usize>,
    points: usize,
}

/// Writes the rows of a sweep block: given the block and the table's
/// columns, calls `row` with each row's cells.
pub type BlockRows<'a> = dyn FnMut(&SweepBlock, &Columns, &mut dyn FnMut(&[String]) -> Result<(), csv::Error>) -> Result<(), csv::Error>
    + 'a;

/// The report's columns, for writing a block's rows.
pub struct Columns {
    pub vars: Vec<String>,
    pub evals: Vec<String>,
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

    pub fn eval_names(&self) -> Vec<String> {
        self.evals.clone()
    }

    pub fn var_names(&self) -> Vec<String> {
        self.vars.clone()
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
                self.entries.push(Entry::Row(index));
            }
            &mut self.rows[index]
        };
        row.cells.insert(eval.to_string(), value).is_none()
    }

    /// Adds a sweep lowered once, its rows after those so far.
    pub fn add_block(&mut self, block: SweepBlock) {
        let mut names = Vec::new();
        block.level.eval_names(&mut names);
        for name in names {
            if !self.evals.contains(&name) {
                self.evals.push(name);
            }
        }
        self.points += block.level.innermost_points() as usize;
        self.entries.push(Entry::Block(self.blocks.len()));
        self.blocks.push(block);
    }

    pub fn blocks(&self) -> &[SweepBlock] {
        &self.blocks
    }

    /// Every number the report shows (a block's as formulas).
    pub fn scalars(&self) -> Vec<ScalarId> {
        let rows = self.top.iter().chain(&self.rows);
        let mut out: Vec<ScalarId> = rows.flat_map(|r| r.cells.values().flatten().copied()).collect();
        self.blocks.iter().for_each(|b| b.level.scalars(&mut out));
        out
    }

    /// The numbers of each row outside sweeps lowered once (the row of
    /// top-level evals first, if any).
    pub fn row_scalars(&self) -> Vec<Vec<ScalarId>> {
        let rows = self.top.iter().chain(&self.rows);
        rows.map(|r| r.cells.values().flatten().copied().collect()).collect()
    }

    /// Each eval column with the numbers it shows (a block's as formulas).
    pub fn eval_columns(&self) -> Vec<(String, Vec<ScalarId>)> {
        let rows: Vec<&Row> = self.top.iter().chain(&self.rows).collect();
        let column = |e: &String| {
            let mut cells: Vec<ScalarId> = rows.iter().filter_map(|r| r.cells.get(e).copied().flatten()).collect();
            for block in &self.blocks {
                block_column(&block.level, e, &mut cells);
            }
            cells
        };
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

    /// The CSV text; `value` gives each measured number, `block_rows`
    /// writes the rows of sweeps lowered once.
    pub fn to_csv(
        &self,
        value: &dyn Fn(ScalarId) -> Option<f64>,
        block_rows: &mut BlockRows,
    ) -> Result<String, csv::Error> {
        let mut bytes = Vec::new();
        self.write_csv(&mut bytes, value, block_rows)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Writes the CSV to `out` row by row: a sweep's rows are never all in
    /// memory.
    pub fn write_csv(
        &self,
        out: &mut dyn std::io::Write,
        value: &dyn Fn(ScalarId) -> Option<f64>,
        block_rows: &mut BlockRows,
    ) -> Result<(), csv::Error> {
        if self.evals.is_empty() {
            // A program that measures nothing has no table at all.
            return Ok(());
        }
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_writer(out);
        writer.write_record(self.vars.iter().chain(&self.evals))?;
        let columns = Columns {
            vars: self.vars.clone(),
            evals: self.evals.clone(),
        };
        if let Some(top) = &self.top {
            writer.write_record(self.cells(top, value))?;
        }
        for entry in &self.entries {
            match *entry {
                Entry::Row(i) => writer.write_record(self.cells(&self.rows[i], value))?,
                Entry::Block(i) => block_rows(&self.blocks[i], &columns, &mut |cells| writer.write_record(cells))?,
            }
        }
        writer.flush()?;
        Ok(())
    }

    fn cells(&self, row: &Row, value: &dyn Fn(ScalarId) -> Option<f64>) -> Vec<String> {
        let vars = self.vars.iter().map(|v| {
            let found = row.vars.iter().find(|(name, _)| name == v);
            found.map(|(_, shown)| shown.clone()).unwrap_or_default()
        });
        let evals = self.evals.iter().map(|e| {
            let cell = row.cells.get(e).copied().flatten();
            cell.and_then(value).map(format_number).unwrap_or_default()
        });
        vars.chain(evals).collect()
    }
}

/// The formulas of eval `name` in a block's levels.
fn block_column(level: &Level, name: &str, out: &mut Vec<ScalarId>) {
    for item in &level.items {
        match item {
            Item::Eval(n, Some(scalar)) if n == name => out.push(*scalar),
            Item::Eval(..) => {}
            Item::Sweep(inner) => block_column(inner, name, out),
        }
    }
}
