//! Every file in `experiments/` and every stdlib module runs here. The
//! experiments are copied into a temporary directory beside freshly written
//! synthetic checkpoints, so the test never writes into the source tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tv::diag::Sources;

/// The experiments, copied next to a new checkpoint family.
fn experiment_dir() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    tv::synth::write_experiment_checkpoints(&dir.path().join("checkpoints")).expect("synthetic checkpoints");
    let mut copied = Vec::new();
    for entry in std::fs::read_dir("experiments").expect("experiments/") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "tv") {
            let target = dir.path().join(path.file_name().expect("file name"));
            std::fs::copy(&path, &target).expect("copy experiment");
            copied.push(target);
        }
    }
    copied.sort();
    (dir, copied)
}

fn run(path: &Path) -> Vec<HashMap<String, String>> {
    let mut sources = Sources::default();
    let output = match tv::run(&mut sources, path, &tv::Overrides::default(), false) {
        Ok(output) => output,
        Err(diags) => panic!("{}", tv::diag::render_plain(&diags, &sources, 100)),
    };
    let mut reader = csv::Reader::from_reader(output.csv.as_bytes());
    let headers = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let record = r.expect("record");
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn number(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} = {:?}", row[column]))
}

#[test]
fn every_experiment_runs_and_reports_rows() {
    let (_dir, files) = experiment_dir();
    assert!(files.len() >= 2, "expected at least two experiments, found {files:?}");
    for file in &files {
        let rows = run(file);
        assert!(rows.len() > 1, "{} reported {} rows", file.display(), rows.len());
    }
}

#[test]
fn analogy_is_best_where_the_construction_puts_it() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.path().join("analogy.tv"));
    let points: Vec<_> = rows.iter().filter(|r| !r["a1"].is_empty()).collect();
    assert_eq!(points.len(), 5 * 7);
    let best = points
        .iter()
        .min_by(|a, b| number(a, "distance").total_cmp(&number(b, "distance")))
        .expect("a best point");
    // theta_j + (tau_k - tau_j) = base + drift_k + task + noise_j: only the
    // period-j noise separates it from the real period-k task model.
    assert_eq!((best["a1"].as_str(), best["a2"].as_str()), ("0", "1"));
    assert!(number(best, "distance") < number(&rows[0], "start_distance"));
    let saved = dir.path().join("out/analogy_2016");
    assert!(saved.join("model.safetensors").exists() && saved.join("config.json").exists());
}

#[test]
fn time_vector_similarity_falls_with_distance_between_years() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.path().join("time_vectors.tv"));
    let cos: HashMap<(String, String), f64> = rows
        .iter()
        .filter(|r| !r["cos"].is_empty())
        .map(|r| ((r["year"].clone(), r["other"].clone()), number(r, "cos")))
        .collect();
    assert_eq!(cos.len(), 25);
    for ((a, b), value) in &cos {
        assert!(
            (value - cos[&(b.clone(), a.clone())]).abs() < 1e-12,
            "not symmetric at {a},{b}"
        );
        if a == b {
            assert!((value - 1.0).abs() < 1e-9);
        }
    }
    // Random-walk drift: the first year's vector is ever less like later ones.
    let first_row: Vec<f64> = (2012..=2016).map(|y| cos[&("2012".into(), y.to_string())]).collect();
    assert!(first_row.windows(2).all(|w| w[0] > w[1]), "{first_row:?}");
}

#[test]
fn every_stdlib_module_checks_and_its_functions_run() {
    let dir = tempfile::tempdir().expect("temporary directory");
    tv::synth::write_experiment_checkpoints(&dir.path().join("checkpoints")).expect("synthetic checkpoints");
    for (name, source) in tv::stdlib::MODULES {
        let calls = function_calls(source);
        assert!(!calls.is_empty(), "std/{name} defines no function");
        let mut program = format!(
            "use \"std/{name}\"\nlet w = load(\"checkpoints/lm_2012.safetensors\")\nlet v = load(\"checkpoints/lm_2016.safetensors\")\n"
        );
        for (i, call) in calls.iter().enumerate() {
            program.push_str(&format!("eval f{i} = norm({call})\n"));
        }
        let path = dir.path().join(format!("std_{name}.tv"));
        std::fs::write(&path, program).expect("write program");
        let rows = run(&path);
        assert_eq!(rows.len(), 1);
        for (i, call) in calls.iter().enumerate() {
            assert!(number(&rows[0], &format!("f{i}")).is_finite(), "std/{name}: {call}");
        }
    }
}

/// A call of every `fn` in a module, with weights for every required
/// parameter (a list of weights for parameters named like lists).
fn function_calls(source: &str) -> Vec<String> {
    let mut calls = Vec::new();
    let text: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for def in text.split("fn ").skip(1) {
        let (name, rest) = def.split_once('(').expect("fn NAME(");
        let params = rest.split_once(')').expect("parameter list").0;
        let args: Vec<&str> = params
            .split(',')
            .map(str::trim)
            .filter(|p| !p.contains('=') && !p.is_empty())
            .enumerate()
            .map(|(i, p)| {
                if p.ends_with('s') && p.starts_with("tau") {
                    "[w, v]"
                } else if i % 2 == 0 {
                    "w"
                } else {
                    "v"
                }
            })
            .collect();
        calls.push(format!("{}({})", name.trim(), args.join(", ")));
    }
    calls
}
