//! Training as a node of the graph: `tv check`, `tv plan` and `tv run` see
//! one graph; jobs run at the level their input can be computed (so their
//! inputs may use measurements); the plan tells cached jobs from jobs to
//! train; language models fine-tune through the same cache.

mod common;

use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A folder with an MLP config and 100 rows of the digits task.
fn mlp_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/digits.csv");
    tv::digits::write_tasks(&digits, dir.path()).expect("write_tasks");
    let config = r#"{"architecture": "mlp", "layers": [64, 16, 10], "activation": "relu"}"#;
    write(dir.path(), "config.json", config);
    let text = std::fs::read_to_string(dir.path().join("original_train.csv")).unwrap();
    let kept: Vec<&str> = text.lines().take(101).collect();
    write(dir.path(), "train.csv", &(kept.join("\n") + "\n"));
    dir
}

const MLP_PROGRAM: &str = r#"let base = init("config.json", seed = 3)
let w = finetune(base, "train.csv", steps = 10, lr = 1e-2, batch = 8)
let tau = w - base
eval acc = accuracy(w, "train.csv")
eval size = norm(tau)
save base + 0.5 * tau to "half.safetensors"
"#;

fn check(path: &Path, overrides: &tv::Overrides) -> tv::lower::Plan {
    match tv::check_with_cache(&mut tv::diag::Sources::default(), path, overrides) {
        Ok(plan) => plan,
        Err(diags) => panic!("{:?}", diags.iter().map(|d| &d.message).collect::<Vec<_>>()),
    }
}

fn statuses(plan: &tv::lower::Plan) -> Vec<tv::exec::plan_training::CacheStatus> {
    let summary = tv::exec::summarize(plan, 1);
    summary.trainings.iter().map(|t| t.status).collect()
}

#[test]
fn check_plan_and_run_see_one_graph() {
    let dir = mlp_dir();
    let path = write(dir.path(), "exp.tv", MLP_PROGRAM);
    let overrides = tv::Overrides::default();
    let plan = check(&path, &overrides);
    let before = tv::graph::dump(&plan.graph);
    assert!(before.contains("init(") && before.contains("finetune(%"), "{before}");
    let summary_before = tv::exec::summarize(&plan, 1);
    let mut output = tv::execute_staged(&plan, false).expect("run");
    output.commit(|_| Ok(())).expect("commit");
    // The executed plan's graph is the checked one, training and all.
    assert_eq!(tv::graph::dump(&plan.graph), before);
    let mut summary_after = tv::exec::summarize(&plan, 1);
    assert_eq!(summary_after.trainings.len(), 2);
    for (after, before) in summary_after.trainings.iter_mut().zip(&summary_before.trainings) {
        assert_eq!(after.description, before.description);
        after.status = before.status;
    }
    assert_eq!(summary_after, summary_before);
    assert!(dir.path().join("half.safetensors").is_file());
}

#[test]
fn the_plan_tells_jobs_to_train_from_cached_ones() {
    use tv::exec::plan_training::CacheStatus::{Hit, Miss};
    let dir = mlp_dir();
    let path = write(dir.path(), "exp.tv", MLP_PROGRAM);
    let overrides = tv::Overrides::default();
    assert_eq!(statuses(&check(&path, &overrides)), [Miss, Miss]);
    let first = tv::run(&mut Default::default(), &path, &overrides, false).expect("run");
    assert_eq!((first.trained, first.cache_hits), (2, 0));
    assert_eq!(statuses(&check(&path, &overrides)), [Hit, Hit]);
    // Another step count: init is cached, the fine-tuning is not.
    let changed = write(dir.path(), "exp.tv", &MLP_PROGRAM.replace("steps = 10", "steps = 11"));
    assert_eq!(statuses(&check(&changed, &overrides)), [Hit, Miss]);
    // The command line says it too.
    let out = common::tv_command(dir.path(), &["plan", "exp.tv"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("training jobs      2"), "{text}");
    assert!(text.contains("cached") && text.contains("to train"), "{text}");
}

#[test]
fn a_job_nothing_needs_is_not_run() {
    let dir = mlp_dir();
    let program = "let w = finetune(init(\"config.json\"), \"train.csv\", steps = 5)\neval n = numel(w)\n";
    let path = write(dir.path(), "exp.tv", program);
    let out = tv::run(&mut Default::default(), &path, &tv::Overrides::default(), false).expect("run");
    assert_eq!((out.trained, out.cache_hits), (0, 0), "numel reads no tensor");
    let entries = std::fs::read_dir(dir.path().join(".tv-cache")).map_or(0, |d| d.count());
    assert_eq!(entries, 0);
}

/// A coefficient that is a measurement is known by the time the job runs:
/// the input is the same tensors as without it, so the result is too.
#[test]
fn the_input_of_a_job_may_use_measurements() {
    let dir = mlp_dir();
    let plain = "let base = init(\"config.json\")\nlet w = finetune(base, \"train.csv\", steps = 5)\neval l = loss(w, \"train.csv\")\n";
    let measured = plain.replace("finetune(base,", "finetune(base * (norm(base) / norm(base)),");
    let no_cache = tv::Overrides {
        no_cache: true,
        ..Default::default()
    };
    let a = tv::run(
        &mut Default::default(),
        &write(dir.path(), "a.tv", plain),
        &no_cache,
        false,
    )
    .expect("plain");
    let b = tv::run(
        &mut Default::default(),
        &write(dir.path(), "b.tv", &measured),
        &no_cache,
        false,
    )
    .expect("measured");
    assert_eq!(a.csv(), b.csv());
    assert_eq!(b.trained, 2);
}
