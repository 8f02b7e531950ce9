//! Placeholder until the training module lands.
use super::LmConfig;
use candle_core::{Device, Tensor};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Lora {
    pub rank: usize,
    pub alpha: f64,
    pub modules: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainArgs {
    pub steps: usize,
    pub lr: f64,
    pub batch: usize,
    pub accumulate: usize,
    pub context: usize,
    pub warmup: usize,
    pub clip: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub lora: Option<Lora>,
}

pub fn finetune(
    _config: &LmConfig,
    _weights: &HashMap<String, Tensor>,
    _documents: &[Vec<u32>],
    _args: &TrainArgs,
    _device: &Device,
    _on_step: &mut dyn FnMut(usize, f64, u64),
) -> Result<HashMap<String, Tensor>, String> {
    Err("not yet".into())
}

pub fn memory_estimate(_config: &LmConfig, _parameters: u64, _args: &TrainArgs) -> u64 {
    0
}
