//! Parsing and validating one safetensors file's header.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON
//! (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`),
//! then the tensor data, offsets relative to its start. Parsed here by hand
//! rather than through the safetensors crate so that each problem maps to a
//! precise error (a truncated file is reported as such, with sizes); the
//! safetensors crate then validates the header again as the final word.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{Dtype, IoError, TensorInfo};

/// Bytes of the little-endian header-length prefix.
const LENGTH_PREFIX: usize = 8;
/// Real headers are kilobytes to a few megabytes; anything past this is a
/// corrupt length field, rejected before it can drive an allocation.
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Header key holding free-form string metadata rather than a tensor.
const METADATA_KEY: &str = "__metadata__";

/// A tensor and where its bytes lie within the whole file.
#[derive(Debug, Clone)]
pub(super) struct StoredTensor {
    pub info: TensorInfo,
    pub range: Range<usize>,
}

/// One header entry, as written in the JSON.
#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// Parse and fully validate the header of `file` (the whole file's bytes):
/// every tensor's extent is checked against its dtype and shape, tensors must
/// tile the data area exactly, and the file must be exactly as long as that.
pub(super) fn parse(path: &Path, file: &[u8]) -> Result<Vec<StoredTensor>, IoError> {
    let header = header_json(path, file)?;
    let data_start = LENGTH_PREFIX + header.len();
    let entries = parse_entries(path, header)?;
    let mut tensors = entries
        .into_iter()
        .map(|(name, raw)| to_stored(path, name, raw))
        .collect::<Result<Vec<_>, _>>()?;
    tensors.sort_by_key(|t| (t.range.start, t.range.end));
    let data_len = check_tiling(path, &tensors)?;
    check_file_length(path, data_start, data_len, file.len())?;
    // The safetensors crate has the last word: whatever it would refuse is
    // refused here too, even if the checks above missed it.
    safetensors::SafeTensors::read_metadata(file).map_err(|e| IoError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    for tensor in &mut tensors {
        tensor.range = tensor.range.start + data_start..tensor.range.end + data_start;
    }
    Ok(tensors)
}

/// The JSON bytes of the header, after checking the length prefix is sane.
fn header_json<'a>(path: &Path, file: &'a [u8]) -> Result<&'a [u8], IoError> {
    let (Some(prefix), Some(first)) = (file.get(..LENGTH_PREFIX), file.get(LENGTH_PREFIX)) else {
        return Err(not_safetensors(path, format!("it is only {} bytes long", file.len())));
    };
    if *first != b'{' {
        return Err(not_safetensors(
            path,
            "it does not start with a safetensors header".into(),
        ));
    }
    let mut length_bytes = [0u8; LENGTH_PREFIX];
    length_bytes.copy_from_slice(prefix);
    let header_len = u64::from_le_bytes(length_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(corrupt(
            path,
            format!("its header length field ({header_len} bytes) is implausibly large"),
        ));
    }
    let end = LENGTH_PREFIX as u64 + header_len;
    if end > file.len() as u64 {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            needed: end,
            actual: file.len() as u64,
        });
    }
    // Both bounds were just checked against the slice length.
    Ok(&file[LENGTH_PREFIX..end as usize])
}

/// The tensor entries of the header JSON, metadata left out. A name given
/// twice is an error (a JSON map would silently keep the last), and so is
/// an empty name.
fn parse_entries(path: &Path, header: &[u8]) -> Result<BTreeMap<String, RawEntry>, IoError> {
    let Entries(entries) = serde_json::from_slice(header)
        .map_err(|e| corrupt(path, format!("its header is not a valid JSON object ({e})")))?;
    let mut out = BTreeMap::new();
    for (name, value) in entries {
        if name == METADATA_KEY {
            continue;
        }
        if name.is_empty() {
            return Err(corrupt(path, "its header has a tensor with an empty name".into()));
        }
        let raw = RawEntry::deserialize(value)
            .map_err(|e| corrupt(path, format!("the header entry for tensor {name:?} is malformed ({e})")))?;
        if out.insert(name.clone(), raw).is_some() {
            return Err(corrupt(path, format!("its header names tensor {name:?} twice")));
        }
    }
    Ok(out)
}

/// A JSON object's entries in order, repeats kept.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Entries, M::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Check one entry's dtype and extent and turn it into a `StoredTensor`
/// (range still relative to the data area).
fn to_stored(path: &Path, name: String, raw: RawEntry) -> Result<StoredTensor, IoError> {
    let unsupported = || IoError::Unsupported {
        path: path.to_path_buf(),
        tensor: name.clone(),
        dtype: raw.dtype.clone(),
    };
    let dtype = parse_dtype(&raw.dtype).ok_or_else(unsupported)?;
    if is_narrow_float(dtype) {
        // Scaled 8-, 6- and 4-bit floats are not plain numbers tv could
        // carry through arithmetic; treating them as opaque bytes would
        // measure them as zero.
        return Err(unsupported());
    }
    let (begin, end) = raw.data_offsets;
    if end < begin {
        return Err(corrupt(
            path,
            format!("tensor {name:?} has data_offsets [{begin}, {end}] that run backwards"),
        ));
    }
    let needed = exact_byte_len(dtype, &raw.shape).ok_or_else(|| {
        corrupt(
            path,
            format!(
                "tensor {name:?} has a shape {:?} too large for {dtype} to fill whole bytes",
                raw.shape
            ),
        )
    })?;
    if end - begin != needed {
        let reason = format!(
            "tensor {name:?} ({dtype} {:?}) needs {needed} bytes but its data_offsets span {}",
            raw.shape,
            end - begin
        );
        return Err(corrupt(path, reason));
    }
    Ok(StoredTensor {
        info: TensorInfo::new(name, dtype, raw.shape),
        range: begin..end,
    })
}

/// Bytes needed for `shape` elements of `dtype`; None on overflow or when the
/// bits do not fill whole bytes (which the format forbids).
pub(super) fn exact_byte_len(dtype: Dtype, shape: &[usize]) -> Option<usize> {
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    let bits = numel.checked_mul(dtype.bitsize())?;
    (bits % 8 == 0).then_some(bits / 8)
}

/// FP8, FP6 and FP4 formats.
fn is_narrow_float(dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::F8_E4M3 | Dtype::F8_E5M2 | Dtype::F8_E8M0 | Dtype::F6_E2M3 | Dtype::F6_E3M2 | Dtype::F4
    )
}

/// The dtype named by a header's `"dtype"` string, if this safetensors version knows it.
fn parse_dtype(text: &str) -> Option<Dtype> {
    Dtype::deserialize(Value::String(text.to_string())).ok()
}

/// Tensors (sorted by offset) must follow each other with no gap or overlap
/// from offset 0; returns the data area's length.
fn check_tiling(path: &Path, tensors: &[StoredTensor]) -> Result<usize, IoError> {
    let mut expected = 0usize;
    for tensor in tensors {
        if tensor.range.start != expected {
            let what = if tensor.range.start < expected {
                "overlaps"
            } else {
                "leaves a gap before"
            };
            let reason = format!(
                "tensor {:?} at byte {} {what} the data before it (which ends at byte {expected})",
                tensor.info.name, tensor.range.start
            );
            return Err(corrupt(path, reason));
        }
        expected = tensor.range.end;
    }
    Ok(expected)
}

/// The file must end exactly where the last tensor does.
fn check_file_length(path: &Path, data_start: usize, data_len: usize, file_len: usize) -> Result<(), IoError> {
    let needed = (data_start as u64).saturating_add(data_len as u64);
    let actual = file_len as u64;
    if needed > actual {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            needed,
            actual,
        });
    }
    if needed < actual {
        return Err(corrupt(
            path,
            format!("it has {} unexpected bytes after the last tensor", actual - needed),
        ));
    }
    Ok(())
}

fn corrupt(path: &Path, reason: String) -> IoError {
    IoError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

fn not_safetensors(path: &Path, reason: String) -> IoError {
    IoError::NotACheckpoint {
        path: path.to_path_buf(),
        reason: format!("not a safetensors file ({reason})"),
    }
}
