//! Every file in `experiments/` and every stdlib module runs here. The
//! experiments are copied into a temporary directory beside freshly written
//! synthetic checkpoints, so the test never writes into the source tree.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tv::diag::Sources;

/// The experiments with what they read, copied into one temporary folder:
/// the `.tv` files, `lib/`, `configs/`, the small language models of `lm/`,
/// the vendored digits with their task files, and a new synthetic
/// checkpoint family. The digits models are
/// trained once (by the cosine experiment, which needs every task) before
/// any test runs, so the tests share one cache and never train at once.
fn experiment_dir() -> (&'static Path, Vec<PathBuf>) {
    static DIR: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    let (dir, files) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        tv::synth::write_experiment_checkpoints(&root.join("checkpoints")).expect("synthetic checkpoints");
        std::fs::create_dir_all(root.join("lib")).expect("lib/");
        std::fs::copy("experiments/lib/digits.tv", root.join("lib/digits.tv")).expect("copy lib");
        std::fs::create_dir_all(root.join("configs")).expect("configs/");
        for entry in std::fs::read_dir("experiments/configs").expect("experiments/configs/") {
            let path = entry.expect("directory entry").path();
            std::fs::copy(&path, root.join("configs").join(path.file_name().expect("name"))).expect("copy config");
        }
        copy_tree(Path::new("experiments/lm"), &root.join("lm"));
        let digits = Path::new("experiments/data/digits.csv");
        tv::digits::write_tasks(digits, &root.join("data/tasks")).expect("digit tasks");
        let mut files = Vec::new();
        for entry in std::fs::read_dir("experiments").expect("experiments/") {
            let path = entry.expect("directory entry").path();
            // The time-vector paper trains for half an hour at its own
            // settings: tests/time_vectors.rs runs it at small ones.
            let own_test = path.file_name().is_some_and(|n| n == "time_vectors_real.tv");
            if path.extension().is_some_and(|e| e == "tv") && !own_test {
                let target = root.join(path.file_name().expect("file name"));
                std::fs::copy(&path, &target).expect("copy experiment");
                files.push(target);
            }
        }
        files.sort();
        run(&root.join("digits_cosine.tv"));
        (dir, files)
    });
    (dir.path(), files.clone())
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let path = entry.expect("directory entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy file");
        }
    }
}

fn run(path: &Path) -> Vec<HashMap<String, String>> {
    run_with_figures(path).0
}

/// The report's rows and the figures the run wrote.
fn run_with_figures(path: &Path) -> (Vec<HashMap<String, String>>, Vec<PathBuf>) {
    let mut sources = Sources::default();
    let output = match tv::run(&mut sources, path, &tv::Overrides::default(), false) {
        Ok(output) => output,
        Err(diags) => panic!("{}", tv::diag::render_plain(&diags, &sources, 100)),
    };
    let figures = output.figures.iter().map(|f| f.path.clone()).collect();
    (common::csv_rows(&output.csv()), figures)
}

fn number(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} = {:?}", row[column]))
}

#[test]
fn every_experiment_runs_and_reports_rows() {
    let (_dir, files) = experiment_dir();
    assert!(files.len() >= 6, "expected every experiment, found {files:?}");
    for file in &files {
        let (rows, figures) = run_with_figures(file);
        assert!(rows.len() > 1, "{} reported {} rows", file.display(), rows.len());
        // Every experiment shows its results as figures, written by the run.
        assert!(!figures.is_empty(), "{} declares no figure", file.display());
        for figure in figures {
            let bytes = std::fs::read(&figure).unwrap_or_else(|e| panic!("{}: {e}", figure.display()));
            assert!(
                bytes.starts_with(b"\x89PNG") || bytes.starts_with(b"<svg"),
                "{} is a figure",
                figure.display()
            );
        }
    }
}

#[test]
fn analogy_is_best_where_the_construction_puts_it() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.join("analogy.tv"));
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
    let saved = dir.join("out/analogy_2016");
    assert!(saved.join("model.safetensors").exists() && saved.join("config.json").exists());
}

#[test]
fn time_vector_similarity_falls_with_distance_between_years() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.join("time_vectors.tv"));
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
/// parameter (a list of weights for parameters named like lists, a number
/// for `t`).
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
                if (p.ends_with('s') && p.starts_with("tau")) || p == "models" {
                    "[w, v]"
                } else if p == "t" {
                    "0.3"
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

/// Rows of a digits experiment grouped by the value of `key`.
fn grouped<'a>(rows: &'a [HashMap<String, String>], key: &str) -> Vec<(String, Vec<&'a HashMap<String, String>>)> {
    let mut groups: Vec<(String, Vec<&HashMap<String, String>>)> = Vec::new();
    for row in rows.iter().filter(|r| !r[key].is_empty()) {
        match groups.iter_mut().find(|(k, _)| *k == row[key]) {
            Some((_, group)) => group.push(row),
            None => groups.push((row[key].clone(), vec![row])),
        }
    }
    groups
}

/// Negation forgets the target task more than the control task, wherever
/// the pretrained model knew the target task to begin with.
#[test]
fn negation_lowers_target_accuracy_more_than_control() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.join("digits_negation.tv"));
    let mut checked = 0;
    for (task, group) in grouped(&rows, "task") {
        let at = |lambda: f64| {
            group
                .iter()
                .find(|r| number(r, "lambda") == lambda)
                .expect("lambda row")
        };
        let (pre, full) = (at(0.0), at(1.0));
        if number(pre, "target_test") < 0.3 {
            continue; // chance level: nothing to forget
        }
        let target_drop = number(pre, "target_test") - number(full, "target_test");
        let control_drop = number(pre, "control_test") - number(full, "control_test");
        assert!(
            target_drop > control_drop,
            "{task}: target -{target_drop}, control -{control_drop}"
        );
        checked += 1;
    }
    assert!(checked >= 2, "too few tasks the pretrained model knew");
}

/// Adding two task vectors beats the pretrained model on both tasks.
#[test]
fn addition_beats_the_pretrained_model_on_each_added_task() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.join("digits_addition.tv"));
    let two: Vec<_> = rows.iter().filter(|r| r["k"] == "2").cloned().collect();
    // The protocol's lambda: best mean validation accuracy over the tasks.
    let lambdas = grouped(&two, "lambda");
    let mean_val = |group: &[&HashMap<String, String>]| group.iter().map(|r| number(r, "val")).sum::<f64>();
    let (_, best) = lambdas
        .iter()
        .max_by(|a, b| mean_val(&a.1).total_cmp(&mean_val(&b.1)))
        .expect("lambdas");
    let (_, pretrained) = lambdas.iter().find(|(l, _)| l == "0").expect("lambda 0");
    for row in best {
        let before = pretrained.iter().find(|r| r["task"] == row["task"]).expect("same task");
        assert!(
            number(row, "test") > number(before, "test"),
            "{}: {:?} vs {:?}",
            row["task"],
            row,
            before
        );
    }
}

/// Analogies give task D more than the pretrained model knows of it, and
/// every pair of task vectors has a cosine in [-1, 1], 1 with itself.
#[test]
fn analogies_help_and_task_vectors_are_nearly_orthogonal() {
    let (dir, _) = experiment_dir();
    for (d, group) in grouped(&run(&dir.join("digits_analogy.tv")), "d") {
        let pre = group.iter().find(|r| number(r, "lambda") == 0.0).expect("lambda 0");
        let best = group
            .iter()
            .max_by(|a, b| number(a, "analogy_val").total_cmp(&number(b, "analogy_val")));
        let best = best.expect("rows");
        assert!(number(best, "analogy_test") > number(pre, "analogy_test"), "{d}");
    }
    let cosines = run(&dir.join("digits_cosine.tv"));
    assert_eq!(cosines.len(), 64);
    for row in &cosines {
        let c = number(row, "cosine");
        let expected_one = row["a"] == row["b"];
        assert!(
            if expected_one {
                (c - 1.0).abs() < 1e-9
            } else {
                c.abs() < 0.9
            },
            "{row:?}"
        );
    }
}

/// Merged models know the tasks better than the pretrained one (TIES and
/// task arithmetic, on every task) and no merge beats a task's own
/// fine-tuned model.
#[test]
fn merges_land_between_pretrained_and_finetuned() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.join("merge_methods.tv"));
    let methods = [
        "linear",
        "task_arithmetic",
        "ties",
        "ties_by_layer",
        "dare_linear",
        "dare_ties",
        "breadcrumbs",
        "breadcrumbs_ties",
        "della",
        "della_linear",
        "slerp",
        "model_stock",
    ];
    for row in rows.iter().filter(|r| !r["task"].is_empty()) {
        for method in ["ties", "task_arithmetic"] {
            assert!(
                number(row, method) > number(row, "pretrained"),
                "{method} on {}: {row:?}",
                row["task"]
            );
        }
        for method in methods {
            assert!(
                number(row, method) <= number(row, "finetuned"),
                "{method} on {}: {row:?}",
                row["task"]
            );
        }
    }
}

/// Trimming keeps less of the task vectors the lower the density: the
/// merged vector's cosine with their sum grows with density, whatever
/// lambda (which only scales it).
#[test]
fn ties_keeps_more_of_the_task_vectors_as_density_grows() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.join("merge_ties_sweep.tv"));
    for (lambda, group) in grouped(&rows, "lambda") {
        let mut by_density: Vec<(f64, f64)> = group
            .iter()
            .map(|r| (number(r, "density"), number(r, "cos_sum")))
            .collect();
        by_density.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(by_density.len(), 6, "lambda {lambda}");
        for pair in by_density.windows(2) {
            assert!(pair[1].1 > pair[0].1, "lambda {lambda}: {by_density:?}");
        }
    }
}

/// The language-model time vectors: every perplexity equals transformers'
/// (from the generator's `lm/reference.json`), and each year's best mix
/// moves from the 2018 vector to the 2022 one as the year does.
#[test]
fn time_vector_interpolation_favours_the_nearer_year() {
    let (dir, _) = experiment_dir();
    let rows = run(&dir.join("lm_time_interpolation.tv"));
    let text = std::fs::read_to_string("experiments/lm/reference.json").expect("reference");
    let reference: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let alphas: Vec<f64> = reference["alphas"]
        .as_array()
        .expect("alphas")
        .iter()
        .filter_map(|a| a.as_f64())
        .collect();
    let mut best_alpha = Vec::new();
    for (year, group) in grouped(&rows, "year").into_iter().filter(|(y, _)| !y.is_empty()) {
        let points: Vec<_> = group.iter().filter(|r| !r["alpha"].is_empty()).collect();
        assert_eq!(points.len(), alphas.len(), "{year}");
        for (row, alpha) in points.iter().zip(&alphas) {
            assert_eq!(number(row, "alpha"), *alpha);
            let want = reference["perplexity"][&year][alphas.iter().position(|a| a == alpha).expect("alpha")]
                .as_f64()
                .expect("a perplexity");
            let got = number(row, "ppl");
            assert!(
                (got - want).abs() < 1e-4 * want,
                "{year} alpha {alpha}: {got} vs {want}"
            );
        }
        let best = points
            .iter()
            .min_by(|a, b| number(a, "ppl").total_cmp(&number(b, "ppl")))
            .expect("a best");
        best_alpha.push(number(best, "alpha"));
    }
    assert_eq!(best_alpha.len(), 5);
    assert!(best_alpha.windows(2).all(|w| w[0] >= w[1]), "{best_alpha:?}");
    assert_eq!((best_alpha[0], best_alpha[4]), (1.0, 0.0));
    assert!(
        best_alpha[2] > 0.0 && best_alpha[2] < 1.0,
        "2020 should want a blend: {best_alpha:?}"
    );
}
