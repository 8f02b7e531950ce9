//! Resuming an interrupted run: model evaluations are journaled as they
//! are made; a run killed half-way (SIGKILL) and resumed with `--resume`
//! writes the bytes of an uninterrupted run without repeating what the
//! journal holds; a journal is never silently discarded, and one of
//! another program is refused.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// Eight points, each a command that logs its point (to the file `$LOG`
/// names: a killed run's to its own) and takes a while, and a weight-space
/// eval beside it.
const PROGRAM: &str = "\
let x = init(\"mlp.json\", seed = 1)
let y = init(\"mlp.json\", seed = 2)
sweep a in [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75] {
    eval slow = command(\"sleep 0.3; test -f {model}/config.json && echo {a} >> $LOG && echo {a}\", (1 - a) * x + a * y)
    eval cos = cosine((1 - a) * x + a * y, y)
}
";

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"architecture": "mlp", "layers": [4, 3, 2], "activation": "relu"}"#;
    std::fs::write(dir.path().join("mlp.json"), config).unwrap();
    std::fs::write(dir.path().join("exp.tv"), PROGRAM).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "exp.tv", "--allow-commands", "-o", "r.csv"];
    args.extend(extra);
    tv(dir, &args, RAN).output().unwrap()
}

/// Where the runs a test lets finish log their commands, and where those
/// it kills do: a command the kill cut short cannot write into the log of
/// a later run, however late it is stopped.
const RAN: &str = "ran.log";
const KILLED: &str = "killed.log";

fn tv(dir: &Path, args: &[&str], log: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tv"));
    command
        .args(args)
        .current_dir(dir)
        .env("LOG", log)
        .stdin(std::process::Stdio::null());
    command
}

/// Results in the journal (complete lines after the two header lines).
fn journaled(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("r.csv.tv-journal")).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .count()
        .saturating_sub(2)
}

/// Starts the run and kills it (SIGKILL) once `after` results are journaled.
fn kill_after(dir: &Path, after: usize) {
    let mut child = tv(dir, &["run", "exp.tv", "--allow-commands", "-o", "r.csv"], KILLED)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while journaled(dir) < after {
        assert!(start.elapsed() < Duration::from_secs(120), "the run journaled nothing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The command being run when the kill came stops with its run.
    std::thread::sleep(Duration::from_millis(200));
}

fn uninterrupted() -> Vec<u8> {
    let dir = setup();
    let out = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::read(dir.path().join("r.csv")).unwrap()
}

#[test]
fn a_run_killed_half_way_resumes_to_the_same_bytes() {
    let expected = uninterrupted();
    let dir = setup();
    let d = dir.path();
    kill_after(d, 3);
    let kept = journaled(d);
    assert!((3..8).contains(&kept), "{kept} results journaled");
    assert!(
        !d.join("r.csv").exists() && !d.join("r.csv.json").exists(),
        "a killed run committed"
    );

    // Without --resume the journal is not thrown away.
    let out = run(d, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    assert_eq!(journaled(d), kept);

    let out = run(d, &["--resume", "--stats"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("r.csv")).unwrap(), expected);
    let stats = stderr(&out);
    let made = 8 - kept;
    assert!(
        stats.contains(&format!(
            "model evaluations  {made} made, {kept} from the interrupted run's journal"
        )),
        "{stats}"
    );
    // Points in the journal ran once; only one cut short by the kill twice.
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap_or_default();
    let log = read(KILLED) + &read(RAN);
    let runs = log.lines().count();
    assert!((8..=9).contains(&runs), "commands run: {log}");
    assert!(!d.join("r.csv.tv-journal").exists(), "the journal outlived the commit");
    let staged: Vec<_> = common::listing(d).into_iter().filter(|n| n.ends_with(".tmp")).collect();
    assert!(staged.is_empty(), "staging left: {staged:?}");
}

#[test]
fn a_journal_of_another_program_is_refused_and_overwrite_starts_afresh() {
    let expected = uninterrupted();
    let dir = setup();
    let d = dir.path();
    kill_after(d, 2);
    let kept = journaled(d);
    std::fs::write(d.join("exp.tv"), PROGRAM.replace("0.25,", "0.3,")).unwrap();
    let out = run(d, &["--resume"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is of another run: the program exp.tv has changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(journaled(d), kept, "a refused journal is kept");
    std::fs::write(d.join("exp.tv"), PROGRAM).unwrap();
    let out = run(d, &["--overwrite"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("r.csv")).unwrap(), expected);
    let log = std::fs::read_to_string(d.join(RAN)).unwrap();
    assert_eq!(log.lines().count(), 8, "starting afresh runs every point: {log}");
}

#[test]
fn a_failed_run_keeps_its_results_for_resume_and_a_resume_without_journal_runs_whole() {
    let dir = setup();
    let d = dir.path();
    let failing = PROGRAM.replace("sleep 0.3; ", "test {a} != 1.5 && ");
    std::fs::write(d.join("exp.tv"), &failing).unwrap();
    let out = run(d, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("6 finished evaluations are kept in r.csv.tv-journal"),
        "{text}"
    );
    assert!(text.contains("--resume"), "{text}");
    assert_eq!(journaled(d), 6);
    assert!(!d.join("r.csv").exists());

    // A run with nothing to resume starts from the beginning.
    let dir = setup();
    let out = run(dir.path(), &["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path().join("r.csv")).unwrap(), uninterrupted());
}

/// A run killed before its first result kept nothing: the next run, with
/// or without --resume, starts afresh without asking.
#[test]
fn a_journal_without_results_is_no_obstacle() {
    let dir = setup();
    let d = dir.path();
    let mut child = tv(d, &["run", "exp.tv", "--allow-commands", "-o", "r.csv"], KILLED)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !d.join("r.csv.tv-journal").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no journal");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(journaled(d), 0, "killed before its first result");
    let out = run(d, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("r.csv")).unwrap(), uninterrupted());
}

/// A file at the journal's place that tv did not write is never replaced
/// without --overwrite; a journal with a damaged line, or made with the
/// other --elaborate-sweeps setting, is refused, not half-trusted.
#[test]
fn foreign_damaged_and_mismatched_journals_are_refused() {
    let dir = setup();
    let d = dir.path();
    let journal = d.join("r.csv.tv-journal");
    std::fs::write(&journal, "my notes\nline two\nline three\n").unwrap();
    for extra in [&[][..], &["--resume"][..]] {
        let out = run(d, extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert!(stderr(&out).contains("not a journal tv wrote"), "{}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(&journal).unwrap(),
            "my notes\nline two\nline three\n"
        );
    }

    std::fs::remove_file(&journal).unwrap();
    kill_after(d, 2);
    let whole = std::fs::read_to_string(&journal).unwrap();
    let line = whole.lines().nth(2).unwrap().to_string();
    let (id, rest) = line.split_once(' ').unwrap();
    let (kind, bits) = rest.split_once(' ').unwrap();
    let damaged = [
        format!("{id} {kind} 3f"),
        format!("{id} {kind} +{}", &bits[1..]),
        format!("0{id} {kind} {bits}"),
        format!("+{id} {kind} {bits}"),
        format!("{id} {kind} {bits} extra"),
    ];
    for bad in damaged {
        std::fs::write(&journal, whole.replacen(&line, &bad, 1)).unwrap();
        let out = run(d, &["--resume"]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(stderr(&out).contains("line 3 is damaged"), "{bad}: {}", stderr(&out));
    }

    std::fs::write(&journal, &whole).unwrap();
    let out = run(d, &["--resume", "--elaborate-sweeps"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was made without --elaborate-sweeps"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        whole,
        "a refused journal is kept"
    );
}
