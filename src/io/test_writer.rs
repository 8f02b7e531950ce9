//! Writer: output read back with the safetensors crate, sharding, companion
//! files, and that nothing (not even a temporary) survives a failed save.

use std::fs;
use std::path::Path;

use rand::seq::SliceRandom;
use safetensors::SafeTensors;
use serde_json::{json, Value};
use tempfile::tempdir;

use super::test_util::{listing, mixed_tensors, random_tensor, rng, write, Tensor};
use super::{Checkpoint, Dtype, IoError, SaveOptions, TensorInfo, Writer};

fn infos(tensors: &[Tensor]) -> Vec<TensorInfo> {
    tensors.iter().map(|(info, _)| info.clone()).collect()
}

/// Write every tensor from four threads, in a shuffled order.
fn write_scrambled(writer: &Writer, tensors: &[Tensor], seed: u64) {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.shuffle(&mut rng(seed));
    std::thread::scope(|scope| {
        for chunk in order.chunks(order.len().div_ceil(4).max(1)) {
            scope.spawn(move || {
                for &i in chunk {
                    writer.write(i, &tensors[i].1).unwrap();
                }
            });
        }
    });
}

/// The file as the safetensors crate reads it holds exactly `expected`,
/// with the "format": "pt" metadata and an 8-byte-aligned header.
fn assert_file_holds(path: &Path, expected: &[&Tensor]) {
    let bytes = fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(header_len % 8, 0);
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let format = metadata.metadata().as_ref().and_then(|m| m.get("format"));
    assert_eq!(format.map(String::as_str), Some("pt"));
    let read = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(read.len(), expected.len());
    for (info, data) in expected {
        let view = read.tensor(&info.name).unwrap();
        assert_eq!((view.dtype(), view.shape()), (info.dtype, info.shape.as_slice()));
        assert_eq!(view.data(), data.as_slice(), "bytes of {}", info.name);
    }
}

#[test]
fn single_file_written_from_threads_reads_back() {
    let dir = tempdir().unwrap();
    let mut r = rng(10);
    let mut tensors = mixed_tensors(&mut r);
    tensors.push(random_tensor(&mut r, "mask", Dtype::BOOL, &[3, 3]));
    tensors.push(random_tensor(&mut r, "fp8", Dtype::F8_E4M3, &[5]));
    let path = dir.path().join("sub/out.safetensors");
    let writer = Writer::create(&path, &infos(&tensors), &SaveOptions::default()).unwrap();
    write_scrambled(&writer, &tensors, 11);
    writer.finish().unwrap();
    assert_file_holds(&path, &tensors.iter().collect::<Vec<_>>());
    assert_eq!(listing(&dir.path().join("sub")), ["out.safetensors"]);
}

/// Six 100-byte tensors, at most 250 bytes a shard: three shards of two.
fn six_tensors() -> Vec<Tensor> {
    let mut r = rng(12);
    (0..6)
        .map(|i| random_tensor(&mut r, &format!("t{i}"), Dtype::F32, &[25]))
        .collect()
}

fn hf_source(dir: &Path) -> std::path::PathBuf {
    let source = dir.join("source");
    fs::create_dir(&source).unwrap();
    write(&source, "config.json", b"{\"model_type\": \"llama\"}");
    write(&source, "tokenizer.json", b"{}");
    write(&source, "notes.txt", b"not copied");
    source
}

#[test]
fn sharded_folder_has_index_shards_and_companions() {
    let dir = tempdir().unwrap();
    let tensors = six_tensors();
    let options = SaveOptions {
        max_shard_bytes: 250,
        copy_from: Some(hf_source(dir.path())),
        ..SaveOptions::default()
    };
    let out = dir.path().join("out");
    let writer = Writer::create(&out, &infos(&tensors), &options).unwrap();
    write_scrambled(&writer, &tensors, 13);
    writer.finish().unwrap();
    let shard = |k: usize| format!("model-0000{k}-of-00003.safetensors");
    let mut expected_files = vec![shard(1), shard(2), shard(3)];
    let others = [
        ".tv-save.json",
        "config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
    ];
    expected_files.extend(others.map(String::from));
    expected_files.sort();
    assert_eq!(listing(&out), expected_files);
    for k in 1..=3 {
        let members: Vec<&Tensor> = tensors[2 * (k - 1)..2 * k].iter().collect();
        assert_file_holds(&out.join(shard(k)), &members);
    }
    let index: Value = serde_json::from_slice(&fs::read(out.join("model.safetensors.index.json")).unwrap()).unwrap();
    let weight_map: serde_json::Map<String, Value> =
        (0..6).map(|i| (format!("t{i}"), json!(shard(i / 2 + 1)))).collect();
    assert_eq!(
        index,
        json!({"metadata": {"total_size": 600}, "weight_map": weight_map})
    );
    assert_eq!(
        fs::read(out.join("config.json")).unwrap(),
        b"{\"model_type\": \"llama\"}"
    );
    let reopened = Checkpoint::open(&out).unwrap();
    for (info, bytes) in &tensors {
        assert_eq!(reopened.bytes(reopened.index_of(&info.name).unwrap()), bytes.as_slice());
    }
    assert_eq!(listing(dir.path()), ["out", "source"]);
}

#[test]
fn shards_split_in_order_and_big_tensors_stand_alone() {
    let dir = tempdir().unwrap();
    let mut r = rng(14);
    let sizes = [25, 100, 25, 25, 25];
    let tensors: Vec<Tensor> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| random_tensor(&mut r, &format!("t{i}"), Dtype::F32, &[n]))
        .collect();
    let options = SaveOptions {
        max_shard_bytes: 250,
        ..SaveOptions::default()
    };
    let out = dir.path().join("out");
    let writer = Writer::create(&out, &infos(&tensors), &options).unwrap();
    write_scrambled(&writer, &tensors, 15);
    writer.finish().unwrap();
    let index: Value = serde_json::from_slice(&fs::read(out.join("model.safetensors.index.json")).unwrap()).unwrap();
    let shard_of = |name: &str| index["weight_map"][name].as_str().unwrap().to_string();
    // 100, 400, 100, 100, 100 bytes with at most 250 a shard.
    let expected = [1, 2, 3, 3, 4].map(|k| format!("model-0000{k}-of-00004.safetensors"));
    let actual: Vec<String> = (0..5).map(|i| shard_of(&format!("t{i}"))).collect();
    assert_eq!(actual, expected);
}

#[test]
fn small_folder_is_one_model_file_and_replaces_the_old_folder() {
    let dir = tempdir().unwrap();
    let source = hf_source(dir.path());
    let tensors = six_tensors();
    write(&source, "model.safetensors", b"old weights");
    // Save over the very folder the companions come from.
    let options = SaveOptions {
        copy_from: Some(source.clone()),
        ..SaveOptions::default()
    };
    let writer = Writer::create(&source, &infos(&tensors), &options).unwrap();
    assert_eq!(fs::read(source.join("model.safetensors")).unwrap(), b"old weights");
    write_scrambled(&writer, &tensors, 16);
    writer.finish().unwrap();
    let expected = [".tv-save.json", "config.json", "model.safetensors", "tokenizer.json"];
    assert_eq!(listing(&source), expected);
    assert_file_holds(&source.join("model.safetensors"), &tensors.iter().collect::<Vec<_>>());
    assert_eq!(listing(dir.path()), ["source"]);
}

#[test]
fn dropping_an_unfinished_writer_leaves_nothing() {
    let dir = tempdir().unwrap();
    let tensors = six_tensors();
    for name in ["out.safetensors", "out"] {
        let path = dir.path().join(name);
        let writer = Writer::create(&path, &infos(&tensors), &SaveOptions::default()).unwrap();
        writer.write(0, &tensors[0].1).unwrap();
        assert_eq!(listing(dir.path()).len(), 1, "the temporary exists while writing");
        drop(writer);
        assert!(listing(dir.path()).is_empty(), "{name}: {:?}", listing(dir.path()));
    }
}

#[test]
fn finish_with_a_missing_tensor_fails_and_leaves_nothing() {
    let dir = tempdir().unwrap();
    let tensors = six_tensors();
    let old = write(dir.path(), "out.safetensors", b"previous");
    let writer = Writer::create(&old, &infos(&tensors), &SaveOptions::default()).unwrap();
    for i in [0, 1, 2, 4, 5] {
        writer.write(i, &tensors[i].1).unwrap();
    }
    match writer.finish() {
        Err(IoError::Incomplete { missing, .. }) => assert_eq!(missing, ["t3"]),
        other => panic!("expected Incomplete, got {other:?}"),
    }
    assert_eq!(listing(dir.path()), ["out.safetensors"]);
    assert_eq!(fs::read(&old).unwrap(), b"previous");
}

#[test]
fn misuse_is_refused() {
    let dir = tempdir().unwrap();
    let tensors = six_tensors();
    let writer = Writer::create(
        &dir.path().join("o.safetensors"),
        &infos(&tensors),
        &SaveOptions::default(),
    )
    .unwrap();
    assert!(matches!(writer.write(6, &[]), Err(IoError::BadWrite { .. })));
    assert!(matches!(writer.write(0, &[0; 99]), Err(IoError::BadWrite { .. })));
    writer.write(0, &tensors[0].1).unwrap();
    assert!(matches!(writer.write(0, &tensors[0].1), Err(IoError::BadWrite { .. })));
    let twice = vec![tensors[0].0.clone(), tensors[0].0.clone()];
    let result = Writer::create(&dir.path().join("p.safetensors"), &twice, &SaveOptions::default());
    assert!(matches!(result, Err(IoError::BadTensorList { .. })));
    let in_the_way = dir.path().join("folder.safetensors");
    fs::create_dir(&in_the_way).unwrap();
    let result = Writer::create(&in_the_way, &infos(&tensors), &SaveOptions::default());
    assert!(matches!(result, Err(IoError::Write { .. })));
}

#[test]
fn empty_checkpoint_round_trips() {
    let dir = tempdir().unwrap();
    let out = dir.path().join("empty");
    Writer::create(&out, &[], &SaveOptions::default())
        .unwrap()
        .finish()
        .unwrap();
    assert!(Checkpoint::open(&out).unwrap().tensors().is_empty());
}

#[test]
fn writer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Writer>();
}

#[test]
fn folders_made_for_an_unfinished_save_are_removed_again() {
    let dir = tempdir().unwrap();
    let tensors = six_tensors();
    let deep = dir.path().join("a/b/c/out.safetensors");
    let writer = Writer::create(&deep, &infos(&tensors), &SaveOptions::default()).unwrap();
    assert!(dir.path().join("a/b/c").is_dir());
    drop(writer);
    assert!(!dir.path().join("a").exists(), "{:?}", listing(dir.path()));
    // A folder that was there before stays, and a finished save keeps its own.
    fs::create_dir(dir.path().join("kept")).unwrap();
    let writer = Writer::create(
        &dir.path().join("kept/new/out.safetensors"),
        &infos(&tensors),
        &SaveOptions::default(),
    )
    .unwrap();
    drop(writer);
    assert!(dir.path().join("kept").is_dir() && !dir.path().join("kept/new").exists());
    let writer = Writer::create(&deep, &infos(&tensors), &SaveOptions::default()).unwrap();
    write_scrambled(&writer, &tensors, 3);
    writer.finish().unwrap();
    assert!(deep.is_file());
}
