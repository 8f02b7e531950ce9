//! `command(...)`: refused unless the run allows it; when allowed, the
//! weights reach the command as a Hugging Face folder, its last printed
//! number is the value, and its failure is a diagnostic with its stderr.

mod common;

use std::path::Path;

/// A program measuring the interpolation `(1 - a) * x + a * y` of two
/// small models with `command`.
fn setup(command: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write_folder(
        &dir.path().join("x"),
        &common::random_model(1, safetensors::Dtype::F32, 1.0),
        "x",
    );
    common::write_folder(
        &dir.path().join("y"),
        &common::random_model(2, safetensors::Dtype::F32, 1.0),
        "y",
    );
    let program = format!(
        "let x = load(\"x\")\nlet y = load(\"y\")\nsweep a in [0.25, 1] {{\n  eval score = command(\"{command}\", (1 - a) * x + a * y)\n}}\n"
    );
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    dir
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_command_is_refused_without_allow_commands_and_nothing_runs() {
    let dir = setup("touch ran; echo 1 {model}");
    let out = common::tv_command(dir.path(), &["run", "exp.tv", "-o", "out.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("tv::command_refused"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--allow-commands"), "{}", stderr(&out));
    assert!(!dir.path().join("ran").exists() && !dir.path().join("out.csv").exists());
    // Checking a program runs nothing, so it needs no permission.
    let out = common::tv_command(dir.path(), &["check", "exp.tv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Each point's folder, copied out by the command, holds that point's
/// weights (compared with a mix computed here) and the source's companion
/// files; the value is the last number the command printed.
#[test]
fn an_allowed_command_sees_each_points_weights_and_reports_its_last_number() {
    let dir = setup(r#"cp -r \"{model}\" copy_$(ls -d copy_* 2>/dev/null | wc -l); echo loss 9; echo accuracy=0.5."#);
    let out = common::tv_command(dir.path(), &["run", "exp.tv", "--allow-commands"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a,score\n0.25,0.5\n1,0.5\n");
    let x = common::floats_of(&common::read_folder(&dir.path().join("x")));
    let y = common::floats_of(&common::read_folder(&dir.path().join("y")));
    for (copy, a) in ["copy_0", "copy_1"].iter().zip([0.25, 1.0]) {
        let folder = dir.path().join(copy);
        assert!(folder.join("config.json").is_file(), "{copy} lacks the config");
        let saved = common::floats_of(&common::read_folder(&folder));
        for (name, values) in &saved {
            for (i, v) in values.iter().enumerate() {
                let want = (1.0 - a) * x[name][i] + a * y[name][i];
                assert!(
                    (v - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{copy} {name}[{i}]: {v} vs {want}"
                );
            }
        }
        assert_eq!(saved.len(), x.len());
    }
}

#[test]
fn a_failing_command_is_a_diagnostic_with_its_stderr_and_no_report() {
    let dir = setup("test -d {model} && echo boom >&2 && exit 3");
    let out = common::tv_command(dir.path(), &["run", "exp.tv", "--allow-commands", "-o", "out.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    for needle in ["tv::command", "exited with status 3", "boom", "exp.tv:4"] {
        assert!(message.contains(needle), "no {needle:?} in {message}");
    }
    assert!(!dir.path().join("out.csv").exists());
}

#[test]
fn a_command_that_prints_no_number_is_a_diagnostic() {
    let dir = setup("test -d {model} && echo done");
    let out = common::tv_command(dir.path(), &["run", "exp.tv", "--allow-commands"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("printed no number"), "{}", stderr(&out));
    assert!(!Path::new(&dir.path().join("copy_0")).exists());
}

/// Without a `model` argument, the weights interpolated into the command
/// are the ones saved: the language reference's `command("... {model}")`
/// with `model` bound to weights.
#[test]
fn weights_interpolated_into_a_command_are_the_ones_saved() {
    let dir = setup("true {model}");
    let program =
        "let model = 0.5 * load(\"x\") + 0.5 * load(\"y\")\neval n = command(\"cp -r {model} copy; echo 7\")\n";
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    let out = common::tv_command(dir.path(), &["run", "exp.tv", "--allow-commands"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n7\n");
    let x = common::floats_of(&common::read_folder(&dir.path().join("x")));
    let y = common::floats_of(&common::read_folder(&dir.path().join("y")));
    let saved = common::floats_of(&common::read_folder(&dir.path().join("copy")));
    assert_eq!(saved.len(), x.len());
    for (name, values) in &saved {
        for (i, v) in values.iter().enumerate() {
            let want = 0.5 * x[name][i] + 0.5 * y[name][i];
            assert!(
                (v - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{name}[{i}]: {v} vs {want}"
            );
        }
    }
}

/// Output beyond what is kept does not hide the value printed last.
#[test]
fn a_command_that_prints_a_lot_still_reports_its_last_number() {
    let dir =
        setup(r#"head -c 3000000 /dev/zero | tr '\\0' x; echo; head -c 3000000 /dev/zero >&2; echo 0.25 {model}"#);
    let out = common::tv_command(dir.path(), &["run", "exp.tv", "--allow-commands"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a,score\n0.25,0.25\n1,0.25\n");
}
