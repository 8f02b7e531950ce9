//! The human summary printed by `tv inspect`.

use std::collections::BTreeMap;

use super::{Checkpoint, Dtype};

/// One line per tensor (name, dtype, shape), then per dtype the tensor count,
/// parameter count and bytes, then totals; columns aligned.
pub fn describe(checkpoint: &Checkpoint) -> String {
    let tensors = checkpoint.tensors();
    let file_count = checkpoint.files().count();
    let mut text = format!(
        "{}: {} tensor(s) in {} file(s)\n\n",
        checkpoint.path().display(),
        tensors.len(),
        file_count
    );
    let mut rows = vec![vec!["name".to_string(), "dtype".to_string(), "shape".to_string()]];
    rows.extend(
        tensors
            .iter()
            .map(|t| vec![t.name.clone(), t.dtype.to_string(), format!("{:?}", t.shape)]),
    );
    text.push_str(&table(&rows, &[false, false, false]));
    text.push('\n');
    text.push_str(&table(&dtype_rows(checkpoint), &[false, true, true, true]));
    text
}

/// Tensors, parameters and bytes of one dtype (or of all).
#[derive(Default, Clone, Copy)]
struct Totals {
    tensors: u64,
    params: u64,
    bytes: u64,
}

impl Totals {
    fn add(&mut self, params: u64, bytes: u64) {
        self.tensors += 1;
        self.params = self.params.saturating_add(params);
        self.bytes = self.bytes.saturating_add(bytes);
    }

    fn row(&self, label: String) -> Vec<String> {
        let bytes = match self.bytes < 1024 {
            true => human_bytes(self.bytes),
            false => format!("{} ({} bytes)", human_bytes(self.bytes), self.bytes),
        };
        vec![label, self.tensors.to_string(), self.params.to_string(), bytes]
    }
}

fn dtype_rows(checkpoint: &Checkpoint) -> Vec<Vec<String>> {
    let mut by_dtype: BTreeMap<Dtype, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    for tensor in checkpoint.tensors() {
        let (params, bytes) = (tensor.numel() as u64, tensor.byte_len() as u64);
        by_dtype.entry(tensor.dtype).or_default().add(params, bytes);
        total.add(params, bytes);
    }
    let header = ["dtype", "tensors", "parameters", "bytes"];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(by_dtype.iter().map(|(dtype, totals)| totals.row(dtype.to_string())));
    rows.push(total.row("total".to_string()));
    rows
}

/// Pad each column to its widest cell; `right[c]` right-aligns column `c`
/// (for numbers). The last column is not padded on the right.
fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &width))| match right.get(c).copied().unwrap_or(false) {
                true => format!("{cell:>width$}"),
                false if c + 1 == row.len() => cell.clone(),
                false => format!("{cell:<width$}"),
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// Bytes in binary units with two decimals, e.g. "1.50 MiB"; "512 B" below 1 KiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}
