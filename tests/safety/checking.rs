//! Checking is bounded: hostile programs and inputs end quickly with a
//! diagnostic — no exponential expansion, no unbounded sweep, no read of a
//! pipe or device, no literal silently turned into inf.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs tv in `dir`, killed (and the test failed) if it runs for more than
/// a generous minute, with its address space capped at `memory` bytes.
fn bounded(dir: &Path, args: &[&str], memory: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_tv"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: memory,
                rlim_max: memory,
            };
            match libc::setrlimit(libc::RLIMIT_AS, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("tv {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

const GIB: u64 = 1 << 30;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn refused(dir: &Path, program: &str, expected: &str) {
    std::fs::write(dir.join("exp.tv"), program).unwrap();
    let output = bounded(dir, &["check", "exp.tv"], 4 * GIB);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(expected), "{}", stderr(&output));
}

/// `f40(x)` expands to 2^40 copies of `x` if calls are re-lowered.
#[test]
fn nested_function_calls_do_not_expand_exponentially() {
    let dir = tempfile::tempdir().unwrap();
    let mut program = String::from("fn f0(x) = x\n");
    for i in 1..=40 {
        program += &format!("fn f{i}(x) = f{}(x) + f{}(x)\n", i - 1, i - 1);
    }
    program += "eval n = f40(3)\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let output = bounded(dir.path(), &["run", "exp.tv"], 4 * GIB);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = 3.0 * 2f64.powi(40);
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("n\n{expected}\n"));
}

#[test]
fn the_point_limit_holds_for_nested_sweeps_before_they_are_elaborated() {
    let dir = tempfile::tempdir().unwrap();
    let program = "sweep a in 0..100000 {\n sweep b in 0..100000 {\n  eval x = a * b\n }\n}\n";
    refused(
        dir.path(),
        program,
        "the sweep has 10000000000 points with the sweeps around it",
    );
    // A sweep evaluated by formulas may have up to 100 million points;
    // one elaborated point by point (here: a file name per point) 10 million.
    refused(
        dir.path(),
        "sweep a in 0..200000000 { eval x = a }\n",
        "has 200000000 points",
    );
    refused(
        dir.path(),
        "sweep a in 0..20000000 { eval x = numel(load(\"m{a}.safetensors\")) }\n",
        "the sweep has 20000000 points",
    );
    std::fs::write(dir.path().join("exp.tv"), "sweep a in 0..20000000 { eval x = a }\n").unwrap();
    let output = bounded(dir.path(), &["check", "exp.tv"], GIB);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn pipes_devices_and_folders_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("mkfifo").arg(dir.path().join("pipe")).status().unwrap();
    assert!(made.success());
    std::fs::create_dir(dir.path().join("folder.tv")).unwrap();
    let special = "not a regular file";
    refused(dir.path(), "let w = load(\"pipe\")\neval n = norm(w)\n", special);
    refused(dir.path(), "let w = load(\"/dev/zero\")\neval n = norm(w)\n", special);
    refused(dir.path(), "use \"pipe\"\n", special);
    refused(dir.path(), "use \"/dev/zero\"\n", special);
    refused(dir.path(), "use \"folder.tv\"\n", "a folder, not a file");
    for program in ["pipe", "/dev/zero", "folder.tv"] {
        let output = bounded(dir.path(), &["check", program], 4 * GIB);
        assert_eq!(output.status.code(), Some(1), "{program}: {}", stderr(&output));
    }
}

#[test]
fn an_oversized_use_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let line = "let x = 1\n";
    std::fs::write(dir.path().join("huge.tv"), line.repeat((11 << 20) / line.len())).unwrap();
    std::fs::write(dir.path().join("exp.tv"), "use \"huge.tv\"\n").unwrap();
    // Far less memory than reading and parsing the file would take.
    let output = bounded(dir.path(), &["check", "exp.tv"], GIB / 2);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("larger than"), "{}", stderr(&output));
}

#[test]
fn a_literal_beyond_f64_is_an_error_not_inf() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        "let x = 1e999\neval y = x\n",
        "the number 1e999 is too large",
    );
    refused(
        dir.path(),
        "sweep a in [1, 2e400] { eval y = a }\n",
        "the number 2e400 is too large",
    );
}

/// Ten megabytes of lines, tokenized piece by piece: far less memory than
/// the tokenizer would take for the whole text at once (over 1.5 GiB).
#[test]
fn a_long_text_is_tokenized_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/llama-tied");
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture.join(name), model.join(name)).unwrap();
    }
    let words = ["the", "time", "vector", "of", "2012", "news,", "a", "model."];
    let mut text = String::new();
    let mut i = 0usize;
    while text.len() < 10 << 20 {
        text.push_str(words[i % words.len()]);
        text.push(if i % 11 == 10 { '\n' } else { ' ' });
        i = i.wrapping_mul(31).wrapping_add(7) % 1_000_003;
    }
    std::fs::write(dir.path().join("news.txt"), text).unwrap();
    let program = "let m = load(\"model\")\neval p = perplexity(m, \"news.txt\")\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let output = bounded(dir.path(), &["check", "exp.tv"], GIB);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// A sweep evaluated by formulas is lowered once and its rows streamed to
/// the report: 810,000 points run within an address space that the same
/// sweep elaborated point by point does not fit in.
#[test]
fn large_sweeps_stream_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::common::random_model(1, safetensors::Dtype::F32, 1.0);
    crate::common::write_file(&dir.path().join("a.safetensors"), &model);
    let model = crate::common::random_model(2, safetensors::Dtype::F32, 1.0);
    crate::common::write_file(&dir.path().join("b.safetensors"), &model);
    let program = "let a = load(\"a.safetensors\")\nlet b = load(\"b.safetensors\")\n\
                   sweep x in 0..900, y in 0..900 {\n    eval c = cosine(x * a - y * b, a)\n}\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let limit = 384 << 20;
    let output = bounded(dir.path(), &["run", "exp.tv", "-o", "out.csv", "--threads", "2"], limit);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    assert_eq!(report.lines().count(), 1 + 900 * 900);
    assert!(report.starts_with("x,y,c\n0,0,NaN\n0,1,-"), "{}", &report[..40]);
    assert!(report.len() > 16 << 20, "the report outgrows the in-memory buffer");
    let elaborated = bounded(
        dir.path(),
        &[
            "run",
            "exp.tv",
            "-o",
            "out2.csv",
            "--threads",
            "2",
            "--elaborate-sweeps",
        ],
        limit,
    );
    assert!(!elaborated.status.success(), "the elaborated sweep should not fit");
}
