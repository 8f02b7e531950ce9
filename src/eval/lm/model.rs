//! The forward pass of a decoder-only language model of any supported
//! family, returning the hidden state of every position (the head is
//! applied by the scorer, which reduces the logits as they are made, so
//! logits for a whole batch never exist at once). The model is assembled
//! from the checkpoint's tensors by the slots its family names.

use super::arch::{Param, Piece, Role};
use super::config::{LmConfig, NormKind};
use super::dense::{Dense, Gated, Kernels};
use super::parts::{Attention, Inputs, Layer, Mlp, Norm, Rotary};
use super::rope::Rope;
use candle_core::{Device, Result, Tensor};
use candle_nn::Linear;
use std::collections::HashMap;

pub struct CausalLm {
    config: LmConfig,
    embed: Tensor,
    positions: Option<Tensor>,
    layers: Vec<Layer>,
    norm: Norm,
    head: Dense,
    kernels: Kernels,
}

type Pieces = HashMap<(Piece, Param), Tensor>;

fn missing(name: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("tensor `{name}` is missing"))
}

impl CausalLm {
    /// Builds the model from its tensors (as `LmConfig::tensors` names them).
    pub fn new(config: &LmConfig, tensors: &HashMap<String, Tensor>) -> Result<CausalLm> {
        CausalLm::with_kernels(config, tensors, Kernels::Native)
    }

    /// As `new`, running the given kernels.
    pub fn with_kernels(config: &LmConfig, tensors: &HashMap<String, Tensor>, kernels: Kernels) -> Result<CausalLm> {
        let mut global = HashMap::new();
        let mut layers: Vec<Pieces> = (0..config.layers).map(|_| HashMap::new()).collect();
        for slot in config.slots() {
            let name = config.held_name(&slot.name, |n| tensors.contains_key(n));
            let tensor = tensors.get(name).ok_or_else(|| missing(&slot.name))?;
            match slot.role {
                Role::Layer(i, piece, Param::TransposedWeight) => {
                    layers[i].insert((piece, Param::Weight), tensor.t()?.contiguous()?);
                }
                Role::Layer(i, piece, param) => {
                    layers[i].insert((piece, param), tensor.clone());
                }
                role => {
                    global.insert(role, tensor.clone());
                }
            }
        }
        let take = |role: Role| global.get(&role).cloned().ok_or_else(|| missing(&format!("{role:?}")));
        let embed = take(Role::Embed)?;
        // A tied model saved with its head anyway uses that head, as
        // transformers 5 does (it declines to tie them then).
        let head_name = super::arch::head_name(config.family);
        let head = match tensors.get(head_name) {
            Some(head) => head.clone(),
            None if config.tied => embed.clone(),
            None => return Err(missing(head_name)),
        };
        let final_norm = norm(
            config,
            take(Role::FinalNorm(Param::Weight))?,
            global.get(&Role::FinalNorm(Param::Bias)),
            kernels,
        )?;
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, pieces)| layer(config, i, pieces, kernels))
            .collect::<Result<Vec<Layer>>>()?;
        Ok(CausalLm {
            config: config.clone(),
            embed,
            positions: global.get(&Role::Positions).cloned(),
            layers,
            norm: final_norm,
            head: Dense::new(Linear::new(head, None), kernels)?,
            kernels,
        })
    }

    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// Logits `[n, vocab]` of hidden states `[n, hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.head.forward(hidden)
    }

    /// Final hidden states `[batch, len, hidden]` for token ids `[batch, len]`
    /// at positions `0..len`; `lengths` are the real (unpadded) lengths of
    /// the rows, which length-dependent RoPE scalings need.
    pub fn hidden(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let device = ids.device();
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((batch, len, ()))?;
        if self.config.embed_scale {
            x = (x * (self.config.hidden_size as f32).sqrt() as f64)?;
        }
        if let Some(positions) = &self.positions {
            x = x.broadcast_add(&positions.narrow(0, 0, len)?)?;
        }
        let tables = |rope: &Option<Rope>| rope.as_ref().map(|r| rotary(r, len, lengths, device)).transpose();
        let (global, local) = (tables(&self.config.rope)?, tables(&self.config.local_rope)?);
        let rotary = global.as_ref().map(|g| (g, local.as_ref().unwrap_or(g)));
        let mut masks = HashMap::new();
        if !self.kernels.native_on(device) {
            for window in &self.config.windows {
                if !masks.contains_key(window) {
                    masks.insert(*window, mask(len, *window, device)?);
                }
            }
        }
        let inputs = Inputs { rotary, masks: &masks };
        for layer in &self.layers {
            x = layer.forward(&x, &inputs)?;
        }
        self.norm.forward(&x)
    }
}

/// Cosine and sine tables for `len` positions: one table for all rows, or
/// (for length-dependent scalings) one per row from its real length.
fn rotary(rope: &Rope, len: usize, lengths: &[usize], device: &Device) -> Result<Rotary> {
    let half = rope.rotary_dim / 2;
    if !rope.length_dependent() {
        let (cos, sin) = rope.tables(len, len);
        return Ok(Rotary {
            cos: Tensor::from_vec(cos, (len, half), device)?,
            sin: Tensor::from_vec(sin, (len, half), device)?,
        });
    }
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    for row in lengths {
        let (c, s) = rope.tables(*row, len);
        cos.extend(c);
        sin.extend(s);
    }
    let shape = (lengths.len(), len, half);
    Ok(Rotary {
        cos: Tensor::from_vec(cos, shape, device)?,
        sin: Tensor::from_vec(sin, shape, device)?,
    })
}

fn norm(config: &LmConfig, weight: Tensor, bias: Option<&Tensor>, kernels: Kernels) -> Result<Norm> {
    let weight = match config.norm {
        NormKind::Rms { unit_offset: true } => (weight + 1.0)?,
        _ => weight,
    };
    Ok(Norm {
        weight,
        bias: bias.cloned(),
        eps: config.norm_eps as f32,
        kernels,
    })
}

fn layer(config: &LmConfig, index: usize, mut pieces: Pieces, kernels: Kernels) -> Result<Layer> {
    let named = |piece: Piece| format!("layer {index} {piece:?}");
    let norm_of = |piece: Piece, pieces: &mut Pieces| -> Result<Option<Norm>> {
        match pieces.remove(&(piece, Param::Weight)) {
            Some(w) => norm(config, w, pieces.remove(&(piece, Param::Bias)).as_ref(), kernels).map(Some),
            None => Ok(None),
        }
    };
    let attention_norm = norm_of(Piece::AttentionNorm, &mut pieces)?;
    let attention_post_norm = norm_of(Piece::AttentionPostNorm, &mut pieces)?;
    let mlp_norm = norm_of(Piece::MlpNorm, &mut pieces)?;
    let mlp_post_norm = norm_of(Piece::MlpPostNorm, &mut pieces)?;
    let q_norm = norm_of(Piece::QNorm, &mut pieces)?;
    let k_norm = norm_of(Piece::KNorm, &mut pieces)?;
    let has = |piece: Piece, pieces: &Pieces| pieces.contains_key(&(piece, Param::Weight));
    let (stacked, per_head, gate_up) = (
        has(Piece::QkvStacked, &pieces),
        has(Piece::QkvPerHead, &pieces),
        has(Piece::GateUp, &pieces),
    );
    let mut linear = |piece: Piece| -> Result<Linear> {
        let weight = pieces
            .remove(&(piece, Param::Weight))
            .ok_or_else(|| missing(&named(piece)))?;
        Ok(Linear::new(weight, pieces.remove(&(piece, Param::Bias))))
    };
    let qkv = if stacked {
        vec![linear(Piece::QkvStacked)?]
    } else if per_head {
        let (q, k, v) = split_per_head(linear(Piece::QkvPerHead)?, config)?;
        vec![q, k, v]
    } else {
        vec![linear(Piece::Q)?, linear(Piece::K)?, linear(Piece::V)?]
    };
    let (qkv, o) = (Dense::stacked(qkv, kernels)?, Dense::new(linear(Piece::O)?, kernels)?);
    let (activation, width) = (config.activation, config.intermediate_size);
    let mlp = if gate_up || config.gated {
        let gate_up = match gate_up {
            true => vec![linear(Piece::GateUp)?],
            false => vec![linear(Piece::Gate)?, linear(Piece::Up)?],
        };
        Mlp::Gated {
            gate_up: Gated::new(gate_up, width, activation, kernels)?,
            down: Dense::new(linear(Piece::Down)?, kernels)?,
        }
    } else {
        Mlp::Plain {
            up: Dense::new(linear(Piece::Up)?, kernels)?,
            down: Dense::new(linear(Piece::Down)?, kernels)?,
            activation,
        }
    };
    let window = config.windows[index];
    let scale = match config.scale_by_layer {
        true => config.attention_scale / (index + 1) as f64,
        false => config.attention_scale,
    };
    let attention = Attention {
        qkv,
        o,
        q_norm,
        k_norm,
        qk_norm: config.qk_norm,
        heads: config.heads,
        kv_heads: config.kv_heads,
        head_dim: config.head_dim,
        scale,
        softcap: config.attention_softcap,
        window,
        kernels,
    };
    Ok(Layer {
        attention_norm,
        attention_post_norm,
        mlp_norm,
        mlp_post_norm,
        attention,
        mlp,
        parallel: config.parallel,
    })
}

/// GPT-NeoX's fused projection: for each head, its query, key and value
/// rows in turn.
fn split_per_head(fused: Linear, config: &LmConfig) -> Result<(Linear, Linear, Linear)> {
    let (heads, dim) = (config.heads, config.head_dim);
    let weight = fused.weight().reshape((heads, 3, dim, ()))?;
    let bias = fused.bias().map(|b| b.reshape((heads, 3, dim))).transpose()?;
    let part = |i: usize| -> Result<Linear> {
        let w = weight.narrow(1, i, 1)?.reshape((heads * dim, ()))?.contiguous()?;
        let b = bias
            .as_ref()
            .map(|b| b.narrow(1, i, 1)?.reshape(heads * dim)?.contiguous())
            .transpose()?;
        Ok(Linear::new(w, b))
    };
    Ok((part(0)?, part(1)?, part(2)?))
}

/// `[len, len]`: 0 where query `i` may see key `j` (`j <= i`, and within
/// the window), minus infinity elsewhere.
fn mask(len: usize, window: Option<usize>, device: &Device) -> Result<Tensor> {
    let visible = |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
    let values: Vec<f32> = (0..len * len)
        .map(|n| {
            if visible(n / len, n % len) {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    Tensor::from_vec(values, (len, len), device)
}

/// Log-probabilities of `targets` given hidden states `[n, hidden]`, in
/// f64 from the f32 logits (soft-capped where the family caps them): by
/// the packed head's own reduction where it has one, else a block of rows
/// at a time, the rows of a block in parallel.
pub fn target_log_probs(model: &CausalLm, hidden: &Tensor, targets: &[u32]) -> Result<Vec<f64>> {
    use rayon::prelude::*;
    let vocab = model.config.vocab_size;
    if let Some(bad) = targets.iter().find(|t| **t as usize >= vocab) {
        candle_core::bail!("token id {bad} is outside the model's vocabulary of {vocab}")
    }
    let cap = model.config.final_softcap;
    if let Some(log_probs) = model.head.log_probs(hidden, targets, cap) {
        return log_probs;
    }
    // A block's logits stay below glibc's 32 MiB mapping threshold for
    // vocabularies up to 64k.
    const ROWS: usize = 128;
    let mut out = Vec::with_capacity(targets.len());
    for (block, chunk) in targets.chunks(ROWS).enumerate() {
        let rows = hidden.narrow(0, block * ROWS, chunk.len())?;
        let mut logits = model.logits(&rows.contiguous()?)?;
        if let Some(cap) = cap {
            logits = ((logits / cap)?.tanh()? * cap)?;
        }
        let logits = logits.to_device(&Device::Cpu)?.to_dtype(candle_core::DType::F32)?;
        let logits = super::simd::values(&logits)?;
        let scored = logits.get().par_chunks(vocab).zip(chunk.par_iter());
        out.par_extend(scored.map(|(row, target)| {
            let (max, sum) = super::simd::max_and_sum_exp(row);
            row[*target as usize] as f64 - (max as f64 + sum.ln())
        }));
    }
    Ok(out)
}
