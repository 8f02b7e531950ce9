//! Reading and writing safetensors checkpoints.
//!
//! Opening a checkpoint reads and validates headers only; tensor data stays in
//! memory maps until asked for, so inspecting or streaming a model never loads
//! it whole. Writing is streamed too: headers first, then each tensor at its
//! precomputed offset, from any thread, into a temporary that is renamed into
//! place only when complete.

pub mod bounded;
mod checkpoint;
mod codec;
pub mod commit;
mod describe;
mod error;
mod header;
mod index;
mod layout;
pub mod manifest;
pub mod staging;
mod writer;

#[cfg(test)]
mod test_codec;
#[cfg(test)]
mod test_fuzz;
#[cfg(test)]
mod test_open;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod test_writer;

use std::hash::{Hash, Hasher};

pub use checkpoint::Checkpoint;
pub use codec::{decode_f32, encode_f32};
pub use describe::{describe, human_bytes};
pub use error::IoError;
pub use safetensors::Dtype;
pub use writer::{SaveOptions, Writer};

/// One tensor as a checkpoint header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

/// `Dtype` does not implement `Hash`, so hash its stable text name instead.
impl Hash for TensorInfo {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.dtype.to_string().hash(state);
        self.shape.hash(state);
    }
}

impl TensorInfo {
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: Vec<usize>) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// Number of elements. Saturates instead of overflowing so that a
    /// nonsensical shape can never panic; headers are checked exactly elsewhere.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// Bytes the tensor occupies on disk (sub-byte dtypes such as F4 are
    /// counted in bits and rounded up to whole bytes). Saturating, like `numel`.
    pub fn byte_len(&self) -> usize {
        self.numel().saturating_mul(self.dtype.bitsize()).div_ceil(8)
    }

    /// Whether tv computes on this tensor (F16, BF16, F32, F64). Every other
    /// dtype (integers, bool, 8-bit and smaller floats) is carried unchanged.
    pub fn is_float(&self) -> bool {
        is_float_dtype(self.dtype)
    }
}

/// The dtypes tv decodes to f32 and computes on.
pub fn is_float_dtype(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
}
