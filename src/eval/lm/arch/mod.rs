//! The families: each reads its config keys into an `LmConfig` and names
//! the tensors of its checkpoints (`Slot`s, saying where each goes in the
//! shared decoder of `model.rs`). The forward pass itself is shared.

mod gemma;
mod gpt2;
mod llama;
mod neox;
mod olmo2;
mod phi3;

use super::config::{Activation, Biases, Family, LmConfig, NormKind, QkNorm};
use super::keys::Keys;
use super::rope::{Rope, RopeInputs};
use serde_json::{Map, Value};

/// One tensor of a checkpoint: its name, shape and place in the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Embed,
    /// Learned position embeddings.
    Positions,
    FinalNorm(Param),
    Head,
    Layer(usize, Piece, Param),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    Weight,
    Bias,
    /// A weight stored `[in, out]` (GPT-2's `Conv1D`), transposed on load.
    TransposedWeight,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Piece {
    AttentionNorm,
    AttentionPostNorm,
    MlpNorm,
    MlpPostNorm,
    Q,
    K,
    V,
    /// Queries, keys and values stacked: `[q; k; v]` rows.
    QkvStacked,
    /// Per head `[q_h; k_h; v_h]` rows (GPT-NeoX).
    QkvPerHead,
    O,
    QNorm,
    KNorm,
    Gate,
    Up,
    /// Gate and up stacked: `[gate; up]` rows (Phi-3).
    GateUp,
    Down,
}

pub fn parse(family: Family, keys: &Keys) -> Result<LmConfig, String> {
    match family {
        Family::Llama | Family::Mistral | Family::Qwen2 | Family::Qwen3 => llama::parse(family, keys),
        Family::Gemma | Family::Gemma2 | Family::Gemma3 => gemma::parse(family, keys),
        Family::Phi3 => phi3::parse(keys),
        Family::Gpt2 => gpt2::parse(keys),
        Family::GptNeox => neox::parse(keys),
        Family::Olmo2 => olmo2::parse(keys),
    }
}

pub fn slots(config: &LmConfig) -> Vec<Slot> {
    match config.family {
        Family::Llama | Family::Mistral | Family::Qwen2 | Family::Qwen3 => llama::slots(config),
        Family::Gemma | Family::Gemma2 | Family::Gemma3 => gemma::slots(config),
        Family::Phi3 => phi3::slots(config),
        Family::Gpt2 => gpt2::slots(config),
        Family::GptNeox => neox::slots(config),
        Family::Olmo2 => olmo2::slots(config),
    }
}

pub fn head_name(family: Family) -> &'static str {
    match family {
        Family::GptNeox => "embed_out.weight",
        _ => "lm_head.weight",
    }
}

/// The name a tensor has in checkpoints saved from the bare model rather
/// than the language-model class: the original GPT-2 upload names
/// `transformer.h.0...` as `h.0...`.
pub fn bare_name(family: Family, name: &str) -> Option<&str> {
    match family {
        Family::Gpt2 => name.strip_prefix("transformer."),
        _ => None,
    }
}

/// Buffers older checkpoints saved beside the weights.
pub fn ignores(family: Family, name: &str) -> bool {
    let buffers: &[&str] = match family {
        Family::Gpt2 => &[".attn.bias", ".attn.masked_bias"],
        Family::GptNeox => &[".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq"],
        _ => &[".rotary_emb.inv_freq"],
    };
    buffers.iter().any(|b| name.ends_with(b))
}

/// The sizes every family with Llama's key names reads.
struct Sizes {
    vocab: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    max_positions: usize,
}

impl Sizes {
    fn read(keys: &Keys, default_kv_heads: Option<usize>, default_max_positions: usize) -> Result<Sizes, String> {
        let heads = keys.count("num_attention_heads", None)?;
        let hidden = keys.count("hidden_size", None)?;
        Ok(Sizes {
            vocab: keys.count("vocab_size", None)?,
            hidden,
            intermediate: keys.count("intermediate_size", None)?,
            layers: keys.count("num_hidden_layers", None)?,
            heads,
            kv_heads: keys.count("num_key_value_heads", Some(default_kv_heads.unwrap_or(heads)))?,
            head_dim: keys.count("head_dim", Some(hidden / heads))?,
            max_positions: keys.count("max_position_embeddings", Some(default_max_positions))?,
        })
    }

    /// A Llama-shaped config: pre-norm RMSNorm, SwiGLU, no biases, default
    /// scaling; families change what differs.
    fn config(self, family: Family, keys: &Keys, rope: Option<Rope>, tied_default: bool) -> Result<LmConfig, String> {
        // RMSNorm's epsilon defaults to 1e-6, but for the families that say otherwise.
        let eps_key = if family == Family::GptNeox {
            "layer_norm_eps"
        } else {
            "rms_norm_eps"
        };
        let eps_default = match family {
            Family::Phi3 | Family::Olmo2 | Family::GptNeox => 1e-5,
            _ => 1e-6,
        };
        Ok(LmConfig {
            family,
            vocab_size: self.vocab,
            hidden_size: self.hidden,
            intermediate_size: self.intermediate,
            layers: self.layers,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            max_positions: self.max_positions,
            tied: keys.flag("tie_word_embeddings", tied_default)?,
            norm: NormKind::Rms { unit_offset: false },
            norm_eps: keys.number(eps_key, Some(eps_default))?,
            rope,
            local_rope: None,
            windows: vec![None; self.layers],
            attention_scale: 1.0 / (self.head_dim as f64).sqrt(),
            scale_by_layer: false,
            attention_softcap: None,
            qk_norm: QkNorm::None,
            activation: Activation::Silu,
            gated: true,
            parallel: false,
            embed_scale: false,
            final_softcap: None,
            biases: Biases {
                qkv: false,
                o: false,
                mlp: false,
            },
        })
    }
}

/// The RoPE of a config that keeps it in `rope_scaling` or
/// `rope_parameters` (they must agree if both are given), with the base in
/// `theta_key` outside them.
fn rope(
    keys: &Keys,
    head_dim: usize,
    max_positions: usize,
    theta_key: &str,
    defaults: RopeDefaults,
) -> Result<Rope, String> {
    let (params, name) = rope_object(keys)?;
    Rope::parse(&RopeInputs {
        params,
        name,
        theta: keys.optional_number(theta_key)?,
        default_theta: defaults.theta,
        partial: keys.optional_number(defaults.partial_key)?.or(defaults.partial),
        head_dim,
        max_positions,
        original_max: None,
    })
}

/// A RoPE object of a config, if any, and the key it came from.
type RopeObject<'a> = (Option<&'a Map<String, Value>>, &'static str);

/// The RoPE object of `rope_scaling` or `rope_parameters` (which must agree
/// if both are given), and its name.
fn rope_object<'a>(keys: &Keys<'a>) -> Result<RopeObject<'a>, String> {
    let (params, name) = match (keys.get("rope_scaling"), keys.get("rope_parameters")) {
        (Some(s), Some(p)) if s != p => {
            return Err("`rope_scaling` and `rope_parameters` are both given and differ".into());
        }
        (Some(s), _) => (Some(s), "rope_scaling"),
        (None, p) => (p, "rope_parameters"),
    };
    match params {
        None => Ok((None, name)),
        Some(Value::Object(map)) => Ok((Some(map), name)),
        Some(_) => Err(format!("`{name}` is not an object")),
    }
}

struct RopeDefaults {
    theta: f64,
    /// The key that may hold the rotary fraction outside the RoPE object.
    partial_key: &'static str,
    partial: Option<f64>,
}

const ROPE_DEFAULTS: RopeDefaults = RopeDefaults {
    theta: 10_000.0,
    partial_key: "partial_rotary_factor",
    partial: None,
};

/// Per layer, whether `layer_types` marks it a sliding-window layer.
fn layer_types(keys: &Keys, layers: usize) -> Result<Option<Vec<bool>>, String> {
    let Some(types) = keys.get("layer_types") else {
        return Ok(None);
    };
    let types = types
        .as_array()
        .filter(|t| t.len() == layers)
        .ok_or_else(|| format!("`layer_types` must list one attention type for each of the {layers} layers"))?;
    let sliding = types.iter().map(|t| match t.as_str() {
        Some("full_attention") => Ok(false),
        Some("sliding_attention") => Ok(true),
        _ => Err(format!("layer type {t} is not supported")),
    });
    sliding.collect::<Result<Vec<bool>, String>>().map(Some)
}

/// `sliding_window`, `null` meaning none.
fn sliding_window(keys: &Keys, default: Option<usize>) -> Result<Option<usize>, String> {
    match keys.get("sliding_window") {
        None if keys.has_null("sliding_window") => Ok(None),
        None => Ok(default),
        Some(_) => keys.count("sliding_window", None).map(Some),
    }
}

fn activation(keys: &Keys, key: &str, default: &str) -> Result<Activation, String> {
    match keys.string(key, default)?.as_str() {
        "silu" | "swish" => Ok(Activation::Silu),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
        "gelu" => Ok(Activation::Gelu),
        other => Err(format!(
            "`{key}` \"{other}\" is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh)"
        )),
    }
}

/// Names tensors in the order checkpoints list them.
struct Slots<'a> {
    config: &'a LmConfig,
    out: Vec<Slot>,
}

impl<'a> Slots<'a> {
    fn new(config: &'a LmConfig) -> Slots<'a> {
        Slots {
            config,
            out: Vec::new(),
        }
    }

    fn add(&mut self, name: String, shape: Vec<usize>, role: Role) {
        self.out.push(Slot { name, shape, role });
    }

    /// A norm's weight, and its bias for LayerNorm.
    fn norm(&mut self, name: &str, dim: usize, role: impl Fn(Param) -> Role) {
        self.add(format!("{name}.weight"), vec![dim], role(Param::Weight));
        if self.config.norm == NormKind::Layer {
            self.add(format!("{name}.bias"), vec![dim], role(Param::Bias));
        }
    }

    /// A `[rows, cols]` linear layer, with its bias if it has one.
    fn linear(&mut self, name: &str, rows: usize, cols: usize, bias: bool, role: impl Fn(Param) -> Role) {
        self.add(format!("{name}.weight"), vec![rows, cols], role(Param::Weight));
        if bias {
            self.add(format!("{name}.bias"), vec![rows], role(Param::Bias));
        }
    }

    /// The head, unless tied to the embedding.
    fn head(&mut self) {
        if !self.config.tied {
            let c = self.config;
            self.add(
                head_name(c.family).to_string(),
                vec![c.vocab_size, c.hidden_size],
                Role::Head,
            );
        }
    }
}

#[cfg(test)]
mod tests;
