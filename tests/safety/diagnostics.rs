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
