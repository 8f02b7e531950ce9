//! Classification datasets: CSV files with a header line, the integer class
//! label in the first column and the features (numbers) in the rest.

use std::path::Path;

/// A dataset in memory, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub labels: Vec<u32>,
    pub features: Vec<f32>,
    pub width: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Reads and checks a dataset file; the error names the line.
    pub fn read(path: &Path) -> Result<Dataset, String> {
        let text = crate::io::bounded::read_text(path, crate::io::bounded::DATA_LIMIT)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| format!("{} is empty", path.display()))?;
        let width = header.split(',').count().saturating_sub(1);
        if width == 0 {
            return Err(format!("{}: the header names no feature columns", path.display()));
        }
        let mut data = Dataset {
            labels: Vec::new(),
            features: Vec::new(),
            width,
        };
        for (number, line) in lines {
            data.push_row(line, width)
                .map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
        }
        if data.is_empty() {
            return Err(format!("{} has a header but no rows", path.display()));
        }
        Ok(data)
    }

    fn push_row(&mut self, line: &str, width: usize) -> Result<(), String> {
        let mut cells = line.split(',');
        let label = cells.next().unwrap_or("").trim();
        let label: u32 = label
            .parse()
            .map_err(|_| format!("the label {label:?} is not a class number"))?;
        let before = self.features.len();
        for cell in cells {
            let value: f32 = cell
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not a number", cell.trim()))?;
            self.features.push(value);
        }
        let found = self.features.len() - before;
        if found != width {
            return Err(format!("{found} features where the header has {width}"));
        }
        self.labels.push(label);
        Ok(())
    }

    /// The largest label plus one.
    pub fn classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |m| *m as usize + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.csv");
        std::fs::write(&good, "label,x0,x1\n1,0.5,1\n0,0,0.25\n").unwrap();
        let data = Dataset::read(&good).unwrap();
        assert_eq!(data.labels, vec![1, 0]);
        assert_eq!(data.features, vec![0.5, 1.0, 0.0, 0.25]);
        assert_eq!((data.width, data.classes()), (2, 2));
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "label,x0,x1\n1,0.5,1\n0,0\n").unwrap();
        let error = Dataset::read(&bad).unwrap_err();
        assert!(error.contains("bad.csv:3") && error.contains("1 features"), "{error}");
    }
}
