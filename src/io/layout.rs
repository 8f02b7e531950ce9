//! Planning a save before any data exists: which shard each tensor goes to,
//! each shard's header bytes, and the offset every tensor will be written at.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};

use super::header::exact_byte_len;
use super::{IoError, TensorInfo};

/// One safetensors file to be written.
pub(super) struct PlannedFile {
    /// File name inside the output folder (unused for a single-file save).
    pub name: String,
    /// Length prefix, JSON header and padding: the file's first bytes.
    pub header: Vec<u8>,
    /// Final length of the file.
    pub len: u64,
}

/// Where one tensor's bytes go.
#[derive(Clone, Copy)]
pub(super) struct Slot {
    pub file: usize,
    pub offset: u64,
    pub len: usize,
}

pub(super) struct Layout {
    pub files: Vec<PlannedFile>,
    /// Parallel to the planned tensor list.
    pub slots: Vec<Slot>,
}

/// Refuse tensor lists that cannot form a valid safetensors header: empty or
/// repeated names, the reserved metadata key, sizes that are not whole bytes,
/// or a total too large to address.
pub(super) fn validate(tensors: &[TensorInfo]) -> Result<(), IoError> {
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for tensor in tensors {
        let len = exact_byte_len(tensor.dtype, &tensor.shape);
        total = total
            .checked_add(len.unwrap_or(0))
            .ok_or_else(|| IoError::BadTensorList {
                reason: "the tensors' total size overflows".to_string(),
            })?;
        let problem = if tensor.name.is_empty() {
            Some("a tensor has an empty name".to_string())
        } else if tensor.name == "__metadata__" {
            Some("\"__metadata__\" is reserved and cannot name a tensor".to_string())
        } else if !seen.insert(tensor.name.as_str()) {
            Some(format!("tensor {:?} appears twice", tensor.name))
        } else if len.is_none() {
            Some(format!(
                "tensor {:?} ({} {:?}) does not fill a whole number of bytes",
                tensor.name, tensor.dtype, tensor.shape
            ))
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(IoError::BadTensorList { reason });
        }
    }
    Ok(())
}

/// Split tensor indices into shards in the given order, starting a new shard
/// whenever adding a tensor would pass `max_shard_bytes`; a tensor larger than
/// that on its own gets a shard to itself. Always at least one (maybe empty) shard.
pub(super) fn assign_shards(tensors: &[TensorInfo], max_shard_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards = vec![Vec::new()];
    let mut current_bytes = 0u64;
    for (i, tensor) in tensors.iter().enumerate() {
        let len = tensor.byte_len() as u64;
        let Some(current) = shards.last_mut() else {
            continue;
        };
        if !current.is_empty() && current_bytes.saturating_add(len) > max_shard_bytes {
            shards.push(vec![i]);
            current_bytes = len;
        } else {
            current.push(i);
            current_bytes = current_bytes.saturating_add(len);
        }
    }
    shards
}

/// Hugging Face shard file names: `model.safetensors` alone, else
/// `model-00001-of-0000N.safetensors` and so on.
pub(super) fn shard_names(count: usize) -> Vec<String> {
    if count == 1 {
        return vec!["model.safetensors".to_string()];
    }
    (1..=count)
        .map(|i| format!("model-{i:05}-of-{count:05}.safetensors"))
        .collect()
}

/// Lay out each shard's header and the tensors' offsets, in the order given.
pub(super) fn plan(tensors: &[TensorInfo], shards: &[Vec<usize>], names: &[String]) -> Layout {
    let mut slots = vec![
        Slot {
            file: 0,
            offset: 0,
            len: 0
        };
        tensors.len()
    ];
    let files = shards
        .iter()
        .zip(names)
        .enumerate()
        .map(|(file, (members, name))| plan_file(tensors, members, file, name, &mut slots))
        .collect();
    Layout { files, slots }
}

fn plan_file(tensors: &[TensorInfo], members: &[usize], file: usize, name: &str, slots: &mut [Slot]) -> PlannedFile {
    let mut entries = Map::new();
    entries.insert(
        "__metadata__".to_string(),
        json!({"format": "pt", super::manifest::STAMP_KEY: super::manifest::STAMP_VALUE}),
    );
    let mut data_offset = 0usize;
    for &i in members {
        let tensor = &tensors[i];
        let end = data_offset + tensor.byte_len();
        let entry =
            json!({"dtype": tensor.dtype.to_string(), "shape": tensor.shape, "data_offsets": [data_offset, end]});
        entries.insert(tensor.name.clone(), entry);
        slots[i] = Slot {
            file,
            offset: data_offset as u64,
            len: tensor.byte_len(),
        };
        data_offset = end;
    }
    let header = header_bytes(entries);
    for &i in members {
        slots[i].offset += header.len() as u64;
    }
    PlannedFile {
        name: name.to_string(),
        len: header.len() as u64 + data_offset as u64,
        header,
    }
}

/// Length prefix plus JSON, padded with spaces so data starts 8-byte aligned.
fn header_bytes(entries: Map<String, Value>) -> Vec<u8> {
    let mut json = Value::Object(entries).to_string().into_bytes();
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&json);
    bytes
}

/// `model.safetensors.index.json` contents: total tensor bytes and each tensor's shard.
pub(super) fn index_json(tensors: &[TensorInfo], shards: &[Vec<usize>], names: &[String]) -> String {
    let total_size: u64 = tensors.iter().map(|t| t.byte_len() as u64).sum();
    let mut weight_map = BTreeMap::new();
    for (members, name) in shards.iter().zip(names) {
        for &i in members {
            weight_map.insert(tensors[i].name.clone(), name.clone());
        }
    }
    let index = json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
    format!("{index:#}\n")
}
