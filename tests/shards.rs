//! Sharded runs and `tv merge`: for every shard count from 1 to 7 the
//! merged report is the unsharded run's bytes, each model evaluation is
//! made by exactly one shard, saves happen in shard 0 alone, and merges of
//! parts that do not belong together are refused with nothing written.

mod common;

use common::tv_command;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The columns whose cells are model evaluations in `tests/slurm/mixed.tv`.
const MODEL_COLUMNS: [&str; 4] = ["acc", "tuned_loss", "score", "top"];

/// A copy of `tests/slurm/mixed.tv` with the configs and digit tasks it
/// reads, and `extra` appended.
fn setup(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let program = std::fs::read_to_string(root.join("tests/slurm/mixed.tv")).unwrap();
    std::fs::write(dir.path().join("mixed.tv"), program + extra).unwrap();
    copy_dir(&root.join("experiments/configs"), &dir.path().join("configs"));
    let digits = root.join("experiments/data/digits.csv");
    tv::digits::write_tasks(&digits, &dir.path().join("data/tasks")).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = tv_command(dir, args);
    assert_eq!(out.status.code(), Some(0), "tv {args:?}: {}", stderr(&out));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_shard(dir: &Path, index: usize, count: usize, extra: &[&str]) -> PathBuf {
    let part = format!("part-{index}-of-{count}.csv");
    let shard = format!("{index}/{count}");
    let mut args = vec!["run", "mixed.tv", "--allow-commands", "--shard", &shard, "-o", &part];
    args.extend(extra);
    ok(dir, &args);
    PathBuf::from(part)
}

fn rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

#[test]
fn every_shard_count_merges_to_the_unsharded_bytes() {
    let dir = setup("");
    let d = dir.path();
    ok(d, &["run", "mixed.tv", "--allow-commands", "-o", "whole.csv"]);
    let whole = std::fs::read(d.join("whole.csv")).unwrap();
    let whole_rows = rows(&String::from_utf8_lossy(&whole));
    // The record holds the report's digest and each file the program reads.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("whole.csv.json")).unwrap()).unwrap();
    assert_eq!(record["report"], digest(&String::from_utf8_lossy(&whole)));
    for name in [
        "configs/mlp_32.json",
        "data/tasks/original_test.csv",
        "data/tasks/rot90_test.csv",
    ] {
        let entry = record["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name));
        let entry = entry.unwrap_or_else(|| panic!("{name} not in {}", record["data"]));
        let bytes = std::fs::read(d.join(name)).unwrap();
        assert_eq!(entry["bytes"], bytes.len());
        assert_eq!(entry["sha256"], digest_of(&bytes));
    }
    let header = whole_rows[0].clone();
    let model_columns: Vec<usize> = MODEL_COLUMNS
        .iter()
        .map(|c| header.iter().position(|h| h == c).expect("a model column"))
        .collect();
    for count in 1..=7 {
        let parts: Vec<PathBuf> = (0..count).map(|i| run_shard(d, i, count, &[])).collect();
        let merged = format!("merged-{count}.csv");
        let mut args = vec!["merge".to_string()];
        args.extend(parts.iter().rev().map(|p| p.display().to_string()));
        args.extend(["-o".into(), merged.clone()]);
        ok(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
        let bytes = std::fs::read(d.join(&merged)).unwrap();
        assert!(
            bytes == whole,
            "{count} shards: merged\n{}\nunsharded\n{}",
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&whole)
        );
        // Each model evaluation's cell is filled by exactly one part, and
        // every other cell by all of them.
        let part_rows: Vec<Vec<Vec<String>>> = parts
            .iter()
            .map(|p| rows(&std::fs::read_to_string(d.join(p)).unwrap()))
            .collect();
        for (r, row) in whole_rows.iter().enumerate().skip(1) {
            for (c, cell) in row.iter().enumerate() {
                if cell.is_empty() {
                    continue;
                }
                let filled = part_rows.iter().filter(|p| !p[r][c].is_empty()).count();
                let expected = if model_columns.contains(&c) { 1 } else { count };
                assert_eq!(filled, expected, "{count} shards, row {r}, column {}", header[c]);
            }
        }
        let units: Vec<u64> = parts
            .iter()
            .map(|p| shard_record(d, p)["units"].as_u64().unwrap())
            .collect();
        let all = shard_record(d, &parts[0])["units_in_all"].as_u64().unwrap();
        assert_eq!(units.iter().sum::<u64>(), all, "{count} shards: units {units:?}");
        if count > 1 {
            assert!(
                units.iter().filter(|u| **u > 0).count() > 1,
                "the work is divided: {units:?}"
            );
        }
        let record = std::fs::read_to_string(d.join(format!("{merged}.json"))).unwrap();
        assert!(
            !record.contains("\"shard\""),
            "the merged record is of the whole run: {record}"
        );
    }
}

/// A report's digest as a run record holds it, computed here.
fn digest(text: &str) -> serde_json::Value {
    let rows = text.matches('\n').count() - 1;
    serde_json::json!({ "rows": rows, "sha256": digest_of(text.as_bytes()) })
}

fn digest_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn shard_record(dir: &Path, part: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(format!("{}.json", part.display()))).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["shard"].clone()
}

#[test]
fn only_shard_zero_saves_and_its_folder_is_the_unsharded_runs() {
    let dir = setup("save 0.5 * x + 0.5 * y to \"avg\"\n");
    let d = dir.path();
    ok(d, &["run", "mixed.tv", "--allow-commands", "-o", "whole.csv"]);
    let files = common::listing(&d.join("avg"));
    assert!(
        files.contains("tv_run.json") && files.contains("model.safetensors"),
        "{files:?}"
    );
    let read = |name: &String| std::fs::read(d.join("avg").join(name)).unwrap();
    let unsharded: Vec<Vec<u8>> = files.iter().map(read).collect();
    std::fs::remove_dir_all(d.join("avg")).unwrap();
    run_shard(d, 1, 2, &[]);
    assert!(!d.join("avg").exists(), "shard 1 saved");
    run_shard(d, 0, 2, &[]);
    assert_eq!(common::listing(&d.join("avg")), files);
    let sharded: Vec<Vec<u8>> = files.iter().map(read).collect();
    assert!(
        unsharded == sharded,
        "shard 0's folder differs from the unsharded run's"
    );
}

/// Parts of two shards (of three) and the record text of each.
fn three_parts(d: &Path) -> Vec<PathBuf> {
    (0..3).map(|i| run_shard(d, i, 3, &[])).collect()
}

fn refused(d: &Path, args: &[&str], expected: &str) {
    let before = common::listing(d);
    let out = tv_command(d, args);
    assert_eq!(out.status.code(), Some(1), "tv {args:?} should fail: {}", stderr(&out));
    assert!(
        stderr(&out).contains(expected),
        "tv {args:?}: expected \"{expected}\" in\n{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(common::listing(d), before, "tv {args:?} left files behind");
}

#[test]
fn merges_of_parts_that_do_not_belong_together_are_refused() {
    let dir = setup("");
    let d = dir.path();
    let p = three_parts(d);
    let [p0, p1, p2] = [0, 1, 2].map(|i| p[i].display().to_string());
    refused(
        d,
        &["merge", &p0, &p2, "-o", "m.csv"],
        "the parts of shard 1/3 are missing",
    );
    refused(
        d,
        &["merge", &p0, &p1, &p1, &p2, "-o", "m.csv"],
        "shard 1/3 is given twice",
    );
    refused(d, &["merge", &p0, &p1, &p2, "-o", &p1], "would replace the part");
    refused(
        d,
        &["merge", &p0, &p1, "nothing.csv", "-o", "m.csv"],
        "cannot read the part nothing.csv: No such file",
    );
    refused(
        d,
        &["merge", &p0, &p1, "data", "-o", "m.csv"],
        "the part data is not a file",
    );

    // A part of a two-shard run among parts of a three-shard run.
    let other = run_shard(d, 1, 2, &[]).display().to_string();
    refused(
        d,
        &["merge", &p0, &other, &p2, "-o", "m.csv"],
        "but part-0-of-3.csv is one of 3",
    );

    // A part from other settings, and one from an edited program.
    let seeded = run_shard(d, 1, 3, &["--seed", "7", "--overwrite"]);
    let seeded_name = d.join("seeded-1.csv");
    std::fs::rename(d.join(&seeded), &seeded_name).unwrap();
    std::fs::rename(
        d.join(format!("{}.json", seeded.display())),
        d.join("seeded-1.csv.json"),
    )
    .unwrap();
    run_shard(d, 1, 3, &[]);
    refused(
        d,
        &["merge", &p0, "seeded-1.csv", &p2, "-o", "m.csv"],
        "the settings differ",
    );
    let program = std::fs::read_to_string(d.join("mixed.tv")).unwrap();
    std::fs::write(d.join("mixed.tv"), format!("{program}# edited\n")).unwrap();
    let edited = run_shard(d, 2, 3, &[]);
    std::fs::rename(d.join(&edited), d.join("edited-2.csv")).unwrap();
    std::fs::rename(
        d.join(format!("{}.json", edited.display())),
        d.join("edited-2.csv.json"),
    )
    .unwrap();
    refused(
        d,
        &["merge", &p0, &p1, "edited-2.csv", "-o", "m.csv"],
        "were made by different programs",
    );
    std::fs::write(d.join("mixed.tv"), &program).unwrap();
    run_shard(d, 2, 3, &[]);

    // The whole run's report is not a part.
    ok(d, &["run", "mixed.tv", "--allow-commands", "-o", "whole.csv"]);
    refused(
        d,
        &["merge", &p0, &p1, "whole.csv", "-o", "m.csv"],
        "not a shard's part",
    );

    // A part whose cells were changed, and one cut short.
    let text = std::fs::read_to_string(d.join(&p[1])).unwrap();
    let tampered = text.replacen("0.5,", "0.6,", 1);
    assert_ne!(tampered, text);
    std::fs::write(d.join(&p[1]), &tampered).unwrap();
    refused(
        d,
        &["merge", &p0, &p1, &p2, "-o", "m.csv"],
        "is not the report its run wrote",
    );
    let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join(&p[1]), &cut).unwrap();
    refused(
        d,
        &["merge", &p0, &p1, &p2, "-o", "m.csv"],
        "is not the report its run wrote",
    );
    // A record without a digest cannot vouch for its part.
    let record_path = d.join(format!("{p1}.json"));
    let record_text = std::fs::read_to_string(&record_path).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&record_text).unwrap();
    record.as_object_mut().unwrap().remove("report");
    std::fs::write(&record_path, record.to_string()).unwrap();
    refused(
        d,
        &["merge", &p0, &p1, &p2, "-o", "m.csv"],
        "holds no digest of its report",
    );
    // Even a record whose digest was redone for an edited part: the
    // cells must agree with the other parts', and the rows be all there.
    for (content, expected) in [(&tampered, "the parts disagree at line"), (&cut, "ends at line 4")] {
        record["report"] = digest(content);
        std::fs::write(&record_path, record.to_string()).unwrap();
        std::fs::write(d.join(&p[1]), content).unwrap();
        refused(d, &["merge", &p0, &p1, &p2, "-o", "m.csv"], expected);
    }
    std::fs::write(d.join(&p[1]), &text).unwrap();
    std::fs::write(&record_path, &record_text).unwrap();

    // Records whose shares of the work do not add up.
    let mut fewer: serde_json::Value = serde_json::from_str(&record_text).unwrap();
    let units = fewer["shard"]["units"].as_u64().unwrap();
    fewer["shard"]["units"] = (units + 1).into();
    std::fs::write(&record_path, fewer.to_string()).unwrap();
    refused(
        d,
        &["merge", &p0, &p1, &p2, "-o", "m.csv"],
        "units of model evaluations, but the run has",
    );
    fewer["shard"]["units"] = units.into();
    fewer["shard"]["count"] = u64::MAX.into();
    std::fs::write(&record_path, fewer.to_string()).unwrap();
    refused(d, &["merge", &p0, &p1, &p2, "-o", "m.csv"], "which no run is");
    std::fs::write(&record_path, &record_text).unwrap();

    // A record naming a shard no run is.
    let bad = record_text.replacen("\"index\": 1", "\"index\": 5", 1);
    assert_ne!(bad, record_text);
    std::fs::write(&record_path, bad).unwrap();
    refused(d, &["merge", &p0, &p1, &p2, "-o", "m.csv"], "which no run is");
    std::fs::write(&record_path, &record_text).unwrap();

    // A dataset the program reads changed between two shards.
    let data = d.join("data/tasks/original_test.csv");
    let original = std::fs::read(&data).unwrap();
    std::fs::copy(d.join("data/tasks/flip_h_test.csv"), &data).unwrap();
    let changed = run_shard(d, 2, 3, &[]);
    std::fs::rename(d.join(&changed), d.join("data-2.csv")).unwrap();
    std::fs::rename(d.join(format!("{}.json", changed.display())), d.join("data-2.csv.json")).unwrap();
    std::fs::write(&data, original).unwrap();
    run_shard(d, 2, 3, &[]);
    refused(
        d,
        &["merge", &p0, &p1, "data-2.csv", "-o", "m.csv"],
        "is not of the same run as part-0-of-3.csv: the file data/tasks/original_test.csv",
    );

    // A foreign file at the output is kept unless --overwrite.
    std::fs::write(d.join("m.csv"), "precious\n").unwrap();
    refused(d, &["merge", &p0, &p1, &p2, "-o", "m.csv"], "m.csv");
    ok(d, &["merge", &p0, &p1, &p2, "-o", "m.csv", "--overwrite"]);
    assert_eq!(
        std::fs::read(d.join("m.csv")).unwrap(),
        std::fs::read(d.join("whole.csv")).unwrap()
    );
}

#[test]
fn shard_flags_are_checked() {
    let dir = setup("");
    let d = dir.path();
    for (args, expected) in [
        (vec!["run", "mixed.tv", "--shard", "3/3", "-o", "p.csv"], "0 <= I < N"),
        (vec!["run", "mixed.tv", "--shard", "1/0", "-o", "p.csv"], "0 <= I < N"),
        (vec!["run", "mixed.tv", "--shard", "0/2"], "--output"),
        (
            vec!["run", "mixed.tv", "--shard", "0/2", "-o", "p.csv", "--html", "p.html"],
            "cannot be used with",
        ),
        (vec!["run", "mixed.tv", "--resume"], "--output"),
        (vec!["merge", "-o", "m.csv"], "required"),
    ] {
        let out = tv_command(d, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
}

/// No shard draws the program's figures (each has part of the report);
/// the merge draws them, the same bytes as the unsharded run's, unless the
/// program changed since, which it says.
#[test]
fn the_merge_draws_the_figures_the_unsharded_run_draws() {
    let dir = setup("plot lines(acc, x = a, by = task) to \"acc.svg\"\n");
    let d = dir.path();
    ok(d, &["run", "mixed.tv", "--allow-commands", "-o", "whole.csv"]);
    let figure = std::fs::read(d.join("acc.svg")).unwrap();
    std::fs::remove_file(d.join("acc.svg")).unwrap();
    let parts: Vec<String> = (0..2).map(|i| run_shard(d, i, 2, &[]).display().to_string()).collect();
    assert!(!d.join("acc.svg").exists(), "a shard drew the figure");
    let out = ok(d, &["merge", &parts[0], &parts[1], "-o", "merged.csv"]);
    assert!(stderr(&out).contains("drew"), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("acc.svg")).unwrap(), figure);

    std::fs::remove_file(d.join("acc.svg")).unwrap();
    let program = std::fs::read_to_string(d.join("mixed.tv")).unwrap();
    std::fs::write(d.join("mixed.tv"), format!("{program}# edited\n")).unwrap();
    let out = ok(d, &["merge", &parts[0], &parts[1], "-o", "merged.csv"]);
    assert!(
        stderr(&out).contains("figures not drawn: the program mixed.tv has changed"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("acc.svg").exists());
}

/// `tv slurm` writes a job array of the shards and a merge job; run here
/// by hand as Slurm would (each array task with its SLURM_ARRAY_TASK_ID),
/// they give the unsharded report. Without sbatch, --submit fails cleanly.
#[test]
fn tv_slurm_scripts_run_the_shards_and_the_merge() {
    let dir = setup("");
    let d = dir.path();
    ok(
        d,
        &["run", "mixed.tv", "--allow-commands", "--seed", "3", "-o", "whole.csv"],
    );
    let args = [
        "slurm",
        "mixed.tv",
        "--shards",
        "4",
        "-o",
        "out/report.csv",
        "--partition",
        "gpu",
        "--gpus-per-task",
        "1",
        "--time",
        "1:00:00",
        "--mem",
        "16G",
        "--sbatch=--constraint=a100",
        "--allow-commands",
        "--seed",
        "3",
    ];
    let out = ok(d, &args);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains("--dependency=afterok:"), "{printed}");
    let folder = d.join("out/report.csv.slurm");
    let shards = std::fs::read_to_string(folder.join("shards.sbatch")).unwrap();
    let merge = std::fs::read_to_string(folder.join("merge.sbatch")).unwrap();
    let program = d.canonicalize().unwrap().join("mixed.tv");
    for expected in [
        "#SBATCH --array=0-3",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --time=1:00:00",
        "#SBATCH --mem=16G",
        "#SBATCH --constraint=a100",
        "--shard \"${SLURM_ARRAY_TASK_ID}/4\"",
        "--resume",
        "--allow-commands",
        "--seed 3",
        &program.display().to_string(),
    ] {
        assert!(shards.contains(expected), "{expected} not in\n{shards}");
    }
    assert!(
        merge.contains("#SBATCH --partition=gpu") && !merge.contains("--array"),
        "{merge}"
    );
    for i in 0..4 {
        let status = std::process::Command::new("bash")
            .arg(folder.join("shards.sbatch"))
            .env("SLURM_ARRAY_TASK_ID", i.to_string())
            .current_dir("/")
            .status()
            .unwrap();
        assert!(status.success(), "array task {i}");
    }
    let status = std::process::Command::new("bash")
        .arg(folder.join("merge.sbatch"))
        .current_dir("/")
        .status()
        .unwrap();
    assert!(status.success(), "the merge job");
    assert_eq!(
        std::fs::read(d.join("out/report.csv")).unwrap(),
        std::fs::read(d.join("whole.csv")).unwrap()
    );

    let submit = std::process::Command::new(env!("CARGO_BIN_EXE_tv"))
        .args([
            "slurm",
            "mixed.tv",
            "--shards",
            "2",
            "-o",
            "again.csv",
            "--allow-commands",
            "--submit",
        ])
        .current_dir(d)
        .env("PATH", d.join("no-such-bin"))
        .output()
        .unwrap();
    assert_eq!(submit.status.code(), Some(1));
    assert!(stderr(&submit).contains("cannot run sbatch"), "{}", stderr(&submit));
}
