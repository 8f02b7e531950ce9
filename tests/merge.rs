//! std/merge against merges computed independently here (tests/mergeref),
//! on small random models: every method, per-model parameters, per-tensor
//! selection, and the random methods' masks and rescaling.

mod common;
mod mergeref;

use common::*;
use mergeref::*;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::Path;

const SHAPES: &[(&str, &[usize])] = &[
    ("layers.0.mlp.weight", &[12, 8]),
    ("layers.0.norm.weight", &[12]),
    ("layers.0.self_attn.weight", &[8, 12]),
];

/// Base and three fine-tuned models; m2's change partly opposes m1's, so
/// signs conflict and the election matters.
struct Inputs {
    base: Floats,
    models: Vec<Floats>,
}

impl Inputs {
    fn write(dir: &Path) -> Inputs {
        let mut rng = tv::synth::Rng::new(11);
        let base: Vec<Raw> = SHAPES.iter().map(|(n, s)| normal_tensor(&mut rng, n, s, 1.0)).collect();
        let base = floats(&base);
        let mut models = Vec::new();
        for i in 0..3 {
            let model: Floats = base
                .iter()
                .map(|(name, values)| {
                    let noise = rng.normals(values.len(), 0.05);
                    let delta = |j: usize| match (i, &models[..]) {
                        (1, [m1, ..]) => -0.6 * (m1_delta(m1, &base, name, j)) + noise[j] as f64,
                        _ => noise[j] as f64,
                    };
                    let model: Vec<f64> = (0..values.len()).map(|j| values[j] + delta(j)).collect();
                    (name.clone(), model)
                })
                .collect();
            models.push(model);
        }
        let inputs = Inputs { base, models };
        write_model(&dir.join("base.safetensors"), &inputs.base);
        for (i, m) in inputs.models.iter().enumerate() {
            write_model(&dir.join(format!("m{}.safetensors", i + 1)), m);
        }
        inputs
    }

    fn deltas(&self, name: &str) -> Vec<Vec<f64>> {
        let base = &self.base[name];
        let delta = |m: &Floats| m[name].iter().zip(base).map(|(x, b)| x - b).collect();
        self.models.iter().map(delta).collect()
    }
}

fn m1_delta(m1: &Floats, base: &Floats, name: &str, j: usize) -> f64 {
    m1[name][j] - base[name][j]
}

/// Writes f32 tensors (the values are f32 already, or rounded to it) and
/// an integer buffer every method must carry through.
fn write_model(path: &Path, model: &Floats) {
    let mut raws: Vec<Raw> = SHAPES
        .iter()
        .map(|(name, shape)| {
            let values: Vec<f32> = model[*name].iter().map(|v| *v as f32).collect();
            Raw {
                name: name.to_string(),
                dtype: Dtype::F32,
                shape: shape.to_vec(),
                bytes: encode(Dtype::F32, &values),
            }
        })
        .collect();
    raws.push(Raw {
        name: "position_ids".into(),
        dtype: Dtype::I64,
        shape: vec![4],
        bytes: (0..4i64).flat_map(|i| i.to_le_bytes()).collect(),
    });
    write_file(path, &raws);
}

/// The inputs as tv reads them: rounded to f32.
fn reread(dir: &Path) -> Inputs {
    let read = |name: &str| floats_of(&read_file(&dir.join(format!("{name}.safetensors"))));
    Inputs {
        base: read("base"),
        models: ["m1", "m2", "m3"].iter().map(|m| read(m)).collect(),
    }
}

fn per_tensor(inputs: &Inputs, f: impl Fn(&str, &[f64], &[Vec<f64>]) -> Vec<f64>) -> Floats {
    let names = inputs.base.keys();
    names
        .map(|n| (n.clone(), f(n, &inputs.base[n], &inputs.deltas(n))))
        .collect()
}

fn plus(base: &[f64], scale: f64, delta: &[f64]) -> Vec<f64> {
    base.iter().zip(delta).map(|(b, d)| b + scale * d).collect()
}

fn weighted_sum(deltas: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
    let n = deltas[0].len();
    (0..n)
        .map(|e| deltas.iter().zip(weights).map(|(d, w)| w * d[e]).sum())
        .collect()
}

fn weighted(deltas: &[Vec<f64>], weights: &[f64], sparsify: impl Fn(usize, &[f64]) -> Vec<f64>) -> Vec<Vec<f64>> {
    let kept = deltas.iter().enumerate().map(|(i, d)| sparsify(i, d));
    kept.zip(weights)
        .map(|(d, w)| d.iter().map(|v| w * v).collect())
        .collect()
}

/// What each case should give, computed here.
fn expected(case: &str, x: &Inputs) -> Floats {
    let models = |name: &str| -> Vec<Vec<f64>> { x.models.iter().map(|m| m[name].clone()).collect() };
    match case {
        "linear" | "linear_sum" => {
            let (w, divide) = match case {
                "linear" => (vec![0.5, 0.3, 0.2], 1.0),
                _ => (vec![0.6, 0.3, 0.4], 0.0),
            };
            let total: f64 = w.iter().sum::<f64>() * divide + (1.0 - divide);
            per_tensor(x, |n, _, _| {
                weighted_sum(&models(n), &w).iter().map(|v| v / total).collect()
            })
        }
        "task_arithmetic" => per_tensor(x, |_, b, d| plus(b, 0.8, &weighted_sum(d, &[1.0, 0.5, 0.7]))),
        "task_arithmetic_normalized" => per_tensor(x, |_, b, d| plus(b, 1.0 / 2.2, &weighted_sum(d, &[1.0, 0.5, 0.7]))),
        "ties" => per_tensor(x, |_, b, d| {
            let w = [1.0, 0.5, 0.8];
            plus(b, 1.0, &disjoint_mean(&weighted(d, &w, |_, v| trim(v, 0.5)), &w, true))
        }),
        "ties_per_model" => per_tensor(x, |_, b, d| {
            let (w, density) = ([0.7, 1.0, 0.4], [0.3, 0.6, 0.9]);
            plus(
                b,
                0.9,
                &disjoint_mean(&weighted(d, &w, |i, v| trim(v, density[i])), &w, false),
            )
        }),
        "ties_filtered" => per_tensor(x, |n, b, d| {
            let density = if n.contains("self_attn") { 0.3 } else { 0.7 };
            let w = [1.0; 3];
            plus(
                b,
                1.0,
                &disjoint_mean(&weighted(d, &w, |_, v| trim(v, density)), &w, true),
            )
        }),
        "ties_rescaled" => per_tensor(x, |_, b, d| {
            let w = [1.0; 3];
            let kept = weighted(d, &w, |_, v| rescale_l1(&trim(v, 0.4), v));
            plus(b, 1.0, &disjoint_mean(&kept, &w, true))
        }),
        "breadcrumbs" => per_tensor(x, |_, b, d| {
            let w = [1.0, 0.6, 0.8];
            plus(
                b,
                1.0,
                &weighted_sum(&weighted(d, &w, |_, v| trim_outliers(v, 0.8, 0.05)), &[1.0; 3]),
            )
        }),
        "breadcrumbs_ties" => per_tensor(x, |_, b, d| {
            let w = [1.0; 3];
            plus(
                b,
                1.0,
                &disjoint_mean(&weighted(d, &w, |_, v| trim_outliers(v, 0.7, 0.02)), &w, false),
            )
        }),
        "slerp" => per_tensor(x, |n, b, _| slerp(b, &x.models[0][n], 0.3)),
        "slerp_filtered" => per_tensor(x, |n, b, _| {
            let t = if n.contains("self_attn") {
                0.2
            } else if n.contains("mlp") {
                0.7
            } else {
                0.5
            };
            slerp(b, &x.models[0][n], t)
        }),
        "model_stock" => per_tensor(x, |n, b, _| model_stock(b, &models(n), None)),
        "model_stock_filter_wise" => per_tensor(x, |n, b, _| {
            model_stock(
                b,
                &models(n),
                Some(SHAPES.iter().find(|s| s.0 == n).map_or(1, |s| *s.1.last().unwrap())),
            )
        }),
        other => panic!("no expectation for {other}"),
    }
}

/// Every element within 1e-6 (relative to values above 1).
fn assert_close(got: &Floats, want: &Floats, case: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{case}: tensor names"
    );
    for (name, want) in want {
        for (i, (g, w)) in got[name].iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{case}: {name}[{i}] is {g}, expected {w}"
            );
        }
    }
}

fn run_cases(dir: &Path) {
    let program = cases_program(&|name| format!("load(\"{name}.safetensors\")"), CASES);
    run_program(dir, "cases.tv", &program, &tv::Overrides::default());
}

#[test]
fn every_deterministic_method_matches_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    Inputs::write(dir.path());
    let inputs = reread(dir.path());
    run_cases(dir.path());
    for (case, _) in CASES {
        let saved = read_file(&dir.path().join(format!("out/{case}.safetensors")));
        assert_eq!(
            saved["position_ids"].bytes,
            (0..4i64).flat_map(|i| i.to_le_bytes()).collect::<Vec<_>>()
        );
        let saved: BTreeMap<_, _> = floats_of(&saved)
            .into_iter()
            .filter(|(n, _)| n != "position_ids")
            .collect();
        assert_close(&saved, &expected(case, &inputs), case);
    }
}

/// Item `i` of a list, in tv (which has `take` and `sum` but no indexing).
fn item(list: &str, i: usize) -> String {
    match i {
        0 => format!("sum(take({list}, 1))"),
        _ => format!("(sum(take({list}, {})) - sum(take({list}, {i})))", i + 1),
    }
}

/// Loads the test models and saves each dropped task vector of `drops`
/// (a tv list expression) as `out/PREFIX{i}`, then `extra` saves.
fn random_program(drops: &str, prefix: &str, extra: &str) -> String {
    let mut program = String::from(
        "use \"std/merge\"\nlet base = load(\"base.safetensors\")\n\
         let ms = [load(\"m1.safetensors\"), load(\"m2.safetensors\"), load(\"m3.safetensors\")]\n",
    );
    program.push_str(&format!("let dropped = {drops}\n"));
    for i in 0..3 {
        program.push_str(&format!(
            "save {} to \"out/{prefix}{i}.safetensors\"\n",
            item("dropped", i)
        ));
    }
    program + extra
}

fn saved_floats(dir: &Path, file: &str) -> Floats {
    let saved = floats_of(&read_file(&dir.join("out").join(file)));
    saved.into_iter().filter(|(n, _)| n != "position_ids").collect()
}

/// Every element of `kept` is 0 or `delta` times one per-tensor factor, and
/// that factor restores the L1 norm (mergekit's rescaling).
fn assert_l1_rescaled(kept: &Floats, deltas: &dyn Fn(&str) -> Vec<f64>, label: &str) {
    for (name, kept) in kept {
        let delta = deltas(name);
        let before: f64 = delta.iter().map(|v| v.abs()).sum();
        let after: f64 = delta
            .iter()
            .zip(kept)
            .filter(|(_, k)| **k != 0.0)
            .map(|(v, _)| v.abs())
            .sum();
        for (k, d) in kept.iter().zip(&delta) {
            let want = if *k == 0.0 { 0.0 } else { d * before / after };
            assert!(
                (k - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "{label} {name}: {k} vs {want}"
            );
        }
    }
}

#[test]
fn random_methods_drop_rescale_and_merge_as_mergekit_does() {
    let dir = tempfile::tempdir().unwrap();
    Inputs::write(dir.path());
    let x = reread(dir.path());
    let saves = "save dare_linear(ms, base, density = 0.5, seed = 7) to \"out/dare_linear.safetensors\"\n\
                 save dare_ties(ms, base, weight = [1, 0.5, 0.8], density = 0.5, seed = 7) to \"out/dare_ties.safetensors\"\n\
                 save della(ms, base, density = 0.5, epsilon = 0.1, seed = 7) to \"out/della.safetensors\"\n\
                 save della_linear(ms, base, weight = [1, 0.5, 0.8], density = 0.5, epsilon = 0.1, seed = 7) to \"out/della_linear.safetensors\"\n";
    let program = random_program("drop(ms - base, 0.5, 1, 7)", "drop", "");
    let ranked = "let ranked = drop_ranked(ms - base, 0.5, 0.1, 1, 7)\n".to_string()
        + &(0..3)
            .map(|i| format!("save {} to \"out/ranked{i}.safetensors\"\n", item("ranked", i)))
            .collect::<String>();
    run_program(
        dir.path(),
        "random.tv",
        &(program + &ranked + saves),
        &tv::Overrides::default(),
    );
    let kept = |prefix: &str| -> Vec<Floats> {
        (0..3)
            .map(|i| saved_floats(dir.path(), &format!("{prefix}{i}.safetensors")))
            .collect()
    };
    let (drops, ranks) = (kept("drop"), kept("ranked"));
    for (i, (d, r)) in drops.iter().zip(&ranks).enumerate() {
        let delta = |name: &str| x.deltas(name)[i].clone();
        assert_l1_rescaled(d, &delta, "drop");
        assert_l1_rescaled(r, &delta, "drop_ranked");
    }
    // Each model draws its own mask.
    let name = "layers.0.mlp.weight";
    let same = drops[0][name]
        .iter()
        .zip(&drops[1][name])
        .filter(|(a, b)| (**a == 0.0) == (**b == 0.0))
        .count();
    assert!(same < drops[0][name].len() * 3 / 4, "masks agree on {same} elements");
    let w = [1.0, 0.5, 0.8];
    let of = |masks: &[Floats], n: &str| -> Vec<Vec<f64>> { masks.iter().map(|m| m[n].clone()).collect() };
    let want: BTreeMap<&str, Floats> = BTreeMap::from([
        (
            "dare_linear",
            per_tensor(&x, |n, b, _| plus(b, 1.0, &weighted_sum(&of(&drops, n), &[1.0; 3]))),
        ),
        (
            "dare_ties",
            per_tensor(&x, |n, b, _| {
                plus(
                    b,
                    1.0,
                    &disjoint_mean(&weighted(&of(&drops, n), &w, |_, v| v.to_vec()), &w, false),
                )
            }),
        ),
        (
            "della",
            per_tensor(&x, |n, b, _| {
                plus(b, 1.0, &disjoint_mean(&of(&ranks, n), &[1.0; 3], true))
            }),
        ),
        (
            "della_linear",
            per_tensor(&x, |n, b, _| plus(b, 1.0, &weighted_sum(&of(&ranks, n), &w))),
        ),
    ]);
    for (case, want) in want {
        assert_close(&saved_floats(dir.path(), &format!("{case}.safetensors")), &want, case);
    }
}

/// One tensor of a million normal values, for statistics.
fn write_large(dir: &Path) {
    let mut rng = tv::synth::Rng::new(5);
    let base = normal_tensor(&mut rng, "w", &[1000, 1000], 1.0);
    let tuned = normal_tensor(&mut rng, "w", &[1000, 1000], 1.0);
    write_file(&dir.join("base.safetensors"), &[base]);
    write_file(&dir.join("tuned.safetensors"), &[tuned]);
}

const LARGE: &str =
    "use \"std/merge\"\nlet base = load(\"base.safetensors\")\nlet tau = load(\"tuned.safetensors\") - base\n\
    save drop(tau, 0.3) to \"out/drop.safetensors\"\n\
    save drop_ranked(tau, 0.6, 0.2, 1) to \"out/ranked.safetensors\"\n\
    save dare_ties([base + tau, base - 0.5 * tau], base, density = 0.2) to \"out/dare_ties.safetensors\"\n";

#[test]
fn the_kept_fraction_is_within_one_percent_of_the_density() {
    let dir = tempfile::tempdir().unwrap();
    write_large(dir.path());
    run_program(dir.path(), "large.tv", LARGE, &tv::Overrides::default());
    for (file, density) in [("drop.safetensors", 0.3), ("ranked.safetensors", 0.6)] {
        let kept = &saved_floats(dir.path(), file)["w"];
        let fraction = kept.iter().filter(|v| **v != 0.0).count() as f64 / kept.len() as f64;
        assert!(
            (fraction - density).abs() <= 0.01 * density,
            "{file}: kept {fraction}, density {density}"
        );
    }
}

#[test]
fn seeded_methods_are_byte_identical_for_any_thread_count_and_change_with_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    write_large(dir.path());
    let files = ["drop.safetensors", "ranked.safetensors", "dare_ties.safetensors"];
    let mut outputs = Vec::new();
    for (threads, seed) in [(1, None), (2, None), (2, Some(9))] {
        let overrides = tv::Overrides {
            threads: Some(threads),
            seed,
            ..Default::default()
        };
        run_program(dir.path(), "large.tv", LARGE, &overrides);
        outputs.push(files.map(|f| std::fs::read(dir.path().join("out").join(f)).unwrap()));
    }
    assert!(outputs[0] == outputs[1], "one thread and two wrote different bytes");
    for (i, file) in files.iter().enumerate() {
        assert_ne!(outputs[1][i], outputs[2][i], "{file} ignores --seed");
    }
}

/// A merge saved as a Hugging Face folder: shards no larger than
/// `max_shard_size` (or `--max-shard-size`), an index naming every tensor,
/// the base's config and tokenizer, and `set dtype` applied.
#[test]
fn merges_save_as_sharded_hugging_face_folders() {
    let dir = tempfile::tempdir().unwrap();
    Inputs::write(dir.path());
    let base = read_file(&dir.path().join("base.safetensors"));
    let raws: Vec<Raw> = base
        .into_iter()
        .map(|(name, t)| Raw {
            name,
            dtype: t.dtype,
            shape: t.shape,
            bytes: t.bytes,
        })
        .collect();
    write_folder(&dir.path().join("base"), &raws, "base-config");
    let program = "use \"std/merge\"\nset dtype = \"bf16\"\nset max_shard_size = \"300B\"\nlet base = load(\"base\")\n\
                   let ms = [load(\"m1.safetensors\"), load(\"m2.safetensors\")]\n\
                   save ties(ms, base, density = 0.5) to \"out/merged\"\n";
    run_program(dir.path(), "folder.tv", program, &tv::Overrides::default());
    let out = dir.path().join("out/merged");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("base-config"), "{config}");
    assert!(out.join("tokenizer.json").is_file());
    let shards: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    // In name order, bf16 tensors of 192, 24 and 192 bytes, then 32 bytes
    // of integers: 216 + 224 bytes in two shards of at most 300.
    assert_eq!(shards.len(), 2, "{shards:?}");
    for shard in &shards {
        let bytes: usize = read_file(shard).values().map(|t| t.bytes.len()).sum();
        assert!(bytes <= 300, "{} holds {bytes} bytes", shard.display());
    }
    let saved = read_folder(&out);
    for (name, t) in &saved {
        let want = if name == "position_ids" {
            Dtype::I64
        } else {
            Dtype::BF16
        };
        assert_eq!(t.dtype, want, "{name}");
    }
    let flag = tv::Overrides {
        max_shard_bytes: Some(1_000_000),
        ..Default::default()
    };
    run_program(dir.path(), "folder.tv", program, &flag);
    assert!(
        out.join("model.safetensors").is_file(),
        "--max-shard-size overrides the program"
    );
}
