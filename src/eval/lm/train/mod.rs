//! Fine-tuning of the language models tv evaluates, by next-token
//! cross-entropy, with PyTorch's semantics (transformers' loss and linear
//! warmup schedule, `clip_grad_norm_`, `torch.optim.AdamW`, PEFT's LoRA),
//! so that a run agrees with the same run in PyTorch. Gradients come from
//! candle's autograd through tv's own forward pass (see `trainer.rs`).

mod adamw;
mod data;
mod lora;
mod loss;
mod trainer;

pub use data::{windows, Order};
pub use trainer::Trainer;

use super::LmConfig;
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// The settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainArgs {
    /// Optimizer steps.
    pub steps: usize,
    /// The peak learning rate.
    pub lr: f64,
    /// Windows per micro-batch.
    pub batch: usize,
    /// Micro-batches per step, their gradients averaged.
    pub accumulate: usize,
    /// Tokens per window.
    pub context: usize,
    /// Steps over which the learning rate rises from 0.
    pub warmup: usize,
    /// The largest global gradient norm; 0 for no clipping.
    pub clip: f64,
    pub weight_decay: f64,
    /// Fixes the order of the windows and the adapters' start.
    pub seed: u64,
    /// Train low-rank adapters instead of the weights.
    pub lora: Option<Lora>,
}

/// Low-rank adapters of the blocks' linear layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Lora {
    pub rank: usize,
    /// The delta is scaled by `alpha / rank`.
    pub alpha: f64,
    /// A glob (`*` for any run of characters) the checkpoint names of the
    /// adapted weights match; `"*"` adapts every linear layer.
    pub modules: String,
}

impl Lora {
    /// Rank `rank`, scale 1, every linear layer: PEFT's defaults but alpha.
    pub fn new(rank: usize) -> Lora {
        Lora {
            rank,
            alpha: rank as f64,
            modules: "*".into(),
        }
    }
}

/// Settings no run can use, as messages.
fn check(config: &LmConfig, args: &TrainArgs) -> Result<(), String> {
    let positive = [
        ("steps", args.steps),
        ("batch", args.batch),
        ("accumulate", args.accumulate),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, n)| *n == 0) {
        return Err(format!("`{name}` must be at least 1"));
    }
    if args.context < 2 {
        return Err(format!(
            "a window of {} tokens has nothing to predict; it needs at least 2",
            args.context
        ));
    }
    if args.context > config.context_limit() {
        return Err(format!(
            "a window of {} tokens is longer than the model's {} positions",
            args.context,
            config.context_limit()
        ));
    }
    let reals = [
        ("lr", args.lr),
        ("clip", args.clip),
        ("weight_decay", args.weight_decay),
    ];
    if let Some((name, value)) = reals.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
        return Err(format!("`{name}` must be a finite number, at least 0 (not {value})"));
    }
    match &args.lora {
        Some(l) if l.rank == 0 => Err("the LoRA rank must be at least 1".into()),
        Some(l) if !l.alpha.is_finite() || l.alpha <= 0.0 => Err(format!("LoRA alpha {} must be positive", l.alpha)),
        _ => Ok(()),
    }
}

/// The whole run: `args.steps` steps on windows of the documents drawn in
/// a seeded order (a fresh permutation of all windows each epoch; a step
/// may span two epochs). After each step, `on_step(steps done, the step's
/// loss, tokens trained on so far)`. Returns the trained weights.
pub fn finetune(
    config: &LmConfig,
    weights: &HashMap<String, Tensor>,
    documents: &[Vec<u32>],
    args: &TrainArgs,
    device: &Device,
    on_step: &mut dyn FnMut(usize, f64, u64),
) -> Result<HashMap<String, Tensor>, String> {
    check(config, args)?;
    let all = windows(documents, args.context)?;
    let vocab = config.vocab_size;
    if let Some(bad) = all.iter().flatten().find(|t| **t as usize >= vocab) {
        return Err(format!("token id {bad} is outside the model's vocabulary of {vocab}"));
    }
    let mut trainer = Trainer::new(config, weights, args, device)?;
    let mut order = Order::new(all.len(), args.seed);
    let per_step = (args.accumulate * args.batch * args.context) as u64;
    for step in 0..args.steps {
        let mut micro_batches = Vec::with_capacity(args.accumulate);
        for _ in 0..args.accumulate {
            let batch: Vec<&[u32]> = order.by_ref().take(args.batch).map(|i| all[i].as_slice()).collect();
            micro_batches.push(batch);
        }
        let loss = trainer.step(&micro_batches)?;
        // Diverged: every later step is NaN too, and nothing may cache it.
        if !loss.is_finite() {
            return Err(format!(
                "the loss is not finite at step {} (a learning rate too high, or weights that are not finite)",
                step + 1
            ));
        }
        on_step(step + 1, loss, per_step * (step as u64 + 1));
    }
    trainer.weights()
}

/// Bytes a run takes at most, roughly, for a check before it starts: the
/// f32 weights and the copies the model is built from each step; in full
/// fine-tuning gradients (summed, and one micro-batch's) and AdamW's two
/// moments; with LoRA the merged weights and the adapters' share of all
/// that; and the activations of one micro-batch, kept for the backward
/// pass, with their gradients.
pub fn memory_estimate(config: &LmConfig, parameters: u64, args: &TrainArgs) -> u64 {
    let weights = 4.0 * parameters as f64;
    let state = match &args.lora {
        None => weights + 4.0 * weights,
        Some(l) => 2.0 * weights + 5.0 * 4.0 * adapter_parameters(config, l) as f64,
    };
    let tokens = (args.batch * args.context) as f64;
    let c = config;
    let per_token = 14 * c.hidden_size + 3 * (c.heads + 2 * c.kv_heads) * c.head_dim + 5 * c.intermediate_size;
    let scores = 4.0 * (c.heads * args.context) as f64;
    let layers = c.layers as f64 * tokens * (per_token as f64 + scores);
    let logits = 5.0 * tokens * c.vocab_size as f64;
    let activations = 2.0 * 4.0 * (layers + logits);
    (weights + state + activations).min(u64::MAX as f64) as u64
}

/// Parameters of the adapters `lora` adds to the model.
fn adapter_parameters(config: &LmConfig, lora: &Lora) -> u64 {
    let adapted: Vec<String> = super::lora::targets(config, &lora.modules, &|_| true)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let slots = config.slots().into_iter().filter(|s| adapted.contains(&s.name));
    slots.map(|s| (lora.rank * s.shape.iter().sum::<usize>()) as u64).sum()
}

#[cfg(test)]
mod tests;
