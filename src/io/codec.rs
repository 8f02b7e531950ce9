//! Converting float tensors between their stored bytes and f32.
//!
//! Bytes come straight from memory maps, where safetensors offsets need not be
//! aligned, so values are always assembled with `from_le_bytes` on byte chunks
//! and never by reinterpreting the slice.

use half::{bf16, f16};

use super::Dtype;

/// Decode a float tensor's little-endian bytes into f32 (F32, F16, BF16, F64;
/// F64 is rounded to the nearest f32). None for any other dtype, or when the
/// byte count is not a whole number of elements.
pub fn decode_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => decode_with(bytes, f32::from_le_bytes),
        Dtype::F16 => decode_with(bytes, |b: [u8; 2]| f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => decode_with(bytes, |b: [u8; 2]| bf16::from_le_bytes(b).to_f32()),
        Dtype::F64 => decode_with(bytes, |b: [u8; 8]| f64::from_le_bytes(b) as f32),
        _ => None,
    }
}

/// Encode f32 values as little-endian `dtype` bytes (F32, F16, BF16, F64);
/// F16 and BF16 round to nearest, ties to even. None for any other dtype.
pub fn encode_f32(dtype: Dtype, values: &[f32]) -> Option<Vec<u8>> {
    match dtype {
        Dtype::F32 => Some(encode_with(values, |v| v.to_le_bytes())),
        Dtype::F16 => Some(encode_with(values, |v| f16::from_f32(v).to_le_bytes())),
        Dtype::BF16 => Some(encode_with(values, |v| bf16::from_f32(v).to_le_bytes())),
        Dtype::F64 => Some(encode_with(values, |v| f64::from(v).to_le_bytes())),
        _ => None,
    }
}

/// Apply `convert` to each `N`-byte chunk; None if bytes are left over.
fn decode_with<const N: usize>(bytes: &[u8], convert: impl Fn([u8; N]) -> f32) -> Option<Vec<f32>> {
    let chunks = bytes.chunks_exact(N);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let mut values = Vec::with_capacity(bytes.len() / N);
    for chunk in chunks {
        let mut array = [0u8; N];
        array.copy_from_slice(chunk);
        values.push(convert(array));
    }
    Some(values)
}

fn encode_with<const N: usize>(values: &[f32], convert: impl Fn(f32) -> [u8; N]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * N);
    for &value in values {
        bytes.extend_from_slice(&convert(value));
    }
    bytes
}
