//! Where the per-tensor arithmetic runs. The engine hands each tensor's work
//! (a `TensorWork`) to a backend and gets its sums back; it never touches a
//! device itself.
//!
//! - `Native`: the streaming CPU kernels (`kernel`), chunked and fused,
//!   exact where terms cancel, bit-identical for any thread count.
//! - `Candle`: the same work as candle tensor operations on a candle
//!   `Device`; the Gram entries of a tensor are one matrix product. On a
//!   CPU it is the cross-check of the native kernels; the `cuda` feature
//!   runs it on a GPU.

use super::kernel::{self, Source, TensorSums, TensorWork};
use crate::io::IoError;
use candle_core::{Device, Tensor};

#[derive(Clone, Debug, Default)]
pub enum Backend {
    #[default]
    Native,
    Candle(Device),
}

impl Backend {
    /// The backend for a `device` setting (`cpu`, `cuda`, `cuda:N`).
    pub fn for_device(device: &str) -> Result<Backend, String> {
        if device == "cpu" {
            return Ok(Backend::Native);
        }
        let ordinal = device
            .strip_prefix("cuda")
            .map(|n| n.trim_start_matches(':'))
            .unwrap_or("0");
        let ordinal: usize = if ordinal.is_empty() {
            0
        } else {
            ordinal.parse().map_err(|_| device.to_string())?
        };
        cuda(ordinal).map(Backend::Candle)
    }

    /// A bound on the rounding error of a Gram entry computed here, relative
    /// to `sum_i |x_i y_i|`, for tensors of at most `numel` elements. The
    /// native kernels fix their summation order (`kernel::ENTRY_ERROR`); a
    /// device's matrix product does not say how it sums, so its bound is
    /// that of a plain sequential sum.
    pub fn entry_error(&self, numel: usize) -> f64 {
        match self {
            Backend::Native => kernel::ENTRY_ERROR,
            Backend::Candle(_) => (numel as f64 + 8.0) * f64::EPSILON / 2.0,
        }
    }

    pub fn run(&self, work: &TensorWork, numel: usize) -> Result<TensorSums, IoError> {
        match self {
            Backend::Native => kernel::run(work, numel),
            Backend::Candle(device) => on_device(work, numel, device).map_err(candle_error),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device, String> {
    Device::new_cuda(ordinal).map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda(_ordinal: usize) -> Result<Device, String> {
    Err("this build of tv has no CUDA support (build with `--features cuda`)".to_string())
}

fn candle_error(error: candle_core::Error) -> IoError {
    IoError::BadWrite {
        path: std::path::PathBuf::new(),
        reason: format!("device computation failed: {error}"),
    }
}

/// The whole tensor at once: the basis as a `[k, n]` matrix in f64.
fn on_device(work: &TensorWork, numel: usize, device: &Device) -> candle_core::Result<TensorSums> {
    let mut rows = Vec::with_capacity(work.sources.len());
    for source in &work.sources {
        rows.push(upload(source, numel, device)?);
    }
    let basis = Tensor::stack(&rows, 0)?;
    let gram = match work.pairs.is_empty() {
        true => Vec::new(),
        false => gram_entries(work, &rows)?,
    };
    let mut direct = Vec::with_capacity(work.direct.len());
    for (a, b) in &work.direct {
        let (va, vb) = (combine(&basis, a)?, combine(&basis, b)?);
        direct.push((va * vb)?.sum_all()?.to_scalar::<f64>()?);
    }
    let mut bytes = Vec::new();
    for save in &work.saves {
        let values = combine(&basis, save.coefs)?.to_vec1::<f64>()?;
        if !kernel::encode(save.dtype, &values, &mut bytes) {
            save.non_finite.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        (save.emit)(0, &bytes).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    }
    Ok(TensorSums { gram, direct })
}

/// A source as a vector of f64, decoded as the native kernels decode it.
fn upload(source: &Source, numel: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut values = vec![0.0; numel];
    source.read_f64(0, &mut values);
    Tensor::from_vec(values, numel, device)
}

/// The Gram entries of `work.pairs`, on the difference basis when asked.
fn gram_entries(work: &TensorWork, atoms: &[Tensor]) -> candle_core::Result<Vec<f64>> {
    let mut rows = atoms.to_vec();
    let reference = rows[work.reference].clone();
    for (k, row) in rows.iter_mut().enumerate() {
        if k != work.reference {
            *row = (&*row - &reference)?;
        }
    }
    let basis = Tensor::stack(&rows, 0)?;
    let matrix = basis.matmul(&basis.t()?)?.to_vec2::<f64>()?;
    Ok(work.pairs.iter().map(|&(p, q)| matrix[p][q]).collect())
}

/// `sum_k coefs_k atoms_k` as a vector of length n, over the atoms with a
/// non-zero coefficient only (a product would turn 0 * inf into NaN).
fn combine(atoms: &Tensor, coefs: &[f64]) -> candle_core::Result<Tensor> {
    let used: Vec<u32> = (0..coefs.len() as u32).filter(|&k| coefs[k as usize] != 0.0).collect();
    if used.is_empty() {
        return atoms.get(0)?.zeros_like();
    }
    let weights: Vec<f64> = used.iter().map(|&k| coefs[k as usize]).collect();
    let index = Tensor::from_vec(used.clone(), used.len(), atoms.device())?;
    let row = Tensor::from_vec(weights, (1, used.len()), atoms.device())?;
    row.matmul(&atoms.index_select(&index, 0)?)?.squeeze(0)
}
