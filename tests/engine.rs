//! The fast executor (Gram matrices, fusion, one pass for all sweep points)
//! against the naive reference executor, on random programs; and the proof
//! that a sweep reads each input once.

use proptest::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tv::diag::Sources;
use tv::synth::Rng;

/// Shared checkpoints: `a`..`d` random, `near` = a + 1e-6 noise and
/// `nearer` = near + 1e-9 noise (so differences between them cancel
/// catastrophically in a plain Gram matrix), `h` an f16 and `g` a bf16 copy
/// of random weights. All share names and shapes.
fn checkpoints() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tv-engine-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test directory");
        let shapes: [(&str, Vec<usize>); 3] = [("w", vec![37, 19]), ("b", vec![19]), ("s", vec![])];
        let mut rng = Rng::new(7);
        let mut random = |scale: f64| -> Vec<Vec<f32>> {
            shapes
                .iter()
                .map(|(_, s)| rng.normals(s.iter().product(), scale))
                .collect()
        };
        let a = random(1.0);
        let plus = |x: &[Vec<f32>], d: &[Vec<f32>]| -> Vec<Vec<f32>> {
            x.iter()
                .zip(d)
                .map(|(u, v)| u.iter().zip(v).map(|(p, q)| p + q).collect())
                .collect()
        };
        let near = plus(&a, &random(1e-6));
        let nearer = plus(&near, &random(1e-9));
        let o = random(1.0);
        let (t1, t2) = nearly_orthogonal(random(0.01), random(0.01));
        let models = [
            ("a", a, Dtype::F32),
            ("b", random(1.0), Dtype::F32),
            ("c", random(0.5), Dtype::F32),
            ("d", random(2.0), Dtype::F32),
            ("near", near, Dtype::F32),
            ("nearer", nearer, Dtype::F32),
            ("h", random(1.0), Dtype::F16),
            ("g", random(1.0), Dtype::BF16),
            ("o1", plus(&o, &t1), Dtype::F32),
            ("o2", plus(&o, &t2), Dtype::F32),
            ("o", o, Dtype::F32),
        ];
        for (name, values, dtype) in models {
            write(&dir.join(format!("{name}.safetensors")), &shapes, &values, dtype);
        }
        dir
    })
}

/// Two changes of 1% of the weights, as independent fine-tunes make them:
/// `t2` is made orthogonal to `t1` (over all tensors), then given a cosine
/// of 1e-4 with it.
fn nearly_orthogonal(t1: Vec<Vec<f32>>, t2: Vec<Vec<f32>>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let flat = |t: &[Vec<f32>]| -> Vec<f64> { t.iter().flatten().map(|v| *v as f64).collect() };
    let (x, mut y) = (flat(&t1), flat(&t2));
    let dot = |p: &[f64], q: &[f64]| -> f64 { p.iter().zip(q).map(|(a, b)| a * b).sum() };
    let along = dot(&y, &x) / dot(&x, &x);
    y.iter_mut().zip(&x).for_each(|(v, u)| *v -= along * u);
    let scale = 1e-4 * (dot(&y, &y) / dot(&x, &x)).sqrt();
    y.iter_mut().zip(&x).for_each(|(v, u)| *v += scale * u);
    let mut at = 0;
    let y = t2
        .iter()
        .map(|tensor| {
            at += tensor.len();
            y[at - tensor.len()..at].iter().map(|v| *v as f32).collect()
        })
        .collect();
    (t1, y)
}

fn write(path: &Path, shapes: &[(&str, Vec<usize>)], values: &[Vec<f32>], dtype: Dtype) {
    let encoded: Vec<Vec<u8>> = values
        .iter()
        .map(|v| match dtype {
            Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
            Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let views: Vec<(String, TensorView)> = shapes
        .iter()
        .zip(&encoded)
        .map(|((n, s), b)| (n.to_string(), TensorView::new(dtype, s.clone(), b).expect("view")))
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write checkpoint");
}

/// Lowers `program` (in the checkpoint folder) and runs both executors.
fn both(program: &str) -> (Vec<Option<f64>>, Vec<Option<f64>>, tv::exec::Stats) {
    both_on(program, tv::exec::Backend::Native)
}

fn both_on(program: &str, backend: tv::exec::Backend) -> (Vec<Option<f64>>, Vec<Option<f64>>, tv::exec::Stats) {
    let path = program_path(program);
    std::fs::write(&path, program).expect("write program");
    let mut sources = Sources::default();
    let plan = match tv::check(&mut sources, &path, &tv::Overrides::default()) {
        Ok(plan) => plan,
        Err(d) => panic!("{}\n{program}", tv::diag::render_plain(&d, &sources, 100)),
    };
    let options = tv::exec::ExecOptions {
        backend,
        ..tv::exec::ExecOptions::default()
    };
    let fast = tv::exec::execute(&plan, &options, None).expect("execute");
    (fast.measured, tv::exec::reference::measure(&plan), fast.stats)
}

fn hash(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf29ce484222325, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

fn assert_close(fast: &[Option<f64>], reference: &[Option<f64>], program: &str) {
    assert_eq!(fast.len(), reference.len());
    for (i, (f, r)) in fast.iter().zip(reference).enumerate() {
        let (Some(f), Some(r)) = (f, r) else {
            assert_eq!(
                f.is_some(),
                r.is_some(),
                "measure {i} computed by one executor only\n{program}"
            );
            continue;
        };
        if !r.is_finite() {
            // Dividing by a zero norm: which of NaN and infinity comes out
            // depends on the (equally valid) order of evaluation.
            assert!(!f.is_finite(), "measure {i}: fast {f} vs reference {r}\n{program}");
            continue;
        }
        let tolerance = 1e-9 * r.abs().max(1e-300);
        assert!(
            (f - r).abs() <= tolerance,
            "measure {i}: fast {f} vs reference {r}\n{program}"
        );
    }
}

const NAMES: [&str; 11] = ["a", "b", "c", "d", "near", "nearer", "h", "g", "o", "o1", "o2"];
/// The checkpoints that are not near-duplicates of another.
const DISTINCT: [&str; 9] = ["a", "b", "c", "d", "h", "g", "o", "o1", "o2"];
/// Task vectors of one base, nearly orthogonal (cosine 1e-4), as leaves.
const TASK_VECTORS: [&str; 2] = ["(o1 - o)", "(o2 - o)"];

/// A random expression over the checkpoints and the sweep variable: linear,
/// or with a merge primitive inside (an atom computed per tensor).
fn expression(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => prop::sample::select(names).prop_map(String::from),
        1 => prop::sample::select(&TASK_VECTORS[..]).prop_map(String::from),
    ];
    let coef = prop_oneof![
        (-3.0f64..3.0).prop_map(|c| format!("{c:.3}")),
        Just("x".to_string()),
        Just("(1 - x)".to_string()),
    ];
    let term = (coef, leaf.clone()).prop_map(|(c, l)| format!("{c} * {l}"));
    let base = prop::collection::vec(term, 1..4).prop_map(|terms| terms.join(" + "));
    (base, 0..8usize, leaf).prop_map(|(e, wrap, l)| match wrap {
        0 => format!("only({e}, \"w\")"),
        1 => format!("except({e}, \"s\") - {l}"),
        2 => format!("({e}) - {l}"),
        3 => format!("trim({e}, 0.4, 1) + x * {l}"),
        4 => format!("slerp_tensors({e}, {l}, 0.3) - {l}"),
        5 => format!("disjoint_mean([{e}, {l}, except({l}, \"w\")], [1, 0.5, 2])"),
        6 => format!("{l} - drop(only({e}, \"s\"), 0.7, 1, 3)"),
        _ => e,
    })
}

/// A measurement, and for a dot product the scale `||p|| ||q||` that its
/// absolute error is promised against (see `exec::precision`).
fn measurement(names: &'static [&'static str]) -> impl Strategy<Value = (String, Option<String>)> {
    (0..5usize, expression(names), expression(names)).prop_map(|(kind, p, q)| match kind {
        0 => (format!("dot({p}, {q})"), Some(format!("norm({p}) * norm({q})"))),
        1 => (format!("norm({p})"), None),
        2 => (format!("cosine({p}, {q})"), Some("1".to_string())),
        3 => (format!("distance({p}, {q})"), None),
        _ => (format!("norm(({p}) / norm({q}))"), None),
    })
}

/// Evals `{prefix}{i}`, each with its scale column `{prefix}{i}_scale`.
fn evals(prefix: &str, measurements: &[(String, Option<String>)], indent: &str) -> String {
    let mut text = String::new();
    for (i, (e, scale)) in measurements.iter().enumerate() {
        text.push_str(&format!("{indent}eval {prefix}{i} = {e}\n"));
        if let Some(scale) = scale {
            text.push_str(&format!("{indent}eval {prefix}{i}_scale = {scale}\n"));
        }
    }
    text
}

/// A sweep measuring expressions over the checkpoints `names`, sometimes
/// with a nested sweep whose coefficients use both variables.
fn program(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    let outer = prop::collection::vec(measurement(names), 1..4);
    let inner = prop::collection::vec(measurement(names), 0..3);
    (outer, inner, 1..20usize).prop_map(|(outer, inner, points)| {
        let mut text: String = NAMES
            .iter()
            .map(|n| format!("let {n} = load(\"{n}.safetensors\")\n"))
            .collect();
        text.push_str(&format!("sweep x in 0..{points} {{\n"));
        text.push_str(&evals("m", &outer, "    "));
        if !inner.is_empty() {
            let inner: Vec<(String, Option<String>)> = inner
                .into_iter()
                .map(|(e, s)| {
                    (
                        e.replace("(1 - x)", "(y - x)"),
                        s.map(|s| s.replace("(1 - x)", "(y - x)")),
                    )
                })
                .collect();
            text.push_str("    sweep y in [0, 0.5, -1] {\n");
            text.push_str(&evals("n", &inner, "        "));
            text.push_str("    }\n");
        }
        text.push_str("}\n");
        text
    })
}

/// A file for `program`, one per call: two tests may check the same
/// program at once, and one must not read it while the other rewrites it.
fn program_path(program: &str) -> std::path::PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    checkpoints().join(format!("program-{:x}-{call}.tv", hash(program)))
}

/// The report of `program` from the fast executor, its sweeps lowered
/// once where they can be, and from the reference executor, every sweep
/// point elaborated.
fn reports(program: &str, backend: tv::exec::Backend) -> (String, String) {
    let path = program_path(program);
    std::fs::write(&path, program).expect("write program");
    let mut sources = Sources::default();
    let plan = |sources: &mut Sources, elaborate_sweeps| {
        let overrides = tv::Overrides {
            elaborate_sweeps,
            ..tv::Overrides::default()
        };
        match tv::check(sources, &path, &overrides) {
            Ok(plan) => plan,
            Err(d) => panic!("{}\n{program}", tv::diag::render_plain(&d, sources, 100)),
        }
    };
    let (fast_plan, elaborated) = (plan(&mut sources, false), plan(&mut sources, true));
    let options = tv::exec::ExecOptions {
        backend,
        ..tv::exec::ExecOptions::default()
    };
    let outcome = tv::exec::execute(&fast_plan, &options, None).expect("execute");
    let mut fast = Vec::new();
    tv::write_report(&fast_plan, &outcome, &mut fast).expect("report");
    let measured = tv::exec::reference::measure(&elaborated);
    let known = |m: tv::graph::MeasureId| measured.get(m.0 as usize).copied().flatten();
    let value = |s| elaborated.graph.scalars.value(s, &known);
    let reference = elaborated.table.to_csv(&value, &mut |_, _, _| Ok(())).expect("report");
    (String::from_utf8(fast).expect("utf-8"), reference)
}

/// Compares two reports cell by cell: within 3e-9 relative, plus for a
/// column with a `_scale` column beside it 3e-12 of that scale (dot
/// products of nearly orthogonal vectors are promised an absolute error).
fn assert_reports_close(fast: &str, reference: &str, program: &str) {
    let (fast, reference): (Vec<&str>, Vec<&str>) = (fast.lines().collect(), reference.lines().collect());
    assert_eq!(fast.len(), reference.len(), "row counts differ\n{program}");
    assert_eq!(fast[0], reference[0], "headers differ\n{program}");
    let header: Vec<&str> = reference[0].split(',').collect();
    for (f, r) in fast.iter().zip(&reference).skip(1) {
        let (f, r): (Vec<&str>, Vec<&str>) = (f.split(',').collect(), r.split(',').collect());
        for (column, (x, y)) in header.iter().zip(f.iter().zip(&r)) {
            if x == y {
                continue;
            }
            let (x, y): (f64, f64) = match (x.parse(), y.parse()) {
                (Ok(x), Ok(y)) => (x, y),
                _ => panic!("column {column}: fast {x:?} vs reference {y:?}\n{program}"),
            };
            if !y.is_finite() {
                // Dividing by a zero norm: which of NaN and infinity comes out
                // depends on the (equally valid) order of evaluation.
                assert!(!x.is_finite(), "column {column}: fast {x} vs reference {y}\n{program}");
                continue;
            }
            let scale_column = header.iter().position(|h| *h == format!("{column}_scale"));
            let scale = scale_column.and_then(|i| r[i].parse::<f64>().ok()).unwrap_or(0.0);
            let tolerance = 3e-9 * y.abs() + 3e-12 * scale.abs();
            assert!(
                (x - y).abs() <= tolerance,
                "column {column}: fast {x} vs reference {y}\n{program}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn fast_executor_equals_the_reference(text in program(&NAMES)) {
        let (fast, reference) = reports(&text, tv::exec::Backend::Native);
        assert_reports_close(&fast, &reference, &text);
    }

    /// The candle backend (here on the CPU) does the same work as matrix
    /// products; away from near-duplicate models, where only the native
    /// kernels sum exactly, it agrees with the reference too.
    #[test]
    fn candle_backend_equals_the_reference(text in program(&DISTINCT)) {
        let (fast, reference) = reports(&text, tv::exec::Backend::Candle(candle_core::Device::Cpu));
        assert_reports_close(&fast, &reference, &text);
    }
}

/// Distances between nearly equal models cancel catastrophically in a plain
/// Gram matrix; the differences basis or a direct re-measurement keeps them
/// within 1e-9 of the reference.
#[test]
fn near_duplicates_keep_their_precision() {
    let mut text: String = NAMES
        .iter()
        .map(|n| format!("let {n} = load(\"{n}.safetensors\")\n"))
        .collect();
    text.push_str("eval d1 = distance(a, near)\neval d2 = distance(near, nearer)\neval d3 = distance(nearer, a)\n");
    text.push_str("eval c1 = cosine(near - a, nearer - a)\neval n1 = norm(0.5 * near + 0.5 * nearer - a)\n");
    let (fast, reference, stats) = both(&text);
    assert_close(&fast, &reference, &text);
    // distance(near, nearer) cancels on any basis.
    assert!(
        stats.remeasured > 0,
        "expected a cancelling Gram result to be re-measured: {stats:?}"
    );
}

/// A 50-point sweep reads each input tensor once: the bytes handed out by
/// the checkpoints equal the float bytes of the inputs, whatever the points.
#[test]
fn a_sweep_reads_each_input_once() {
    let program = |points: usize| {
        format!(
            "let a = load(\"a.safetensors\")\nlet b = load(\"b.safetensors\")\nlet h = load(\"h.safetensors\")\nsweep x in 0..{points} {{\n    eval n = norm(x * a + (1 - x) * b - h)\n    eval c = cosine(a - h, x * b)\n}}\n"
        )
    };
    let input_bytes: u64 = ["a", "b", "h"]
        .iter()
        .map(|n| {
            let bytes = std::fs::read(checkpoints().join(format!("{n}.safetensors"))).expect("read");
            let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("parse").tensors();
            tensors.iter().map(|(_, v)| v.data().len() as u64).sum::<u64>()
        })
        .sum();
    for points in [1, 50] {
        let (_, _, stats) = both(&program(points));
        assert_eq!(stats.bytes_read, input_bytes, "{points} points");
        assert_eq!(stats.passes, 1, "{points} points");
    }
}

/// A save computed by the candle backend holds the same values as one
/// computed by the native kernels (within one f32 rounding).
#[test]
fn candle_backend_saves_what_the_native_kernels_save() {
    let read = |backend: tv::exec::Backend, out: &str| -> Vec<f32> {
        let text = format!(
            "let a = load(\"a.safetensors\")\nlet h = load(\"h.safetensors\")\nsave 0.3 * a - 0.7 * h to \"{out}\"\n"
        );
        let path = checkpoints().join(format!("save-{out}.tv"));
        std::fs::write(&path, text).expect("write program");
        let mut sources = Sources::default();
        let plan = tv::check(&mut sources, &path, &tv::Overrides::default()).expect("check");
        let options = tv::exec::ExecOptions {
            backend,
            ..Default::default()
        };
        let outcome = tv::exec::execute(&plan, &options, None).expect("execute");
        outcome.outputs.commit(|| Ok(())).expect("commit");
        let bytes = std::fs::read(checkpoints().join(out)).expect("read save");
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("parse save");
        let mut values = Vec::new();
        let mut tensors = file.tensors();
        tensors.sort_by(|x, y| x.0.cmp(&y.0));
        for (_, view) in tensors {
            values.extend(
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap())),
            );
        }
        values
    };
    let native = read(tv::exec::Backend::Native, "native.safetensors");
    let candle = read(
        tv::exec::Backend::Candle(candle_core::Device::Cpu),
        "candle.safetensors",
    );
    assert_eq!(native.len(), candle.len());
    assert!(!native.is_empty());
    for (n, c) in native.iter().zip(&candle) {
        assert!((n - c).abs() <= f32::EPSILON * n.abs(), "{n} vs {c}");
    }
}

/// Writes a checkpoint holding one tensor, `t`, of 4 elements.
fn write_t(path: &Path, dtype: Dtype, bytes: &[u8]) {
    let view = TensorView::new(dtype, vec![4], bytes).expect("view");
    safetensors::serialize_to_file([("t", view)], None, path).expect("write checkpoint");
}

fn le_bytes<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|v| to(*v)).collect()
}

/// `program`, checked in a fresh folder holding `files`.
fn plan_in(tag: &str, files: &[(&str, Dtype, Vec<u8>)], program: &str) -> (PathBuf, tv::lower::Plan) {
    let dir = std::env::temp_dir().join(format!("tv-engine-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test directory");
    for (name, dtype, bytes) in files {
        write_t(&dir.join(name), *dtype, bytes);
    }
    let path = dir.join("program.tv");
    std::fs::write(&path, program).expect("write program");
    let mut sources = Sources::default();
    match tv::check(&mut sources, &path, &tv::Overrides::default()) {
        Ok(plan) => (dir, plan),
        Err(d) => panic!("{}\n{program}", tv::diag::render_plain(&d, &sources, 100)),
    }
}

/// Executes `plan` (writing its saves) on `backend`.
fn execute_on(plan: &tv::lower::Plan, backend: tv::exec::Backend) -> tv::exec::Outcome {
    let options = tv::exec::ExecOptions {
        backend,
        ..Default::default()
    };
    let mut outcome = tv::exec::execute(plan, &options, None).expect("execute");
    std::mem::take(&mut outcome.outputs).commit(|| Ok(())).expect("commit");
    outcome
}

/// The report's value in column `name`, from `measured`.
fn column(plan: &tv::lower::Plan, measured: &[Option<f64>], name: &str) -> f64 {
    let known = |m: tv::graph::MeasureId| measured.get(m.0 as usize).copied().flatten();
    let csv = plan
        .table
        .to_csv(&|s| plan.graph.scalars.value(s, &known), &mut |_, _, _| Ok(()))
        .expect("csv");
    let mut lines = csv.lines();
    let header = lines.next().expect("header").split(',');
    let row = lines.next().expect("row").split(',');
    let (_, value) = header.zip(row).find(|(h, _)| *h == name).expect("column");
    value.parse().expect("number")
}

fn saved<const N: usize, T>(path: &Path, from: fn([u8; N]) -> T) -> Vec<T> {
    let bytes = std::fs::read(path).expect("read save");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("parse save");
    let view = file.tensor("t").expect("t");
    view.data()
        .chunks_exact(N)
        .map(|b| from(b.try_into().unwrap()))
        .collect()
}

/// A float tensor and an integer one of the same name and shape are
/// different families: the integer checkpoint, loaded first, must not make
/// the float one look like data to carry.
#[test]
fn float_and_integer_tensors_of_one_name_stay_apart() {
    let floats = [0.5f32, -1.25, 3.0, 0.1];
    let files = [
        (
            "int.safetensors",
            Dtype::I64,
            le_bytes(&[1i64, 2, 3, 4], i64::to_le_bytes),
        ),
        ("f.safetensors", Dtype::F32, le_bytes(&floats, f32::to_le_bytes)),
    ];
    let program = "let i = load(\"int.safetensors\")\nlet f = load(\"f.safetensors\")\n\
                   save i to \"copy.safetensors\"\neval n = norm(f)\nsave 2 * f to \"twice.safetensors\"\n";
    let (dir, plan) = plan_in("int-float", &files, program);
    let n = column(&plan, &execute_on(&plan, tv::exec::Backend::Native).measured, "n");
    let norm = floats.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    assert!((n - norm).abs() <= 1e-12 * norm, "{n} vs {norm}");
    let twice: Vec<f32> = floats.iter().map(|v| 2.0 * v).collect();
    assert_eq!(saved(&dir.join("twice.safetensors"), f32::from_le_bytes), twice);
}

/// f64 checkpoints keep every bit in the native kernels, the reference and
/// the candle backend, and in f64 saves; a direct re-measurement of
/// cancelling terms stays exact for values that are not f32.
#[test]
fn f64_inputs_keep_every_bit() {
    let h = [0.7f64, -0.2, 0.3, 1.1];
    let f = [0.1f64, 1.0 / 3.0, -2.0 / 7.0, 1e-3 + 1e-12];
    let g = f.map(|v| v + v * 1e-10);
    let files = [
        ("h.safetensors", Dtype::F64, le_bytes(&h, f64::to_le_bytes)),
        ("f.safetensors", Dtype::F64, le_bytes(&f, f64::to_le_bytes)),
        ("g.safetensors", Dtype::F64, le_bytes(&g, f64::to_le_bytes)),
    ];
    let program = "let h = load(\"h.safetensors\")\nlet f = load(\"f.safetensors\")\nlet g = load(\"g.safetensors\")\n\
                   eval e = norm(h)\neval n = norm(f)\neval d = norm(f / 3 - g / 3)\nsave 3 * f to \"x.safetensors\"\n";
    let (dir, plan) = plan_in("f64", &files, program);
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let n = norm(&f);
    // f - g is exact (Sterbenz), so this is within a few roundings.
    let d = norm(&f.iter().zip(&g).map(|(x, y)| (x - y) / 3.0).collect::<Vec<_>>());
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() <= 1e-12 * want, "{what}: {got} vs {want}");
    };
    let native = execute_on(&plan, tv::exec::Backend::Native);
    // With f as the reference atom, f/3 - g/3 is one basis element, (g - f)
    // computed exactly: the Gram result is accurate in one pass.
    assert_eq!(
        (native.stats.passes, native.stats.remeasured),
        (1, 0),
        "{:?}",
        native.stats
    );
    let reference = tv::exec::reference::measure(&plan);
    for (measured, executor) in [(&native.measured, "native"), (&reference, "reference")] {
        close(column(&plan, measured, "n"), n, executor);
        close(column(&plan, measured, "d"), d, executor);
    }
    // The save goes through the differences basis (3h + 3(f - h)), whose
    // f64 differences round: a few f64 ulps, far below one f32 rounding.
    let saved_close = |executor: &str| {
        let values = saved(&dir.join("x.safetensors"), f64::from_le_bytes);
        for (got, x) in values.iter().zip(f) {
            assert!((got - 3.0 * x).abs() <= 1e-14, "{executor}: {got} vs {}", 3.0 * x);
        }
    };
    saved_close("native");
    // Candle sums without compensation, so only the norm is compared.
    let candle = execute_on(&plan, tv::exec::Backend::Candle(candle_core::Device::Cpu));
    close(column(&plan, &candle.measured, "n"), n, "candle");
    saved_close("candle");
}

/// A level with only model measurements streams nothing: no pass is run.
#[test]
fn model_measurements_alone_run_no_pass() {
    let dir = std::env::temp_dir().join(format!("tv-engine-models-{}", std::process::id()));
    let model = dir.join("model");
    std::fs::create_dir_all(&model).expect("test directory");
    let weight = le_bytes(&[1.0f32, 0.0, 0.0, 1.0], f32::to_le_bytes);
    let bias = le_bytes(&[0.0f32, 0.0], f32::to_le_bytes);
    let views = [
        (
            "layers.0.weight",
            TensorView::new(Dtype::F32, vec![2, 2], &weight).expect("view"),
        ),
        (
            "layers.0.bias",
            TensorView::new(Dtype::F32, vec![2], &bias).expect("view"),
        ),
    ];
    safetensors::serialize_to_file(views, None, &model.join("model.safetensors")).expect("write model");
    let config = r#"{"architecture": "mlp", "layers": [2, 2], "activation": "relu"}"#;
    std::fs::write(model.join("config.json"), config).expect("write config");
    std::fs::write(dir.join("data.csv"), "label,a,b\n0,1,0\n1,0,1\n1,1,0\n").expect("write data");
    let path = dir.join("program.tv");
    std::fs::write(&path, "let m = load(\"model\")\neval acc = accuracy(m, \"data.csv\")\n").expect("write program");
    let plan = tv::check(&mut Sources::default(), &path, &tv::Overrides::default()).expect("check");
    let outcome = execute_on(&plan, tv::exec::Backend::Native);
    assert_eq!(column(&plan, &outcome.measured, "acc"), 2.0 / 3.0);
    assert_eq!((outcome.stats.passes, outcome.stats.model_measures), (0, 1));
    assert_eq!(tv::exec::summarize(&plan, 1).passes, 0);
}
