//! Outputs: saves and reports never destroy what the user did not ask to
//! replace, and a run leaves all its outputs or none, whether it fails,
//! its report cannot be written, or it is interrupted.

use super::common::{self, listing, tv_command, Raw};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A folder with `base.safetensors` (values 1..=6) and the program.
pub(super) fn setup(program: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_values(&dir.path().join("base.safetensors"), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    dir
}

fn write_values(path: &Path, values: &[f32]) {
    let raw = Raw {
        name: "w".into(),
        dtype: Dtype::F32,
        shape: vec![values.len()],
        bytes: common::encode(Dtype::F32, values),
    };
    common::write_file(path, &[raw]);
}

/// Every file under `dir` with its bytes: what must survive a refused run.
pub(super) fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    listing(dir)
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).ok();
            (name, bytes)
        })
        .collect()
}

pub(super) fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The run fails with a diagnostic containing `expected`, and `dir` is
/// exactly as it was.
pub(super) fn assert_refused(dir: &Path, args: &[&str], expected: &str) {
    let before = snapshot(dir);
    let output = tv_command(dir, args);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    assert_eq!(snapshot(dir), before, "the refused run changed files");
}

/// The values of tensor `w` in a saved file.
fn saved_w(path: &Path) -> Vec<f64> {
    common::read_file(path)["w"].values().unwrap()
}

#[test]
fn a_save_onto_a_folder_holding_inputs_is_refused() {
    let dir = setup("let base = load(\"models/base.safetensors\")\nsave 2 * base to \"models\"\n");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::rename(dir.path().join("base.safetensors"), models.join("base.safetensors")).unwrap();
    std::fs::write(models.join("README.md"), "my notes").unwrap();
    assert_refused(dir.path(), &["run", "exp.tv"], "contains the input checkpoint");
    assert_refused(dir.path(), &["check", "exp.tv"], "contains the input checkpoint");
}

#[test]
fn a_save_into_an_input_folder_is_refused() {
    let dir = setup("let m = load(\"fold\")\nsave 2 * m to \"fold/model.safetensors\"\n");
    let fold = dir.path().join("fold");
    std::fs::create_dir(&fold).unwrap();
    std::fs::rename(dir.path().join("base.safetensors"), fold.join("model.safetensors")).unwrap();
    assert_refused(dir.path(), &["run", "exp.tv"], "is the input checkpoint");
    // Through a symbolic link and `..`, the same file.
    std::os::unix::fs::symlink(&fold, dir.path().join("alias")).unwrap();
    let program = "let m = load(\"fold\")\nsave 2 * m to \"alias/../fold/./model.safetensors\"\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    assert_refused(dir.path(), &["run", "exp.tv"], "input checkpoint");
}

#[test]
fn a_save_onto_the_program_or_its_folder_is_refused() {
    let dir = setup("let b = load(\"base.safetensors\")\nsave b to \".\"\n");
    assert_refused(dir.path(), &["run", "exp.tv"], "names an existing folder");
    let name = dir.path().file_name().unwrap().to_str().unwrap().to_string();
    let program = format!("let b = load(\"base.safetensors\")\nsave b to \"../{name}\"\n");
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    assert_refused(dir.path(), &["run", "exp.tv"], "contains");
    let program = "let b = load(\"base.safetensors\")\nsave b to \"exp.tv\"\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    assert_refused(dir.path(), &["run", "exp.tv"], "is the program file");
}

#[test]
fn a_save_onto_a_foreign_folder_is_refused_unless_asked() {
    let root = tempfile::tempdir().unwrap();
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("thesis.tex"), "years of work").unwrap();
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    write_values(&work.join("base.safetensors"), &[1.0, -2.0]);
    let absolute = victim.display().to_string();
    for target in ["../victim", absolute.as_str()] {
        let program = format!("let b = load(\"base.safetensors\")\nsave 3 * b to \"{target}\"\n");
        std::fs::write(work.join("exp.tv"), program).unwrap();
        let before = snapshot(root.path());
        let output = tv_command(&work, &["run", "exp.tv"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("thesis.tex"), "{}", stderr(&output));
        assert_eq!(snapshot(root.path()), before);
    }
    let output = tv_command(&work, &["run", "exp.tv", "--overwrite"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!victim.join("thesis.tex").exists());
    assert_eq!(saved_w(&victim.join("model.safetensors")), vec![3.0, -6.0]);
}

#[test]
fn an_earlier_save_is_replaced_and_a_foreign_file_is_not() {
    let dir = setup("let b = load(\"base.safetensors\")\nsave 2 * b to \"out.safetensors\"\nsave b to \"folder\"\n");
    let out = dir.path().join("out.safetensors");
    write_values(&out, &[9.0]);
    assert_refused(dir.path(), &["run", "exp.tv"], "is not a checkpoint saved by tv");
    std::fs::remove_file(&out).unwrap();
    for factor in [2.0, 5.0] {
        let program = format!(
            "let b = load(\"base.safetensors\")\nsave {factor} * b to \"out.safetensors\"\nsave b to \"folder\"\n"
        );
        std::fs::write(dir.path().join("exp.tv"), program).unwrap();
        let output = tv_command(dir.path(), &["run", "exp.tv"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let expected: Vec<f64> = (1..=6).map(|v| v as f64 * factor).collect();
        assert_eq!(saved_w(&out), expected);
    }
    // A file the user put into a saved folder makes it theirs again.
    std::fs::write(dir.path().join("folder/notes.txt"), "mine").unwrap();
    assert_refused(dir.path(), &["run", "exp.tv"], "notes.txt");
    // So does a folder, even one a manifest names: tv saves plain files.
    std::fs::remove_file(dir.path().join("folder/notes.txt")).unwrap();
    std::fs::create_dir(dir.path().join("folder/sub")).unwrap();
    std::fs::write(dir.path().join("folder/sub/keep"), "mine").unwrap();
    let manifest = r#"{"saved_by": "tv", "files": ["sub", "model.safetensors"]}"#;
    std::fs::write(dir.path().join("folder/.tv-save.json"), manifest).unwrap();
    assert_refused(dir.path(), &["run", "exp.tv"], "sub");
}

#[test]
fn the_report_never_replaces_the_program_an_input_or_a_save() {
    let dir = setup("let b = load(\"base.safetensors\")\nsave b to \"out.safetensors\"\neval n = norm(b)\n");
    for target in ["exp.tv", "base.safetensors", "out.safetensors", "."] {
        assert_refused(dir.path(), &["run", "exp.tv", "-o", target], "report file");
        assert_refused(
            dir.path(),
            &["run", "exp.tv", "-o", target, "--overwrite"],
            "report file",
        );
    }
    std::fs::write(dir.path().join("notes.csv"), "a,b\n1,2\n").unwrap();
    assert_refused(
        dir.path(),
        &["run", "exp.tv", "-o", "notes.csv"],
        "not an earlier report",
    );
    for _ in 0..2 {
        let output = tv_command(dir.path(), &["run", "exp.tv", "-o", "report.csv"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let norm: f64 = (1..=6).map(|v| (v * v) as f64).sum::<f64>().sqrt();
    let report = std::fs::read_to_string(dir.path().join("report.csv")).unwrap();
    let value: f64 = report.lines().nth(1).unwrap().parse().unwrap();
    assert!((value - norm).abs() < 1e-6 * norm, "{report}");
}

#[test]
fn a_report_that_cannot_be_written_leaves_no_save() {
    let dir = setup("let b = load(\"base.safetensors\")\nsave b to \"out/model\"\neval n = norm(b)\n");
    let before = snapshot(dir.path());
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tv"))
        .args(["run", "exp.tv"])
        .current_dir(dir.path())
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(snapshot(dir.path()), before);
}

/// The report (a 2000-row sweep) is larger than the file-size limit the
/// run gets; the save is smaller. Writing the report fails as on a full
/// disk, after the save was written.
#[test]
fn a_report_on_a_full_disk_leaves_no_save() {
    let program = "let b = load(\"base.safetensors\")\nsave b to \"out.safetensors\"\n\
                   sweep a in 0..2000 { eval n = norm(a * b) }\n";
    let dir = setup(program);
    let before = snapshot(dir.path());
    let mut command = Command::new(env!("CARGO_BIN_EXE_tv"));
    command
        .args(["run", "exp.tv", "-o", "report.csv"])
        .current_dir(dir.path());
    limit_file_size(&mut command, 4096);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("report.csv"), "{}", stderr(&output));
    assert_eq!(snapshot(dir.path()), before);
}

/// Files the child writes may not exceed `bytes`; writing past it fails
/// with EFBIG instead of killing the process.
fn limit_file_size(command: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
}

#[test]
fn a_run_that_fails_while_running_leaves_nothing() {
    let program = "let b = load(\"base.safetensors\")\nsave b to \"new/deep/model\"\n\
                   eval s = command(\"test -d {model} && exit 3\", b)\n";
    let dir = setup(program);
    let before = snapshot(dir.path());
    let output = tv_command(dir.path(), &["run", "exp.tv", "--allow-commands"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(snapshot(dir.path()), before);
    // Many saves sharing the folders made for the first of them.
    let program =
        "let b = load(\"base.safetensors\")\nsweep a in 1..=5 { save a * b to \"new/deep/{a}.safetensors\" }\n\
                   eval s = command(\"test -d {model} && exit 3\", b)\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let before = snapshot(dir.path());
    let output = tv_command(dir.path(), &["run", "exp.tv", "--allow-commands"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(snapshot(dir.path()), before);
}

/// A checkpoint of `bytes` bytes of f32 ones, written quickly.
fn write_large(path: &Path, bytes: usize) {
    let n = bytes / 4;
    let header = format!(
        "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{}]}}}}",
        4 * n
    );
    let header = format!("{header:<width$}", width = header.len().div_ceil(8) * 8);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    use std::io::Write;
    file.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    file.write_all(header.as_bytes()).unwrap();
    let chunk: Vec<u8> = std::iter::repeat_n(1.0f32.to_le_bytes(), 1 << 16).flatten().collect();
    for _ in 0..n / (1 << 16) {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(&chunk[..4 * (n % (1 << 16))]).unwrap();
}

const LARGE_PROGRAM: &str = "let b = load(\"large.safetensors\")\n\
                             save 2 * b to \"made/for/it/model\"\nsave 3 * b to \"single.safetensors\"\n\
                             eval n = norm(b)\n";

/// A run of `LARGE_PROGRAM` over a 256 MiB checkpoint, returned once its
/// saves are being written.
fn start_large_run(dir: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tv"))
        .args(["run", "exp.tv"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while staged_names(dir).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(120), "no save was staged");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was interrupted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn staged_names(dir: &Path) -> Vec<String> {
    let staged = |n: &String| n.contains(".tv-") && (n.ends_with(".tmp") || n.ends_with(".old"));
    listing(dir).into_iter().filter(staged).collect()
}

fn large_setup() -> (tempfile::TempDir, BTreeMap<String, Option<Vec<u8>>>) {
    let dir = setup(LARGE_PROGRAM);
    write_large(&dir.path().join("large.safetensors"), 256 << 20);
    let before = listing(dir.path()).into_iter().map(|n| (n, None)).collect();
    (dir, before)
}

fn names(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    listing(dir).into_iter().map(|n| (n, None)).collect()
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: a plain system call on a process this test started.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0);
}

#[test]
fn an_interrupted_run_removes_its_staging_and_folders() {
    for (name, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let (dir, before) = large_setup();
        let child = start_large_run(dir.path());
        signal(&child, name);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
        assert_eq!(names(dir.path()), before, "after signal {name}");
    }
}

#[test]
fn staging_left_by_a_killed_run_is_refused_and_then_removed() {
    let (dir, _) = large_setup();
    let mut child = start_large_run(dir.path());
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let left = staged_names(dir.path());
    assert!(!left.is_empty());
    let staged: PathBuf = left
        .iter()
        .map(|n| dir.path().join(n))
        .min_by_key(|p| p.components().count())
        .unwrap();
    let output = tv_command(dir.path(), &["inspect", staged.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unfinished output"), "{}", stderr(&output));
    let output = tv_command(dir.path(), &["run", "exp.tv"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(staged_names(dir.path()), Vec::<String>::new());
    let single = common::read_file(&dir.path().join("single.safetensors"));
    assert!(single["w"].values().unwrap().iter().all(|v| *v == 3.0));
}

#[test]
fn a_clash_in_a_sweep_is_one_diagnostic_and_a_special_file_is_never_a_target() {
    let program = "let b = load(\"base.safetensors\")\nsweep a in 0..500 {\n save a * b to \"many/{a}.safetensors\"\n}\nsave b to \"many\"\n";
    let dir = setup(program);
    let before = snapshot(dir.path());
    let output = tv_command(dir.path(), &["run", "exp.tv"]);
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert_eq!(said.matches("tv::output").count(), 1, "{said}");
    assert!(said.contains("and 499 more targets"), "{said}");
    assert_eq!(snapshot(dir.path()), before);
    let program = "let b = load(\"base.safetensors\")\neval n = norm(b)\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    for special in ["/dev/null", "/dev/stdout"] {
        let output = tv_command(dir.path(), &["run", "exp.tv", "-o", special, "--overwrite"]);
        assert_eq!(output.status.code(), Some(1), "{special}: {}", stderr(&output));
        assert!(Path::new(special).exists());
    }
}

/// Runs tv with stdout or stderr a pipe whose reading end was closed
/// before tv started; returns the exit code.
fn run_with_closed(dir: &Path, args: &[&str], close_stdout: bool) -> Option<i32> {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = Command::new(env!("CARGO_BIN_EXE_tv"));
    command.args(args).current_dir(dir).stdin(Stdio::null());
    match close_stdout {
        true => command.stdout(writer).stderr(Stdio::null()),
        false => command.stdout(Stdio::null()).stderr(writer),
    };
    command.status().unwrap().code()
}

#[test]
fn a_closed_stdout_or_stderr_is_an_error_not_a_panic() {
    let dir = setup("let b = load(\"base.safetensors\")\nsave b to \"out\"\neval n = norm(b)\n");
    let before = snapshot(dir.path());
    for args in [
        &["run", "exp.tv"][..],
        &["check", "exp.tv"],
        &["plan", "exp.tv"],
        &["inspect", "base.safetensors"],
    ] {
        assert_eq!(run_with_closed(dir.path(), args, true), Some(1), "{args:?}");
    }
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a run whose report was lost saved nothing"
    );
    std::fs::write(dir.path().join("bad.tv"), "let b = load(\"missing.safetensors\")\n").unwrap();
    assert_eq!(run_with_closed(dir.path(), &["check", "bad.tv"], false), Some(1));
    assert_eq!(run_with_closed(dir.path(), &["run", "exp.tv"], false), Some(0));
}

#[test]
fn paths_that_hide_their_target_are_refused() {
    let dir = setup("");
    std::fs::write(dir.path().join("precious.safetensors"), "a thesis").unwrap();
    std::fs::write(dir.path().join("data.csv"), "label,x\n1,2\n").unwrap();
    let cases = [
        ("save b to \"zz/../precious.safetensors\"", "which does not exist"),
        ("save b to \"zz/../../victim\"", "which does not exist"),
        (
            "save b to \".x.tv-99999-abc.tmp\"",
            "a name tv uses for unfinished outputs",
        ),
        ("save b to \"x.safetensors/\"", "ends with `/`"),
        ("save b to \"out/.\"", "names an existing folder"),
    ];
    for (save, expected) in cases {
        let program = format!("let b = load(\"base.safetensors\")\n{save}\n");
        std::fs::write(dir.path().join("exp.tv"), program).unwrap();
        assert_refused(dir.path(), &["run", "exp.tv", "--overwrite"], expected);
    }
    let program = "let b = load(\"base.safetensors\")\neval n = norm(b)\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    assert_refused(
        dir.path(),
        &["run", "exp.tv", "-o", "zz/../data.csv", "--overwrite"],
        "which does not exist",
    );
}

#[test]
fn a_target_that_appears_during_the_run_is_not_replaced() {
    let program = "let b = load(\"base.safetensors\")\nsave b to \"keep/model\"\nsave 2 * b to \"out.safetensors\"\n\
                   eval s = command(\"test -d {model} && echo mine > out.safetensors && echo 1\", b)\n";
    let dir = setup(program);
    let output = tv_command(dir.path(), &["run", "exp.tv", "--allow-commands"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("appeared there"), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.safetensors")).unwrap(),
        "mine\n"
    );
    assert!(!dir.path().join("keep").exists());
    assert!(staged_names(dir.path()).is_empty());
}

#[test]
fn files_the_program_reads_are_never_outputs_even_with_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/digits.csv");
    tv::digits::write_tasks(&digits, dir.path()).unwrap();
    let config = r#"{"architecture": "mlp", "layers": [64, 8, 10], "activation": "relu"}"#;
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    std::fs::write(dir.path().join("init.tv"), "save init(\"config.json\") to \"mlp\"\n").unwrap();
    let output = tv_command(dir.path(), &["run", "init.tv"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let program = "let m = load(\"mlp\")\neval acc = accuracy(m, \"original_test.csv\")\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let args = ["run", "exp.tv", "-o", "original_test.csv", "--overwrite"];
    assert_refused(dir.path(), &args, "is the file original_test.csv");
    let program = "save init(\"config.json\", seed = 1) to \"config.json\"\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    assert_refused(dir.path(), &["run", "exp.tv", "--overwrite"], "is the file");
}

#[test]
fn staging_reached_through_a_link_is_refused() {
    let dir = setup("");
    let staged = dir.path().join(".m.safetensors.tv-1-abcdef.tmp");
    std::fs::copy(dir.path().join("base.safetensors"), &staged).unwrap();
    std::os::unix::fs::symlink(&staged, dir.path().join("link.safetensors")).unwrap();
    let output = tv_command(dir.path(), &["inspect", "link.safetensors"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unfinished output"), "{}", stderr(&output));
}
