//! Golden tests for diagnostics.
//!
//! Every `tests/golden/NAME.tv` is checked with `tv::check`; its errors,
//! rendered without colour at a fixed width, must equal
//! `tests/golden/NAME.golden` byte for byte. A case must produce at least
//! one error, unless its name starts with `ok_`: then it is run, and the
//! golden file holds the CSV report.
//!
//! `TV_BLESS=1 cargo test --test golden` rewrites the golden files (and the
//! checkpoint fixtures under `tests/golden/data/`) instead of comparing.
//! Review the diff of every rewritten file before committing it.
//!
//! Helper files that cases import live in `tests/golden/modules/`, so they
//! are not cases themselves.

use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// Relative to the crate root (the working directory of integration tests),
/// so the file names in rendered diagnostics are the same on every machine.
const DIR: &str = "tests/golden";
const DATA: &str = "tests/golden/data";
/// Fixed width, so line wrapping does not depend on the terminal.
const WIDTH: usize = 80;

fn blessing() -> bool {
    std::env::var_os("TV_BLESS").is_some_and(|v| v == "1")
}

#[test]
fn golden_cases() {
    let mut failures = fixtures();
    let cases = files_with_extension("tv");
    assert!(!cases.is_empty(), "no cases found in {DIR}");
    for case in &cases {
        let golden = case.with_extension("golden");
        let actual = match outcome(case) {
            Ok(text) => text,
            Err(problem) => {
                failures.push(format!("{}: {problem}", case.display()));
                continue;
            }
        };
        if blessing() {
            write_if_changed(&golden, actual.as_bytes());
            continue;
        }
        match fs::read_to_string(&golden) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}: output differs from {} (run with TV_BLESS=1 to accept)\n{}",
                case.display(),
                golden.display(),
                diff(&expected, &actual)
            )),
            Err(e) => failures.push(format!(
                "{}: cannot read {} ({e}); run with TV_BLESS=1 to create it. Actual output:\n{actual}",
                case.display(),
                golden.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn no_stale_goldens() {
    let stale: Vec<String> = files_with_extension("golden")
        .into_iter()
        .filter(|g| !g.with_extension("tv").is_file())
        .map(|g| g.display().to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "golden files without a case (delete them, or restore their .tv):\n{}",
        stale.join("\n")
    );
}

/// The sorted `DIR/*.EXT` (not recursive: `modules/` and `data/` hold no cases).
fn files_with_extension(ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("cannot list {DIR}: {e}"))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn is_ok_case(case: &Path) -> bool {
    case.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ok_"))
}

/// The golden text of a case, or why it has none. Runs it twice, so that
/// output depending on hash order or other state shows as a failure.
fn outcome(case: &Path) -> Result<String, String> {
    let first = catch(case)?;
    let second = catch(case)?;
    if first != second {
        return Err(format!("two runs gave different output\n{}", diff(&first, &second)));
    }
    Ok(first)
}

/// `render`, with a panic turned into a failure of this case alone.
fn catch(case: &Path) -> Result<String, String> {
    let result = panic::catch_unwind(AssertUnwindSafe(|| render(case)));
    result.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("panicked: {message}"))
    })
}

fn render(case: &Path) -> Result<String, String> {
    let mut sources = tv::diag::Sources::default();
    let overrides = tv::Overrides::default();
    if is_ok_case(case) {
        return match tv::run(&mut sources, case, &overrides, false) {
            Ok(output) => Ok(output.csv()),
            Err(diags) => Err(format!(
                "an ok_ case must run without errors, but:\n{}",
                tv::diag::render_plain(&diags, &sources, WIDTH)
            )),
        };
    }
    match tv::check(&mut sources, case, &overrides) {
        Ok(_) => Err("checks without errors; every case not named ok_* must report one".into()),
        Err(diags) if diags.is_empty() => Err("failed with an empty list of diagnostics".into()),
        Err(diags) => Ok(tv::diag::render_plain(&diags, &sources, WIDTH)),
    }
}

fn write_if_changed(path: &Path, bytes: &[u8]) {
    if fs::read(path).ok().as_deref() != Some(bytes) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// A line diff of `expected` against `actual`: ` ` both, `-` expected
/// only, `+` actual only. The files are small, so a plain LCS table will do.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::from("--- expected\n+++ actual\n");
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, " {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "-{}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+{}", b[j]);
            j += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the two differ in the final newline)\n");
    }
    out
}

// ---------------------------------------------------------------------------
// Checkpoint fixtures: tiny, deterministic files written by this test.

/// Writes the fixtures that are missing (all of them when blessing) and
/// reports the ones whose bytes differ from what this file generates.
fn fixtures() -> Vec<String> {
    let mut problems = Vec::new();
    for (name, bytes) in fixture_files() {
        let path = Path::new(DATA).join(name);
        let present = fs::read(&path).ok();
        if blessing() || present.is_none() {
            write_if_changed(&path, &bytes);
        } else if present.as_deref() != Some(bytes.as_slice()) {
            problems.push(format!(
                "{}: differs from the fixture tests/golden.rs generates; run with TV_BLESS=1 to regenerate it",
                path.display()
            ));
        }
    }
    problems
}

/// `(path under data/, bytes)` for every fixture.
fn fixture_files() -> Vec<(&'static str, Vec<u8>)> {
    let model = |offset: f32| vec![f32s("layer.bias", &[4], offset), f32s("layer.weight", &[2, 3], offset)];
    let mut extra = model(0.0);
    extra.push(f32s("layer.extra", &[2], 0.0));
    let mut ints = model(0.0);
    ints.push(i64s("position_ids", &[4]));
    let kind = vec![i64s("layer.bias", &[4]), f32s("layer.weight", &[2, 3], 0.0)];
    let many: Vec<Tensor> = (0..5).map(|i| f32s(&format!("block.{i}.weight"), &[2], 0.0)).collect();
    let a = safetensors_bytes(&model(0.0));

    let mut truncated = a.clone();
    truncated.truncate(a.len() - 10);

    // Deterministic noise (a linear congruential generator).
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let garbage: Vec<u8> = (0..64)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect();

    // A sane length prefix, then JSON cut off in the middle of an entry.
    let json = br#"{"layer.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, "#;
    let mut bad_header = (json.len() as u64).to_le_bytes().to_vec();
    bad_header.extend_from_slice(json);
    bad_header.extend_from_slice(&[0u8; 24]);

    // A sharded folder whose index names a second shard that is not there.
    let index = concat!(
        "{\n",
        "  \"metadata\": {\"total_size\": 40},\n",
        "  \"weight_map\": {\n",
        "    \"layer.bias\": \"model-00001-of-00002.safetensors\",\n",
        "    \"layer.weight\": \"model-00002-of-00002.safetensors\"\n",
        "  }\n",
        "}\n"
    );

    vec![
        ("a.safetensors", a),
        ("b.safetensors", safetensors_bytes(&model(1.0))),
        (
            "shape.safetensors",
            safetensors_bytes(&[f32s("layer.bias", &[4], 0.0), f32s("layer.weight", &[3, 2], 0.0)]),
        ),
        ("extra.safetensors", safetensors_bytes(&extra)),
        ("ints.safetensors", safetensors_bytes(&ints)),
        ("kind.safetensors", safetensors_bytes(&kind)),
        ("many.safetensors", safetensors_bytes(&many)),
        ("truncated.safetensors", truncated),
        ("garbage.safetensors", garbage),
        ("bad_header.safetensors", bad_header),
        ("empty.safetensors", Vec::new()),
        (
            "sharded/model-00001-of-00002.safetensors",
            safetensors_bytes(&[f32s("layer.bias", &[4], 0.0)]),
        ),
        ("sharded/model.safetensors.index.json", index.as_bytes().to_vec()),
        ("not_a_model/config.json", b"{\"model_type\": \"none\"}\n".to_vec()),
    ]
}

struct Tensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// An f32 tensor holding `offset + 0.5 * i` in element `i`.
fn f32s(name: &str, shape: &[usize], offset: f32) -> Tensor {
    let numel: usize = shape.iter().product();
    let data = (0..numel)
        .flat_map(|i| (offset + 0.5 * i as f32).to_le_bytes())
        .collect();
    Tensor {
        name: name.to_string(),
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        data,
    }
}

/// An i64 tensor holding `0, 1, 2, ...` (like position ids).
fn i64s(name: &str, shape: &[usize]) -> Tensor {
    let numel: usize = shape.iter().product();
    let data = (0..numel as i64).flat_map(i64::to_le_bytes).collect();
    Tensor {
        name: name.to_string(),
        dtype: Dtype::I64,
        shape: shape.to_vec(),
        data,
    }
}

/// A safetensors file. `serialize` orders tensors by dtype and name and
/// writes no metadata, so the bytes depend on the tensors alone.
fn safetensors_bytes(tensors: &[Tensor]) -> Vec<u8> {
    let views = tensors.iter().map(|t| {
        let view = TensorView::new(t.dtype, t.shape.clone(), &t.data).expect("a consistent fixture tensor");
        (t.name.as_str(), view)
    });
    safetensors::serialize(views, None).expect("serializable fixture")
}
