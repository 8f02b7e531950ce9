//! Training checked against independent computations: losses from the
//! portable forward pass with an f64 cross-entropy, gradients against
//! central differences of that loss, the optimizer against a scalar f64
//! AdamW written here, and LoRA's delta against its rank.

mod gradients;
mod lora;
mod optimizer;
mod runs;

use super::*;
use crate::eval::lm::{CausalLm, Kernels};
use crate::synth::Rng;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

pub(super) type Tensors = HashMap<String, Tensor>;

/// A random Llama: norms near 1, other weights scaled by `1 / sqrt(in)`.
pub(super) fn tiny_llama(vocab: usize, hidden: usize, layers: usize, seed: u64) -> (LmConfig, Tensors) {
    let json = serde_json::json!({"model_type": "llama", "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": 2 * hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 256});
    let config = LmConfig::parse(json.as_object().unwrap()).unwrap();
    let mut rng = Rng::new(seed);
    let tensors = config
        .tensors()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = match shape.len() {
                1 => rng.normals(n, 0.1).iter().map(|v| 1.0 + v).collect(),
                _ => rng.normals(n, 1.0 / (shape[1] as f64).sqrt()),
            };
            (name, Tensor::from_vec(values, shape, &Device::Cpu).unwrap())
        })
        .collect();
    (config, tensors)
}

/// A tiny model of `tests/fixtures/lm/families`, made by transformers.
pub(super) fn family(name: &str) -> (LmConfig, Tensors) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lm/families")
        .join(name);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let config = LmConfig::parse(json.as_object().unwrap()).unwrap();
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let tensors = tensors
        .into_iter()
        .map(|(n, t)| (n, t.to_dtype(DType::F32).unwrap()))
        .collect();
    (config, tensors)
}

pub(super) fn args(steps: usize) -> TrainArgs {
    TrainArgs {
        steps,
        lr: 1e-2,
        batch: 2,
        accumulate: 2,
        context: 8,
        warmup: 1,
        clip: 1.0,
        weight_decay: 0.01,
        seed: 1,
        lora: None,
    }
}

/// Windows of random tokens.
pub(super) fn random_windows(count: usize, context: usize, vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(seed);
    let mut token = || (rng.next_u64() % vocab as u64) as u32;
    (0..count).map(|_| (0..context).map(|_| token()).collect()).collect()
}

pub(super) fn slices(windows: &[Vec<u32>]) -> Vec<&[u32]> {
    windows.iter().map(Vec::as_slice).collect()
}

/// The mean next-token cross-entropy of `windows`, by the portable
/// forward pass (candle's fused operations) and an f64 log-softmax.
pub(super) fn reference_loss(config: &LmConfig, tensors: &Tensors, windows: &[&[u32]]) -> f64 {
    let model = CausalLm::with_kernels(config, tensors, Kernels::Portable).unwrap();
    let (batch, context) = (windows.len(), windows[0].len());
    let ids: Vec<u32> = windows.concat();
    let ids = Tensor::from_vec(ids, (batch, context), &Device::Cpu).unwrap();
    let hidden = model.hidden(&ids, &vec![context; batch]).unwrap();
    let logits = model.logits(&hidden.reshape((batch * context, ())).unwrap()).unwrap();
    let logits = logits.to_vec2::<f32>().unwrap();
    let cap = config.final_softcap;
    let mut total = 0.0;
    for (b, window) in windows.iter().enumerate() {
        for i in 0..context - 1 {
            let row: Vec<f64> = logits[b * context + i]
                .iter()
                .map(|l| cap.map_or(*l as f64, |c| (*l as f64 / c).tanh() * c))
                .collect();
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + row.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            total += lse - row[window[i + 1] as usize];
        }
    }
    total / (batch * (context - 1)) as f64
}

pub(super) fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub(super) fn tensor_like(values: &[f64], like: &Tensor) -> Tensor {
    let values: Vec<f32> = values.iter().map(|v| *v as f32).collect();
    Tensor::from_vec(values, like.shape(), &Device::Cpu).unwrap()
}

pub(super) fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

pub(super) fn lora_args(rank: usize, modules: &str) -> TrainArgs {
    TrainArgs {
        lora: Some(Lora {
            rank,
            alpha: 2.0 * rank as f64,
            modules: modules.into(),
        }),
        ..args(6)
    }
}
