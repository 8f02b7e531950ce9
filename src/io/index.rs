//! Reading a Hugging Face shard index (`model.safetensors.index.json`):
//! `{"metadata": {...}, "weight_map": {tensor name: shard file name}}`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path};

use serde::Deserialize;

use super::IoError;

/// Indexes are a few hundred kilobytes; a larger file is not one, and is
/// refused before being read into memory.
const MAX_INDEX_BYTES: u64 = 100_000_000;

#[derive(Deserialize)]
struct RawIndex {
    weight_map: BTreeMap<String, String>,
}

/// The index's tensor → shard file name map, with every shard name checked
/// to be a plain file name (an index must not point outside its folder).
pub(super) fn read_weight_map(index: &Path) -> Result<BTreeMap<String, String>, IoError> {
    let text = read_small_file(index)?;
    let raw: RawIndex = serde_json::from_slice(&text).map_err(|e| IoError::Corrupt {
        path: index.to_path_buf(),
        reason: format!("it is not a valid shard index ({e})"),
    })?;
    for shard in raw.weight_map.values() {
        if !is_plain_file_name(shard) {
            return Err(IoError::Corrupt {
                path: index.to_path_buf(),
                reason: format!("shard name {shard:?} is not a plain file name in the index's folder"),
            });
        }
    }
    Ok(raw.weight_map)
}

fn read_small_file(path: &Path) -> Result<Vec<u8>, IoError> {
    let read_error = |source| IoError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = super::bounded::check_regular(path).map_err(read_error)?.len();
    if len > MAX_INDEX_BYTES {
        return Err(IoError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("at {len} bytes it is far too large to be a shard index"),
        });
    }
    fs::read(path).map_err(read_error)
}

/// True for names like `model-00001-of-00002.safetensors`; false for
/// anything with a directory part, `..`, or an absolute path.
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    )
}
