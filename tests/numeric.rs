//! Numeric tests: tv's reports and saved checkpoints against an independent
//! f64 computation. The expectations read the fixtures back with the
//! `safetensors` crate, decode halves with `half`, and compute in plain f64
//! loops; nothing here uses tv's codec or reductions.
//!
//! Tolerances: tv computes tensor arithmetic in f32, so results are compared
//! to 1e-5 relative to the size of what was computed. For a norm that size is
//! the norm itself; for a dot product (and cosine) it is `|a| |b|` (a dot of
//! nearly orthogonal vectors has no meaningful relative error); for an
//! element of a saved linear combination `sum c_i x_i` it is `sum |c_i x_i|`.

mod common;

use common::*;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tv::lower::SaveDtype;

const TOL: f64 = 1e-5;

// ---------------------------------------------------------------------------
// The f64 reference.

/// A weights expression evaluated in f64: each float element's value and the
/// magnitude `sum |c_i x_i|` of the terms that made it; which float tensors
/// are active (not zeroed by `only`/`except`).
#[derive(Clone, Debug)]
struct W {
    val: Floats,
    mag: Floats,
}

impl W {
    fn of(model: &[Raw]) -> W {
        let val = floats(model);
        let mag = val
            .iter()
            .map(|(n, v)| (n.clone(), v.iter().map(|x| x.abs()).collect()))
            .collect();
        W { val, mag }
    }

    fn lin(terms: &[(f64, &W)]) -> W {
        let first = terms[0].1;
        let mut val = first.val.clone();
        let mut mag = first.mag.clone();
        for (name, values) in val.iter_mut() {
            let m = mag.get_mut(name).unwrap();
            for i in 0..values.len() {
                values[i] = terms.iter().map(|(c, w)| c * w.val[name][i]).sum();
                m[i] = terms.iter().map(|(c, w)| c.abs() * w.mag[name][i]).sum();
            }
        }
        W { val, mag }
    }

    /// Zeroes the tensors whose names fail `keep`.
    fn select(&self, keep: impl Fn(&str) -> bool) -> W {
        let zero = |f: &Floats| -> Floats {
            f.iter()
                .map(|(n, v)| (n.clone(), if keep(n) { v.clone() } else { vec![0.0; v.len()] }))
                .collect()
        };
        W {
            val: zero(&self.val),
            mag: zero(&self.mag),
        }
    }
}

fn dot(a: &W, b: &W) -> f64 {
    a.val
        .iter()
        .map(|(n, x)| x.iter().zip(&b.val[n]).map(|(p, q)| p * q).sum::<f64>())
        .sum()
}

fn norm(a: &W) -> f64 {
    dot(a, a).sqrt()
}

fn cosine(a: &W, b: &W) -> f64 {
    dot(a, b) / (norm(a) * norm(b))
}

fn lin2(c1: f64, a: &W, c2: f64, b: &W) -> W {
    W::lin(&[(c1, a), (c2, b)])
}

/// Float elements in the test layout whose tensor names pass `keep`.
fn numel_where(keep: impl Fn(&str) -> bool) -> f64 {
    FLOAT_SHAPES
        .iter()
        .filter(|(n, _)| keep(n))
        .map(|(_, s)| s.iter().product::<usize>())
        .sum::<usize>() as f64
}

fn assert_close(label: &str, got: f64, expected: f64, scale: f64) {
    let bound = TOL * expected.abs().max(scale);
    assert!(
        (got - expected).abs() <= bound,
        "{label}: tv gave {got}, f64 reference {expected} (|diff| {} > {bound})",
        (got - expected).abs()
    );
}

fn assert_norm(label: &str, got: f64, expected: f64) {
    assert_close(label, got, expected, expected.abs());
}

fn assert_dot(label: &str, got: f64, a: &W, b: &W) {
    assert_close(label, got, dot(a, b), norm(a) * norm(b));
}

fn assert_cosine(label: &str, got: f64, a: &W, b: &W) {
    assert_close(label, got, cosine(a, b), 1.0);
}

// ---------------------------------------------------------------------------
// Running tv.

struct Report {
    text: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Report {
    fn parse(text: &str) -> Report {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
        let header = reader.headers().unwrap().iter().map(String::from).collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        Report {
            text: text.to_string(),
            header,
            rows,
        }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn cell(&self, row: usize, name: &str) -> &str {
        &self.rows[row][self.col(name)]
    }

    fn num(&self, row: usize, name: &str) -> f64 {
        let text = self.cell(row, name);
        text.parse()
            .unwrap_or_else(|_| panic!("{name} in row {row} is not a number: {text:?}\n{}", self.text))
    }
}

fn run_with(dir: &Path, file: &str, program: &str, overrides: &tv::Overrides) -> (Report, tv::RunOutput) {
    let path = dir.join(file);
    std::fs::write(&path, program).unwrap();
    let mut sources = tv::diag::Sources::default();
    match tv::run(&mut sources, &path, overrides, false) {
        Ok(out) => (Report::parse(&out.csv()), out),
        Err(diags) => panic!("{file} failed:\n{}", tv::diag::render_plain(&diags, &sources, 100)),
    }
}

fn run(dir: &Path, file: &str, program: &str) -> Report {
    run_with(dir, file, program, &tv::Overrides::default()).0
}

/// Writes a random single-file model and returns it.
fn model_file(dir: &Path, name: &str, seed: u64, dtype: Dtype) -> Vec<Raw> {
    let model = random_model(seed, dtype, 1.0);
    write_file(&dir.join(name), &model);
    model
}

/// Checks a saved checkpoint against the reference: the same names and
/// shapes as `left` (the left-most operand, which also supplies the integer
/// tensors byte for byte), float tensors in `dtype` and within tolerance.
fn assert_saved(label: &str, saved: &BTreeMap<String, Loaded>, expected: &W, left: &[Raw], dtype: Dtype) {
    let names: Vec<&String> = saved.keys().collect();
    let mut wanted: Vec<&String> = left.iter().map(|t| &t.name).collect();
    wanted.sort();
    assert_eq!(names, wanted, "{label}: tensor names");
    for t in left {
        let got = &saved[&t.name];
        assert_eq!(got.shape, t.shape, "{label}: shape of {}", t.name);
        if !t.is_float() {
            assert_eq!(got.dtype, t.dtype, "{label}: dtype of {}", t.name);
            assert_eq!(
                got.bytes, t.bytes,
                "{label}: {} must be the left operand's bytes",
                t.name
            );
            continue;
        }
        assert_eq!(got.dtype, dtype, "{label}: dtype of {}", t.name);
        let values = got.values().unwrap();
        let (want, mag) = (&expected.val[&t.name], &expected.mag[&t.name]);
        assert_eq!(values.len(), want.len(), "{label}: {} element count", t.name);
        for i in 0..values.len() {
            let bound = TOL * mag[i];
            assert!(
                (values[i] - want[i]).abs() <= bound,
                "{label}: {}[{i}] is {}, f64 reference {} (bound {bound})",
                t.name,
                values[i],
                want[i]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Reductions.

const REDUCTIONS: &str = r#"
let a = load("a.safetensors")
let b = load("b.safetensors")
let c = load("c.safetensors")
eval cos_ab = cosine(a, b)
eval dot_ab = dot(a, b)
eval dot_ba = dot(b, a)
eval norm_a = norm(a)
eval dist_ab = distance(a, b)
eval numel_a = numel(a)
eval norm_diff = norm(a - b)
eval norm_mix = norm(0.3 * a + 0.7 * b - c)
eval dot_mix = dot(0.3 * a + 0.7 * b - c, a)
eval cos_mix = cosine(a - b, c - b)
eval numel_mix = numel(0.3 * a + 0.7 * b - c)
eval norm_neg = norm(-a)
eval dot_neg = dot(-a, b)
eval cos_neg = cosine(-a, b)
eval norm_quarter = norm(a / 4)
eval dot_quarter = dot(a / 4, c)
eval dist_quarter = distance(a / 4, -c)
eval cos_self = cosine(a, a)
eval dist_self = distance(b, b)
"#;

fn check_reductions(dtype: Dtype) {
    let dir = tempfile::tempdir().unwrap();
    let a = W::of(&model_file(dir.path(), "a.safetensors", 1, dtype));
    let b = W::of(&model_file(dir.path(), "b.safetensors", 2, dtype));
    let c = W::of(&model_file(dir.path(), "c.safetensors", 3, dtype));
    let r = run(dir.path(), "reductions.tv", REDUCTIONS);
    assert_eq!(r.rows.len(), 1, "one row of evals outside any sweep:\n{}", r.text);
    let ab = lin2(1.0, &a, -1.0, &b);
    let mix = W::lin(&[(0.3, &a), (0.7, &b), (-1.0, &c)]);
    let neg = W::lin(&[(-1.0, &a)]);
    let quarter = W::lin(&[(0.25, &a)]);
    let minus_c = W::lin(&[(-1.0, &c)]);

    assert_cosine("cos_ab", r.num(0, "cos_ab"), &a, &b);
    assert_dot("dot_ab", r.num(0, "dot_ab"), &a, &b);
    assert_dot("dot_ba", r.num(0, "dot_ba"), &b, &a);
    assert_norm("norm_a", r.num(0, "norm_a"), norm(&a));
    assert_norm("dist_ab", r.num(0, "dist_ab"), norm(&ab));
    assert_eq!(
        r.num(0, "numel_a"),
        numel_where(|_| true),
        "numel counts float elements only"
    );
    assert_norm("norm_diff", r.num(0, "norm_diff"), norm(&ab));
    assert_norm("norm_mix", r.num(0, "norm_mix"), norm(&mix));
    assert_dot("dot_mix", r.num(0, "dot_mix"), &mix, &a);
    assert_cosine("cos_mix", r.num(0, "cos_mix"), &ab, &lin2(1.0, &c, -1.0, &b));
    assert_eq!(r.num(0, "numel_mix"), numel_where(|_| true));
    assert_norm("norm_neg", r.num(0, "norm_neg"), norm(&neg));
    assert_dot("dot_neg", r.num(0, "dot_neg"), &neg, &b);
    assert_cosine("cos_neg", r.num(0, "cos_neg"), &neg, &b);
    assert_norm("norm_quarter", r.num(0, "norm_quarter"), norm(&quarter));
    assert_dot("dot_quarter", r.num(0, "dot_quarter"), &quarter, &c);
    assert_norm(
        "dist_quarter",
        r.num(0, "dist_quarter"),
        norm(&lin2(1.0, &quarter, -1.0, &minus_c)),
    );
    assert_close("cos_self", r.num(0, "cos_self"), 1.0, 1.0);
    assert_eq!(r.num(0, "dist_self"), 0.0);
}

#[test]
fn reductions_of_f32_checkpoints_match_f64_loops() {
    check_reductions(Dtype::F32);
}

#[test]
fn reductions_of_f16_checkpoints_match_f64_loops() {
    check_reductions(Dtype::F16);
}

#[test]
fn reductions_of_bf16_checkpoints_match_f64_loops() {
    check_reductions(Dtype::BF16);
}

#[test]
fn mixed_dtype_inputs_combine() {
    let dir = tempfile::tempdir().unwrap();
    let a = W::of(&model_file(dir.path(), "a.safetensors", 4, Dtype::F32));
    let b = W::of(&model_file(dir.path(), "b.safetensors", 5, Dtype::F16));
    let c = W::of(&model_file(dir.path(), "c.safetensors", 6, Dtype::BF16));
    let program = r#"
        let a = load("a.safetensors")
        let b = load("b.safetensors")
        let c = load("c.safetensors")
        eval n = norm(a - 2 * b + c)
        eval k = cosine(b, c)
    "#;
    let r = run(dir.path(), "mixed.tv", program);
    assert_norm("n", r.num(0, "n"), norm(&W::lin(&[(1.0, &a), (-2.0, &b), (1.0, &c)])));
    assert_cosine("k", r.num(0, "k"), &b, &c);
}

#[test]
fn sharded_folder_gives_the_numbers_of_the_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = random_model(11, Dtype::F32, 1.0);
    let other = random_model(12, Dtype::F32, 1.0);
    write_file(&dir.path().join("single.safetensors"), &model);
    write_sharded(&dir.path().join("sharded"), &model, 3, "sharded");
    write_file(&dir.path().join("other.safetensors"), &other);
    let (m, o) = (W::of(&model), W::of(&other));
    let evals = |w: &str| {
        format!(
            "eval norm_{w} = norm({w})\neval dot_{w} = dot({w}, o)\neval cos_{w} = cosine({w}, o)\n\
             eval dist_{w} = distance({w}, o)\neval numel_{w} = numel({w})\neval mix_{w} = norm(0.5 * {w} - 2 * o)\n"
        )
    };
    let program = format!(
        "let s = load(\"single.safetensors\")\nlet f = load(\"sharded\")\nlet o = load(\"other.safetensors\")\n{}{}\
         eval same_dist = distance(s, f)\neval same_cos = cosine(s, f)\n",
        evals("s"),
        evals("f")
    );
    let r = run(dir.path(), "sharded.tv", &program);
    for w in ["s", "f"] {
        assert_norm("norm", r.num(0, &format!("norm_{w}")), norm(&m));
        assert_dot("dot", r.num(0, &format!("dot_{w}")), &m, &o);
        assert_cosine("cos", r.num(0, &format!("cos_{w}")), &m, &o);
        assert_norm("dist", r.num(0, &format!("dist_{w}")), norm(&lin2(1.0, &m, -1.0, &o)));
        assert_eq!(r.num(0, &format!("numel_{w}")), numel_where(|_| true));
        assert_norm("mix", r.num(0, &format!("mix_{w}")), norm(&lin2(0.5, &m, -2.0, &o)));
    }
    for stat in ["norm", "dot", "cos", "dist", "numel", "mix"] {
        let (single, sharded) = (r.cell(0, &format!("{stat}_s")), r.cell(0, &format!("{stat}_f")));
        assert_eq!(
            single, sharded,
            "{stat}: the sharded folder must give the single file's number exactly"
        );
    }
    assert_eq!(r.num(0, "same_dist"), 0.0);
    assert_close("same_cos", r.num(0, "same_cos"), 1.0, 1.0);
}

#[test]
fn only_and_except_reduce_over_the_selected_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let a = W::of(&model_file(dir.path(), "a.safetensors", 21, Dtype::F32));
    let b = W::of(&model_file(dir.path(), "b.safetensors", 22, Dtype::F32));
    let program = r#"
        let a = load("a.safetensors")
        let b = load("b.safetensors")
        eval norm_layers = norm(only(a, "layers.*"))
        eval numel_layers = numel(only(a, "layers.*"))
        eval numel_not_layers = numel(except(a, "layers.*"))
        eval norm_not_layers = norm(except(a, "layers.*"))
        eval dot_weights = dot(only(a, "*weight"), b)
        eval cos_weights = cosine(only(a, "*weight"), only(b, "*weight"))
        eval numel_weights = numel(only(b, "*weight"))
        eval numel_scale = numel(only(a, "scale"))
        eval norm_scale = norm(only(a, "scale"))
        eval numel_ints = numel(only(a, "position*"))
        eval norm_ints = norm(only(a, "position*"))
        eval norm_spliced = norm(only(a, "layers.*") + except(b, "layers.*"))
        eval numel_spliced = numel(only(a, "layers.*") + except(b, "layers.*"))
        eval dist_sel = distance(only(a, "embed*"), only(b, "embed*"))
        eval norm_sel_mix = norm(0.5 * only(a, "*bias") - except(b, "*weight"))
    "#;
    let r = run(dir.path(), "select.tv", program);
    let layers = |n: &str| n.starts_with("layers.");
    let weights = |n: &str| n.ends_with("weight");
    let a_layers = a.select(layers);
    let b_rest = b.select(|n| !layers(n));
    assert_norm("norm_layers", r.num(0, "norm_layers"), norm(&a_layers));
    assert_eq!(r.num(0, "numel_layers"), numel_where(layers));
    assert_eq!(r.num(0, "numel_not_layers"), numel_where(|n| !layers(n)));
    assert_norm(
        "norm_not_layers",
        r.num(0, "norm_not_layers"),
        norm(&a.select(|n| !layers(n))),
    );
    assert_dot("dot_weights", r.num(0, "dot_weights"), &a.select(weights), &b);
    assert_cosine(
        "cos_weights",
        r.num(0, "cos_weights"),
        &a.select(weights),
        &b.select(weights),
    );
    assert_eq!(r.num(0, "numel_weights"), numel_where(weights));
    assert_eq!(r.num(0, "numel_scale"), 1.0, "a scalar tensor has one element");
    assert_norm("norm_scale", r.num(0, "norm_scale"), a.val["scale"][0].abs());
    assert_eq!(r.num(0, "numel_ints"), 0.0, "integer tensors are never measured");
    assert_eq!(r.num(0, "norm_ints"), 0.0);
    assert_norm(
        "norm_spliced",
        r.num(0, "norm_spliced"),
        norm(&lin2(1.0, &a_layers, 1.0, &b_rest)),
    );
    assert_eq!(r.num(0, "numel_spliced"), numel_where(|_| true));
    let embed = |n: &str| n.starts_with("embed");
    assert_norm(
        "dist_sel",
        r.num(0, "dist_sel"),
        norm(&lin2(1.0, &a.select(embed), -1.0, &b.select(embed))),
    );
    let expected = lin2(
        0.5,
        &a.select(|n| n.ends_with("bias")),
        -1.0,
        &b.select(|n| !weights(n)),
    );
    assert_norm("norm_sel_mix", r.num(0, "norm_sel_mix"), norm(&expected));
}

// ---------------------------------------------------------------------------
// Sweeps.

#[test]
fn sweep_rows_follow_the_cartesian_product_first_variable_slowest() {
    let dir = tempfile::tempdir().unwrap();
    let x = W::of(&model_file(dir.path(), "x.safetensors", 31, Dtype::F32));
    let y = W::of(&model_file(dir.path(), "y.safetensors", 32, Dtype::F16));
    let program = r#"
        let x = load("x.safetensors")
        let y = load("y.safetensors")
        sweep a in 0.0..=1.0 step 0.25, b in [1, 2] { eval n = norm(a * x + b * y) }
    "#;
    let r = run(dir.path(), "sweep.tv", program);
    assert_eq!(r.header, ["a", "b", "n"], "{}", r.text);
    assert_eq!(r.rows.len(), 10, "5 x 2 points, no top row:\n{}", r.text);
    for (i, row) in r.rows.iter().enumerate() {
        let a = (i / 2) as f64 * 0.25;
        let b = [1.0, 2.0][i % 2];
        assert_eq!(row[0], format!("{a}"), "row {i}: a printed as the shortest decimal");
        assert_eq!(row[1], format!("{b}"), "row {i}: b");
        assert_norm(&format!("n at a={a}, b={b}"), r.num(i, "n"), norm(&lin2(a, &x, b, &y)));
    }
    assert_eq!(r.cell(1, "a"), "0");
    assert_eq!(r.cell(2, "a"), "0.25");
    assert_eq!(r.cell(9, "a"), "1");
}

#[test]
fn nested_sweeps_and_per_point_saves() {
    let dir = tempfile::tempdir().unwrap();
    let xm = model_file(dir.path(), "x.safetensors", 35, Dtype::F32);
    let ym = model_file(dir.path(), "y.safetensors", 36, Dtype::F32);
    let (x, y) = (W::of(&xm), W::of(&ym));
    let program = r#"
        let x = load("x.safetensors")
        let y = load("y.safetensors")
        sweep a in [0.5, -1.5] {
            save a * x + y to "out/{a}.safetensors"
            sweep b in 1..4 step 2 {
                eval n = dot(a * x, b * y)
            }
            eval m = norm(x - a * y)
        }
    "#;
    let r = run(dir.path(), "nested.tv", program);
    assert_eq!(r.header, ["a", "b", "n", "m"], "{}", r.text);
    // Evals land in the row of their sweep point: (a) rows for m, (a, b) rows for n.
    let mut seen = Vec::new();
    for (i, row) in r.rows.iter().enumerate() {
        let a: f64 = row[0].parse().unwrap();
        if row[1].is_empty() {
            assert_eq!(r.cell(i, "n"), "");
            assert_norm("m", r.num(i, "m"), norm(&lin2(1.0, &x, -a, &y)));
            seen.push(format!("{a}"));
        } else {
            let b: f64 = row[1].parse().unwrap();
            assert_eq!(r.cell(i, "m"), "");
            let (ax, by) = (W::lin(&[(a, &x)]), W::lin(&[(b, &y)]));
            assert_dot("n", r.num(i, "n"), &ax, &by);
            seen.push(format!("{a},{b}"));
        }
    }
    assert_eq!(
        seen,
        ["0.5,1", "0.5,3", "0.5", "-1.5,1", "-1.5,3", "-1.5"],
        "execution order:\n{}",
        r.text
    );
    for a in [0.5, -1.5] {
        let saved = read_file(&dir.path().join(format!("out/{a}.safetensors")));
        assert_saved(
            &format!("save at a={a}"),
            &saved,
            &lin2(a, &x, 1.0, &y),
            &xm,
            Dtype::F32,
        );
    }
}

#[test]
fn range_values_print_as_written_and_the_top_row_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let x = W::of(&model_file(dir.path(), "x.safetensors", 33, Dtype::F32));
    let y = W::of(&model_file(dir.path(), "y.safetensors", 34, Dtype::F32));
    let program = r#"
        let x = load("x.safetensors")
        let y = load("y.safetensors")
        eval c = cosine(x, y)
        sweep t in 0..=1 step 0.1 {
            eval d = distance(t * x, y)
        }
        eval size = numel(x)
    "#;
    let r = run(dir.path(), "tenths.tv", program);
    assert_eq!(r.header, ["t", "c", "d", "size"], "{}", r.text);
    assert_eq!(r.rows.len(), 12, "the top row, then 11 sweep points:\n{}", r.text);
    assert_eq!(r.cell(0, "t"), "");
    assert_eq!(r.cell(0, "d"), "");
    assert_cosine("c", r.num(0, "c"), &x, &y);
    assert_eq!(r.num(0, "size"), numel_where(|_| true));
    for i in 0..=10 {
        let row = i + 1;
        let t = i as f64 / 10.0; // the f64 nearest to the decimal i/10
        assert_eq!(r.cell(row, "t"), format!("{t}"), "t is printed as written ({})", r.text);
        assert_eq!(r.cell(row, "c"), "");
        assert_eq!(r.cell(row, "size"), "");
        assert_norm(&format!("d at t={t}"), r.num(row, "d"), norm(&lin2(t, &x, -1.0, &y)));
    }
    assert!(r.text.contains("\n0.3,"), "0.3 is written as 0.3:\n{}", r.text);
    assert!(
        !r.text.contains("0000000"),
        "no binary noise in range values:\n{}",
        r.text
    );
}

// ---------------------------------------------------------------------------
// Saves.

#[test]
fn saved_expressions_match_the_f64_computation() {
    let dir = tempfile::tempdir().unwrap();
    let am = model_file(dir.path(), "a.safetensors", 41, Dtype::F32);
    let bm = model_file(dir.path(), "b.safetensors", 42, Dtype::F32);
    let cm = model_file(dir.path(), "c.safetensors", 43, Dtype::F32);
    let (a, b, c) = (W::of(&am), W::of(&bm), W::of(&cm));
    let program = r#"
        let a = load("a.safetensors")
        let b = load("b.safetensors")
        let c = load("c.safetensors")
        save a - b to "out/diff.safetensors"
        save b - a to "out/rdiff.safetensors"
        save 0.3 * a + 0.7 * b - c to "out/mix.safetensors"
        save -a to "out/neg.safetensors"
        save a / 4 to "out/quarter.safetensors"
        save c + a + a to "out/twice.safetensors"
        save only(a, "layers.*") to "out/only.safetensors"
        save except(b, "layers.*") + only(c, "layers.*") to "out/spliced.safetensors"
    "#;
    let (_, out) = run_with(dir.path(), "save.tv", program, &tv::Overrides::default());
    let saved = |name: &str| read_file(&dir.path().join("out").join(name));
    let f32 = Dtype::F32;
    assert_saved("diff", &saved("diff.safetensors"), &lin2(1.0, &a, -1.0, &b), &am, f32);
    assert_saved("rdiff", &saved("rdiff.safetensors"), &lin2(1.0, &b, -1.0, &a), &bm, f32);
    let mix = W::lin(&[(0.3, &a), (0.7, &b), (-1.0, &c)]);
    assert_saved("mix", &saved("mix.safetensors"), &mix, &am, f32);
    assert_saved("neg", &saved("neg.safetensors"), &W::lin(&[(-1.0, &a)]), &am, f32);
    assert_saved(
        "quarter",
        &saved("quarter.safetensors"),
        &W::lin(&[(0.25, &a)]),
        &am,
        f32,
    );
    assert_saved("twice", &saved("twice.safetensors"), &lin2(1.0, &c, 2.0, &a), &cm, f32);
    let layers = |n: &str| n.starts_with("layers.");
    assert_saved("only", &saved("only.safetensors"), &a.select(layers), &am, f32);
    let spliced = lin2(1.0, &b.select(|n| !layers(n)), 1.0, &c.select(layers));
    assert_saved("spliced", &saved("spliced.safetensors"), &spliced, &bm, f32);
    let only = saved("only.safetensors");
    assert!(
        only["embed.weight"].values().unwrap().iter().all(|v| *v == 0.0),
        "only() zeroes the rest"
    );
    let file_bytes: u64 = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| read_file(&p).values().map(|t| t.bytes.len() as u64).sum::<u64>())
        .sum();
    assert_eq!(
        out.stats.bytes_written, file_bytes,
        "bytes_written counts the tensor bytes saved"
    );
}

/// The saves of `SAVE_DTYPES` under a dtype setting, by file name.
const SAVE_DTYPES: &str = r#"
let a = load("a.safetensors")
let b = load("b.safetensors")
save 0.3 * a - 1.7 * b to "out/mix.safetensors"
save a / 3 to "out/third.safetensors"
"#;

fn saves_under(dir: &Path, setting: &str, overrides: &tv::Overrides) -> BTreeMap<String, BTreeMap<String, Loaded>> {
    let program = format!("{setting}\n{SAVE_DTYPES}");
    run_with(dir, "dtypes.tv", &program, overrides);
    ["mix.safetensors", "third.safetensors"]
        .iter()
        .map(|f| (f.to_string(), read_file(&dir.join("out").join(f))))
        .collect()
}

#[test]
fn set_dtype_rounds_the_f32_result_with_half() {
    let dir = tempfile::tempdir().unwrap();
    let am = model_file(dir.path(), "a.safetensors", 51, Dtype::F32);
    let bm = model_file(dir.path(), "b.safetensors", 52, Dtype::F32);
    let (a, b) = (W::of(&am), W::of(&bm));
    let none = tv::Overrides::default();
    let f32_saves = saves_under(dir.path(), "", &none);
    assert_saved(
        "mix f32",
        &f32_saves["mix.safetensors"],
        &lin2(0.3, &a, -1.7, &b),
        &am,
        Dtype::F32,
    );
    assert_saved(
        "third f32",
        &f32_saves["third.safetensors"],
        &W::lin(&[(1.0 / 3.0, &a)]),
        &am,
        Dtype::F32,
    );
    let explicit = saves_under(dir.path(), "set dtype = \"f32\"", &none);
    for (file, tensors) in &f32_saves {
        for (name, t) in tensors {
            assert_eq!(
                explicit[file][name].bytes, t.bytes,
                "set dtype = \"f32\" is the default here"
            );
        }
    }
    let by_flag = |d: SaveDtype| tv::Overrides {
        dtype: Some(d),
        ..Default::default()
    };
    let cases = [
        ("set dtype = \"bf16\"", none.clone(), Dtype::BF16),
        ("set dtype = \"f16\"", none.clone(), Dtype::F16),
        ("", by_flag(SaveDtype::Bf16), Dtype::BF16),
        ("set dtype = \"bf16\"", by_flag(SaveDtype::F16), Dtype::F16),
    ];
    for (setting, overrides, dtype) in cases {
        let saves = saves_under(dir.path(), setting, &overrides);
        for (file, tensors) in &saves {
            for (name, t) in tensors {
                let reference = &f32_saves[file][name];
                assert_eq!(t.shape, reference.shape, "{setting} {file} {name}");
                if !is_float(reference.dtype) {
                    assert_eq!(t.dtype, reference.dtype, "integer tensors keep their dtype");
                    assert_eq!(t.bytes, reference.bytes);
                    continue;
                }
                assert_eq!(t.dtype, dtype, "{setting} {overrides:?}: dtype of {file} {name}");
                let f32s = reference.values().unwrap();
                let rounded: Vec<f32> = f32s.iter().map(|v| *v as f32).collect();
                assert_eq!(
                    t.bytes,
                    encode(dtype, &rounded),
                    "{setting}: {file} {name} is the f32 result rounded"
                );
            }
        }
    }
}

#[test]
fn default_save_dtype_follows_the_leftmost_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let hm = model_file(dir.path(), "h.safetensors", 61, Dtype::F16);
    let fm = model_file(dir.path(), "f.safetensors", 62, Dtype::F32);
    let bm = model_file(dir.path(), "b.safetensors", 63, Dtype::BF16);
    let (h, f, b) = (W::of(&hm), W::of(&fm), W::of(&bm));
    let program = r#"
        let h = load("h.safetensors")
        let f = load("f.safetensors")
        let b = load("b.safetensors")
        save h - f to "out/hf.safetensors"
        save f - h to "out/fh.safetensors"
        save b + 0.5 * h to "out/bh.safetensors"
        save 2 * h to "out/h2.safetensors"
    "#;
    run(dir.path(), "leftmost.tv", program);
    let flag = tv::Overrides {
        dtype: Some(SaveDtype::F32),
        ..Default::default()
    };
    let program_f32 = program.replace("out/", "out32/");
    run_with(dir.path(), "leftmost32.tv", &program_f32, &flag);
    let cases = [
        ("hf", Dtype::F16, lin2(1.0, &h, -1.0, &f), &hm),
        ("fh", Dtype::F32, lin2(1.0, &f, -1.0, &h), &fm),
        ("bh", Dtype::BF16, lin2(1.0, &b, 0.5, &h), &bm),
        ("h2", Dtype::F16, W::lin(&[(2.0, &h)]), &hm),
    ];
    for (name, dtype, expected, left) in cases {
        let file = format!("{name}.safetensors");
        let as_f32 = read_file(&dir.path().join("out32").join(&file));
        assert_saved(name, &as_f32, &expected, left, Dtype::F32);
        let default = read_file(&dir.path().join("out").join(&file));
        for t in left.iter() {
            let got = &default[&t.name];
            if !t.is_float() {
                assert_eq!(got.bytes, t.bytes, "{name}: carried {}", t.name);
                continue;
            }
            assert_eq!(got.dtype, dtype, "{name}: the left-most checkpoint's dtype");
            let rounded: Vec<f32> = as_f32[&t.name].values().unwrap().iter().map(|v| *v as f32).collect();
            assert_eq!(
                got.bytes,
                encode(dtype, &rounded),
                "{name}: {} is the f32 result rounded",
                t.name
            );
        }
    }
}

#[test]
fn save_to_a_folder_copies_the_first_folders_companions() {
    let dir = tempfile::tempdir().unwrap();
    let fm = random_model(71, Dtype::F32, 1.0);
    let m1 = random_model(72, Dtype::F32, 1.0);
    let m2 = random_model(73, Dtype::F32, 1.0);
    write_file(&dir.path().join("f.safetensors"), &fm);
    write_sharded(&dir.path().join("m1"), &m1, 2, "first");
    write_folder(&dir.path().join("m2"), &m2, "second");
    let (f, w1, w2) = (W::of(&fm), W::of(&m1), W::of(&m2));
    let program = r#"
        let f = load("f.safetensors")
        let m1 = load("m1")
        let m2 = load("m2")
        save f + 0.5 * (m1 - f) to "out/from_file"
        save 0.25 * m2 + 0.75 * m1 to "out/merged"
        save m1 - m2 to "out/tau.safetensors"
    "#;
    run(dir.path(), "folders.tv", program);
    let out = dir.path().join("out");
    let cases = [
        ("from_file", lin2(0.5, &f, 0.5, &w1), &fm, "m1"),
        ("merged", lin2(0.25, &w2, 0.75, &w1), &m2, "m2"),
    ];
    for (name, expected, left, companions) in cases {
        let folder = out.join(name);
        assert!(folder.is_dir(), "{name} is a folder");
        let has_weights =
            folder.join("model.safetensors").is_file() || folder.join("model.safetensors.index.json").is_file();
        assert!(has_weights, "{name}: model.safetensors or an index");
        assert_saved(name, &read_folder(&folder), &expected, left, Dtype::F32);
        for file in ["config.json", "tokenizer.json"] {
            let copied = std::fs::read(folder.join(file)).unwrap_or_else(|e| panic!("{name}/{file}: {e}"));
            let source = std::fs::read(dir.path().join(companions).join(file)).unwrap();
            assert_eq!(copied, source, "{name}/{file} comes from {companions}");
        }
    }
    assert!(out.join("tau.safetensors").is_file());
    assert_saved(
        "tau",
        &read_file(&out.join("tau.safetensors")),
        &lin2(1.0, &w1, -1.0, &w2),
        &m1,
        Dtype::F32,
    );
    let mut entries: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["from_file", "merged", "tau.safetensors"],
        "no temporaries left behind"
    );
}

// ---------------------------------------------------------------------------
// The stdlib.

#[test]
fn stdlib_task_and_time_functions_follow_their_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let base_m = model_file(dir.path(), "base.safetensors", 81, Dtype::F32);
    let ft1_m = model_file(dir.path(), "ft1.safetensors", 82, Dtype::F32);
    let ft2_m = model_file(dir.path(), "ft2.safetensors", 83, Dtype::F32);
    let ft3_m = model_file(dir.path(), "ft3.safetensors", 84, Dtype::F32);
    let (base, ft1, ft2, ft3) = (W::of(&base_m), W::of(&ft1_m), W::of(&ft2_m), W::of(&ft3_m));
    let program = r#"
        use "std/task"
        use "std/time"
        let base = load("base.safetensors")
        let ft1 = load("ft1.safetensors")
        let ft2 = load("ft2.safetensors")
        let ft3 = load("ft3.safetensors")
        let t1 = task_vector(ft1, base)
        let t2 = task_vector(ft2, base)
        let t3 = time_vector(ft3, base)
        save t1 to "out/task_vector.safetensors"
        save time_vector(ft2, base) to "out/time_vector.safetensors"
        save negate(base, t1, lambda = 0.5) to "out/negate.safetensors"
        save negate(base, t2) to "out/negate_default.safetensors"
        save add_tasks(base, [t1, t2, t3], lambda = 0.4) to "out/task_arithmetic.safetensors"
        save add_tasks(base, [t1, t2]) to "out/task_arithmetic_default.safetensors"
        save task_analogy(base, t1, t2, t3, lambda = 0.7) to "out/task_analogy.safetensors"
        save analogy(ft1, t1, t2, a1 = 0.8, a2 = 0.3) to "out/analogy.safetensors"
        save analogy(ft2, t2, t3) to "out/analogy_default.safetensors"
        save interpolate(ft1, ft2, alpha = 0.25) to "out/interpolate.safetensors"
        save interpolate(ft1, ft3) to "out/interpolate_default.safetensors"
        save interpolate_time(base, t1, t2, alpha = 0.3) to "out/interpolate_time.safetensors"
        save time_analogy(base, t1, t2, t3, alpha1 = 0.9, alpha2 = 1.1, alpha3 = 0.6) to "out/time_analogy.safetensors"
        save time_analogy(base, t1, t2, t3) to "out/time_analogy_default.safetensors"
        eval n_negate = norm(negate(base, t1, lambda = 0.5))
        eval c_analogy = cosine(task_analogy(base, t1, t2, t3), base)
    "#;
    let r = run(dir.path(), "stdlib.tv", program);
    let t1 = lin2(1.0, &ft1, -1.0, &base);
    let t2 = lin2(1.0, &ft2, -1.0, &base);
    let t3 = lin2(1.0, &ft3, -1.0, &base);
    let sum = |ts: &[&W]| W::lin(&ts.iter().map(|t| (1.0, *t)).collect::<Vec<_>>());
    // theta_pre + lambda * (tau_c + (tau_b - tau_a))
    let task_analogy = |l: f64| lin2(1.0, &base, l, &lin2(1.0, &t3, 1.0, &lin2(1.0, &t2, -1.0, &t1)));
    let cases: Vec<(&str, W, &[Raw])> = vec![
        ("task_vector", t1.clone(), &ft1_m),
        ("time_vector", t2.clone(), &ft2_m),
        ("negate", lin2(1.0, &base, -0.5, &t1), &base_m),
        ("negate_default", lin2(1.0, &base, -1.0, &t2), &base_m),
        (
            "task_arithmetic",
            lin2(1.0, &base, 0.4, &sum(&[&t1, &t2, &t3])),
            &base_m,
        ),
        (
            "task_arithmetic_default",
            lin2(1.0, &base, 1.0, &sum(&[&t1, &t2])),
            &base_m,
        ),
        ("task_analogy", task_analogy(0.7), &base_m),
        // theta_j + a1 * tau_j + a2 * (tau_k - tau_j)
        (
            "analogy",
            W::lin(&[(1.0, &ft1), (0.8, &t1), (0.3, &lin2(1.0, &t2, -1.0, &t1))]),
            &ft1_m,
        ),
        (
            "analogy_default",
            W::lin(&[(1.0, &ft2), (1.0, &t2), (1.0, &lin2(1.0, &t3, -1.0, &t2))]),
            &ft2_m,
        ),
        // alpha * a + (1 - alpha) * b
        ("interpolate", lin2(0.25, &ft1, 0.75, &ft2), &ft1_m),
        ("interpolate_default", lin2(0.5, &ft1, 0.5, &ft3), &ft1_m),
        (
            "interpolate_time",
            W::lin(&[(1.0, &base), (0.3, &t1), (0.7, &t2)]),
            &base_m,
        ),
        // theta_pre + alpha1 * tau_task_j + alpha2 * tau_lm_k - alpha3 * tau_lm_j
        (
            "time_analogy",
            W::lin(&[(1.0, &base), (0.9, &t1), (1.1, &t2), (-0.6, &t3)]),
            &base_m,
        ),
        (
            "time_analogy_default",
            W::lin(&[(1.0, &base), (1.0, &t1), (1.0, &t2), (-1.0, &t3)]),
            &base_m,
        ),
    ];
    for (name, expected, left) in &cases {
        let saved = read_file(&dir.path().join("out").join(format!("{name}.safetensors")));
        assert_saved(name, &saved, expected, left, Dtype::F32);
    }
    assert_norm("n_negate", r.num(0, "n_negate"), norm(&lin2(1.0, &base, -0.5, &t1)));
    assert_cosine("c_analogy", r.num(0, "c_analogy"), &task_analogy(1.0), &base);
}

// ---------------------------------------------------------------------------
// Lazy scalars.

#[test]
fn weights_scaled_by_a_measured_number() {
    let dir = tempfile::tempdir().unwrap();
    let base_m = model_file(dir.path(), "base.safetensors", 91, Dtype::F32);
    let ft_m = model_file(dir.path(), "ft.safetensors", 92, Dtype::BF16);
    let (base, ft) = (W::of(&base_m), W::of(&ft_m));
    let program = r#"
        let base = load("base.safetensors")
        let ft = load("ft.safetensors")
        let tau = ft - base
        let u = tau / norm(tau)
        eval n = norm(u)
        eval d = dot(u, tau)
        eval k = cosine(base + cosine(base, ft) * u, ft)
        save u to "u.safetensors"
        save base + norm(tau) * u to "back.safetensors"
    "#;
    // ft is bf16 and the left operand of u; save in f32 to compare at 1e-5.
    let f32_saves = tv::Overrides {
        dtype: Some(SaveDtype::F32),
        ..Default::default()
    };
    let (r, _) = run_with(dir.path(), "lazy.tv", program, &f32_saves);
    let tau = lin2(1.0, &ft, -1.0, &base);
    let n = norm(&tau);
    let u = W::lin(&[(1.0 / n, &tau)]);
    assert_close("norm(u)", r.num(0, "n"), 1.0, 1.0);
    assert_norm("dot(u, tau) = |tau|", r.num(0, "d"), n);
    let k = lin2(1.0, &base, cosine(&base, &ft), &u);
    assert_cosine("k", r.num(0, "k"), &k, &ft);
    // The saved u is ft/|tau| - base/|tau|, so its left operand is ft.
    assert_saved(
        "u",
        &read_file(&dir.path().join("u.safetensors")),
        &u,
        &ft_m,
        Dtype::F32,
    );
    assert_saved(
        "back",
        &read_file(&dir.path().join("back.safetensors")),
        &lin2(1.0, &base, n, &u),
        &base_m,
        Dtype::F32,
    );
}

// ---------------------------------------------------------------------------
// Determinism and I/O accounting.

#[test]
fn thread_count_changes_no_output_byte() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("x.safetensors"), &many_tensor_model(101, 40));
    write_file(&dir.path().join("y.safetensors"), &many_tensor_model(102, 40));
    write_sharded(&dir.path().join("z"), &many_tensor_model(103, 40), 3, "z");
    let program = r#"
        let x = load("x.safetensors")
        let y = load("y.safetensors")
        let z = load("z")
        eval c = cosine(x, y)
        eval n = norm(x - z)
        sweep a in 0..=1 step 0.1, g in ["blocks.0*", "blocks.1*"] {
            eval d = dot(only(x, g), a * y + z)
            eval k = cosine(except(z, g), x / 3 - a * y)
        }
        let u = (x - y) / norm(x - y)
        eval m = dot(u, z)
        save 0.3 * x + 0.7 * y - z to "out/mix.safetensors"
        save u to "out/u"
        save 0.1 * z - x to "out/zx"
    "#;
    let mut outputs = Vec::new();
    for threads in [1, 2, 1] {
        let overrides = tv::Overrides {
            threads: Some(threads),
            ..Default::default()
        };
        let (report, _) = run_with(dir.path(), "threads.tv", program, &overrides);
        let files = snapshot(&dir.path().join("out"));
        // Move the outputs away, so each run writes them afresh.
        let moved = scratch.path().join(format!("out{}", outputs.len()));
        std::fs::rename(dir.path().join("out"), moved).unwrap();
        outputs.push((threads, report.text, files));
    }
    assert!(
        outputs[0].1.lines().count() > 20,
        "a report worth comparing:\n{}",
        outputs[0].1
    );
    assert!(outputs[0].2.len() >= 5, "saved files: {:?}", outputs[0].2.keys());
    for (threads, text, files) in &outputs[1..] {
        assert_eq!(*text, outputs[0].1, "the report with --threads {threads}");
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            outputs[0].2.keys().collect::<Vec<_>>()
        );
        for (path, bytes) in files {
            assert!(*bytes == outputs[0].2[path], "{path} differs with --threads {threads}");
        }
    }
}

/// Every file under `root`, by relative path, with its bytes.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// `stats.bytes_read` counts the bytes the executor takes from the inputs'
/// memory maps (`Checkpoint::bytes`). Asserted: a 50-point sweep of evals over
/// three inputs (f32 file, f16 file, sharded bf16 folder) reads exactly the
/// sum of the three inputs' float tensor bytes, i.e. every float tensor of
/// every input once and no integer tensor; adding a save reads, on top of
/// that, exactly the integer tensors of the save's left-most checkpoint.
#[test]
fn a_fifty_point_sweep_reads_each_input_once() {
    let dir = tempfile::tempdir().unwrap();
    let xm = model_file(dir.path(), "x.safetensors", 111, Dtype::F32);
    let ym = model_file(dir.path(), "y.safetensors", 112, Dtype::F16);
    let zm = random_model(113, Dtype::BF16, 1.0);
    write_sharded(&dir.path().join("z"), &zm, 2, "z");
    let (x, y, z) = (W::of(&xm), W::of(&ym), W::of(&zm));
    let program = r#"
        let x = load("x.safetensors")
        let y = load("y.safetensors")
        let z = load("z")
        eval top = cosine(x, z)
        sweep s in 0..50 {
            eval n = norm(s * x + y)
            eval c = cosine(x, s * y - z)
        }
    "#;
    let (r, out) = run_with(dir.path(), "io.tv", program, &tv::Overrides::default());
    assert_eq!(r.rows.len(), 51, "{}", r.text);
    assert_cosine("top", r.num(0, "top"), &x, &z);
    for s in 0..50 {
        let sf = s as f64;
        assert_eq!(r.cell(s + 1, "s"), s.to_string());
        assert_norm(&format!("n at {s}"), r.num(s + 1, "n"), norm(&lin2(sf, &x, 1.0, &y)));
        assert_cosine(&format!("c at {s}"), r.num(s + 1, "c"), &x, &lin2(sf, &y, -1.0, &z));
    }
    let floats_of_inputs = float_bytes(&xm) + float_bytes(&ym) + float_bytes(&zm);
    assert_eq!(
        out.stats.bytes_read, floats_of_inputs,
        "each float tensor of each input read exactly once"
    );

    let with_save = format!("{program}\nsave x - z to \"out/xz.safetensors\"\n");
    let (_, out) = run_with(dir.path(), "io_save.tv", &with_save, &tv::Overrides::default());
    let carried: u64 = xm.iter().filter(|t| !t.is_float()).map(|t| t.bytes.len() as u64).sum();
    assert_eq!(
        out.stats.bytes_read,
        floats_of_inputs + carried,
        "a save also reads its carrier's integer tensors"
    );
    let saved = read_file(&dir.path().join("out/xz.safetensors"));
    assert_saved("xz", &saved, &lin2(1.0, &x, -1.0, &z), &xm, Dtype::F32);
}
