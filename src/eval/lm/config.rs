//! The config of a llama-family causal language model (Llama, Mistral,
//! Qwen2), read from a Hugging Face `config.json`.
//!
//! Every key is accounted for: it is either read, or known not to change
//! the forward pass (token ids, dtype, training-only settings). Any other
//! key is an error rather than a silently ignored setting, since it may be
//! a feature (a RoPE scaling, a new norm) that would change the logits.

use serde_json::{Map, Value};

/// Which of the supported families; they differ in attention biases and in
/// how their sliding window is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
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
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_positions: usize,
    pub tied: bool,
    /// Biases on the q, k, v projections, and on o.
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Per layer: how many past positions a token sees (itself included),
    /// or `None` for all of them.
    pub windows: Vec<Option<usize>>,
}

/// Keys that do not change the logits of a forward pass over given token ids.
const INERT: &[&str] = &[
    "_name_or_path",
    "architectures",
    "model_type",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "dtype",
    "torch_dtype",
    "transformers_version",
    "use_cache",
    "initializer_range",
    "attention_dropout",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "tie_word_embeddings",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "max_position_embeddings",
    "hidden_act",
    "attention_bias",
    "mlp_bias",
    "pretraining_tp",
    "sliding_window",
    "use_sliding_window",
    "max_window_layers",
    "layer_types",
];

impl LmConfig {
    /// Parses a config whose `model_type` is one of the supported families.
    pub fn parse(json: &Map<String, Value>) -> Result<LmConfig, String> {
        let family = match json.get("model_type").and_then(Value::as_str) {
            Some("llama") => Family::Llama,
            Some("mistral") => Family::Mistral,
            Some("qwen2") => Family::Qwen2,
            Some(other) => return Err(format!("model_type \"{other}\" is not supported")),
            None => return Err("the config has no `model_type`".into()),
        };
        if let Some(key) = json.keys().find(|k| !INERT.contains(&k.as_str())) {
            return Err(format!("the config key `{key}` is not understood"));
        }
        let keys = Keys(json);
        keys.require_value("hidden_act", "silu")?;
        keys.require_value("pretraining_tp", 1)?;
        let heads = keys.count("num_attention_heads", None)?;
        let hidden_size = keys.count("hidden_size", None)?;
        let layers = keys.count("num_hidden_layers", None)?;
        let attention_bias = keys.flag("attention_bias", false)?;
        let config = LmConfig {
            family,
            vocab_size: keys.count("vocab_size", None)?,
            hidden_size,
            intermediate_size: keys.count("intermediate_size", None)?,
            layers,
            heads,
            kv_heads: keys.count("num_key_value_heads", Some(heads))?,
            head_dim: keys.count("head_dim", Some(hidden_size / heads))?,
            rms_norm_eps: keys.number("rms_norm_eps", None)?,
            rope_theta: rope_theta(&keys)?,
            max_positions: keys.count("max_position_embeddings", None)?,
            tied: keys.flag("tie_word_embeddings", false)?,
            qkv_bias: family == Family::Qwen2 || (family == Family::Llama && attention_bias),
            o_bias: family == Family::Llama && attention_bias,
            mlp_bias: family == Family::Llama && keys.flag("mlp_bias", false)?,
            windows: windows(&keys, family, layers)?,
        };
        if !config.heads.is_multiple_of(config.kv_heads) {
            return Err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                config.heads, config.kv_heads
            ));
        }
        if !config.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {} is odd; rotary embeddings need it even",
                config.head_dim
            ));
        }
        Ok(config)
    }

    /// Memory a forward pass over one batch of windows takes, roughly: a
    /// layer's activations, its attention scores and their softmax, and a
    /// block of logits.
    pub fn activation_bytes(&self, windowing: super::Windowing) -> usize {
        let tokens = windowing.batch * windowing.context;
        let per_token =
            4 * self.hidden_size + 2 * (self.heads + self.kv_heads) * self.head_dim + 3 * self.intermediate_size;
        let scores = 2 * windowing.batch * self.heads * windowing.context * windowing.context;
        (tokens * per_token + scores + 256 * self.vocab_size) * 4
    }

    /// Tensors a checkpoint may hold that the forward pass does not read: a
    /// tied model's saved copy of the embedding, and the rotary frequencies
    /// older checkpoints stored.
    pub fn ignores(&self, name: &str) -> bool {
        (self.tied && name == "lm_head.weight") || name.ends_with("rotary_emb.inv_freq")
    }

    /// The tensors the weights must hold: names and shapes.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, v) = (self.hidden_size, self.vocab_size);
        let (q, kv, ff) = (
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
            self.intermediate_size,
        );
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
        for i in 0..self.layers {
            let p = format!("model.layers.{i}.");
            let mut add = |name: &str, shape: Vec<usize>| out.push((format!("{p}{name}"), shape));
            add("input_layernorm.weight", vec![h]);
            add("post_attention_layernorm.weight", vec![h]);
            for (name, rows, cols, bias) in [
                ("self_attn.q_proj", q, h, self.qkv_bias),
                ("self_attn.k_proj", kv, h, self.qkv_bias),
                ("self_attn.v_proj", kv, h, self.qkv_bias),
                ("self_attn.o_proj", h, q, self.o_bias),
                ("mlp.gate_proj", ff, h, self.mlp_bias),
                ("mlp.up_proj", ff, h, self.mlp_bias),
                ("mlp.down_proj", h, ff, self.mlp_bias),
            ] {
                add(&format!("{name}.weight"), vec![rows, cols]);
                if bias {
                    add(&format!("{name}.bias"), vec![rows]);
                }
            }
        }
        out.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tied {
            out.push(("lm_head.weight".to_string(), vec![v, h]));
        }
        out
    }
}

/// RoPE's base, from transformers 5's `rope_parameters` or the classic
/// `rope_theta`; only unscaled ("default") RoPE is supported.
fn rope_theta(keys: &Keys) -> Result<f64, String> {
    let parameters = keys.0.get("rope_parameters").filter(|v| !v.is_null());
    let scaling = keys.0.get("rope_scaling").filter(|v| !v.is_null());
    for (key, value) in [("rope_parameters", parameters), ("rope_scaling", scaling)] {
        let Some(value) = value else { continue };
        let Some(object) = value.as_object() else {
            return Err(format!("`{key}` is not an object"));
        };
        let kind = object
            .get("rope_type")
            .or_else(|| object.get("type"))
            .and_then(Value::as_str);
        if kind.is_some_and(|k| k != "default") {
            return Err(format!(
                "`{key}` asks for RoPE type \"{}\"; only \"default\" is supported",
                kind.unwrap_or_default()
            ));
        }
        if let Some(extra) = object
            .keys()
            .find(|k| !["rope_type", "type", "rope_theta"].contains(&k.as_str()))
        {
            return Err(format!("`{key}.{extra}` is not understood"));
        }
    }
    let nested = parameters.and_then(|p| p.get("rope_theta"));
    match (nested, keys.0.get("rope_theta")) {
        (Some(value), _) => value
            .as_f64()
            .filter(|t| *t > 0.0)
            .ok_or_else(|| "`rope_parameters.rope_theta` must be a positive number".to_string()),
        (None, Some(_)) => keys.number("rope_theta", None),
        (None, None) => Err("the config gives no rope_theta (neither at the top level nor in rope_parameters)".into()),
    }
}

/// The attention window of each layer.
fn windows(keys: &Keys, family: Family, layers: usize) -> Result<Vec<Option<usize>>, String> {
    let window = match keys.0.get("sliding_window") {
        None | Some(Value::Null) => None,
        Some(_) => Some(keys.count("sliding_window", None)?),
    };
    if let Some(types) = keys.0.get("layer_types").filter(|v| !v.is_null()) {
        let types = types
            .as_array()
            .filter(|t| t.len() == layers)
            .ok_or_else(|| format!("`layer_types` must list one attention type for each of the {layers} layers"))?;
        return types
            .iter()
            .map(|t| match t.as_str() {
                Some("full_attention") => Ok(None),
                Some("sliding_attention") => window
                    .map(Some)
                    .ok_or_else(|| "a layer uses sliding attention but `sliding_window` is not set".to_string()),
                _ => Err(format!("layer type {t} is not supported")),
            })
            .collect();
    }
    let sliding = match family {
        Family::Llama => None,
        Family::Mistral => window,
        // Qwen2 slides only when asked to, and only from layer `max_window_layers` on.
        Family::Qwen2 => window.filter(|_| keys.flag("use_sliding_window", false).unwrap_or(false)),
    };
    let first = match family {
        Family::Qwen2 => keys.count("max_window_layers", Some(layers))?.min(layers),
        _ => 0,
    };
    Ok((0..layers).map(|i| sliding.filter(|_| i >= first)).collect())
}

/// Typed access to a config's keys, with messages naming the key.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn count(&self, key: &str, default: Option<usize>) -> Result<usize, String> {
        match (self.0.get(key), default) {
            (None | Some(Value::Null), Some(d)) => Ok(d),
            (None, None) => Err(format!("the config has no `{key}`")),
            (Some(v), _) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| format!("`{key}` must be a positive whole number, not {v}")),
        }
    }

    fn number(&self, key: &str, default: Option<f64>) -> Result<f64, String> {
        match (self.0.get(key), default) {
            (None | Some(Value::Null), Some(d)) => Ok(d),
            (None, None) => Err(format!("the config has no `{key}`")),
            (Some(v), _) => v
                .as_f64()
                .filter(|n| *n > 0.0)
                .ok_or_else(|| format!("`{key}` must be a positive number, not {v}")),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("`{key}` must be true or false, not {v}")),
        }
    }

    /// Keys that tv supports with one value only.
    fn require_value(&self, key: &str, supported: impl Into<Value>) -> Result<(), String> {
        let supported = supported.into();
        match self.0.get(key) {
            Some(v) if !v.is_null() && *v != supported => Err(format!("`{key}` is {v}; only {supported} is supported")),
            _ => Ok(()),
        }
    }
}
