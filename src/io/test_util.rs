//! Helpers shared by the io tests: random tensors and files written by the
//! safetensors crate itself, as an independent reference.

use std::fs;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::TensorView;

use super::{Dtype, TensorInfo};

/// A tensor description together with its raw bytes.
pub type Tensor = (TensorInfo, Vec<u8>);

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A tensor of the given kind filled with random bytes.
pub fn random_tensor(rng: &mut StdRng, name: &str, dtype: Dtype, shape: &[usize]) -> Tensor {
    let info = TensorInfo::new(name, dtype, shape.to_vec());
    let bytes = (0..info.byte_len()).map(|_| rng.gen()).collect();
    (info, bytes)
}

/// A mix of dtypes and shapes, including a scalar and an empty tensor.
pub fn mixed_tensors(rng: &mut StdRng) -> Vec<Tensor> {
    vec![
        random_tensor(rng, "layers.0.weight", Dtype::F32, &[3, 4]),
        random_tensor(rng, "layers.0.bias", Dtype::F16, &[5]),
        random_tensor(rng, "embed.weight", Dtype::BF16, &[2, 3, 2]),
        random_tensor(rng, "position_ids", Dtype::I64, &[1, 3]),
        random_tensor(rng, "scale", Dtype::F32, &[]),
        random_tensor(rng, "empty", Dtype::F32, &[0, 7]),
    ]
}

/// A safetensors file as the safetensors crate serializes it.
pub fn serialize(tensors: &[Tensor]) -> Vec<u8> {
    let views = tensors.iter().map(|(info, bytes)| {
        let view = TensorView::new(info.dtype, info.shape.clone(), bytes).unwrap();
        (info.name.clone(), view)
    });
    safetensors::serialize(views, None).unwrap()
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// A hand-made file: length prefix, `json` verbatim, then `data`.
pub fn raw_file(json: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// Names of the entries of `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
