//! Low-rank adapters (LoRA, as PEFT makes them): for a weight `W`
//! `[out, in]`, trainable `A` `[R, in]` and `B` `[out, R]`, and the weight
//! the model runs `W + (alpha / R) B A`. `B` starts at zero, so training
//! starts from the model itself.

use super::Lora;
use crate::eval::lm::lora::targets;
use crate::eval::lm::LmConfig;
use crate::synth::Rng;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;

/// One adapted weight.
pub struct Adapter {
    /// The checkpoint's name of the weight.
    pub name: String,
    /// Stored `[in, out]` (GPT-2's `Conv1D`): the delta is added transposed.
    pub transposed: bool,
    pub a: Var,
    pub b: Var,
}

impl Adapter {
    /// `scale B A`, in the weight's stored layout.
    pub fn delta(&self, scale: f64) -> candle_core::Result<Tensor> {
        let delta = (self.b.matmul(&self.a)? * scale)?;
        match self.transposed {
            true => delta.t(),
            false => Ok(delta),
        }
    }
}

/// Adapters for the matching weights of `tensors` (f32, on `device`): `A`
/// uniform in `±1 / sqrt(in)` (PEFT's `kaiming_uniform_(a = sqrt 5)`) from
/// a generator seeded by `seed`, `B` zero.
pub fn adapters(
    config: &LmConfig,
    tensors: &HashMap<String, Tensor>,
    lora: &Lora,
    seed: u64,
    device: &Device,
) -> Result<Vec<Adapter>, String> {
    let held = |n: &str| tensors.contains_key(n);
    let found = targets(config, &lora.modules, &held);
    if found.is_empty() {
        return Err(format!(
            "no linear layer of the model matches `{}` (e.g. {})",
            lora.modules,
            targets(config, "*", &held).first().map_or("none", |t| t.0.as_str())
        ));
    }
    // A stream of its own: SplitMix64 seeds that differ by a small
    // multiple of its increment would give overlapping sequences.
    let mut rng = Rng::new(seed ^ 0x4C6F_5241_0000_0000);
    let text = |e: candle_core::Error| e.to_string();
    let mut out = Vec::new();
    for (name, transposed) in found {
        let (rows, cols) = tensors[&name].dims2().map_err(text)?;
        let (outputs, inputs) = if transposed { (cols, rows) } else { (rows, cols) };
        let bound = 1.0 / (inputs as f64).sqrt();
        let a: Vec<f32> = (0..lora.rank * inputs)
            .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
            .collect();
        out.push(Adapter {
            name,
            transposed,
            a: Var::from_vec(a, (lora.rank, inputs), device).map_err(text)?,
            b: Var::zeros((outputs, lora.rank), DType::F32, device).map_err(text)?,
        });
    }
    Ok(out)
}
