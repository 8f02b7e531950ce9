//! Figures and the HTML report are outputs like saves: committed with the
//! run or not at all, replacing only tv's own earlier files, identical for
//! any thread count, and `tv plot` draws the same bytes from the CSV.

use super::common::tv_command;
use super::outputs::{assert_refused, setup, snapshot, stderr};
use std::path::Path;

/// A weight-space grid over `base.safetensors` with two figures.
const PROGRAM: &str = "let b = load(\"base.safetensors\")\n\
    sweep a in [0.5, 1, 2], c in [1, 2] {\n    eval n = norm(a * b + c * b)\n}\n\
    sweep a in [0.5, 1, 2] {\n    eval m = norm(a * b)\n}\n\
    plot heatmap(n, x = a, y = c) to \"fig/n.svg\"\n\
    plot lines(n, x = a, by = c, best = \"max\") to \"fig/n.png\"\n";

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run_ok(dir: &Path, args: &[&str]) {
    let output = tv_command(dir, args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
}

#[test]
fn figures_and_the_html_report_are_written_with_the_report_and_replaced_on_a_rerun() {
    let dir = setup(PROGRAM);
    let args = ["run", "exp.tv", "-o", "r.csv", "--html", "r.html"];
    run_ok(dir.path(), &args);
    let svg = read(dir.path(), "fig/n.svg");
    let png = read(dir.path(), "fig/n.png");
    assert!(svg.starts_with(b"<svg"), "an SVG file");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
    let html = String::from_utf8(read(dir.path(), "r.html")).expect("HTML is text");
    assert!(
        html.contains("data:image/svg+xml;base64,") && html.contains("data:image/png;base64,"),
        "both figures inline"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing is fetched from the network"
    );
    // A rerun replaces its own figures and page without --overwrite, with
    // the same figure bytes.
    run_ok(dir.path(), &args);
    assert_eq!(read(dir.path(), "fig/n.svg"), svg);
    assert_eq!(read(dir.path(), "fig/n.png"), png);
}

#[test]
fn figures_are_the_same_for_any_thread_count() {
    let dir = setup(PROGRAM);
    run_ok(dir.path(), &["run", "exp.tv", "--threads", "1"]);
    let one = (read(dir.path(), "fig/n.svg"), read(dir.path(), "fig/n.png"));
    run_ok(dir.path(), &["run", "exp.tv", "--threads", "3"]);
    let three = (read(dir.path(), "fig/n.svg"), read(dir.path(), "fig/n.png"));
    assert!(one == three, "figure bytes depend on the thread count");
}

#[test]
fn a_foreign_file_at_a_figure_or_page_target_is_kept_unless_asked() {
    let dir = setup(PROGRAM);
    std::fs::create_dir(dir.path().join("fig")).unwrap();
    std::fs::write(dir.path().join("fig/n.svg"), "<svg>my own drawing</svg>").unwrap();
    assert_refused(
        dir.path(),
        &["run", "exp.tv"],
        "is not a figure or HTML report drawn by tv",
    );
    std::fs::write(dir.path().join("notes.html"), "<html>my notes</html>").unwrap();
    std::fs::remove_file(dir.path().join("fig/n.svg")).unwrap();
    assert_refused(
        dir.path(),
        &["run", "exp.tv", "--html", "notes.html"],
        "HTML report \"notes.html\" (--html)",
    );
    assert_refused(dir.path(), &["run", "exp.tv", "--html", "exp.tv"], "the program file");
    run_ok(dir.path(), &["run", "exp.tv", "--html", "notes.html", "--overwrite"]);
    assert!(
        read(dir.path(), "notes.html").starts_with(b"<!DOCTYPE html>"),
        "--overwrite replaces it"
    );
}

#[test]
fn a_run_that_fails_while_running_draws_nothing() {
    let program = format!("{PROGRAM}eval s = command(\"exit 3\")\n");
    let dir = setup(&program);
    let before = snapshot(dir.path());
    let output = tv_command(
        dir.path(),
        &["run", "exp.tv", "--allow-commands", "--html", "r.html", "-o", "r.csv"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        snapshot(dir.path()),
        before,
        "no figure, page, report or folder is left"
    );
}

#[test]
fn tv_plot_draws_the_runs_figures_from_its_report() {
    let dir = setup(PROGRAM);
    run_ok(dir.path(), &["run", "exp.tv", "-o", "r.csv"]);
    run_ok(
        dir.path(),
        &["plot", "r.csv", "heatmap(n, x = a, y = c)", "-o", "again.svg"],
    );
    run_ok(
        dir.path(),
        &[
            "plot",
            "r.csv",
            "lines(n, x = a, by = c, best = \"max\")",
            "-o",
            "again.png",
        ],
    );
    assert_eq!(read(dir.path(), "again.svg"), read(dir.path(), "fig/n.svg"));
    assert_eq!(read(dir.path(), "again.png"), read(dir.path(), "fig/n.png"));
    // Its own figure is replaced; anything else only with --overwrite.
    run_ok(dir.path(), &["plot", "r.csv", "lines(m, x = a)", "-o", "again.png"]);
    assert_refused(
        dir.path(),
        &["plot", "r.csv", "lines(m, x = a)", "-o", "exp.tv"],
        "cannot tell the format",
    );
    std::fs::write(dir.path().join("mine.png"), "not a figure").unwrap();
    assert_refused(
        dir.path(),
        &["plot", "r.csv", "lines(m, x = a)", "-o", "mine.png"],
        "is not a figure drawn by tv",
    );
    run_ok(
        dir.path(),
        &["plot", "r.csv", "lines(m, x = a)", "-o", "mine.png", "--overwrite"],
    );
}
