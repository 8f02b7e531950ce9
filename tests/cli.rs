//! The `tv` command line: exit codes, where output goes, and that failed
//! runs leave nothing behind.

mod common;

use common::*;
use safetensors::Dtype;
use std::process::Output;

const GOOD: &str = r#"# a small experiment
let a = load("a.safetensors")
let b = load("b.safetensors")
eval c = cosine(a, b)
sweep t in [0.5, 1] {
    eval n = norm(t * a - b)
}
"#;

/// A tempdir with two random checkpoints and `good.tv`.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("a.safetensors"), &random_model(1, Dtype::F32, 1.0));
    write_file(&dir.path().join("b.safetensors"), &random_model(2, Dtype::F16, 1.0));
    std::fs::write(dir.path().join("good.tv"), GOOD).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// 1-based line and column of the first `needle` in `source`.
fn line_col(source: &str, needle: &str) -> (usize, usize) {
    let at = source.find(needle).expect("needle in source");
    let line = source[..at].matches('\n').count() + 1;
    let col = at - source[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

fn assert_plain(stderr: &str) {
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes when piped: {stderr:?}");
    assert!(
        !stderr.contains('\r'),
        "no carriage returns (progress bars) when piped: {stderr:?}"
    );
}

#[test]
fn run_prints_the_csv_report_to_stdout() {
    let dir = fixture();
    let before = listing(dir.path());
    let out = tv_command(dir.path(), &["run", "good.tv"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let stdout = text(&out.stdout);
    let mut reader = csv::Reader::from_reader(stdout.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["t", "c", "n"], "{stdout}");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert_eq!(&rows[1][0], "0.5");
    assert_eq!(&rows[2][0], "1");
    for row in &rows {
        assert!(
            row.iter().any(|cell| cell.parse::<f64>().is_ok_and(f64::is_finite)),
            "{stdout}"
        );
    }
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr when piped: {}",
        describe(&out)
    );
    assert_eq!(listing(dir.path()), before, "a run without saves or -o writes no file");
}

#[test]
fn output_flag_writes_the_same_bytes_as_stdout() {
    let dir = fixture();
    let plain = tv_command(dir.path(), &["run", "good.tv"]);
    assert_eq!(code(&plain), 0, "{}", describe(&plain));
    let mut before = listing(dir.path());
    let out = tv_command(dir.path(), &["run", "good.tv", "-o", "report.csv"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        out.stdout.is_empty(),
        "the report goes to the file only: {}",
        describe(&out)
    );
    assert_eq!(std::fs::read(dir.path().join("report.csv")).unwrap(), plain.stdout);
    before.insert("report.csv".into());
    before.insert("report.csv.json".into());
    assert_eq!(
        listing(dir.path()),
        before,
        "the report and its run record, no temporary"
    );
    // Overwriting an existing report works, through the long flag too.
    let again = tv_command(dir.path(), &["run", "good.tv", "--output", "report.csv"]);
    assert_eq!(code(&again), 0, "{}", describe(&again));
    assert_eq!(std::fs::read(dir.path().join("report.csv")).unwrap(), plain.stdout);
}

#[test]
fn a_failing_program_exits_1_with_a_located_diagnostic_and_writes_nothing() {
    let dir = fixture();
    let program = r#"let a = load("a.safetensors")
let b = load("b.safetensors")
save a - b to "diff.safetensors"
save a to "folder_out"
eval n = norm(a) + nrom(b)
"#;
    std::fs::write(dir.path().join("bad.tv"), program).unwrap();
    let before = listing(dir.path());
    let out = tv_command(dir.path(), &["run", "bad.tv", "-o", "report.csv"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let stderr = text(&out.stderr);
    let (line, col) = line_col(program, "nrom");
    assert!(
        stderr.contains(&format!("bad.tv:{line}:{col}")),
        "file:line:col in {stderr}"
    );
    assert!(
        stderr.contains("nrom"),
        "the message names the unknown function: {stderr}"
    );
    assert!(stderr.contains("norm"), "and suggests the closest name: {stderr}");
    assert_plain(&stderr);
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert_eq!(listing(dir.path()), before, "no report, no saves, no temporaries");
}

#[test]
fn a_type_error_is_located_too() {
    let dir = fixture();
    let program = "let a = load(\"a.safetensors\")\neval n = norm(\"a\" + a)\n";
    std::fs::write(dir.path().join("type.tv"), program).unwrap();
    let out = tv_command(dir.path(), &["run", "type.tv"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let stderr = text(&out.stderr);
    let (line, col) = line_col(program, "\"a\" + a");
    assert!(
        stderr.contains(&format!("type.tv:{line}:{col}")),
        "file:line:col in {stderr}"
    );
    assert!(stderr.contains('+'), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_save_that_cannot_be_opened_fails_the_run_and_leaves_no_earlier_save() {
    let dir = fixture();
    // The second target's parent is a file, so that save fails; the first
    // save, which could be written, must not appear either.
    let program = r#"let a = load("a.safetensors")
let b = load("b.safetensors")
save a - b to "first.safetensors"
save a + b to "a.safetensors/second.safetensors"
eval n = norm(a)
"#;
    std::fs::write(dir.path().join("unwritable.tv"), program).unwrap();
    let before = listing(dir.path());
    let out = tv_command(dir.path(), &["run", "unwritable.tv", "-o", "report.csv"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let stderr = text(&out.stderr);
    let (line, _) = line_col(program, "\"a.safetensors/second");
    assert!(
        stderr.contains(&format!("unwritable.tv:{line}:")),
        "the failing save is located: {stderr}"
    );
    assert_eq!(listing(dir.path()), before, "no report, no first save, no temporaries");
}

#[test]
fn a_run_that_fails_after_its_saves_leaves_no_saved_file() {
    let dir = fixture();
    let program = r#"let a = load("a.safetensors")
let b = load("b.safetensors")
save a - b to "first.safetensors"
save 0.5 * a + 0.5 * b to "merged"
eval n = norm(a)
"#;
    std::fs::write(dir.path().join("late.tv"), program).unwrap();
    // The report cannot be written: its target is an existing folder, a
    // failure that only shows once the saves have been computed.
    std::fs::create_dir(dir.path().join("report_dir")).unwrap();
    let before = listing(dir.path());
    let out = tv_command(dir.path(), &["run", "late.tv", "-o", "report_dir"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(text(&out.stderr).contains("report"), "{}", describe(&out));
    assert_eq!(
        listing(dir.path()),
        before,
        "a failed run leaves no saved file and no temporary"
    );
}

#[test]
fn check_says_one_line_on_a_good_program_and_exits_1_on_a_bad_one() {
    let dir = fixture();
    let saving = format!("{GOOD}save a - b to \"out.safetensors\"\n");
    std::fs::write(dir.path().join("saving.tv"), saving).unwrap();
    let before = listing(dir.path());
    for file in ["good.tv", "saving.tv"] {
        let out = tv_command(dir.path(), &["check", file]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
        let said = text(&out.stdout);
        assert_eq!(said.lines().count(), 1, "check prints one line: {}", describe(&out));
        assert!(said.starts_with(&format!("{file}: no errors")), "{}", describe(&out));
    }
    assert_eq!(listing(dir.path()), before, "check writes nothing");

    let bad = "let a = load(\"a.safetensors\")\nlet c = load(\"missing.safetensors\")\neval n = norm(a) + nrom(a)\n";
    std::fs::write(dir.path().join("bad.tv"), bad).unwrap();
    let out = tv_command(dir.path(), &["check", "bad.tv"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("missing.safetensors"), "every error at once: {stderr}");
    assert!(stderr.contains("nrom"), "every error at once: {stderr}");
    let (line, col) = line_col(bad, "nrom");
    assert!(stderr.contains(&format!("bad.tv:{line}:{col}")), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_plain(&stderr);

    let out = tv_command(dir.path(), &["check", "no_such_file.tv"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(text(&out.stderr).contains("no_such_file.tv"), "{}", describe(&out));
}

#[test]
fn inspect_lists_tensors_and_totals() {
    let dir = fixture();
    let model = random_model(7, Dtype::BF16, 1.0);
    write_sharded(&dir.path().join("sharded"), &model, 2, "x");
    for (target, dtype) in [("a.safetensors", "F32"), ("sharded", "BF16")] {
        let out = tv_command(dir.path(), &["inspect", target]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
        let stdout = text(&out.stdout);
        for (name, shape) in FLOAT_SHAPES {
            let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(name));
            let line = line.unwrap_or_else(|| panic!("{name} listed in:\n{stdout}"));
            assert!(line.contains(dtype), "{name} has dtype {dtype}: {line}");
            assert!(
                line.contains(&format!("{shape:?}")),
                "{name} has shape {shape:?}: {line}"
            );
        }
        let ints = stdout
            .lines()
            .find(|l| l.starts_with(INT_NAME))
            .expect("the i64 buffer is listed");
        assert!(ints.contains("I64") && ints.contains(&format!("[{INT_LEN}]")), "{ints}");
        let params: usize = FLOAT_SHAPES
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum::<usize>()
            + INT_LEN;
        let total = stdout
            .lines()
            .find(|l| l.starts_with("total"))
            .unwrap_or_else(|| panic!("a total row:\n{stdout}"));
        let cells: Vec<&str> = total.split_whitespace().collect();
        assert!(cells.contains(&"5"), "5 tensors in total: {total}");
        assert!(
            cells.contains(&params.to_string().as_str()),
            "{params} parameters in total: {total}"
        );
    }
}

#[test]
fn inspect_of_a_missing_or_corrupt_checkpoint_exits_1() {
    let dir = fixture();
    std::fs::write(
        dir.path().join("corrupt.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header",
    )
    .unwrap();
    let mut truncated = std::fs::read(dir.path().join("a.safetensors")).unwrap();
    truncated.truncate(truncated.len() - 10);
    std::fs::write(dir.path().join("truncated.safetensors"), truncated).unwrap();
    std::fs::create_dir(dir.path().join("empty_folder")).unwrap();
    for target in [
        "missing.safetensors",
        "corrupt.safetensors",
        "truncated.safetensors",
        "empty_folder",
    ] {
        let out = tv_command(dir.path(), &["inspect", target]);
        assert_eq!(code(&out), 1, "{target}: {}", describe(&out));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(target),
            "{target}: the message names the path: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{target}: {}", describe(&out));
        assert_plain(&stderr);
    }
}

#[test]
fn bad_command_lines_exit_2() {
    let dir = fixture();
    let cases: &[&[&str]] = &[
        &["run", "good.tv", "--threads", "0"],
        &["run", "good.tv", "--threads", "many"],
        &["run", "good.tv", "--dtype", "f64"],
        &["run", "good.tv", "--device", "tpu"],
        &["run", "good.tv", "--no-such-flag"],
        &["run"],
        &["frobnicate", "good.tv"],
        &[],
    ];
    for args in cases {
        let out = tv_command(dir.path(), args);
        assert_eq!(code(&out), 2, "tv {args:?}: {}", describe(&out));
        assert!(!out.stderr.is_empty(), "tv {args:?} explains itself on stderr");
        assert!(out.stdout.is_empty(), "tv {args:?}: {}", describe(&out));
    }
}

#[test]
fn help_mentions_examples_and_exit_codes() {
    let dir = fixture();
    let out = tv_command(dir.path(), &["--help"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let help = text(&out.stdout);
    assert!(help.contains("Examples"), "{help}");
    assert!(help.contains("tv run"), "{help}");
    assert!(help.contains("Exit status"), "{help}");
    for status in ["0", "1", "2"] {
        assert!(
            help.contains(&format!(" {status} ")),
            "exit status {status} explained: {help}"
        );
    }
    for command in ["run", "check", "inspect"] {
        assert!(help.contains(command), "{help}");
    }
}

#[test]
fn stats_go_to_stderr() {
    let dir = fixture();
    let plain = tv_command(dir.path(), &["run", "good.tv"]);
    let out = tv_command(dir.path(), &["run", "good.tv", "--stats"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(out.stdout, plain.stdout, "stdout holds the report only");
    let stderr = text(&out.stderr);
    let line = |key: &str| {
        let found = stderr
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{stderr}"));
        found[key.len()..].trim().to_string()
    };
    assert_eq!(line("passes over data"), "1", "{stderr}");
    // "bytes read         88.00 KiB (90112 B)": the exact count is in brackets.
    let exact = |value: String| -> u64 {
        let inner = value.rsplit('(').next().unwrap().trim_end_matches(" B)");
        inner.parse().unwrap_or_else(|_| panic!("{value}"))
    };
    let read = exact(line("bytes read"));
    let expected = float_bytes(&random_model(1, Dtype::F32, 1.0)) + float_bytes(&random_model(2, Dtype::F16, 1.0));
    assert_eq!(read, expected, "every float tensor of both inputs, once: {stderr}");
    assert_eq!(exact(line("bytes written")), 0, "{stderr}");
    assert!(line("peak memory").ends_with("anonymous (sampled)"), "{stderr}");
    assert_plain(&stderr);
}

#[test]
fn thread_count_does_not_change_stdout() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("x.safetensors"), &many_tensor_model(5, 60));
    write_file(&dir.path().join("y.safetensors"), &many_tensor_model(6, 60));
    let program = r#"
        let x = load("x.safetensors")
        let y = load("y.safetensors")
        eval c = cosine(x, y)
        sweep a in 0..=2 step 0.05 {
            eval n = norm(a * x - y)
            eval d = dot(x / 3, only(y, "blocks.1*") - a * x)
        }
    "#;
    std::fs::write(dir.path().join("p.tv"), program).unwrap();
    let one = tv_command(dir.path(), &["run", "p.tv", "--threads", "1"]);
    let two = tv_command(dir.path(), &["run", "p.tv", "--threads", "2"]);
    let four = tv_command(dir.path(), &["run", "p.tv", "--threads", "4"]);
    assert_eq!(code(&one), 0, "{}", describe(&one));
    assert!(text(&one.stdout).lines().count() > 40, "{}", describe(&one));
    assert_eq!(one.stdout, two.stdout, "--threads 1 and --threads 2");
    assert_eq!(one.stdout, four.stdout, "--threads 1 and --threads 4");
}

#[test]
fn cuda_is_refused_clearly_on_a_cpu_build() {
    let dir = fixture();
    let out = tv_command(dir.path(), &["run", "good.tv", "--device", "cuda"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cuda"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("cpu"),
        "the message says this build is CPU-only: {stderr}"
    );
    assert!(out.stdout.is_empty());

    let program = format!("set device = \"cuda:1\"\n{GOOD}");
    std::fs::write(dir.path().join("cuda.tv"), program).unwrap();
    let out = tv_command(dir.path(), &["run", "cuda.tv"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(text(&out.stderr).contains("cuda:1"), "{}", describe(&out));
    // The flag wins over the program's setting.
    let out = tv_command(dir.path(), &["run", "cuda.tv", "--device", "cpu"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
}

#[test]
fn saves_from_the_command_line_and_dtype_flag() {
    let dir = fixture();
    let program = format!("{GOOD}save a - b to \"out/diff.safetensors\"\n");
    std::fs::write(dir.path().join("save.tv"), program).unwrap();
    let out = tv_command(dir.path(), &["run", "save.tv", "--dtype", "bf16"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let saved = read_file(&dir.path().join("out/diff.safetensors"));
    for (name, t) in &saved {
        let expected = if name == INT_NAME { Dtype::I64 } else { Dtype::BF16 };
        assert_eq!(t.dtype, expected, "{name}");
    }
    assert_eq!(saved.len(), FLOAT_SHAPES.len() + 1);
}

#[test]
fn save_over_an_input_or_another_save_is_refused_however_the_path_is_spelled() {
    let dir = fixture();
    let a_before = std::fs::read(dir.path().join("a.safetensors")).unwrap();
    let cases = [
        ("plain_input", "save a - b to \"a.safetensors\"\n"),
        ("dotted_input", "save a - b to \"./a.safetensors\"\n"),
        (
            "dotted_twice",
            "save a to \"x.safetensors\"\nsave b to \"./x.safetensors\"\n",
        ),
    ];
    for (name, saves) in cases {
        let before = listing(dir.path());
        let program = format!("let a = load(\"a.safetensors\")\nlet b = load(\"b.safetensors\")\n{saves}");
        let file = format!("{name}.tv");
        std::fs::write(dir.path().join(&file), &program).unwrap();
        let out = tv_command(dir.path(), &["run", &file]);
        let mut after = listing(dir.path());
        after.remove(&file);
        assert_eq!(
            code(&out),
            1,
            "{name}: `save` must not overwrite an input or another save: {}",
            describe(&out)
        );
        let said = text(&out.stderr);
        let explained = said.contains("is the input checkpoint") || said.contains("overwrite another save");
        assert!(explained, "{name}: {}", describe(&out));
        assert_eq!(after, before, "{name}: nothing written");
        assert_eq!(
            std::fs::read(dir.path().join("a.safetensors")).unwrap(),
            a_before,
            "{name}: the input is intact"
        );
    }
}

#[test]
fn program_paths_are_relative_to_the_program_and_flags_to_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("exp");
    std::fs::create_dir(&sub).unwrap();
    write_file(&sub.join("a.safetensors"), &random_model(1, Dtype::F32, 1.0));
    write_file(&sub.join("b.safetensors"), &random_model(2, Dtype::F16, 1.0));
    std::fs::write(
        sub.join("p.tv"),
        format!("{GOOD}save a - b to \"out/diff.safetensors\"\n"),
    )
    .unwrap();
    let out = tv_command(dir.path(), &["run", "exp/p.tv", "-o", "report.csv"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        dir.path().join("report.csv").is_file(),
        "-o is relative to the working directory"
    );
    assert!(
        sub.join("out/diff.safetensors").is_file(),
        "save paths are relative to the program"
    );
    let inside = tv_command(&sub, &["run", "p.tv"]);
    assert_eq!(
        inside.stdout,
        std::fs::read(dir.path().join("report.csv")).unwrap(),
        "same report from either directory"
    );
}

#[test]
fn plan_shows_passes_bytes_and_the_gram_path_without_reading_data() {
    let dir = fixture();
    let program = r#"
        let a = load("a.safetensors")
        let b = load("b.safetensors")
        sweep x in 0..100 {
            eval n = norm(x * a + (1 - x) * b)
        }
        eval size = numel(a)
        save a - b to "out.safetensors"
    "#;
    std::fs::write(dir.path().join("plan.tv"), program).unwrap();
    let before = listing(dir.path());
    let out = tv_command(dir.path(), &["plan", "plan.tv"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let stdout = text(&out.stdout);
    let line = |key: &str| {
        let found = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("{stdout}"));
        found.trim_start()[key.len()..].trim().to_string()
    };
    assert_eq!(
        line("sweep points"),
        "100 (100 evaluated by formulas over Gram matrices)",
        "{stdout}"
    );
    assert_eq!(line("passes over data"), "1", "{stdout}");
    assert!(line("n ").starts_with("Gram path"), "{stdout}");
    assert!(line("size").starts_with("no tensor data"), "{stdout}");
    assert!(line("bytes written").ends_with("in 1 save(s)"), "{stdout}");
    assert_eq!(listing(dir.path()), before, "plan writes nothing");
    let bad = tv_command(dir.path(), &["plan", "missing.tv"]);
    assert_eq!(code(&bad), 1);
}
