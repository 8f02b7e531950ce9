//! The run record beside `-o REPORT` (`REPORT.json`): each field checked
//! against the inputs, hashed here independently; replaced by a rerun,
//! never written by a failed run, and kept when a foreign file is there.

#[path = "common/mod.rs"]
mod common;

use common::{tv_command, Raw};
use safetensors::Dtype;
use sha2::{Digest, Sha256};
use std::path::Path;

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn tensor(name: &str, values: &[f32]) -> Raw {
    Raw {
        name: name.into(),
        dtype: Dtype::F32,
        shape: vec![values.len()],
        bytes: common::encode(Dtype::F32, values),
    }
}

/// A single-file input, a sharded folder, a used file and the program.
fn setup(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = |scale: f32| {
        vec![
            tensor("a", &[scale, 2.0, 3.0]),
            tensor("b", &[4.0 * scale]),
            tensor("c", &[5.0, 6.0]),
        ]
    };
    common::write_file(&dir.path().join("one.safetensors"), &model(1.0));
    common::write_sharded(&dir.path().join("sharded"), &model(2.0), 2, "s");
    std::fs::write(dir.path().join("lib.tv"), "fn twice(w) = 2 * w\n").unwrap();
    let program = format!(
        "use \"lib.tv\"\nlet x = load(\"one.safetensors\")\nlet y = load(\"sharded\")\n\
         sweep k in [1, 2] {{\n    eval d = distance(twice(x) * k, y)\n}}\n{extra}"
    );
    std::fs::write(dir.path().join("exp.tv"), program).unwrap();
    dir
}

fn record(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("r.csv.json")).expect("the run record");
    serde_json::from_str(&text).expect("the record is JSON")
}

/// SHA-256 of each file's length prefix and header, in order.
fn header_hash(files: &[std::path::PathBuf]) -> String {
    let mut all = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        all.extend_from_slice(&bytes[..8 + len]);
    }
    hex(&all)
}

fn content_hash(files: &[std::path::PathBuf]) -> String {
    let all: Vec<u8> = files.iter().flat_map(|f| std::fs::read(f).unwrap()).collect();
    hex(&all)
}

fn size(files: &[std::path::PathBuf]) -> u64 {
    files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum()
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let output = tv_command(dir, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_record_says_what_made_the_report() {
    let dir = setup("");
    let d = dir.path();
    run(
        d,
        &[
            "run",
            "exp.tv",
            "-o",
            "r.csv",
            "--threads",
            "1",
            "--seed",
            "5",
            "--hash-inputs",
            "--html",
            "r.html",
        ],
    );
    let r = record(d);
    assert_eq!(r["written_by"], "tv");
    assert_eq!(r["tool"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["program"]["sha256"], hex(&std::fs::read(d.join("exp.tv")).unwrap()));
    assert!(r["program"]["path"].as_str().unwrap().ends_with("exp.tv"));
    let uses = r["uses"].as_array().unwrap();
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert!(uses[0]["path"].as_str().unwrap().ends_with("lib.tv"));
    assert_eq!(uses[0]["sha256"], hex(&std::fs::read(d.join("lib.tv")).unwrap()));
    let one = vec![d.join("one.safetensors")];
    let shards = vec![
        d.join("sharded/model-00001-of-00002.safetensors"),
        d.join("sharded/model-00002-of-00002.safetensors"),
    ];
    let inputs = r["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2, "{inputs:?}");
    for (input, files) in inputs.iter().zip([&one, &shards]) {
        assert_eq!(input["bytes"], size(files), "{input}");
        assert_eq!(input["header_sha256"], header_hash(files), "{input}");
        assert_eq!(input["content_sha256"], content_hash(files), "{input}");
    }
    assert_eq!(r["threads"], 1);
    assert_eq!(r["settings"]["seed"], 5);
    assert_eq!(r["settings"]["device"], "cpu");
    let flags: Vec<&str> = r["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(flags, ["--threads 1", "--seed 5", "--hash-inputs"]);
    let (start, end) = (r["started_utc"].as_str().unwrap(), r["finished_utc"].as_str().unwrap());
    assert_eq!(start.len(), "2026-01-01 00:00:00".len());
    assert!(start <= end, "{start} before {end}");
    assert_eq!(r["training"]["trained"], 0);
    // The HTML report shows the same record.
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains(r["program"]["sha256"].as_str().unwrap()));
}

#[test]
fn content_hashes_only_when_asked_and_a_rerun_replaces_the_record() {
    let dir = setup("");
    let d = dir.path();
    run(d, &["run", "exp.tv", "-o", "r.csv"]);
    let first = record(d);
    assert!(
        first["inputs"][0].get("content_sha256").is_none(),
        "no content hash without --hash-inputs"
    );
    assert!(first["command_line"].as_array().unwrap().is_empty());
    run(d, &["run", "exp.tv", "-o", "r.csv", "--threads", "2"]);
    assert_eq!(record(d)["threads"], 2, "the rerun's record");
}

#[test]
fn a_foreign_file_at_the_record_is_kept_and_a_failed_run_writes_none() {
    let dir = setup("");
    let d = dir.path();
    std::fs::write(d.join("r.csv.json"), "{\"mine\": true}").unwrap();
    let refused = tv_command(d, &["run", "exp.tv", "-o", "r.csv"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("exists and is not a run record"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(d.join("r.csv.json")).unwrap(),
        "{\"mine\": true}"
    );
    assert!(!d.join("r.csv").exists(), "nothing of the run is written");
    run(d, &["run", "exp.tv", "-o", "r.csv", "--overwrite"]);
    assert_eq!(record(d)["written_by"], "tv");

    let failing = setup("eval s = command(\"exit 3\")\n");
    let f = failing.path();
    let output = tv_command(f, &["run", "exp.tv", "-o", "r.csv", "--allow-commands"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        !f.join("r.csv").exists() && !f.join("r.csv.json").exists(),
        "a failed run writes no record"
    );
}

/// A saved folder carries the record of what made it (`tv_run.json`):
/// the program, the files it uses and the inputs, hashed here, and the
/// settings; nothing that changes between runs, so the folder is the same
/// bytes for any thread count. A single-file save has no room for it.
#[test]
fn a_saved_folder_carries_the_record_of_what_made_it() {
    let dir = setup("save 2 * x + y to \"merged\"\nsave x to \"single.safetensors\"\n");
    let d = dir.path();
    run(d, &["run", "exp.tv", "--threads", "1"]);
    let text = std::fs::read_to_string(d.join("merged/tv_run.json")).expect("the folder's record");
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["written_by"], "tv");
    assert_eq!(r["program"]["sha256"], hex(&std::fs::read(d.join("exp.tv")).unwrap()));
    assert_eq!(r["uses"][0]["sha256"], hex(&std::fs::read(d.join("lib.tv")).unwrap()));
    let one = vec![d.join("one.safetensors")];
    assert_eq!(r["inputs"][0]["header_sha256"], header_hash(&one));
    assert_eq!(r["inputs"][0]["bytes"], size(&one));
    assert_eq!(r["settings"]["seed"], 0);
    for changing in [
        "threads",
        "started_utc",
        "finished_utc",
        "seconds",
        "command_line",
        "shard",
    ] {
        assert!(r.get(changing).is_none(), "{changing} in {text}");
    }
    let manifest = std::fs::read_to_string(d.join("merged/.tv-save.json")).unwrap_or_default();
    assert!(
        manifest.contains("tv_run.json"),
        "the manifest lists the record: {manifest}"
    );
    let before: Vec<_> = common::listing(&d.join("merged")).into_iter().collect();
    let bytes = |name: &str| std::fs::read(d.join("merged").join(name)).unwrap();
    let first: Vec<Vec<u8>> = before.iter().map(|n| bytes(n)).collect();
    run(d, &["run", "exp.tv", "--threads", "3"]);
    let second: Vec<Vec<u8>> = before.iter().map(|n| bytes(n)).collect();
    assert!(first == second, "the folder changed with the thread count");
    assert!(!d.join("tv_run.json").exists());
}
