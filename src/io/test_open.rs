//! Opening checkpoints: valid single files and folders, and every way a
//! header or index can be wrong.

use std::path::Path;

use tempfile::tempdir;

use super::test_util::{mixed_tensors, random_tensor, raw_file, rng, serialize, write, Tensor};
use super::{describe, human_bytes, Checkpoint, Dtype, IoError};

/// The checkpoint holds exactly `expected`: same names (sorted), dtypes, shapes, bytes.
fn assert_holds(checkpoint: &Checkpoint, expected: &[Tensor]) {
    let mut expected: Vec<&Tensor> = expected.iter().collect();
    expected.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let infos: Vec<_> = expected.iter().map(|(info, _)| info.clone()).collect();
    assert_eq!(checkpoint.tensors(), infos.as_slice());
    for (info, bytes) in expected {
        let i = checkpoint.index_of(&info.name).unwrap();
        assert_eq!(checkpoint.bytes(i), bytes.as_slice(), "bytes of {}", info.name);
    }
}

#[test]
fn opens_file_written_by_safetensors() {
    let dir = tempdir().unwrap();
    let tensors = mixed_tensors(&mut rng(1));
    let path = write(dir.path(), "m.safetensors", &serialize(&tensors));
    let checkpoint = Checkpoint::open(&path).unwrap();
    assert_eq!(checkpoint.path(), path);
    assert_eq!(checkpoint.folder(), None);
    assert_eq!(checkpoint.bytes_read(), 0);
    assert_holds(&checkpoint, &tensors);
    let total: usize = tensors.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(checkpoint.bytes_read(), total as u64);
    assert_eq!(checkpoint.index_of("missing"), None);
    let i = checkpoint.index_of("position_ids").unwrap();
    assert_eq!(checkpoint.tensors()[i].dtype, Dtype::I64);
    assert!(!checkpoint.tensors()[i].is_float());
    assert_eq!(checkpoint.tensors()[i].numel(), 3);
}

#[test]
fn opens_folder_with_single_weights_file() {
    let dir = tempdir().unwrap();
    let tensors = mixed_tensors(&mut rng(2));
    write(dir.path(), "model.safetensors", &serialize(&tensors));
    let checkpoint = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(checkpoint.folder(), Some(dir.path()));
    assert_holds(&checkpoint, &tensors);
}

/// Two shards (`a`, `b` in the first, `c` in the second) and their index.
fn sharded_folder(dir: &Path, index_json: &str) -> Vec<Tensor> {
    let mut r = rng(3);
    let first = vec![
        random_tensor(&mut r, "a", Dtype::F32, &[4]),
        random_tensor(&mut r, "b", Dtype::BF16, &[2, 3]),
    ];
    let second = vec![random_tensor(&mut r, "c", Dtype::I64, &[2])];
    write(dir, "model-00001-of-00002.safetensors", &serialize(&first));
    write(dir, "model-00002-of-00002.safetensors", &serialize(&second));
    write(dir, "model.safetensors.index.json", index_json.as_bytes());
    first.into_iter().chain(second).collect()
}

const GOOD_INDEX: &str = r#"{"metadata": {"total_size": 36}, "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b": "model-00001-of-00002.safetensors",
    "c": "model-00002-of-00002.safetensors"}}"#;

#[test]
fn opens_sharded_folder_and_its_index_file() {
    let dir = tempdir().unwrap();
    let tensors = sharded_folder(dir.path(), GOOD_INDEX);
    let checkpoint = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(checkpoint.folder(), Some(dir.path()));
    assert_eq!(checkpoint.files().count(), 2);
    assert_holds(&checkpoint, &tensors);
    let by_index = Checkpoint::open(&dir.path().join("model.safetensors.index.json")).unwrap();
    assert_eq!(by_index.folder(), Some(dir.path()));
    assert_holds(&by_index, &tensors);
}

#[test]
fn missing_shard_is_reported() {
    let dir = tempdir().unwrap();
    let index = GOOD_INDEX.replace("model-00002-of-00002", "model-00009-of-00009");
    sharded_folder(dir.path(), &index);
    match Checkpoint::open(dir.path()) {
        Err(IoError::MissingShard { shard, .. }) => {
            assert!(shard.ends_with("model-00009-of-00009.safetensors"))
        }
        other => panic!("expected MissingShard, got {other:?}"),
    }
}

#[test]
fn tensor_in_two_shards_is_reported() {
    let dir = tempdir().unwrap();
    sharded_folder(dir.path(), GOOD_INDEX);
    let mut r = rng(4);
    let second = vec![
        random_tensor(&mut r, "c", Dtype::I64, &[2]),
        random_tensor(&mut r, "a", Dtype::F32, &[4]),
    ];
    write(dir.path(), "model-00002-of-00002.safetensors", &serialize(&second));
    match Checkpoint::open(dir.path()) {
        Err(IoError::DuplicateTensor { name, first, second }) => {
            assert_eq!(name, "a");
            assert!(first.ends_with("model-00001-of-00002.safetensors"));
            assert!(second.ends_with("model-00002-of-00002.safetensors"));
        }
        other => panic!("expected DuplicateTensor, got {other:?}"),
    }
}

#[test]
fn index_naming_a_tensor_its_shard_lacks_is_reported() {
    let dir = tempdir().unwrap();
    let index = GOOD_INDEX.replace(r#""c": "model-00002"#, r#""c": "model-00001"#);
    sharded_folder(dir.path(), &index);
    match Checkpoint::open(dir.path()) {
        Err(IoError::TensorNotInShard { name, .. }) => assert_eq!(name, "c"),
        other => panic!("expected TensorNotInShard, got {other:?}"),
    }
}

#[test]
fn index_pointing_outside_its_folder_is_corrupt() {
    let dir = tempdir().unwrap();
    let index = GOOD_INDEX.replace("model-00002-of-00002", "../model-00002-of-00002");
    sharded_folder(dir.path(), &index);
    assert!(matches!(Checkpoint::open(dir.path()), Err(IoError::Corrupt { .. })));
    sharded_folder(dir.path(), "{\"weight_map\": 3}");
    assert!(matches!(Checkpoint::open(dir.path()), Err(IoError::Corrupt { .. })));
}

#[test]
fn missing_paths_and_foreign_folders_are_reported() {
    let dir = tempdir().unwrap();
    let nothing = dir.path().join("nothing");
    assert!(matches!(Checkpoint::open(&nothing), Err(IoError::NotFound { .. })));
    write(dir.path(), "pytorch_model.bin", b"not safetensors");
    let error = Checkpoint::open(dir.path()).err().unwrap();
    assert!(matches!(error, IoError::NotACheckpoint { .. }), "{error:?}");
    assert!(error.help().unwrap().contains("model.safetensors.index.json"));
    let empty = write(dir.path(), "empty.safetensors", b"");
    assert!(matches!(Checkpoint::open(&empty), Err(IoError::NotACheckpoint { .. })));
}

/// Open `bytes` written to a file and return the error it must produce.
fn open_error(bytes: &[u8]) -> IoError {
    let dir = tempdir().unwrap();
    let path = write(dir.path(), "x.safetensors", bytes);
    match Checkpoint::open(&path) {
        Ok(_) => panic!("opening should have failed"),
        Err(error) => error,
    }
}

#[test]
fn truncated_file_is_reported_with_sizes() {
    let bytes = serialize(&mixed_tensors(&mut rng(5)));
    let len = bytes.len() as u64;
    match open_error(&bytes[..bytes.len() - 3]) {
        IoError::Truncated { needed, actual, .. } => assert_eq!((needed, actual), (len, len - 3)),
        other => panic!("expected Truncated, got {other:?}"),
    }
    // Cut inside the header itself.
    assert!(matches!(open_error(&bytes[..20]), IoError::Truncated { .. }));
}

#[test]
fn malformed_headers_get_the_right_error() {
    let garbage: Vec<u8> = (0u8..100).map(|i| i.wrapping_mul(37)).collect();
    assert!(matches!(open_error(&garbage), IoError::NotACheckpoint { .. }));
    assert!(matches!(open_error(&[1, 2, 3]), IoError::NotACheckpoint { .. }));
    let mut too_long = raw_file("{}", &[]);
    too_long[..8].copy_from_slice(&1000u64.to_le_bytes());
    match open_error(&too_long) {
        IoError::Truncated { needed, actual, .. } => assert_eq!((needed, actual), (1008, 10)),
        other => panic!("expected Truncated, got {other:?}"),
    }
    too_long[..8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
    assert!(matches!(open_error(&too_long), IoError::Corrupt { .. }));
    assert!(matches!(
        open_error(&raw_file("{not json at all", &[])),
        IoError::Corrupt { .. }
    ));
    assert!(matches!(
        open_error(&raw_file("{\"a\": 5}", &[])),
        IoError::Corrupt { .. }
    ));
}

#[test]
fn inconsistent_offsets_are_corrupt() {
    let entry = |offsets: &str| format!(r#"{{"a":{{"dtype":"F32","shape":[2],"data_offsets":{offsets}}}}}"#);
    let cases = [
        (entry("[0,4]"), 4),   // span too short for 2 x F32
        (entry("[4,12]"), 12), // gap before the first tensor
        (entry("[8,0]"), 8),   // backwards
        (entry("[0,8]"), 9),   // a trailing byte
    ];
    for (json, data_len) in cases {
        let error = open_error(&raw_file(&json, &vec![0; data_len]));
        assert!(matches!(error, IoError::Corrupt { .. }), "{json}: {error:?}");
    }
    let overlapping =
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#;
    assert!(matches!(
        open_error(&raw_file(overlapping, &[0; 3])),
        IoError::Corrupt { .. }
    ));
    let huge = r#"{"a":{"dtype":"F32","shape":[9223372036854775807,4],"data_offsets":[0,8]}}"#;
    assert!(matches!(open_error(&raw_file(huge, &[0; 8])), IoError::Corrupt { .. }));
}

#[test]
fn unknown_dtype_is_unsupported() {
    let json = r#"{"a":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}}"#;
    match open_error(&raw_file(json, &[0; 2])) {
        IoError::Unsupported { tensor, dtype, .. } => {
            assert_eq!((tensor.as_str(), dtype.as_str()), ("a", "Q4_K"))
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn metadata_and_padding_are_accepted() {
    let json = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}     "#;
    let dir = tempdir().unwrap();
    let path = write(dir.path(), "x.safetensors", &raw_file(json, &[7, 8, 9]));
    let checkpoint = Checkpoint::open(&path).unwrap();
    assert_eq!(checkpoint.tensors().len(), 1);
    assert_eq!(checkpoint.bytes(0), &[7, 8, 9]);
}

#[test]
fn errors_read_as_sentences() {
    let error = IoError::Truncated {
        path: "m.safetensors".into(),
        needed: 100,
        actual: 90,
    };
    assert_eq!(
        error.to_string(),
        "m.safetensors is truncated: its header needs 100 bytes but the file has 90"
    );
    assert!(error.help().is_some());
}

#[test]
fn describe_lists_tensors_and_totals() {
    let dir = tempdir().unwrap();
    let mut r = rng(6);
    let tensors = vec![
        random_tensor(&mut r, "big", Dtype::F32, &[3, 131072]),
        random_tensor(&mut r, "ids", Dtype::I64, &[4]),
    ];
    let path = write(dir.path(), "m.safetensors", &serialize(&tensors));
    let text = describe(&Checkpoint::open(&path).unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["big", "F32", "[3,", "131072]"])),
        "{text}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("ids") && l.contains("I64") && l.ends_with("[4]")));
    let total = lines.iter().find(|l| l.starts_with("total")).unwrap();
    assert!(
        total.contains("393220") && total.contains("1.50 MiB (1572896 bytes)"),
        "{total}"
    );
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1536), "1.50 KiB");
    assert_eq!(human_bytes(5 << 30), "5.00 GiB");
}

#[test]
fn checkpoint_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Checkpoint>();
}
