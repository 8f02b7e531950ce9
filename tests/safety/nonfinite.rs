//! Non-finite values stay where they are: one checkpoint's inf or NaN never
//! reaches a measurement or a save that does not use it, whatever the load
//! order or the path (Gram or direct) the engine takes, and the user is
//! told where such values are.

use super::common::{self, Raw};
use safetensors::Dtype;
use std::path::Path;

fn f32_tensor(name: &str, values: &[f32]) -> Raw {
    Raw {
        name: name.into(),
        dtype: Dtype::F32,
        shape: vec![values.len()],
        bytes: common::encode(Dtype::F32, values),
    }
}

/// Two tensors, so a poisoned one sits beside a clean one in a checkpoint.
fn write(dir: &Path, file: &str, first: &[f32], second: &[f32]) {
    common::write_file(
        &dir.join(file),
        &[f32_tensor("a.weight", first), f32_tensor("b.weight", second)],
    );
}

/// Runs `program` in `dir`; returns the report's one row by column, and stderr.
fn run(dir: &Path, program: &str, extra: &[&str]) -> (Vec<(String, f64)>, String) {
    std::fs::write(dir.join("exp.tv"), program).unwrap();
    let mut args = vec!["run", "exp.tv"];
    args.extend_from_slice(extra);
    let output = common::tv_command(dir, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let csv = String::from_utf8(output.stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<String> = lines.next().unwrap_or_default().split(',').map(String::from).collect();
    let row: Vec<f64> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    (header.into_iter().zip(row).collect(), stderr)
}

fn column(row: &[(String, f64)], name: &str) -> f64 {
    row.iter().find(|(n, _)| n == name).unwrap().1
}

fn norm(values: &[&[f32]]) -> f64 {
    values
        .iter()
        .flat_map(|v| v.iter())
        .map(|v| (*v as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

const CLEAN_A: [f32; 4] = [0.5, -1.25, 2.0, 0.75];
const CLEAN_B: [f32; 3] = [3.0, -0.5, 1.5];

#[test]
fn a_poisoned_checkpoint_does_not_reach_a_clean_one_in_either_load_order() {
    for poison in [f32::INFINITY, f32::NAN] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bad.safetensors", &[1.0, poison, 3.0, 4.0], &CLEAN_B);
        write(dir.path(), "good.safetensors", &CLEAN_A, &CLEAN_B);
        let expected = norm(&[&CLEAN_A, &CLEAN_B]);
        for (first, second) in [("bad", "good"), ("good", "bad")] {
            let program = format!(
                "let {first} = load(\"{first}.safetensors\")\nlet {second} = load(\"{second}.safetensors\")\n\
                 eval nbad = norm(bad)\neval ngood = norm(good)\neval c = cosine(good, 2 * good)\n\
                 eval d = distance(good, 0.5 * good)\n"
            );
            let (row, stderr) = run(dir.path(), &program, &[]);
            assert!((column(&row, "ngood") - expected).abs() <= 1e-12 * expected, "{row:?}");
            assert!((column(&row, "c") - 1.0).abs() <= 1e-12, "{row:?}");
            assert!(
                (column(&row, "d") - expected / 2.0).abs() <= 1e-12 * expected,
                "{row:?}"
            );
            let bad = column(&row, "nbad");
            assert!(
                if poison.is_nan() {
                    bad.is_nan()
                } else {
                    bad == f64::INFINITY
                },
                "{row:?}"
            );
            assert_eq!(stderr.matches("tv: warning: checkpoint").count(), 1, "{stderr}");
            assert!(
                stderr.contains("bad.safetensors: tensor \"a.weight\" holds 1 inf or NaN"),
                "{stderr}"
            );
        }
    }
}

/// Nearly orthogonal fine-tunes of one base, measured over a sweep: the
/// Gram path, with the poisoned checkpoint as the family's reference.
#[test]
fn the_gram_path_over_a_sweep_keeps_clean_results_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = tv::synth::Rng::new(7);
    let base: Vec<f32> = rng.normals(64, 1.0);
    let tune =
        |rng: &mut tv::synth::Rng| -> Vec<f32> { base.iter().zip(rng.normals(64, 0.01)).map(|(b, d)| b + d).collect() };
    let (ft1, ft2) = (tune(&mut rng), tune(&mut rng));
    let mut poisoned = base.clone();
    poisoned[5] = f32::INFINITY;
    for (name, values) in [("a0", &poisoned), ("base", &base), ("ft1", &ft1), ("ft2", &ft2)] {
        common::write_file(
            &dir.path().join(format!("{name}.safetensors")),
            &[f32_tensor("w", values)],
        );
    }
    let program = "let p = load(\"a0.safetensors\")\nlet base = load(\"base.safetensors\")\n\
                   let t1 = load(\"ft1.safetensors\") - base\nlet t2 = load(\"ft2.safetensors\") - base\n\
                   eval np = norm(p)\nsweep a in [0.5, 1.0, 2.0] { eval n = norm(base + a * t1 + t2) }\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let output = common::tv_command(dir.path(), &["run", "exp.tv"]);
    let csv = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for (line, a) in csv.lines().skip(2).zip([0.5, 1.0, 2.0]) {
        let expected: f64 = (0..64)
            .map(|i| {
                let (b, f1, f2) = (base[i] as f64, ft1[i] as f64, ft2[i] as f64);
                (b + a * (f1 - b) + (f2 - b)).powi(2)
            })
            .sum::<f64>()
            .sqrt();
        let got: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((got - expected).abs() <= 1e-9 * expected, "{csv}");
    }
}

#[test]
fn saves_beside_a_poisoned_checkpoint_keep_their_values() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.safetensors", &[1.0, f32::INFINITY, 3.0, 4.0], &CLEAN_B);
    write(dir.path(), "good.safetensors", &CLEAN_A, &CLEAN_B);
    let program = "let bad = load(\"bad.safetensors\")\nlet good = load(\"good.safetensors\")\n\
                   eval n = norm(bad)\neval c = cosine(bad, good)\nsave 2 * good to \"out.safetensors\"\n";
    run(dir.path(), program, &[]);
    let saved = common::read_file(&dir.path().join("out.safetensors"));
    let expected: Vec<f64> = CLEAN_A.iter().map(|v| 2.0 * *v as f64).collect();
    assert_eq!(saved["a.weight"].values().unwrap(), expected);
}

#[test]
fn divisions_by_a_measured_zero_and_half_precision_overflow_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.safetensors", &CLEAN_A, &CLEAN_B);
    let program = "let m = load(\"m.safetensors\")\nlet z = 0.5 * m - 0.5 * m\n\
                   eval r = norm(m) / norm(z)\nsave 40000 * m to \"big.safetensors\"\n";
    let (row, stderr) = run(dir.path(), program, &["--dtype", "f16"]);
    assert_eq!(column(&row, "r"), f64::INFINITY);
    assert!(stderr.contains("exp.tv:3:10: division by a measured zero"), "{stderr}");
    assert!(
        stderr.contains("big.safetensors: tensor \"b.weight\"") && stderr.contains("overflow f16"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&std::fs::read(dir.path().join("exp.tv")).unwrap()).contains("warning"));
}

/// In a sweep evaluated by formulas the divisor is measured per point: a
/// zero at one point is named as in an elaborated sweep.
#[test]
fn divisions_by_zero_at_a_sweep_point_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.safetensors", &CLEAN_A, &CLEAN_B);
    let program = "let m = load(\"m.safetensors\")\nsweep x in [1, 0] {\n    eval r = norm(m) / norm(x * m)\n}\n";
    let (_, stderr) = run(dir.path(), program, &[]);
    assert!(stderr.contains("exp.tv:3:14: division by a measured zero"), "{stderr}");
}

/// The same in a sweep evaluated by formulas: points whose coefficient on
/// the poisoned checkpoint is 0 are measured as if it were not there,
/// whichever atom is the reference of the Gram basis.
#[test]
fn a_poisoned_checkpoint_does_not_reach_sweep_points_that_do_not_use_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.safetensors", &[1.0, f32::INFINITY, 3.0, 4.0], &CLEAN_B);
    write(dir.path(), "good.safetensors", &CLEAN_A, &CLEAN_B);
    for (first, second) in [("bad", "good"), ("good", "bad")] {
        let program = format!(
            "let {first} = load(\"{first}.safetensors\")\nlet {second} = load(\"{second}.safetensors\")\n\
             sweep x in [0, 1] {{\n    eval n = norm(x * bad + good)\n    eval c = cosine(x * bad + good, good)\n}}\n"
        );
        std::fs::write(dir.path().join("exp.tv"), program).unwrap();
        let output = common::tv_command(dir.path(), &["run", "exp.tv"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let csv = String::from_utf8(output.stdout).unwrap();
        let rows: Vec<Vec<f64>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect();
        let expected = norm(&[&CLEAN_A, &CLEAN_B]);
        assert!((rows[0][1] - expected).abs() <= 1e-12 * expected, "{csv}");
        assert!((rows[0][2] - 1.0).abs() <= 1e-12, "{csv}");
        assert!(!rows[1][1].is_finite() && !rows[1][2].is_finite(), "{csv}");
    }
}
