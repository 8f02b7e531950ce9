//! The engine on inputs shaped like real task vectors: a base and
//! independent fine-tunes whose task vectors are about 1% of the weights'
//! norm and nearly orthogonal (cosine about 1e-4), in f32 and bf16, and
//! sweeps whose grids include 0. Every figure is checked against plain f64
//! sums over the decoded files; every run must make exactly one pass.

#[path = "common/mod.rs"]
mod common;

use common::{decode, encode, read_file, write_file, Raw};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::Path;

/// Elements of the fixture models (two tensors).
const SHAPES: [(&str, [usize; 2]); 2] = [("layers.0.weight", [64, 96]), ("layers.1.weight", [96, 40])];

/// Writes `base` and fine-tunes `a`, `b`, `c` in `dtype`: the task vectors
/// are random, made orthogonal to each other, then given a cosine of 1e-4
/// with the one before.
fn fixture(dir: &Path, dtype: Dtype) {
    let mut rng = tv::synth::Rng::new(11);
    let n: usize = SHAPES.iter().map(|(_, s)| s[0] * s[1]).sum();
    let base: Vec<f64> = rng.normals(n, 0.05).iter().map(|v| *v as f64).collect();
    let mut taus: Vec<Vec<f64>> = Vec::new();
    for _ in 0..3 {
        let mut t: Vec<f64> = rng.normals(n, 0.0005).iter().map(|v| *v as f64).collect();
        for earlier in &taus {
            let along = dot(&t, earlier) / dot(earlier, earlier);
            t.iter_mut().zip(earlier).for_each(|(x, e)| *x -= along * e);
        }
        if let Some(last) = taus.last() {
            let scale = 1e-4 * (dot(&t, &t) / dot(last, last)).sqrt();
            t.iter_mut().zip(last).for_each(|(x, e)| *x += scale * e);
        }
        taus.push(t);
    }
    let models = [
        ("base", vec![0.0; n]),
        ("a", taus[0].clone()),
        ("b", taus[1].clone()),
        ("c", taus[2].clone()),
    ];
    for (name, tau) in models {
        let values: Vec<f32> = base.iter().zip(&tau).map(|(x, t)| (x + t) as f32).collect();
        let mut at = 0;
        let tensors: Vec<Raw> = SHAPES
            .iter()
            .map(|(tensor, shape)| {
                let len = shape[0] * shape[1];
                at += len;
                Raw {
                    name: tensor.to_string(),
                    dtype,
                    shape: shape.to_vec(),
                    bytes: encode(dtype, &values[at - len..at]),
                }
            })
            .collect();
        write_file(&dir.join(format!("{name}.safetensors")), &tensors);
    }
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(p, q)| p * q).sum()
}

/// Each model of the fixture as one f64 vector, decoded independently.
fn vectors(dir: &Path) -> BTreeMap<String, Vec<f64>> {
    ["base", "a", "b", "c"]
        .iter()
        .map(|name| {
            let tensors = read_file(&dir.join(format!("{name}.safetensors")));
            let values = SHAPES
                .iter()
                .flat_map(|(t, _)| decode(tensors[*t].dtype, &tensors[*t].bytes).expect("float"))
                .collect();
            (name.to_string(), values)
        })
        .collect()
}

const LOADS: &str = "let base = load(\"base.safetensors\")\nlet ta = load(\"a.safetensors\") - base\nlet tb = load(\"b.safetensors\") - base\nlet tc = load(\"c.safetensors\") - base\n";

/// Runs `program` and returns its report's rows (header first) and stats.
fn run(dir: &Path, program: &str, elaborate_sweeps: bool) -> (Vec<Vec<String>>, tv::exec::Stats) {
    let path = dir.join("exp.tv");
    std::fs::write(&path, format!("{LOADS}{program}")).unwrap();
    let overrides = tv::Overrides {
        elaborate_sweeps,
        ..tv::Overrides::default()
    };
    let mut sources = tv::diag::Sources::default();
    let output = match tv::run(&mut sources, &path, &overrides, false) {
        Ok(output) => output,
        Err(d) => panic!("{}", tv::diag::render_plain(&d, &sources, 100)),
    };
    let rows = output
        .csv()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (rows, output.stats)
}

/// `x` within 1e-9 relative of `want`, or 1e-12 of `scale` (the promise
/// for dot products of nearly orthogonal vectors).
fn close(x: &str, want: f64, scale: f64) {
    let x: f64 = x.parse().unwrap_or_else(|_| panic!("not a number: {x}"));
    assert!(
        (x - want).abs() <= 1e-9 * want.abs() + 1e-12 * scale,
        "{x} vs {want} (scale {scale})"
    );
}

fn task_vectors(v: &BTreeMap<String, Vec<f64>>) -> [Vec<f64>; 3] {
    let tau = |name: &str| v[name].iter().zip(&v["base"]).map(|(x, b)| x - b).collect();
    [tau("a"), tau("b"), tau("c")]
}

#[test]
fn nearly_orthogonal_task_vectors_take_one_pass() {
    for dtype in [Dtype::F32, Dtype::BF16] {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), dtype);
        let [ta, tb, tc] = task_vectors(&vectors(dir.path()));
        let program =
            "eval c = cosine(0.5 * tb, ta)\neval d = dot(ta, tc)\neval n = norm(ta)\neval gap = distance(ta, tb)\n";
        let (rows, stats) = run(dir.path(), program, false);
        assert_eq!((stats.passes, stats.remeasured), (1, 0), "{dtype:?}: {stats:?}");
        let norm = |x: &[f64]| dot(x, x).sqrt();
        let cosine = dot(&ta, &tb) / (norm(&ta) * norm(&tb));
        // In bf16, 1% changes are a few roundings of the base, which the
        // task vectors share: they keep a cosine of a few percent.
        let orthogonal = if dtype == Dtype::F32 { 1e-3 } else { 0.1 };
        assert!(
            cosine.abs() < orthogonal,
            "{dtype:?}: the task vectors are nearly orthogonal: {cosine}"
        );
        close(&rows[1][0], cosine, 1.0);
        close(&rows[1][1], dot(&ta, &tc), norm(&ta) * norm(&tc));
        close(&rows[1][2], norm(&ta), 0.0);
        let gap: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| x - y).collect();
        close(&rows[1][3], norm(&gap), 0.0);
    }
}

/// A grid that starts at 0: the zero vector's norm is 0 and its cosine
/// NaN at once, without a direct measurement; every other point agrees
/// with f64 sums.
#[test]
fn sweeps_from_zero_stay_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), Dtype::F32);
    let [ta, tb, tc] = task_vectors(&vectors(dir.path()));
    let program = "sweep a1 in [0, 0.5, 1], a2 in 0..=1 step 0.5 {\n    eval c = cosine(a1 * ta + a2 * tb, tc)\n    eval n = norm(a1 * ta + a2 * tb)\n}\n";
    let (rows, stats) = run(dir.path(), program, false);
    assert_eq!((stats.passes, stats.remeasured), (1, 0), "{stats:?}");
    assert_eq!(rows[0], ["a1", "a2", "c", "n"]);
    assert_eq!(rows.len(), 1 + 9);
    assert_eq!(rows[1], ["0", "0", "NaN", "0"]);
    for row in &rows[2..] {
        let (a1, a2): (f64, f64) = (row[0].parse().unwrap(), row[1].parse().unwrap());
        let x: Vec<f64> = ta.iter().zip(&tb).map(|(p, q)| a1 * p + a2 * q).collect();
        let n = dot(&x, &x).sqrt();
        close(&row[2], dot(&x, &tc) / (n * dot(&tc, &tc).sqrt()), 1.0);
        close(&row[3], n, 0.0);
    }
    // The same report as every point lowered on its own.
    let (elaborated, _) = run(dir.path(), program, true);
    assert_eq!(rows, elaborated);
}

/// Coefficients that are measurements scale atoms whose Gram entries the
/// same pass accumulates: one pass.
#[test]
fn measured_coefficients_need_no_second_pass() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), Dtype::F32);
    let [ta, tb, _] = task_vectors(&vectors(dir.path()));
    let program = "let ua = ta / norm(ta)\nlet ub = tb / norm(tb)\neval n = norm(ua + ub)\neval c = cosine(ua, ub)\n";
    let (rows, stats) = run(dir.path(), program, false);
    assert_eq!((stats.passes, stats.remeasured), (1, 0), "{stats:?}");
    let (na, nb) = (dot(&ta, &ta).sqrt(), dot(&tb, &tb).sqrt());
    let sum: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| x / na + y / nb).collect();
    close(&rows[1][0], dot(&sum, &sum).sqrt(), 0.0);
    close(&rows[1][1], dot(&ta, &tb) / (na * nb), 1.0);
}

/// Sweeps that cannot be lowered once (a string variable, a file per
/// point, a primitive of a swept coefficient) are elaborated, and sweeps
/// nested in them that can are lowered once per outer point: the report is
/// byte for byte the one of every point elaborated.
#[test]
fn mixed_sweeps_report_what_elaborated_sweeps_report() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), Dtype::F32);
    let program = "eval top = norm(ta)\n\
                   sweep name in [\"a\", \"b\"] {\n\
                   \x20   let ft = load(\"{name}.safetensors\")\n\
                   \x20   eval before = norm(ft - base)\n\
                   \x20   sweep x in [0, 0.25, 1], y in [-1, 2] {\n\
                   \x20       eval c = cosine(x * (ft - base) + y * tc, ta)\n\
                   \x20   }\n\
                   \x20   eval after = dot(ft - base, tc)\n\
                   }\n\
                   sweep d in [0.5, 1] {\n\
                   \x20   eval t = norm(trim(tb, d))\n\
                   \x20   sweep w in [0, 3] {\n\
                   \x20       eval u = norm(w * tc + d * ta)\n\
                   \x20   }\n\
                   }\n";
    let (rows, stats) = run(dir.path(), program, false);
    let (elaborated, _) = run(dir.path(), program, true);
    assert_eq!(rows, elaborated);
    // Header, the top row, per name its own row and 6 inner ones, per d
    // its own row and 2 inner ones.
    assert_eq!(rows.len(), 1 + 1 + 2 * (1 + 6) + 2 * (1 + 2));
    assert!(stats.passes <= 2, "{stats:?}");
}

/// Where the basis cannot avoid cancellation (the shared base is the
/// reference, and two models a millionth apart are compared), the Gram
/// result is measured directly at each point that needs it, and what
/// depends on it is evaluated again with the direct value.
#[test]
fn near_duplicates_are_measured_directly_per_point() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), Dtype::F32);
    let tensors = read_file(&dir.path().join("a.safetensors"));
    let mut rng = tv::synth::Rng::new(5);
    let near: Vec<Raw> = SHAPES
        .iter()
        .map(|(name, shape)| {
            let values = decode(tensors[*name].dtype, &tensors[*name].bytes).unwrap();
            let noise = rng.normals(values.len(), 1e-6);
            let moved: Vec<f32> = values.iter().zip(noise).map(|(v, e)| (*v as f32) * (1.0 + e)).collect();
            Raw {
                name: name.to_string(),
                dtype: Dtype::F32,
                shape: shape.to_vec(),
                bytes: encode(Dtype::F32, &moved),
            }
        })
        .collect();
    write_file(&dir.path().join("near.safetensors"), &near);
    let a = &vectors(dir.path())["a"];
    let near: Vec<f64> = SHAPES
        .iter()
        .flat_map(|(t, _)| {
            let loaded = read_file(&dir.path().join("near.safetensors"));
            decode(loaded[*t].dtype, &loaded[*t].bytes).unwrap()
        })
        .collect();
    let gap: Vec<f64> = a.iter().zip(&near).map(|(x, y)| x - y).collect();
    // Task vectors of the base dominate the family, so the base is the
    // reference atom.
    let program = "let a = load(\"a.safetensors\")\nlet near = load(\"near.safetensors\")\n\
                   eval e = norm(tb) + norm(tc) + norm(tb - tc) + dot(tb, tc)\n\
                   sweep x in [0, 1, 2.5] {\n\
                   \x20   eval d = norm(x * a - x * near)\n\
                   \x20   eval unit = norm((a - near) / norm(x * a - x * near))\n\
                   \x20   eval t = cosine(x * ta + tb, tc)\n\
                   }\n";
    let (rows, stats) = run(dir.path(), program, false);
    // d at two points, and unit, which depends on it, at the same two.
    assert!(stats.remeasured >= 4, "{stats:?}");
    let length = dot(&gap, &gap).sqrt();
    assert_eq!(rows[2][2], "0");
    for row in &rows[3..] {
        let x: f64 = row[0].parse().unwrap();
        close(&row[2], x * length, 0.0);
        close(&row[3], 1.0 / x, 0.0);
    }
    let (elaborated, _) = run(dir.path(), program, true);
    assert_eq!(rows, elaborated);
}

/// Weights divided by a sweep variable that takes the value 0 are an error
/// at that point, as written: the sweep is elaborated to find it.
#[test]
fn weights_divided_by_a_swept_zero_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), Dtype::F32);
    let path = dir.path().join("exp.tv");
    std::fs::write(
        &path,
        format!("{LOADS}sweep x in [1, 0] {{\n    eval n = norm(ta / x)\n}}\n"),
    )
    .unwrap();
    let mut sources = tv::diag::Sources::default();
    let diags = tv::check(&mut sources, &path, &tv::Overrides::default())
        .err()
        .expect("an error");
    let text = tv::diag::render_plain(&diags, &sources, 100);
    assert!(text.contains("weights divided by zero"), "{text}");
}
