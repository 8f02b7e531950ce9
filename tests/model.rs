//! The built-in MLP end to end: `accuracy`/`loss` against an independent
//! f64 forward pass, `init` against PyTorch's Linear bounds, `finetune`
//! against one hand-computed AdamW step, determinism, the training cache,
//! the command line, and the diagnostics for models that cannot be scored.
//!
//! Every expected number here is computed in this file from the saved
//! tensors (read with the `safetensors` crate) and the CSV files, never
//! with tv's own code.

mod common;

use common::{listing, tv_command};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A tempdir holding the digits task CSVs (`original_train.csv`, ...).
fn digits_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/digits.csv");
    tv::digits::write_tasks(&digits, dir.path()).expect("write_tasks");
    dir
}

fn config_json(layers: &[usize], activation: &str) -> String {
    format!(r#"{{"architecture": "mlp", "layers": {layers:?}, "activation": "{activation}"}}"#)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The first `rows` data rows of a CSV (with its header) written as `name`.
fn head_csv(dir: &Path, from: &str, name: &str, rows: usize) -> PathBuf {
    let text = std::fs::read_to_string(dir.join(from)).unwrap();
    let kept: Vec<&str> = text.lines().take(rows + 1).collect();
    write(dir, name, &(kept.join("\n") + "\n"))
}

fn overrides(cache: Option<&Path>, no_cache: bool) -> tv::Overrides {
    tv::Overrides {
        cache: cache.map(Path::to_path_buf),
        no_cache,
        ..Default::default()
    }
}

/// Runs `program` as `dir/name` through the library.
fn run_program(dir: &Path, name: &str, program: &str, ov: &tv::Overrides) -> tv::RunOutput {
    let path = write(dir, name, program);
    match tv::run(&mut tv::diag::Sources::default(), &path, ov, false) {
        Ok(out) => out,
        Err(diags) => {
            let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
            panic!("{name} failed: {messages:?}\n{program}")
        }
    }
}

/// The report's columns: name -> values by row (`None` for empty cells).
fn columns(csv: &str) -> BTreeMap<String, Vec<Option<f64>>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let mut out: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{csv}");
        for (name, cell) in header.iter().zip(cells) {
            let value = (!cell.is_empty()).then(|| cell.parse::<f64>().expect("a number"));
            out.entry(name.to_string()).or_default().push(value);
        }
    }
    out
}

/// The value of eval `name` in the first row.
fn first(csv: &str, name: &str) -> f64 {
    columns(csv)
        .get(name)
        .and_then(|v| v[0])
        .unwrap_or_else(|| panic!("no {name} in {csv}"))
}

fn has_tv_cache(dir: &Path) -> bool {
    listing(dir).iter().any(|p| p.contains("tv-cache"))
}

/// Cache entries (folders holding `model.safetensors`) directly in `dir`.
fn cache_entries(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = read
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.safetensors").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// An independent model: tensors, data, forward pass and gradient in f64
// ---------------------------------------------------------------------------

/// A file's tensors: name -> (shape, values); every one must be f32.
fn read_tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    common::f32_file(path)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Relu,
    Tanh,
    Gelu,
}

impl Act {
    fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu",
            Act::Tanh => "tanh",
            Act::Gelu => "gelu",
        }
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            Act::Relu => x.max(0.0),
            Act::Tanh => x.tanh(),
            Act::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        }
    }

    /// The derivative, given the pre-activation `a` and output `h`.
    fn derivative(self, a: f64, h: f64) -> f64 {
        match self {
            Act::Relu => f64::from(u8::from(a > 0.0)),
            Act::Tanh => 1.0 - h * h,
            Act::Gelu => unreachable!("not trained here"),
        }
    }
}

/// erf to ~1e-15: the Maclaurin series below 3, the continued fraction of
/// erfc above.
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let value = if a < 3.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut t = a;
        for n in (1..=80).rev() {
            t = a + f64::from(n) / 2.0 / t;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
    };
    value.copysign(x)
}

/// A dense layer (or its gradient): weight rows `[out][in]` and bias `[out]`.
type Layer = (Vec<Vec<f64>>, Vec<f64>);

struct Net {
    layers: Vec<Layer>,
    act: Act,
}

impl Net {
    /// Reads `layers.{i}.weight` / `layers.{i}.bias` for the given widths;
    /// the file must hold exactly those tensors with PyTorch's shapes.
    fn read(path: &Path, widths: &[usize], act: Act) -> Net {
        let tensors = read_tensors(path);
        assert_eq!(tensors.len(), 2 * (widths.len() - 1), "{:?}", tensors.keys());
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                let (shape, w) = &tensors[&format!("layers.{i}.weight")];
                assert_eq!(shape, &vec![pair[1], pair[0]]);
                let (shape, b) = &tensors[&format!("layers.{i}.bias")];
                assert_eq!(shape, &vec![pair[1]]);
                (w.chunks(pair[0]).map(<[f64]>::to_vec).collect(), b.clone())
            })
            .collect();
        Net { layers, act }
    }

    /// Pre-activations and outputs of every layer (the last output is the logits).
    fn trace(&self, x: &[f64]) -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut out: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            let input = out.last().map_or(x, |(_, h)| h.as_slice());
            let pre: Vec<f64> = w
                .iter()
                .zip(b)
                .map(|(row, bias)| row.iter().zip(input).map(|(a, v)| a * v).sum::<f64>() + bias)
                .collect();
            let post = if i + 1 < self.layers.len() {
                pre.iter().map(|v| self.act.apply(*v)).collect()
            } else {
                pre.clone()
            };
            out.push((pre, post));
        }
        out
    }

    fn logits(&self, x: &[f64]) -> Vec<f64> {
        self.trace(x).pop().unwrap().1
    }

    /// Mean cross-entropy over `data` and its gradient (same layout as the layers).
    fn gradient(&self, data: &Data) -> (f64, Vec<Layer>) {
        let mut grads: Vec<Layer> = self
            .layers
            .iter()
            .map(|(w, b)| (vec![vec![0.0; w[0].len()]; w.len()], vec![0.0; b.len()]))
            .collect();
        let n = data.labels.len() as f64;
        let mut loss = 0.0;
        for (x, &label) in data.x.iter().zip(&data.labels) {
            let trace = self.trace(x);
            let z = &trace.last().unwrap().1;
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
            loss += max + sum.ln() - z[label];
            // d loss / d pre-activation of the last layer.
            let mut delta: Vec<f64> = z
                .iter()
                .enumerate()
                .map(|(j, v)| ((v - max).exp() / sum - f64::from(u8::from(j == label))) / n)
                .collect();
            for i in (0..self.layers.len()).rev() {
                let input = if i == 0 {
                    x.as_slice()
                } else {
                    trace[i - 1].1.as_slice()
                };
                let (gw, gb) = &mut grads[i];
                for (o, d) in delta.iter().enumerate() {
                    gb[o] += d;
                    for (k, v) in input.iter().enumerate() {
                        gw[o][k] += d * v;
                    }
                }
                if i > 0 {
                    let w = &self.layers[i].0;
                    let (pre, post) = &trace[i - 1];
                    delta = (0..input.len())
                        .map(|k| {
                            let back: f64 = delta.iter().enumerate().map(|(o, d)| d * w[o][k]).sum();
                            back * self.act.derivative(pre[k], post[k])
                        })
                        .collect();
                }
            }
        }
        (loss / n, grads)
    }
}

/// A dataset read independently: labels and features.
struct Data {
    labels: Vec<usize>,
    x: Vec<Vec<f64>>,
}

fn read_data(path: &Path) -> Data {
    let text = std::fs::read_to_string(path).unwrap();
    let mut data = Data {
        labels: Vec::new(),
        x: Vec::new(),
    };
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut cells = line.split(',');
        data.labels.push(cells.next().unwrap().trim().parse().unwrap());
        // Features are f32 in the model; round as a reader of f32 would.
        data.x
            .push(cells.map(|c| f64::from(c.trim().parse::<f32>().unwrap())).collect());
    }
    data
}

/// Scores of a net on data, computed in f64.
struct Scores {
    correct: usize,
    loss: f64,
    /// Rows whose correctness could flip between f32 and f64: the true
    /// class's logit within 1e-4 of the largest other logit.
    near_ties: usize,
}

fn score(net: &Net, data: &Data) -> Scores {
    let mut s = Scores {
        correct: 0,
        loss: 0.0,
        near_ties: 0,
    };
    for (x, &label) in data.x.iter().zip(&data.labels) {
        let z = net.logits(x);
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        s.loss += lse - z[label];
        let other = z
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != label)
            .map(|(_, v)| *v)
            .fold(f64::NEG_INFINITY, f64::max);
        // tv predicts the first largest logit: ties with an earlier class lose.
        let first_best = z.iter().position(|v| *v == max).unwrap();
        s.correct += usize::from(first_best == label);
        s.near_ties += usize::from((z[label] - other).abs() < 1e-4);
    }
    s.loss /= data.labels.len() as f64;
    s
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// tv's accuracy and loss on `data` agree with ours.
fn assert_scores(what: &str, tv_accuracy: f64, tv_loss: f64, net: &Net, data: &Data) -> Scores {
    let n = data.labels.len();
    let ours = score(net, data);
    assert!(
        rel(tv_loss, ours.loss) < 1e-5,
        "{what}: tv loss {tv_loss}, ours {}",
        ours.loss
    );
    let tv_correct = tv_accuracy * n as f64;
    assert!(
        (tv_correct - tv_correct.round()).abs() < 1e-6,
        "{what}: accuracy {tv_accuracy} is not k/{n}"
    );
    let tv_correct = tv_correct.round() as usize;
    let differ = tv_correct.abs_diff(ours.correct);
    assert!(
        differ == 0 || (differ == 1 && ours.near_ties >= 1),
        "{what}: tv counts {tv_correct}/{n} correct, ours {}/{n} with {} near ties",
        ours.correct,
        ours.near_ties
    );
    ours
}

// ---------------------------------------------------------------------------
// 1. accuracy and loss
// ---------------------------------------------------------------------------

#[test]
fn accuracy_and_loss_agree_with_an_independent_forward_pass() {
    let dir = digits_dir();
    let d = dir.path();
    let test = read_data(&d.join("original_test.csv"));
    let rotated = read_data(&d.join("rot90_test.csv"));
    let cases: [(&[usize], Act, u32); 3] = [
        (&[64, 32, 10], Act::Relu, 60),
        (&[64, 24, 16, 10], Act::Tanh, 60),
        (&[64, 16, 10], Act::Gelu, 20),
    ];
    for (widths, act, steps) in cases {
        let what = format!("{widths:?} {}", act.name());
        write(d, "config.json", &config_json(widths, act.name()));
        let program = format!(
            r#"let w0 = init("config.json", seed = 3)
let w = finetune(w0, "original_train.csv", steps = {steps}, lr = 3e-3, batch = 32, seed = 1)
eval acc = accuracy(w, "original_test.csv")
eval l = loss(w, "original_test.csv")
eval rot_acc = accuracy(w, "rot90_test.csv")
eval rot_l = loss(w, "rot90_test.csv")
eval init_acc = accuracy(w0, "original_test.csv")
eval init_l = loss(w0, "original_test.csv")
save w to "w.safetensors"
save w0 to "w0.safetensors"
"#
        );
        let out = run_program(d, "exp.tv", &program, &overrides(None, true));
        let net = Net::read(&d.join("w.safetensors"), widths, act);
        let init = Net::read(&d.join("w0.safetensors"), widths, act);
        let csv = &out.csv();
        let trained = assert_scores(&what, first(csv, "acc"), first(csv, "l"), &net, &test);
        assert_scores(&what, first(csv, "rot_acc"), first(csv, "rot_l"), &net, &rotated);
        let fresh = assert_scores(&what, first(csv, "init_acc"), first(csv, "init_l"), &init, &test);
        // Not a vacuous comparison: training changed the scores.
        assert!(trained.loss < fresh.loss, "{what}: {} !< {}", trained.loss, fresh.loss);
        assert!(trained.correct > fresh.correct, "{what}");
    }
}

#[test]
fn scores_of_hand_made_weights_and_a_small_random_dataset() {
    // Weights written by hand into a Hugging Face folder, scored on a CSV
    // whose labels do not use every class, with extreme logits (the
    // log-sum-exp must not overflow).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let widths = [3usize, 4, 5];
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (i, pair) in widths.windows(2).enumerate() {
        let scale = if i == 1 { 300.0 } else { 1.0 };
        let w = (0..pair[0] * pair[1]).map(|_| (next() * scale) as f32).collect();
        tensors.push((format!("layers.{i}.weight"), vec![pair[1], pair[0]], w));
        let b = (0..pair[1]).map(|_| next() as f32).collect();
        tensors.push((format!("layers.{i}.bias"), vec![pair[1]], b));
    }
    let model = d.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &model.join("model.safetensors")).unwrap();
    write(&model, "config.json", &config_json(&widths, "tanh"));
    let mut csv = String::from("label,a,b,c\n");
    for row in 0..37 {
        let label = row % 3; // classes 0..2 of 5
        let x: Vec<String> = (0..3).map(|_| format!("{}", (next() * 3.0) as f32)).collect();
        csv.push_str(&format!("{label},{}\n", x.join(",")));
    }
    write(d, "small.csv", &csv);
    let program = r#"let m = load("model")
eval acc = accuracy(m, "small.csv")
eval l = loss(m, "small.csv")
eval half = loss(0.5 * m, "small.csv")
save 0.5 * m to "half.safetensors"
"#;
    let out = run_program(d, "exp.tv", program, &overrides(None, false));
    let net = Net::read(&model.join("model.safetensors"), &widths, Act::Tanh);
    let data = read_data(&d.join("small.csv"));
    let ours = assert_scores(
        "hand-made",
        first(&out.csv(), "acc"),
        first(&out.csv(), "l"),
        &net,
        &data,
    );
    // Logits in the hundreds: a naive exp would overflow.
    assert!(ours.loss > 10.0, "the large logits make a large loss: {}", ours.loss);
    let half = Net::read(&d.join("half.safetensors"), &widths, Act::Tanh);
    let half_loss = score(&half, &data).loss;
    assert!(rel(first(&out.csv(), "half"), half_loss) < 1e-5);
    assert!(
        rel(half_loss, ours.loss) > 1e-3,
        "scaling the weights changed the model"
    );
    assert!(out.trained == 0 && out.cache_hits == 0, "nothing to train");
    assert!(!has_tv_cache(d), "no cache without training");
}

// ---------------------------------------------------------------------------
// 2. init
// ---------------------------------------------------------------------------

#[test]
fn init_follows_pytorch_linear_bounds_and_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let widths = [64usize, 32, 10];
    write(d, "config.json", &config_json(&widths, "relu"));
    let program = r#"save init("config.json") to "default.safetensors"
save init("config.json", seed = 0) to "s0.safetensors"
save init("config.json", seed = 1) to "s1.safetensors"
save init("config.json", seed = 123456789) to "big.safetensors"
"#;
    run_program(d, "a.tv", program, &overrides(None, true));
    // The same program again, with its own cache: the same bytes.
    let again = tempfile::tempdir().unwrap();
    write(again.path(), "config.json", &config_json(&widths, "relu"));
    run_program(again.path(), "a.tv", program, &overrides(None, true));
    for name in ["default", "s0", "s1", "big"] {
        let file = format!("{name}.safetensors");
        assert_eq!(
            std::fs::read(d.join(&file)).unwrap(),
            std::fs::read(again.path().join(&file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(
        std::fs::read(d.join("default.safetensors")).unwrap(),
        std::fs::read(d.join("s0.safetensors")).unwrap(),
        "seed defaults to 0"
    );
    let seeds: Vec<_> = ["s0", "s1", "big"]
        .iter()
        .map(|s| read_tensors(&d.join(format!("{s}.safetensors"))))
        .collect();
    for tensors in &seeds {
        let names: Vec<&String> = tensors.keys().collect();
        assert_eq!(
            names,
            ["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight"]
        );
        for (name, (shape, values)) in tensors {
            let layer: usize = name.split('.').nth(1).unwrap().parse().unwrap();
            let fan_in = widths[layer];
            let bound = 1.0 / (fan_in as f64).sqrt();
            let n = values.len();
            assert_eq!(n, shape.iter().product::<usize>());
            let max = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(max <= bound * (1.0 + 1e-6), "{name}: {max} > 1/sqrt({fan_in})");
            // The values fill the interval: the largest is near the bound
            // (a miss has probability about e^-10 for uniform values).
            let near = (1.0 - 10.0 / n as f64).max(0.3);
            assert!(max > near * bound, "{name}: max {max}, bound {bound}");
            if n >= 32 {
                assert!(values.iter().any(|v| *v > 0.0) && values.iter().any(|v| *v < 0.0));
            }
            if n >= 300 {
                // Uniform on [-b, b]: mean 0, variance b^2/3.
                let mean = values.iter().sum::<f64>() / n as f64;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                assert!(mean.abs() < 0.1 * bound, "{name}: mean {mean}");
                assert!(rel(var, bound * bound / 3.0) < 0.2, "{name}: variance {var}");
            }
        }
    }
    for (i, a) in seeds.iter().enumerate() {
        for b in &seeds[i + 1..] {
            for (name, (_, values)) in a {
                let other = &b[name].1;
                let same = values.iter().zip(other).filter(|(x, y)| x == y).count();
                assert!(same * 10 < values.len().max(10), "{name}: seeds agree on {same} values");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 3. finetune
// ---------------------------------------------------------------------------

#[test]
fn finetune_is_deterministic_and_lowers_the_training_loss() {
    let dir = digits_dir();
    let d = dir.path();
    let widths = [64usize, 32, 10];
    write(d, "config.json", &config_json(&widths, "relu"));
    head_csv(d, "original_train.csv", "train.csv", 400);
    let program = |seed: u32| {
        format!(
            r#"let w0 = init("config.json", seed = 5)
let w = finetune(w0, "train.csv", steps = 50, lr = 2e-3, batch = 16, seed = {seed})
eval before = loss(w0, "train.csv")
eval after = loss(w, "train.csv")
eval acc_before = accuracy(w0, "train.csv")
eval acc_after = accuracy(w, "train.csv")
save w to "w{seed}.safetensors"
save w0 to "w0_{seed}.safetensors"
save finetune(w0, "train.csv", steps = 0, seed = {seed}) to "zero{seed}.safetensors"
"#
        )
    };
    let a = run_program(d, "a.tv", &program(7), &overrides(None, true));
    let other = tempfile::tempdir().unwrap();
    for file in ["config.json", "train.csv"] {
        std::fs::copy(d.join(file), other.path().join(file)).unwrap();
    }
    let b = run_program(other.path(), "a.tv", &program(7), &overrides(None, true));
    assert_eq!(a.csv(), b.csv());
    let bytes = |dir: &Path, f: &str| std::fs::read(dir.join(f)).unwrap();
    assert_eq!(
        bytes(d, "w7.safetensors"),
        bytes(other.path(), "w7.safetensors"),
        "same seed, same bytes"
    );
    let c = run_program(d, "c.tv", &program(8), &overrides(None, true));
    assert_ne!(bytes(d, "w7.safetensors"), bytes(d, "w8.safetensors"), "another seed");
    assert_eq!(bytes(d, "w0_7.safetensors"), bytes(d, "w0_8.safetensors"));
    // Zero steps change nothing (not even weight decay).
    assert_eq!(bytes(d, "zero7.safetensors"), bytes(d, "w0_7.safetensors"));

    let data = read_data(&d.join("train.csv"));
    for (out, seed) in [(&a, 7), (&c, 8)] {
        let init = Net::read(&d.join(format!("w0_{seed}.safetensors")), &widths, Act::Relu);
        let net = Net::read(&d.join(format!("w{seed}.safetensors")), &widths, Act::Relu);
        let before = assert_scores(
            "before",
            first(&out.csv(), "acc_before"),
            first(&out.csv(), "before"),
            &init,
            &data,
        );
        let after = assert_scores(
            "after",
            first(&out.csv(), "acc_after"),
            first(&out.csv(), "after"),
            &net,
            &data,
        );
        assert!(
            first(&out.csv(), "after") < first(&out.csv(), "before"),
            "{}",
            out.csv()
        );
        assert!(after.loss < before.loss, "{} !< {}", after.loss, before.loss);
        assert!(after.correct > before.correct);
    }
    // Both seeds trained, differently.
    let (wa, wc) = (
        read_tensors(&d.join("w7.safetensors")),
        read_tensors(&d.join("w8.safetensors")),
    );
    for (name, (_, values)) in &wa {
        assert_ne!(values, &wc[name].1, "{name}");
    }
}

#[test]
fn one_full_batch_finetune_step_is_adamw() {
    // With the whole dataset as the batch, one step of AdamW (PyTorch's
    // defaults: betas 0.9/0.999, eps 1e-8, weight decay 0.01) is
    // w1 = w0 (1 - lr wd) - lr g / (|g| + eps), with g the gradient of the
    // mean cross-entropy, computed here by hand in f64.
    let dir = digits_dir();
    let d = dir.path();
    let widths = [64usize, 12, 10];
    let lr = 0.01;
    let wd = 0.01;
    write(d, "config.json", &config_json(&widths, "tanh"));
    head_csv(d, "original_train.csv", "train.csv", 150);
    let program = format!(
        r#"let w0 = init("config.json", seed = 11)
save w0 to "w0.safetensors"
save finetune(w0, "train.csv", steps = 1, lr = {lr}, batch = 150, seed = 4) to "w1.safetensors"
save finetune(w0, "train.csv", steps = 1, lr = {lr}, batch = 1000, seed = 9) to "w1_big.safetensors"
"#
    );
    run_program(d, "step.tv", &program, &overrides(None, true));
    let data = read_data(&d.join("train.csv"));
    let w0 = Net::read(&d.join("w0.safetensors"), &widths, Act::Tanh);
    let w1 = Net::read(&d.join("w1.safetensors"), &widths, Act::Tanh);
    let (_, grads) = w0.gradient(&data);
    let (mut checked, mut decayed_only, mut total) = (0, 0, 0);
    let mut compare = |name: &str, before: &[f64], after: &[f64], g: &[f64]| {
        for ((w0, w1), g) in before.iter().zip(after).zip(g) {
            total += 1;
            let decayed = w0 * (1.0 - lr * wd);
            if *g == 0.0 {
                // Inputs that are always zero (pixel 0) get no gradient:
                // only the decoupled weight decay moves them.
                assert!(
                    (w1 - decayed).abs() <= 3e-7 * w0.abs().max(1e-3),
                    "{name}: {w0} -> {w1}"
                );
                assert!(*w0 == 0.0 || w1 != w0, "{name}: weight decay applied");
                decayed_only += 1;
            } else if g.abs() > 1e-5 {
                let expected = decayed - lr * g / (g.abs() + 1e-8);
                assert!(
                    (w1 - expected).abs() < 1e-2 * lr,
                    "{name}: {w0} -> {w1}, expected {expected} (g = {g})"
                );
                checked += 1;
            }
        }
    };
    for (i, ((a, b), (gw, gb))) in w0.layers.iter().zip(&w1.layers).zip(&grads).enumerate() {
        for (o, row) in a.0.iter().enumerate() {
            compare(&format!("layers.{i}.weight[{o}]"), row, &b.0[o], &gw[o]);
        }
        compare(&format!("layers.{i}.bias"), &a.1, &b.1, gb);
    }
    assert!(checked * 10 > total * 8, "checked {checked} of {total}");
    // Inputs that are zero in every row (pixel 0, at least) give whole
    // columns of the first layer no gradient; tanh leaves nothing else at 0.
    let zero_inputs = (0..64).filter(|k| data.x.iter().all(|x| x[*k] == 0.0)).count();
    assert!(zero_inputs >= 1);
    assert_eq!(decayed_only, zero_inputs * 12, "weights without gradient");
    // A batch larger than the data is the whole data (in another order):
    // the same step up to f32 summation order.
    let big = Net::read(&d.join("w1_big.safetensors"), &widths, Act::Tanh);
    for ((a, b), (gw, _)) in w1.layers.iter().zip(&big.layers).zip(&grads) {
        for ((ra, rb), rg) in a.0.iter().zip(&b.0).zip(gw) {
            for ((x, y), g) in ra.iter().zip(rb).zip(rg) {
                if g.abs() > 1e-5 {
                    assert!((x - y).abs() < 1e-2 * lr, "{x} vs {y}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. the cache
// ---------------------------------------------------------------------------

const TRAIN: &str = r#"let w = finetune(init("config.json", seed = 0), "train.csv", steps = 20, lr = 1e-3, batch = 8, seed = 0)
eval acc = accuracy(w, "train.csv")
eval l = loss(w, "train.csv")
save w to "w.safetensors"
"#;

/// A tempdir with `config.json` and a 100-row `train.csv`.
fn small_training_dir() -> tempfile::TempDir {
    let dir = digits_dir();
    write(dir.path(), "config.json", &config_json(&[64, 16, 10], "relu"));
    head_csv(dir.path(), "original_train.csv", "train.csv", 100);
    dir
}

#[test]
fn the_cache_trains_once_and_misses_on_any_change() {
    let dir = small_training_dir();
    let d = dir.path();
    let default = overrides(None, false);
    let first_run = run_program(d, "exp.tv", TRAIN, &default);
    assert_eq!((first_run.trained, first_run.cache_hits), (2, 0), "init and finetune");
    let entries = cache_entries(&d.join(".tv-cache"));
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().any(|e| e.starts_with("init")) && entries.iter().any(|e| e.starts_with("finetune")));
    let weights = std::fs::read(d.join("w.safetensors")).unwrap();

    // The cached fine-tune is all the run needs: its init is not looked up.
    let second = run_program(d, "exp.tv", TRAIN, &default);
    assert_eq!((second.trained, second.cache_hits), (0, 1));
    assert_eq!(second.csv(), first_run.csv());
    assert_eq!(std::fs::read(d.join("w.safetensors")).unwrap(), weights);

    // Another file beside it, with a copy of the data under another name:
    // the key is the data's content, not its path or the program.
    std::fs::copy(d.join("train.csv"), d.join("copy.csv")).unwrap();
    let copied = run_program(
        d,
        "other.tv",
        &TRAIN.replace("\"train.csv\", steps", "\"copy.csv\", steps"),
        &default,
    );
    assert_eq!((copied.trained, copied.cache_hits), (0, 1));
    assert_eq!(copied.csv(), first_run.csv());

    // A trained input counts by its training's key, a loaded one by its
    // content: the same weights saved and loaded again train once more, to
    // the same result.
    run_program(d, "save.tv", r#"save init("config.json", seed = 0) to "w0""#, &default);
    let loaded = run_program(
        d,
        "load.tv",
        &TRAIN.replace(r#"init("config.json", seed = 0)"#, r#"load("w0")"#),
        &default,
    );
    assert_eq!((loaded.trained, loaded.cache_hits), (1, 0), "{}", loaded.csv());
    assert_eq!(loaded.csv(), first_run.csv());
    let again = run_program(
        d,
        "load.tv",
        &TRAIN.replace(r#"init("config.json", seed = 0)"#, r#"load("w0")"#),
        &default,
    );
    assert_eq!((again.trained, again.cache_hits), (0, 1), "{}", again.csv());

    // Each argument is part of the key.
    let changes = [
        ("steps = 20", "steps = 21"),
        ("lr = 1e-3", "lr = 1.1e-3"),
        ("batch = 8", "batch = 9"),
        ("batch = 8, seed = 0", "batch = 8, seed = 1"),
    ];
    for (from, to) in changes {
        let program = TRAIN.replace(from, to);
        assert_ne!(program, TRAIN);
        let out = run_program(d, "exp.tv", &program, &default);
        assert_eq!(
            (out.trained, out.cache_hits),
            (1, 1),
            "{to}: init hits, finetune trains"
        );
        let again = run_program(d, "exp.tv", &program, &default);
        assert_eq!((again.trained, again.cache_hits), (0, 1), "{to}, again");
    }
    let reseeded = run_program(
        d,
        "exp.tv",
        &TRAIN.replace(r#"init("config.json", seed = 0)"#, r#"init("config.json", seed = 2)"#),
        &default,
    );
    assert_eq!((reseeded.trained, reseeded.cache_hits), (2, 0), "a new init seed");

    // The config is part of the key, for init and for finetune.
    write(d, "config.json", &config_json(&[64, 16, 10], "tanh"));
    let tanh = run_program(d, "exp.tv", TRAIN, &default);
    assert_eq!((tanh.trained, tanh.cache_hits), (2, 0), "another activation");
    write(d, "config.json", &config_json(&[64, 16, 10], "relu"));
    let back = run_program(d, "exp.tv", TRAIN, &default);
    assert_eq!((back.trained, back.cache_hits), (0, 1));

    // One byte of one feature value.
    let text = std::fs::read_to_string(d.join("train.csv")).unwrap();
    let row_start = text.find('\n').unwrap() + 1;
    let row_end = row_start + text[row_start..].find('\n').unwrap();
    let row = &text[row_start..row_end];
    let cells: Vec<&str> = row.split(',').collect();
    let zero = 1 + cells[1..].iter().position(|c| *c == "0").expect("a zero pixel");
    let mut changed: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
    changed[zero] = "1".into();
    let edited = format!("{}{}{}", &text[..row_start], changed.join(","), &text[row_end..]);
    assert_eq!(edited.len(), text.len());
    assert_eq!(edited.bytes().zip(text.bytes()).filter(|(a, b)| a != b).count(), 1);
    std::fs::write(d.join("train.csv"), &edited).unwrap();
    let edited_run = run_program(d, "exp.tv", TRAIN, &default);
    assert_eq!((edited_run.trained, edited_run.cache_hits), (1, 1), "the data changed");
    assert_ne!(std::fs::read(d.join("w.safetensors")).unwrap(), weights);
}

#[test]
fn no_cache_leaves_nothing_and_gives_the_same_numbers() {
    let dir = small_training_dir();
    let d = dir.path();
    let before = listing(d);
    let out = run_program(d, "exp.tv", TRAIN, &overrides(None, true));
    assert_eq!(out.trained, 2);
    assert!(!has_tv_cache(d), "{:?}", listing(d));
    let mut expected = before.clone();
    expected.extend(["exp.tv".to_string(), "w.safetensors".to_string()]);
    assert_eq!(listing(d), expected);
    let again = run_program(d, "exp.tv", TRAIN, &overrides(None, true));
    assert_eq!((again.trained, again.cache_hits), (2, 0), "nothing was kept");
    let no_cache_weights = std::fs::read(d.join("w.safetensors")).unwrap();

    // The same program with a cache elsewhere: the same report and weights.
    let elsewhere = tempfile::tempdir().unwrap();
    let cached = run_program(d, "exp.tv", TRAIN, &overrides(Some(elsewhere.path()), false));
    assert_eq!((cached.trained, cached.cache_hits), (2, 0));
    assert_eq!(cached.csv(), out.csv());
    assert_eq!(std::fs::read(d.join("w.safetensors")).unwrap(), no_cache_weights);
    assert!(!has_tv_cache(d));
    assert_eq!(cache_entries(elsewhere.path()).len(), 2);
    // no_cache wins over a cache directory: that cache is neither read nor written.
    let both = run_program(d, "exp.tv", TRAIN, &overrides(Some(elsewhere.path()), true));
    assert_eq!((both.trained, both.cache_hits), (2, 0));
}

// ---------------------------------------------------------------------------
// 5. the command line
// ---------------------------------------------------------------------------

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn command_line_cache_flags_check_and_stats() {
    let dir = small_training_dir();
    let d = dir.path();
    write(d, "exp.tv", TRAIN);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("my cache");
    let cache_arg = cache_dir.to_str().unwrap();

    // check trains nothing and writes nothing.
    let before = listing(d);
    let check = tv_command(d, &["check", "exp.tv"]);
    assert_eq!(check.status.code(), Some(0), "{}", describe(&check));
    assert_eq!(listing(d), before, "check writes nothing");
    assert!(!cache_dir.exists());

    // Conflicting flags are a usage error, and nothing runs.
    let conflict = tv_command(d, &["run", "exp.tv", "--no-cache", "--cache", cache_arg]);
    assert_eq!(conflict.status.code(), Some(2), "{}", describe(&conflict));
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("--cache"));
    assert_eq!(listing(d), before);
    assert!(!cache_dir.exists());

    // --cache DIR: entries there, none beside the file.
    let run = tv_command(d, &["run", "exp.tv", "--cache", cache_arg, "--stats"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert!(!has_tv_cache(d), "{:?}", listing(d));
    assert_eq!(cache_entries(&cache_dir).len(), 2, "{:?}", listing(cache.path()));
    let training_line = |out: &Output| -> String {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr
            .lines()
            .find(|l| l.trim_start().starts_with("training"))
            .unwrap_or_else(|| panic!("no training line in {stderr}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(training_line(&run), "training 2 trained, 0 from the cache");
    let report = String::from_utf8(run.stdout.clone()).unwrap();
    assert!(report.starts_with("acc,l\n"), "{report}");

    let rerun = tv_command(d, &["run", "exp.tv", "--cache", cache_arg, "--stats"]);
    assert_eq!(rerun.status.code(), Some(0), "{}", describe(&rerun));
    assert_eq!(training_line(&rerun), "training 0 trained, 1 from the cache");
    assert_eq!(rerun.stdout, run.stdout);

    // --no-cache: trains again, keeps nothing, prints the same report.
    let fresh = tv_command(d, &["run", "exp.tv", "--no-cache", "--stats"]);
    assert_eq!(fresh.status.code(), Some(0), "{}", describe(&fresh));
    assert_eq!(training_line(&fresh), "training 2 trained, 0 from the cache");
    assert_eq!(fresh.stdout, run.stdout);
    assert!(!has_tv_cache(d));

    // The default: .tv-cache beside the experiment, even run from elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let path = d.join("exp.tv");
    let beside = tv_command(elsewhere.path(), &["run", path.to_str().unwrap()]);
    assert_eq!(beside.status.code(), Some(0), "{}", describe(&beside));
    assert_eq!(cache_entries(&d.join(".tv-cache")).len(), 2);
    assert!(listing(elsewhere.path()).is_empty());
    assert_eq!(beside.stdout, run.stdout);

    // Without --stats, no training line.
    let quiet = tv_command(d, &["run", "exp.tv"]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("trained"));
}

// ---------------------------------------------------------------------------
// 6. diagnostics
// ---------------------------------------------------------------------------

/// Runs `tv run` and `tv check` on `program`; both must fail with exit 1,
/// name the problem (every needle) and point at the line of `at`, and
/// leave no file behind.
fn assert_fails(dir: &Path, program: &str, needles: &[&str], at: &str) {
    write(dir, "bad.tv", program);
    let line = program[..program.find(at).expect("at in program")]
        .matches('\n')
        .count()
        + 1;
    let before = listing(dir);
    for command in ["check", "run"] {
        let out = tv_command(dir, &[command, "bad.tv"]);
        let text = describe(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needle in needles {
            assert!(stderr.contains(needle), "{command}: no {needle:?} in {text}");
        }
        assert!(
            stderr.contains(&format!("bad.tv:{line}:")),
            "{command}: no line {line} in {text}"
        );
        assert!(out.stdout.is_empty(), "{text}");
        // Checked before anything trains: no cache entry, nothing at all.
        let after = listing(dir);
        assert_eq!(after, before, "{command} leaves nothing behind");
    }
    let _ = std::fs::remove_dir_all(dir.join(".tv-cache"));
}

#[test]
fn a_run_with_errors_trains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "config.json", &config_json(&[4, 3, 2], "relu"));
    write(d, "data.csv", "label,a,b,c,d\n0,1,2,3,4\n1,0,0,0,1\n");
    let program = "let w = finetune(init(\"config.json\"), \"data.csv\", steps = 5)\neval a = accuracy(w, \"data.csv\")\neval b = nrom(w)\n";
    write(d, "bad.tv", program);
    let out = tv_command(d, &["run", "bad.tv"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nrom"));
    let entries = cache_entries(&d.join(".tv-cache"));
    assert!(
        entries.is_empty(),
        "a program with errors is checked before anything is made: {entries:?}"
    );
}

#[test]
fn diagnostics_for_models_that_cannot_be_scored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "config.json", &config_json(&[4, 3, 2], "relu"));
    write(d, "data.csv", "label,a,b,c,d\n0,1,2,3,4\n1,0,0,0,1\n");
    write(d, "narrow.csv", "label,a,b,c\n0,1,2,3\n1,0,0,1\n");
    write(d, "labels.csv", "label,a,b,c,d\n0,1,2,3,4\n5,0,0,0,1\n");
    write(d, "ragged.csv", "label,a,b,c,d\n0,1,2,3,4\n1,0,0,1\n");
    // A checkpoint with the right tensors but no config.json.
    run_program(
        d,
        "make.tv",
        r#"save init("config.json") to "x.safetensors""#,
        &overrides(None, true),
    );
    run_program(
        d,
        "make.tv",
        r#"save init("config.json") to "folder""#,
        &overrides(None, true),
    );
    assert!(d.join("folder/config.json").is_file(), "save copies the config");
    std::fs::remove_file(d.join("make.tv")).unwrap();

    assert_fails(
        d,
        "let x = load(\"x.safetensors\")\neval a = accuracy(x, \"data.csv\")\n",
        &["config.json", "accuracy"],
        "accuracy",
    );
    assert_fails(
        d,
        "let x = load(\"x.safetensors\")\n\nsave finetune(x, \"data.csv\") to \"y.safetensors\"\n",
        &["config.json", "finetune"],
        "finetune",
    );
    let w = "let w = init(\"config.json\")\n";
    assert_fails(
        d,
        &format!("{w}eval l = loss(w, \"narrow.csv\")\n"),
        &["3 features", "takes 4"],
        "narrow",
    );
    assert_fails(
        d,
        &format!("{w}save finetune(w, \"narrow.csv\", steps = 3) to \"y.safetensors\"\n"),
        &["3 features", "takes 4"],
        "narrow",
    );
    assert_fails(
        d,
        &format!("{w}eval l = loss(w, \"labels.csv\")\n"),
        &["labels up to 5", "2 classes"],
        "labels",
    );
    assert_fails(
        d,
        &format!("{w}eval l = loss(w, \"ragged.csv\")\n"),
        &["ragged.csv:3", "3 features"],
        "ragged",
    );
    assert_fails(
        d,
        &format!("{w}eval l = loss(w, \"missing.csv\")\n"),
        &["missing.csv"],
        "missing",
    );
    // Weights that do not fit their config: a folder whose config.json was edited.
    write(&d.join("folder"), "config.json", &config_json(&[4, 5, 2], "relu"));
    assert_fails(
        d,
        "eval a = accuracy(load(\"folder\"), \"data.csv\")\n",
        &["layers.0.weight", "[5, 4]"],
        "accuracy",
    );
    assert_fails(
        d,
        &format!("{w}save finetune(w, \"data.csv\", lr = 0) to \"y.safetensors\"\n"),
        &["lr", "positive"],
        "finetune",
    );
    assert_fails(
        d,
        &format!("{w}save finetune(w, \"data.csv\", steps = 2.5) to \"y.safetensors\"\n"),
        &["steps", "whole number"],
        "finetune",
    );
    write(
        d,
        "bad_config.json",
        r#"{"architecture": "transformer", "layers": [4, 2], "activation": "relu"}"#,
    );
    assert_fails(
        d,
        "\n\nlet w = init(\"bad_config.json\")\neval n = norm(w)\n",
        &["transformer"],
        "init",
    );
    // Every problem of a file at once.
    write(
        d,
        "many.tv",
        "let x = load(\"x.safetensors\")\neval a = accuracy(x, \"data.csv\")\neval l = loss(init(\"config.json\"), \"narrow.csv\")\n",
    );
    let out = tv_command(d, &["check", "many.tv"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("config.json") && stderr.contains("3 features"),
        "{stderr}"
    );
    assert!(stderr.contains("2 errors"), "{stderr}");
    assert!(!has_tv_cache(d), "{:?}", listing(d));
}
