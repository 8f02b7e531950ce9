//! Hostile inputs get diagnostics, never panics or silent acceptance: very
//! long lines, headers that repeat or omit tensor names, narrow float
//! formats tv cannot compute on.

use super::common::tv_command;
use std::path::Path;

/// A safetensors file whose header JSON is `header` (written as given, so
/// it may repeat a key) over `data`.
fn write_raw(path: &Path, header: &str, data: &[u8]) {
    let mut header = header.to_string();
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

fn check(dir: &Path, program: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("exp.tv"), program).unwrap();
    let output = tv_command(dir, &["check", "exp.tv"]);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_error_far_along_a_long_line_is_shown_as_an_excerpt() {
    let dir = tempfile::tempdir().unwrap();
    let program = format!("eval x = [{} nrom(2)]\n", "1, ".repeat(30_000));
    let (code, stderr) = check(dir.path(), &program);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("unknown function `nrom`"), "{stderr}");
    assert!(stderr.contains("line 1, column 90012"), "{stderr}");
    assert!(stderr.lines().all(|l| l.chars().count() < 400), "the excerpt is short");
}

#[test]
fn repeated_and_empty_tensor_names_are_header_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = [0u8; 8];
    let entry = |at: usize| format!(r#"{{"dtype":"F32","shape":[1],"data_offsets":[{at},{}]}}"#, at + 4);
    write_raw(
        &dir.path().join("twice.safetensors"),
        &format!(r#"{{"w":{},"w":{}}}"#, entry(0), entry(4)),
        &data,
    );
    write_raw(
        &dir.path().join("empty.safetensors"),
        &format!(r#"{{"":{},"v":{}}}"#, entry(0), entry(4)),
        &data,
    );
    for (file, expected) in [
        ("twice", "names tensor \"w\" twice"),
        ("empty", "a tensor with an empty name"),
    ] {
        let (code, stderr) = check(
            dir.path(),
            &format!("let m = load(\"{file}.safetensors\")\neval n = norm(m)\n"),
        );
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        let output = tv_command(dir.path(), &["inspect", &format!("{file}.safetensors")]);
        assert_eq!(output.status.code(), Some(1));
    }
}

#[test]
fn narrow_float_tensors_are_refused_not_carried() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in ["F8_E4M3", "F8_E5M2", "F8_E8M0"] {
        let header = format!(r#"{{"w":{{"dtype":"{dtype}","shape":[4],"data_offsets":[0,4]}}}}"#);
        write_raw(&dir.path().join("fp8.safetensors"), &header, &[0x38, 0x40, 0x48, 0x50]);
        let (code, stderr) = check(dir.path(), "let m = load(\"fp8.safetensors\")\neval n = norm(m)\n");
        assert_eq!(code, Some(1), "{dtype}: {stderr}");
        assert!(
            stderr.contains(&format!("has dtype \"{dtype}\"")) && stderr.contains("FP8"),
            "{stderr}"
        );
    }
}

/// A folder with `m.safetensors` (one tensor `w`) for the wording tests.
fn with_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let raw = super::common::Raw {
        name: "w".into(),
        dtype: safetensors::Dtype::F32,
        shape: vec![3],
        bytes: super::common::encode(safetensors::Dtype::F32, &[1.0, -2.0, 0.5]),
    };
    super::common::write_file(&dir.path().join("m.safetensors"), &[raw]);
    dir
}

#[test]
fn newcomers_are_told_what_went_wrong_in_their_own_terms() {
    let dir = with_model();
    let load = "let m = load(\"m.safetensors\")\n";
    let cases = [
        // An error inside the stdlib points at the user's call.
        (
            format!("use \"std/merge\"\n{load}save ties([m, m], m, density = 2) to \"o.safetensors\"\n"),
            vec!["exp.tv:3:6", "in this call of `ties`", "raised at std/merge:"],
        ),
        (
            format!("{load}x = 1\n"),
            vec!["expected a statement", "every statement starts with a keyword"],
        ),
        (
            format!("{load}eval n = max(norm(m), 1)\n"),
            vec!["unknown function `max`"],
        ),
        (
            format!("{load}eval n = norm(m)\neval k = n * 2\n"),
            vec!["`n` is an eval: a column of the report"],
        ),
        (
            format!("{load}eval n = norm(mix(m, 2, m))\n"),
            vec!["argument `b` of `mix` must be weights"],
        ),
        (
            "let m = load(\"gone.safetensors\")\n".to_string(),
            vec!["gone.safetensors does not exist (looked for in"],
        ),
    ];
    for (program, expected) in cases {
        let (code, stderr) = check(dir.path(), &program);
        assert_eq!(code, Some(1), "{program}: {stderr}");
        for text in expected {
            assert!(stderr.contains(text), "{program}: wanted {text:?} in\n{stderr}");
        }
        assert!(!stderr.contains("did you mean `mix`"), "{stderr}");
    }
}

#[test]
fn mix_takes_a_number() {
    let dir = with_model();
    let program = "let m = load(\"m.safetensors\")\nlet z = 0 * m\neval n = norm(mix(m, z, 0.25))\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let output = tv_command(dir.path(), &["run", "exp.tv"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = 0.75 * (1.0f64 + 4.0 + 0.25).sqrt();
    let csv = String::from_utf8(output.stdout).unwrap();
    let got: f64 = csv.lines().nth(1).unwrap().parse().unwrap();
    assert!((got - expected).abs() < 1e-12, "{csv}");
}
