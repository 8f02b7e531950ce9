//! The config of a causal language model, read from a Hugging Face
//! `config.json` by the family its `model_type` names (see `arch/`).
//!
//! Every key is accounted for: a family either reads it, or knows it does
//! not change the forward pass (token ids, dtype, training settings). Any
//! other key is an error rather than a silently ignored setting, since it
//! may be a feature (a RoPE scaling, a new norm) that would change the
//! logits.

use super::arch::{self, Slot};
use super::keys::Keys;
use super::rope::Rope;
use serde_json::{Map, Value};

/// The families tv computes, by `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma,
    Gemma2,
    Gemma3,
    Phi3,
    Gpt2,
    GptNeox,
    Olmo2,
}

pub const MODEL_TYPES: &[(&str, Family)] = &[
    ("llama", Family::Llama),
    ("mistral", Family::Mistral),
    ("qwen2", Family::Qwen2),
    ("qwen3", Family::Qwen3),
    ("gemma", Family::Gemma),
    ("gemma2", Family::Gemma2),
    ("gemma3_text", Family::Gemma3),
    ("phi3", Family::Phi3),
    ("gpt2", Family::Gpt2),
    ("gpt_neox", Family::GptNeox),
    ("olmo2", Family::Olmo2),
];

impl Family {
    pub fn model_type(self) -> &'static str {
        MODEL_TYPES
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(t, _)| *t)
            .unwrap_or("?")
    }

    /// The name people know the family by.
    pub fn name(self) -> &'static str {
        match self {
            Family::Llama => "Llama",
            Family::Mistral => "Mistral",
            Family::Qwen2 => "Qwen2",
            Family::Qwen3 => "Qwen3",
            Family::Gemma => "Gemma",
            Family::Gemma2 => "Gemma 2",
            Family::Gemma3 => "Gemma 3",
            Family::Phi3 => "Phi-3",
            Family::Gpt2 => "GPT-2",
            Family::GptNeox => "GPT-NeoX",
            Family::Olmo2 => "OLMo 2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum NormKind {
    /// RMSNorm; with `unit_offset` the stored weight `w` scales by `1 + w`.
    Rms { unit_offset: bool },
    /// LayerNorm with weight and bias.
    Layer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Activation {
    Silu,
    /// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// GELU with the error function (`gelu`).
    Gelu,
}

/// Normalisation of queries and keys before RoPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum QkNorm {
    None,
    /// Over each head (Qwen3, Gemma 3).
    PerHead,
    /// Over the whole projection (OLMo 2).
    Whole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Biases {
    pub qkv: bool,
    pub o: bool,
    pub mlp: bool,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LmConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// `max_position_embeddings`: the longest window, but for dynamic RoPE.
    pub max_positions: usize,
    pub tied: bool,
    pub norm: NormKind,
    pub norm_eps: f64,
    /// `None` for learned positions (GPT-2).
    pub rope: Option<Rope>,
    /// The RoPE of sliding-window layers where it differs (Gemma 3).
    pub local_rope: Option<Rope>,
    /// Per layer: how many past positions a token sees (itself included),
    /// or `None` for all of them.
    pub windows: Vec<Option<usize>>,
    /// Queries are multiplied by this before their product with the keys.
    pub attention_scale: f64,
    /// Further divide the scale by the layer's number (GPT-2's
    /// `scale_attn_by_inverse_layer_idx`).
    pub scale_by_layer: bool,
    pub attention_softcap: Option<f64>,
    pub qk_norm: QkNorm,
    pub activation: Activation,
    /// A gated MLP (`down(act(gate(x)) * up(x))`) rather than `down(act(up(x)))`.
    pub gated: bool,
    /// Attention and MLP read the same input (GPT-NeoX's parallel residual).
    pub parallel: bool,
    /// Embeddings multiplied by `sqrt(hidden_size)` (Gemma).
    pub embed_scale: bool,
    pub final_softcap: Option<f64>,
    pub biases: Biases,
}

/// Far beyond any real model; it bounds what a config alone can make tv
/// allocate before the weights are compared with it.
const MAX_LAYERS: usize = 1 << 16;

impl LmConfig {
    /// Parses a config whose `model_type` is one of the supported families.
    pub fn parse(json: &Map<String, Value>) -> Result<LmConfig, String> {
        let family = match json.get("model_type") {
            Some(Value::String(t)) => match MODEL_TYPES.iter().find(|(name, _)| name == t) {
                Some((_, family)) => *family,
                None => return Err(format!("model_type \"{t}\" is not supported ({})", supported_types())),
            },
            Some(other) => return Err(format!("model_type {other} is not a string")),
            None => return Err("the config has no `model_type`".into()),
        };
        let keys = Keys::new(json);
        let config = arch::parse(family, &keys)?;
        if let Some(key) = keys.unread() {
            return Err(format!(
                "the config key `{key}` is not understood for model_type \"{}\"",
                family.model_type()
            ));
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.layers > MAX_LAYERS {
            return Err(format!(
                "num_hidden_layers {} is more than any model tv can load ({MAX_LAYERS})",
                self.layers
            ));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.heads, self.kv_heads
            ));
        }
        if self.max_positions < 2 {
            return Err("max_position_embeddings must be at least 2".into());
        }
        for rope in self.rope.iter().chain(&self.local_rope) {
            if rope.rotary_dim > self.head_dim {
                return Err(format!(
                    "RoPE rotates {} dimensions, more than head_dim {}",
                    rope.rotary_dim, self.head_dim
                ));
            }
        }
        Ok(())
    }

    /// The longest window a measurement may use.
    pub fn context_limit(&self) -> usize {
        let limits = self.rope.iter().chain(&self.local_rope);
        limits
            .map(|r| r.context_limit(self.max_positions))
            .min()
            .unwrap_or(self.max_positions)
    }

    /// Whether a window's positions are embedded differently depending on
    /// its length (dynamic and LongRoPE scaling).
    pub fn length_dependent(&self) -> bool {
        self.rope.iter().chain(&self.local_rope).any(Rope::length_dependent)
    }

    /// Memory a forward pass over one batch of windows takes, roughly: a
    /// layer's activations, its attention scores and their softmax, and a
    /// block of logits.
    /// In f64, since absurd settings must be measurable, not overflow.
    pub fn activation_bytes(&self, windowing: super::Windowing) -> f64 {
        let (batch, context) = (windowing.batch as f64, windowing.context as f64);
        let per_token =
            4 * self.hidden_size + 2 * (self.heads + self.kv_heads) * self.head_dim + 3 * self.intermediate_size;
        let scores = 3.0 * batch * self.heads as f64 * context * context;
        let mask = context * context;
        (batch * context * per_token as f64 + scores + mask + 256.0 * self.vocab_size as f64) * 4.0
    }

    /// Tensors a checkpoint may hold that the forward pass does not read:
    /// rotary frequencies and attention masks older checkpoints stored.
    pub fn ignores(&self, name: &str) -> bool {
        arch::ignores(self.family, name)
    }

    /// The name under which a checkpoint holds the tensor `name`: `name`
    /// itself, or its bare-model form when only that is there.
    pub fn held_name<'a>(&self, name: &'a str, holds: impl Fn(&str) -> bool) -> &'a str {
        match arch::bare_name(self.family, name) {
            Some(bare) if !holds(name) && holds(bare) => bare,
            _ => name,
        }
    }

    /// Tensors a checkpoint may hold or not: a tied model's head, which
    /// transformers 5 uses instead of the embedding when it is saved.
    pub fn optional_tensors(&self) -> Vec<(String, Vec<usize>)> {
        match self.tied {
            true => vec![(
                arch::head_name(self.family).to_string(),
                vec![self.vocab_size, self.hidden_size],
            )],
            false => Vec::new(),
        }
    }

    /// Where each tensor goes in the model.
    pub fn slots(&self) -> Vec<Slot> {
        arch::slots(self)
    }

    /// The tensors the weights must hold: names and shapes.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        self.slots().into_iter().map(|s| (s.name, s.shape)).collect()
    }

    /// Parameters of the model, a tied head counted once.
    pub fn parameters(&self) -> u64 {
        let sizes = self
            .slots()
            .into_iter()
            .map(|s| s.shape.iter().product::<usize>() as u64);
        sizes.sum()
    }
}

pub fn supported_types() -> String {
    let names: Vec<&str> = MODEL_TYPES.iter().map(|(t, _)| *t).collect();
    names.join(", ")
}
