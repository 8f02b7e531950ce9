//! The training cache cannot lie: an entry that changed in any way after it
//! was written is named in a warning and trained again, never used; a cache
//! that cannot be written fails the run before any training.

use super::common::tv_command;
use std::path::{Path, PathBuf};

const TRAIN: &str =
    "let w = finetune(init(\"config.json\", seed = 0), \"train.csv\", steps = 20, lr = 1e-3, batch = 8, seed = 0)\n\
                     eval acc = accuracy(w, \"train.csv\")\neval l = loss(w, \"train.csv\")\n";

/// A folder with the program, an MLP config and 100 rows of digits.
fn training_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/digits.csv");
    tv::digits::write_tasks(&digits, dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("original_train.csv")).unwrap();
    let head: Vec<&str> = text.lines().take(101).collect();
    std::fs::write(dir.path().join("train.csv"), head.join("\n") + "\n").unwrap();
    let config = r#"{"architecture": "mlp", "layers": [64, 16, 10], "activation": "relu"}"#;
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    std::fs::write(dir.path().join("exp.tv"), TRAIN).unwrap();
    dir
}

/// Runs the program with `--stats`; returns the report and stderr.
fn run(dir: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["run", "exp.tv", "--stats"];
    args.extend_from_slice(extra);
    let output = tv_command(dir, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (String::from_utf8(output.stdout).unwrap(), stderr)
}

/// The cache entry whose name starts with `kind`.
fn entry(dir: &Path, kind: &str) -> PathBuf {
    let cache = dir.join(".tv-cache");
    let found = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.path());
    let mut entries: Vec<PathBuf> = found
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(kind))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.remove(0)
}

/// Changes a cache entry (the first folder), given another (the second).
type Spoiler = fn(&Path, &Path);

/// Each way of spoiling the finetune entry, applied to a fresh clean run:
/// the next run warns, trains the entry again, and reports what the clean
/// run reported.
#[test]
fn a_spoiled_entry_is_trained_again_not_used() {
    let spoilers: [(&str, Spoiler); 5] = [
        ("flipped bytes", |entry, _| {
            let model = entry.join("model.safetensors");
            let mut bytes = std::fs::read(&model).unwrap();
            let at = bytes.len() - 100;
            bytes[at] ^= 0x40;
            std::fs::write(model, bytes).unwrap();
        }),
        ("truncated", |entry, _| {
            let model = entry.join("model.safetensors");
            let bytes = std::fs::read(&model).unwrap();
            std::fs::write(model, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("swapped model", |entry, init| {
            std::fs::copy(init.join("model.safetensors"), entry.join("model.safetensors")).unwrap();
        }),
        ("edited config", |entry, _| {
            let config = r#"{"architecture": "mlp", "layers": [64, 16, 10], "activation": "tanh"}"#;
            std::fs::write(entry.join("config.json"), config).unwrap();
        }),
        ("no checksums", |entry, _| {
            std::fs::remove_file(entry.join("tv-entry.json")).unwrap()
        }),
    ];
    for (what, spoil) in spoilers {
        let dir = training_dir();
        let (clean, stderr) = run(dir.path(), &[]);
        assert!(stderr.contains("2 trained, 0 from the cache"), "{what}: {stderr}");
        let (finetuned, init) = (entry(dir.path(), "finetune"), entry(dir.path(), "init"));
        let before = std::fs::read(finetuned.join("model.safetensors")).unwrap();
        spoil(&finetuned, &init);
        let (again, stderr) = run(dir.path(), &[]);
        assert!(stderr.contains("training it again"), "{what}: {stderr}");
        assert!(stderr.contains("1 trained, 1 from the cache"), "{what}: {stderr}");
        assert_eq!(again, clean, "{what}");
        assert_eq!(
            std::fs::read(finetuned.join("model.safetensors")).unwrap(),
            before,
            "{what}"
        );
        // The repaired fine-tune is all the next run reads.
        let (_, stderr) = run(dir.path(), &[]);
        assert!(
            stderr.contains("0 trained, 1 from the cache") && !stderr.contains("warning"),
            "{what}: {stderr}"
        );
    }
}

#[test]
fn an_unwritable_cache_fails_before_training() {
    let dir = training_dir();
    std::fs::write(dir.path().join("not-a-folder"), "a file").unwrap();
    for cache in ["not-a-folder", "not-a-folder/cache"] {
        let output = tv_command(dir.path(), &["run", "exp.tv", "--cache", cache]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot write the training cache"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("not-a-folder")).unwrap(),
        "a file"
    );
    assert!(!dir.path().join(".tv-cache").exists());
}

#[test]
fn stats_time_includes_training() {
    let dir = training_dir();
    let (_, stderr) = run(dir.path(), &[]);
    let time = stderr.lines().find(|l| l.starts_with("time")).unwrap();
    let numbers: Vec<f64> = time
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse().ok())
        .collect();
    assert!(time.contains("training"), "{stderr}");
    assert_eq!(numbers.len(), 2, "{time}");
    assert!(numbers[0] >= numbers[1], "the total includes the training: {time}");
}
