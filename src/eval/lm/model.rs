//! The forward pass of a llama-family decoder, returning the hidden state of
//! every position (the language-model head is applied by the scorer, a few
//! rows at a time, so logits for a whole batch never exist at once).
//!
//! It follows transformers' eager implementation: RMSNorm before attention
//! and MLP, rotary embeddings in the "rotate half" layout, grouped-query
//! attention, a causal (optionally sliding-window) mask, SwiGLU MLP.

use super::config::LmConfig;
use candle_core::{Device, Result, Tensor};
use candle_nn::{Linear, Module};
use std::collections::hash_map::Entry;
use std::collections::HashMap;

pub struct CausalLm {
    config: LmConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    head: Tensor,
}

struct Layer {
    input_norm: Tensor,
    post_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
    window: Option<usize>,
}

impl CausalLm {
    /// Builds the model from its tensors (as `LmConfig::tensors` names them).
    pub fn new(config: &LmConfig, tensors: &HashMap<String, Tensor>) -> Result<CausalLm> {
        let get = |name: &str| {
            tensors
                .get(name)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("tensor `{name}` is missing")))
        };
        let linear = |name: &str, bias: bool| -> Result<Linear> {
            let b = if bias {
                Some(get(&format!("{name}.bias"))?)
            } else {
                None
            };
            Ok(Linear::new(get(&format!("{name}.weight"))?, b))
        };
        let mut layers = Vec::new();
        for (i, window) in config.windows.iter().enumerate() {
            let p = format!("model.layers.{i}.");
            let attn = |n: &str, bias| linear(&format!("{p}self_attn.{n}"), bias);
            let mlp = |n: &str| linear(&format!("{p}mlp.{n}"), config.mlp_bias);
            layers.push(Layer {
                input_norm: get(&format!("{p}input_layernorm.weight"))?,
                post_norm: get(&format!("{p}post_attention_layernorm.weight"))?,
                q: attn("q_proj", config.qkv_bias)?,
                k: attn("k_proj", config.qkv_bias)?,
                v: attn("v_proj", config.qkv_bias)?,
                o: attn("o_proj", config.o_bias)?,
                gate: mlp("gate_proj")?,
                up: mlp("up_proj")?,
                down: mlp("down_proj")?,
                window: *window,
            });
        }
        let embed = get("model.embed_tokens.weight")?;
        // A tied model saved with its head anyway uses that head, as
        // transformers 5 does (it declines to tie them then).
        let head = match tensors.get("lm_head.weight") {
            Some(head) => head.clone(),
            None if config.tied => embed.clone(),
            None => get("lm_head.weight")?,
        };
        Ok(CausalLm {
            config: config.clone(),
            embed,
            layers,
            norm: get("model.norm.weight")?,
            head,
        })
    }

    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// The `[vocab, hidden]` matrix that maps hidden states to logits.
    pub fn head(&self) -> &Tensor {
        &self.head
    }

    /// Final hidden states `[batch, len, hidden]` for token ids `[batch, len]`
    /// at positions `0..len`.
    pub fn hidden(&self, ids: &Tensor) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let device = ids.device();
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((batch, len, ()))?;
        let (cos, sin) = rotary_tables(&self.config, len, device)?;
        let mut masks: HashMap<Option<usize>, Tensor> = HashMap::new();
        let rope = Rope { cos: &cos, sin: &sin };
        for layer in &self.layers {
            let mask = match masks.entry(layer.window) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(slot) => slot.insert(mask(len, layer.window, device)?),
            };
            x = layer.forward(&x, &rope, mask, &self.config)?;
        }
        candle_nn::ops::rms_norm(&x, &self.norm, self.config.rms_norm_eps as f32)
    }
}

struct Rope<'a> {
    cos: &'a Tensor,
    sin: &'a Tensor,
}

impl Layer {
    fn forward(&self, x: &Tensor, rope: &Rope, mask: &Tensor, config: &LmConfig) -> Result<Tensor> {
        let eps = config.rms_norm_eps as f32;
        let h = candle_nn::ops::rms_norm(x, &self.input_norm, eps)?;
        let x = (x + self.attention(&h, rope, mask, config)?)?;
        let h = candle_nn::ops::rms_norm(&x, &self.post_norm, eps)?;
        let mlp = self
            .down
            .forward(&(candle_nn::ops::silu(&self.gate.forward(&h)?)? * self.up.forward(&h)?)?)?;
        x + mlp
    }

    /// Grouped-query attention without copying keys and values per query
    /// head: the query heads that share a key-value head are stacked along
    /// the sequence axis, so one matmul serves the whole group.
    fn attention(&self, x: &Tensor, rope: &Rope, mask: &Tensor, config: &LmConfig) -> Result<Tensor> {
        let (batch, len, _) = x.dims3()?;
        let (heads, kv_heads, dim) = (config.heads, config.kv_heads, config.head_dim);
        let group = heads / kv_heads;
        let split = |t: Tensor, n: usize| t.reshape((batch, len, n, dim))?.transpose(1, 2)?.contiguous();
        let q = split(self.q.forward(x)?, heads)?;
        let k = split(self.k.forward(x)?, kv_heads)?;
        let v = split(self.v.forward(x)?, kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, rope.cos, rope.sin)?;
        let k = candle_nn::rotary_emb::rope(&k, rope.cos, rope.sin)?;
        // Scaling the queries costs less than scaling the `len x len` scores.
        let q = (q * (1.0 / (dim as f64).sqrt()))?.reshape((batch, kv_heads, group * len, dim))?;
        let scores = q.matmul(&k.t()?)?;
        let scores = scores
            .reshape((batch, kv_heads, group, len, len))?
            .broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores.reshape((batch, kv_heads, group * len, len))?)?;
        let out = weights.matmul(&v)?.reshape((batch, heads, len, dim))?;
        let out = out.transpose(1, 2)?.reshape((batch, len, heads * dim))?;
        self.o.forward(&out)
    }
}

/// Cosines and sines `[len, head_dim / 2]`, computed in f32 the way
/// transformers computes them, so long contexts round alike.
fn rotary_tables(config: &LmConfig, len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let dim = config.head_dim;
    let theta = config.rope_theta as f32;
    let inverse: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / dim as f32))
        .collect();
    let angles: Vec<f32> = (0..len)
        .flat_map(|p| inverse.iter().map(move |f| p as f32 * f))
        .collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    Ok((
        Tensor::from_vec(cos, (len, dim / 2), device)?,
        Tensor::from_vec(sin, (len, dim / 2), device)?,
    ))
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
/// f64 from the f32 logits, a block of rows at a time.
pub fn target_log_probs(head: &Tensor, hidden: &Tensor, targets: &[u32]) -> Result<Vec<f64>> {
    const ROWS: usize = 256;
    let mut out = Vec::with_capacity(targets.len());
    for (block, chunk) in targets.chunks(ROWS).enumerate() {
        let rows = hidden.narrow(0, block * ROWS, chunk.len())?;
        let logits: Vec<Vec<f32>> = rows.matmul(&head.t()?)?.to_vec2()?;
        for (row, target) in logits.iter().zip(chunk) {
            out.push(row[*target as usize] as f64 - log_sum_exp(row));
        }
    }
    Ok(out)
}

fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) as f64;
    max + row.iter().map(|v| (*v as f64 - max).exp()).sum::<f64>().ln()
}
