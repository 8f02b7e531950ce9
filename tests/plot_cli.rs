//! `tv plot`'s diagnostics against golden files, one per way a figure of
//! an earlier report can go wrong. `TV_BLESS=1 cargo test --test plot_cli`
//! rewrites them (review the diff before committing).

#[path = "common/mod.rs"]
mod common;

const REPORT: &str = "year,alpha,ppl,note\n2013,0,10,a\n2013,0.5,9,b\n2014,0,12,c\n2014,0.5,8,d\n";
const SEEDED: &str = "seed,year,alpha,ppl\n0,2013,0,10\n1,2013,0,11\n";

/// A case: its name, the files to write (name, text), the arguments after
/// `tv plot`.
type Case = (&'static str, Vec<(&'static str, &'static str)>, Vec<&'static str>);

fn cases() -> Vec<Case> {
    let report = vec![("report.csv", REPORT)];
    vec![
        (
            "missing_column",
            report.clone(),
            vec!["report.csv", "lines(ppl, x = alhpa, by = yaer)", "-o", "f.svg"],
        ),
        (
            "several_values",
            vec![("report.csv", SEEDED)],
            vec!["report.csv", "heatmap(ppl, x = alpha, y = year)", "-o", "f.svg"],
        ),
        (
            "not_numbers",
            report.clone(),
            vec!["report.csv", "lines(note, x = alpha, by = year)", "-o", "f.svg"],
        ),
        (
            "unknown_kind",
            report.clone(),
            vec!["report.csv", "bar(ppl, x = alpha)", "-o", "f.svg"],
        ),
        (
            "syntax",
            report.clone(),
            vec!["report.csv", "lines(ppl x = alpha)", "-o", "f.svg"],
        ),
        (
            "names_in_strings",
            report.clone(),
            vec!["report.csv", "lines(ppl, x = alpha, title = \"{year}\")", "-o", "f.svg"],
        ),
        (
            "bad_format",
            report.clone(),
            vec!["report.csv", "lines(ppl, x = alpha, by = year)", "-o", "f.jpg"],
        ),
        (
            "missing_report",
            vec![],
            vec!["nothing.csv", "lines(ppl, x = alpha)", "-o", "f.svg"],
        ),
        (
            "output_is_report",
            vec![("report.svg", REPORT)],
            vec!["report.svg", "lines(ppl, x = alpha, by = year)", "-o", "report.svg"],
        ),
        (
            "no_rows",
            vec![("report.csv", "year,alpha,ppl\n")],
            vec!["report.csv", "lines(ppl, x = alpha)", "-o", "f.svg"],
        ),
        (
            "detour",
            report.clone(),
            vec!["report.csv", "lines(ppl, x = alpha, by = year)", "-o", "new/../f.svg"],
        ),
        (
            "duplicate_columns",
            vec![("report.csv", "a,a,v\n1,2,3\n")],
            vec!["report.csv", "lines(v, x = a)", "-o", "f.svg"],
        ),
        (
            "ragged_csv",
            vec![("report.csv", "a,b\n1,2,3\n")],
            vec!["report.csv", "lines(b, x = a)", "-o", "f.svg"],
        ),
    ]
}

#[test]
fn tv_plot_diagnostics() {
    let bless = std::env::var_os("TV_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, files, args) in cases() {
        let dir = tempfile::tempdir().unwrap();
        for (file, text) in &files {
            std::fs::write(dir.path().join(file), text).unwrap();
        }
        let before = common::listing(dir.path());
        let mut full = vec!["plot"];
        full.extend(&args);
        let output = common::tv_command(dir.path(), &full);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}, expected 1\n{stderr}", output.status.code()));
        }
        if common::listing(dir.path()) != before {
            failures.push(format!("{name}: a refused plot left files behind"));
        }
        let golden = std::path::Path::new("tests/plots/cli").join(format!("{name}.txt"));
        if bless {
            std::fs::write(&golden, &stderr).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == stderr => {}
            Ok(expected) => failures.push(format!(
                "{name}: differs from {}\n--- expected\n{expected}\n--- actual\n{stderr}",
                golden.display()
            )),
            Err(e) => failures.push(format!(
                "{name}: cannot read {} ({e}); TV_BLESS=1 to create it\n{stderr}",
                golden.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
