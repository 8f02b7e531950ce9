//! `experiments/time_vectors_real.tv` at small settings: the whole paper
//! from real dated text, pretraining included, with the qualitative shape
//! of its findings asserted on the CSV tv writes. The arithmetic columns are
//! recomputed here from the perplexities.

mod common;

use std::collections::HashMap;
use std::path::Path;

/// The experiment's settings at test size (the file's own are for a full
/// run); each line must be in the file.
const SMALL: [(&str, &str); 5] = [
    ("let pretrain_steps = 400", "let pretrain_steps = 120"),
    ("let year_steps     = 80", "let year_steps     = 30"),
    ("let task_steps     = 60", "let task_steps     = 30"),
    ("let batch          = 16", "let batch          = 8"),
    ("let context        = 128", "let context        = 64"),
];

type Row = HashMap<String, String>;

fn small_program(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("experiments/time_vectors_real.tv")).expect("experiment");
    let mut program = text.replace("\"time/", &format!("\"{}/", root.join("experiments/time").display()));
    for (full, small) in SMALL {
        assert!(program.contains(full), "the experiment no longer sets `{full}`");
        program = program.replace(full, small);
    }
    program
}

fn run(program: &str) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("time_vectors_real.tv");
    std::fs::write(&path, program).expect("write");
    let mut sources = tv::diag::Sources::default();
    let output = match tv::run(&mut sources, &path, &tv::Overrides::default(), false) {
        Ok(output) => output,
        Err(diags) => panic!("{}", tv::diag::render_plain(&diags, &sources, 100)),
    };
    common::csv_rows(&output.csv())
}

fn number(row: &Row, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} = {:?}", row[column]))
}

/// Rows that have a value in `column`.
fn with<'a>(rows: &'a [Row], column: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.get(column).is_some_and(|v| !v.is_empty()))
        .collect()
}

#[test]
fn the_paper_reproduces_in_shape_on_dated_changelogs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = run(&small_program(root));
    check_heatmap(&with(&rows, "ppl"));
    check_cosines(&with(&rows, "cos"));
    check_interpolation(&with(&rows, "interp"));
    let analogy = with(&rows, "analogy");
    assert_eq!(analogy.len(), 25);
    for row in &analogy {
        assert!(number(row, "analogy").is_finite() && number(row, "analogy") > 1.0);
    }
}

/// Each test year's best model is mostly its own year's; `change` is the
/// percent against the mean of the test year's column.
fn check_heatmap(cells: &[&Row]) {
    assert_eq!(cells.len(), 100);
    let mut own_best = 0;
    for test_year in 2013..=2022 {
        let column: Vec<&&Row> = cells
            .iter()
            .filter(|r| number(r, "test_year") == test_year as f64)
            .collect();
        assert_eq!(column.len(), 10);
        let mean = column.iter().map(|r| number(r, "ppl")).sum::<f64>() / 10.0;
        for row in &column {
            let want = 100.0 * (number(row, "ppl") - mean) / mean;
            assert!((number(row, "change") - want).abs() < 1e-9 * want.abs().max(1.0));
        }
        let best = column
            .iter()
            .min_by(|a, b| number(a, "ppl").total_cmp(&number(b, "ppl")))
            .expect("best");
        own_best += usize::from(number(best, "train_year") == test_year as f64);
    }
    assert!(
        own_best >= 6,
        "the own year's model is best for only {own_best} of 10 test years"
    );
}

/// Cosine similarity of time vectors falls with the distance of their years.
fn check_cosines(cells: &[&Row]) {
    assert_eq!(cells.len(), 100);
    let mut by_distance: Vec<Vec<f64>> = vec![Vec::new(); 10];
    for row in cells {
        let d = (number(row, "year_a") - number(row, "year_b")).abs() as usize;
        by_distance[d].push(number(row, "cos"));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        by_distance[0].iter().all(|c| (c - 1.0).abs() < 1e-9),
        "{:?}",
        by_distance[0]
    );
    let means: Vec<f64> = by_distance[1..].iter().map(|v| mean(v)).collect();
    assert!(
        mean(&means[..2]) > mean(&means[6..]),
        "near years are not more alike: {means:?}"
    );
    // Over all pairs of different years, cosine and distance correlate negatively.
    let pairs: Vec<(f64, f64)> = (1..10)
        .flat_map(|d| by_distance[d].iter().map(move |c| (d as f64, *c)))
        .collect();
    let (md, mc) = (
        mean(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()),
        mean(&pairs.iter().map(|p| p.1).collect::<Vec<_>>()),
    );
    let covariance: f64 = pairs.iter().map(|(d, c)| (d - md) * (c - mc)).sum();
    assert!(covariance < 0.0, "cosine by distance {means:?}");
}

/// Between the end years, some blend beats both ends on most years.
fn check_interpolation(cells: &[&Row]) {
    assert_eq!(cells.len(), 110);
    let mut helped = 0;
    for year in 2014..=2021 {
        let points: Vec<(f64, f64)> = cells
            .iter()
            .filter(|r| number(r, "year") == year as f64)
            .map(|r| (number(r, "alpha"), number(r, "interp")))
            .collect();
        assert_eq!(points.len(), 11);
        let ends = points[0].1.min(points[10].1);
        helped += usize::from(points[1..10].iter().any(|p| p.1 < ends));
    }
    assert!(
        helped >= 5,
        "a blend beats both end years on only {helped} of 8 middle years"
    );
}
