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

/// A folder with the tiny Llama fixture's path and text, for LM programs.
fn lm_program(dir: &Path, body: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm");
    let program = format!(
        "let lm = load(\"{}\")\nlet text = \"{}\"\n{body}",
        root.join("llama-untied").display(),
        root.join("text.txt").display()
    );
    write(dir, "lm.tv", &program)
}

const LM_BODY: &str = r#"let tuned = finetune(lm, text, steps = 3, lr = 1e-3, batch = 2, context = 16)
let adapted = finetune(lm, text, steps = 3, lr = 1e-2, batch = 2, context = 16, lora = 2, modules = "*self_attn*")
eval ppl = perplexity(tuned, text, context = 16)
eval moved = distance(tuned, lm)
eval lora_moved = distance(adapted, lm)
eval lora_mlp_moved = distance(only(adapted, "*mlp*"), only(lm, "*mlp*"))
save adapted to "adapted"
"#;

#[test]
fn language_models_train_through_the_cache_and_plan() {
    use tv::exec::plan_training::CacheStatus::{Hit, Miss};
    let dir = tempfile::tempdir().unwrap();
    let path = lm_program(dir.path(), LM_BODY);
    let overrides = tv::Overrides::default();
    let plan = check(&path, &overrides);
    let before = tv::graph::dump(&plan.graph);
    assert_eq!(statuses(&plan), [Miss, Miss]);
    let first = tv::run(&mut Default::default(), &path, &overrides, false).expect("first run");
    assert_eq!((first.trained, first.cache_hits), (2, 0));
    let plan = check(&path, &overrides);
    assert_eq!(tv::graph::dump(&plan.graph), before);
    assert_eq!(statuses(&plan), [Hit, Hit]);
    let second = tv::run(&mut Default::default(), &path, &overrides, false).expect("second run");
    assert_eq!((second.trained, second.cache_hits), (0, 2));
    assert_eq!(second.csv(), first.csv());
    // One more step is another job; the LoRA one is still cached.
    let longer = lm_program(dir.path(), &LM_BODY.replacen("steps = 3", "steps = 4", 1));
    assert_eq!(statuses(&check(&longer, &overrides)), [Miss, Hit]);

    let csv = first.csv();
    let rows: Vec<&str> = csv.lines().collect();
    let values: Vec<f64> = rows[1].split(',').map(|v| v.parse().unwrap()).collect();
    let (ppl, moved, lora_moved, mlp_moved) = (values[0], values[1], values[2], values[3]);
    assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
    assert!(moved > 0.0 && lora_moved > 0.0);
    assert_eq!(mlp_moved, 0.0, "LoRA on attention leaves the MLP as it was");
    // The saved model is a whole Hugging Face folder.
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(dir.path().join("adapted").join(file).is_file(), "{file}");
    }
}

/// LoRA's merged change to each adapted matrix has rank at most R,
/// checked by elimination on the saved tensors.
#[test]
fn a_lora_result_differs_from_its_base_by_low_rank_matrices() {
    let dir = tempfile::tempdir().unwrap();
    let path = lm_program(dir.path(), LM_BODY);
    let no_cache = tv::Overrides {
        no_cache: true,
        ..Default::default()
    };
    tv::run(&mut Default::default(), &path, &no_cache, false).expect("run");
    let base = common::f32_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/llama-untied/model.safetensors"),
    );
    let adapted = common::f32_file(&dir.path().join("adapted/model.safetensors"));
    let mut adapted_count = 0;
    for (name, (shape, values)) in &adapted {
        let (base_shape, base_values) = &base[name];
        assert_eq!(shape, base_shape);
        let delta: Vec<f64> = values.iter().zip(base_values).map(|(a, b)| a - b).collect();
        if !name.contains("self_attn") || shape.len() != 2 {
            assert!(delta.iter().all(|d| *d == 0.0), "{name} changed");
            continue;
        }
        adapted_count += 1;
        let rank = numeric_rank(&delta, shape[0], shape[1]);
        assert!((1..=2).contains(&rank), "{name}: rank {rank}");
    }
    assert_eq!(adapted_count, 8, "q, k, v, o in two layers");
}

/// Gaussian elimination with partial pivoting; pivots below a tolerance
/// relative to the largest entry count as zero.
fn numeric_rank(values: &[f64], rows: usize, cols: usize) -> usize {
    let mut m: Vec<Vec<f64>> = values.chunks(cols).map(<[f64]>::to_vec).collect();
    let largest = values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    // The saved weights are f32 sums of base and delta: their rounding
    // (about 1e-7 of the base) is noise far below a real component.
    let tolerance = largest * 1e-3;
    let mut rank = 0;
    for col in 0..cols {
        let Some(pivot) = (rank..rows).max_by(|a, b| m[*a][col].abs().total_cmp(&m[*b][col].abs())) else {
            break;
        };
        if m[pivot][col].abs() <= tolerance {
            continue;
        }
        m.swap(rank, pivot);
        let top = m[rank].clone();
        for row in m.iter_mut().skip(rank + 1) {
            let factor = row[col] / top[col];
            row.iter_mut().zip(&top).skip(col).for_each(|(x, t)| *x -= factor * t);
        }
        rank += 1;
    }
    rank
}

/// A chain whose last job is cached trains nothing, even when the cache
/// lost the jobs before it; the plan says which jobs it skips.
#[test]
fn a_cached_chain_trains_nothing_before_it() {
    use tv::exec::plan_training::CacheStatus::{Hit, Skipped};
    let dir = mlp_dir();
    let first_job = "let a = finetune(init(\"config.json\", seed = 1), \"train.csv\", steps = 4)\n";
    let program = format!(
        "{first_job}let b = finetune(a, \"train.csv\", steps = 3, lr = 1e-2)\neval l = loss(b, \"train.csv\")\n"
    );
    let with_cache = |name: &str| tv::Overrides {
        cache: Some(dir.path().join(name)),
        ..Default::default()
    };
    // The cache's entries (its hidden folder of entry locks aside).
    let entries = |name: &str| -> Vec<String> {
        let listing = std::fs::read_dir(dir.path().join(name)).unwrap();
        listing
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    };
    // The chain up to `a` alone, then the whole chain: `b`'s entry is the new one.
    let head = write(
        dir.path(),
        "head.tv",
        &format!("{first_job}eval l = loss(a, \"train.csv\")\n"),
    );
    tv::run(&mut Default::default(), &head, &with_cache("head"), false).expect("head");
    let path = write(dir.path(), "chain.tv", &program);
    let first = tv::run(&mut Default::default(), &path, &with_cache("chain"), false).expect("first");
    assert_eq!((first.trained, first.cache_hits), (3, 0));
    let head_entries = entries("head");
    assert_eq!(head_entries.len(), 2);
    for name in head_entries {
        std::fs::remove_dir_all(dir.path().join("chain").join(name)).unwrap();
    }
    assert_eq!(entries("chain").len(), 1);
    assert_eq!(statuses(&check(&path, &with_cache("chain"))), [Skipped, Skipped, Hit]);
    let again = tv::run(&mut Default::default(), &path, &with_cache("chain"), false).expect("again");
    assert_eq!((again.trained, again.cache_hits), (0, 1));
    assert_eq!(again.csv(), first.csv());
}

/// `init` of a language model draws its matrices as transformers does:
/// normal with the config's `initializer_range`, norm scales one (zero for
/// Gemma's offset norms), biases zero; the folder carries the tokenizer.
#[test]
fn a_fresh_language_model_is_initialised_as_transformers_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = [
        (root.join("experiments/time/base/config.json"), 1.0),
        (root.join("tests/fixtures/lm/families/gemma/config.json"), 0.0),
    ];
    for (config, norm_scale) in cases {
        let dir = tempfile::tempdir().unwrap();
        let program = format!("save init(\"{}\", seed = 4) to \"fresh\"\n", config.display());
        let path = write(dir.path(), "init.tv", &program);
        tv::run(&mut Default::default(), &path, &Default::default(), false).expect("init");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let range = json["initializer_range"].as_f64().unwrap_or(0.02);
        assert!(dir.path().join("fresh/tokenizer.json").is_file());
        let tensors = common::f32_file(&dir.path().join("fresh/model.safetensors"));
        for (name, (shape, values)) in &tensors {
            if name.contains("norm") {
                assert!(values.iter().all(|v| *v == norm_scale), "{name}");
                continue;
            }
            assert_eq!(shape.len(), 2, "{name}");
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            // Sampling error of the standard deviation is about std / sqrt(2n).
            assert!(
                (std - range).abs() < 6.0 * range / (2.0 * n).sqrt(),
                "{name}: {std} vs {range}"
            );
            assert!(mean.abs() < 6.0 * range / n.sqrt(), "{name}: mean {mean}");
        }
    }
}
