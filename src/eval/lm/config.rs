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

impl Family {
    /// transformers' defaults for keys a config may leave out.
    fn default_kv_heads(self, heads: usize) -> usize {
        match self {
            Family::Llama => heads,
            Family::Mistral => 8,
            Family::Qwen2 => 32,
        }
    }

    fn default_max_positions(self) -> usize {
        match self {
            Family::Llama => 2048,
            Family::Mistral => 4096 * 32,
            Family::Qwen2 => 32768,
        }
    }
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

/// Mistral's window when its config names none, and the first sliding layer
/// of a Qwen2 model: transformers' defaults.
const DEFAULT_WINDOW: usize = 4096;
/// Far beyond any real model; it bounds what a config alone can make tv
/// allocate before the weights are compared with it.
const MAX_LAYERS: usize = 1 << 16;
const QWEN2_MAX_WINDOW_LAYERS: usize = 28;

/// The keys tv knows: those it reads, and those that cannot change the
/// logits of a forward pass over given token ids (token ids, dtype,
/// training settings). `sliding_window` and `layer_types` are read for the
/// families whose transformers classes read them, and inert for Llama.
const KNOWN_KEYS: &[&str] = &[
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
        let family = match json.get("model_type") {
            Some(Value::String(t)) if t == "llama" => Family::Llama,
            Some(Value::String(t)) if t == "mistral" => Family::Mistral,
            Some(Value::String(t)) if t == "qwen2" => Family::Qwen2,
            Some(other) => return Err(format!("model_type {other} is not supported (llama, mistral, qwen2)")),
            None => return Err("the config has no `model_type`".into()),
        };
        if let Some(key) = json.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(format!("the config key `{key}` is not understood"));
        }
        let keys = Keys(json);
        keys.require_value("hidden_act", "silu")?;
        keys.require_value("pretraining_tp", 1)?;
        let heads = keys.count("num_attention_heads", None)?;
        let hidden_size = keys.count("hidden_size", None)?;
        let layers = keys.count("num_hidden_layers", None)?;
        if layers > MAX_LAYERS {
            return Err(format!(
                "num_hidden_layers {layers} is more than any model tv can load ({MAX_LAYERS})"
            ));
        }
        let attention_bias = keys.flag("attention_bias", false)?;
        let config = LmConfig {
            family,
            vocab_size: keys.count("vocab_size", None)?,
            hidden_size,
            intermediate_size: keys.count("intermediate_size", None)?,
            layers,
            heads,
            kv_heads: keys.count("num_key_value_heads", Some(family.default_kv_heads(heads)))?,
            head_dim: keys.count("head_dim", Some(hidden_size / heads))?,
            rms_norm_eps: keys.number("rms_norm_eps", Some(1e-6))?,
            rope_theta: rope_theta(&keys)?,
            max_positions: keys.count("max_position_embeddings", Some(family.default_max_positions()))?,
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
        if config.max_positions < 2 {
            return Err("max_position_embeddings must be at least 2".into());
        }
        if config.head_dim == 0 || !config.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {} is not a positive even number, as rotary embeddings need",
                config.head_dim
            ));
        }
        Ok(config)
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
    /// the rotary frequencies older checkpoints stored.
    pub fn ignores(&self, name: &str) -> bool {
        name.ends_with("rotary_emb.inv_freq")
    }

    /// Tensors a checkpoint may hold or not: a tied model's head, which
    /// transformers 5 uses instead of the embedding when it is saved.
    pub fn optional_tensors(&self) -> Vec<(String, Vec<usize>)> {
        match self.tied {
            true => vec![("lm_head.weight".to_string(), vec![self.vocab_size, self.hidden_size])],
            false => Vec::new(),
        }
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

/// transformers' RoPE base when a config gives none.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// RoPE's base, from transformers 5's `rope_parameters` or the classic
/// `rope_theta`; only unscaled ("default") RoPE over the whole head is
/// supported.
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
    // The base may be given in three places; transformers' precedence among
    // them has changed between versions, so they must agree.
    let mut bases = Vec::new();
    for (key, value) in [
        (
            "rope_parameters.rope_theta",
            parameters.and_then(|p| p.get("rope_theta")),
        ),
        ("rope_scaling.rope_theta", scaling.and_then(|p| p.get("rope_theta"))),
        ("rope_theta", keys.0.get("rope_theta")),
    ] {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            continue;
        };
        let base = value
            .as_f64()
            .filter(|t| *t > 0.0)
            .ok_or_else(|| format!("`{key}` must be a positive number, not {value}"))?;
        bases.push((key, base));
    }
    match bases[..] {
        [] => Ok(DEFAULT_ROPE_THETA),
        [(_, base), ref rest @ ..] => match rest.iter().find(|(_, b)| *b != base) {
            Some((other, b)) => Err(format!(
                "`{}` ({base}) and `{other}` ({b}) disagree on the RoPE base",
                bases[0].0
            )),
            None => Ok(base),
        },
    }
}

/// The attention window of each layer, as transformers 5 configures it:
/// Llama never slides; Mistral slides in every layer (4096 tokens unless
/// `sliding_window` says otherwise, `null` for none); Qwen2 slides only with
/// `use_sliding_window`, in the layers `layer_types` marks, by default those
/// from `max_window_layers` (28) on.
fn windows(keys: &Keys, family: Family, layers: usize) -> Result<Vec<Option<usize>>, String> {
    let window = || match keys.0.get("sliding_window") {
        Some(Value::Null) => Ok(None),
        _ => keys.count("sliding_window", Some(DEFAULT_WINDOW)).map(Some),
    };
    match family {
        Family::Llama => Ok(vec![None; layers]),
        Family::Mistral => Ok(vec![window()?; layers]),
        Family::Qwen2 => {
            let window = if keys.flag("use_sliding_window", false)? {
                window()?
            } else {
                None
            };
            let sliding = qwen2_sliding_layers(keys, layers)?;
            Ok(sliding.into_iter().map(|s| window.filter(|_| s)).collect())
        }
    }
}

/// Which layers of a Qwen2 model are sliding-window layers.
fn qwen2_sliding_layers(keys: &Keys, layers: usize) -> Result<Vec<bool>, String> {
    let Some(types) = keys.0.get("layer_types").filter(|v| !v.is_null()) else {
        let first = keys.count("max_window_layers", Some(QWEN2_MAX_WINDOW_LAYERS))?;
        return Ok((0..layers).map(|i| i >= first).collect());
    };
    let types = types
        .as_array()
        .filter(|t| t.len() == layers)
        .ok_or_else(|| format!("`layer_types` must list one attention type for each of the {layers} layers"))?;
    types
        .iter()
        .map(|t| match t.as_str() {
            Some("full_attention") => Ok(false),
            Some("sliding_attention") => Ok(true),
            _ => Err(format!("layer type {t} is not supported")),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: serde_json::Value) -> Result<LmConfig, String> {
        let mut json = serde_json::json!({
            "model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 12,
            "num_hidden_layers": 3, "num_attention_heads": 4, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 64, "rope_theta": 10000.0
        });
        for (key, value) in extra.as_object().unwrap() {
            json[key] = value.clone();
        }
        LmConfig::parse(json.as_object().unwrap())
    }

    #[test]
    fn defaults_follow_transformers() {
        let config = parse(serde_json::json!({"rope_theta": null, "max_position_embeddings": null})).unwrap();
        assert_eq!((config.kv_heads, config.head_dim), (4, 2));
        assert_eq!((config.rope_theta, config.max_positions), (10_000.0, 2048));
        let qwen =
            parse(serde_json::json!({"model_type": "qwen2", "num_attention_heads": 64, "hidden_size": 128})).unwrap();
        assert_eq!(qwen.kv_heads, 32);
        assert!(!config.tied && !config.qkv_bias && !config.o_bias && !config.mlp_bias);
        assert_eq!(config.windows, vec![None; 3]);
    }

    #[test]
    fn rope_base_comes_from_either_format() {
        let nested =
            serde_json::json!({"rope_parameters": {"rope_type": "default", "rope_theta": 5e5}, "rope_theta": null});
        assert_eq!(parse(nested).unwrap().rope_theta, 5e5);
        let classic = serde_json::json!({"rope_theta": 1e6, "rope_scaling": null});
        assert_eq!(parse(classic).unwrap().rope_theta, 1e6);
        let scaled = serde_json::json!({"rope_scaling": {"type": "dynamic", "factor": 2.0}});
        assert!(parse(scaled).unwrap_err().contains("dynamic"));
    }

    #[test]
    fn biases_depend_on_the_family() {
        let qwen = parse(serde_json::json!({"model_type": "qwen2", "num_key_value_heads": 2})).unwrap();
        assert!(qwen.qkv_bias && !qwen.o_bias);
        let llama = parse(serde_json::json!({"attention_bias": true, "mlp_bias": true})).unwrap();
        assert!(llama.qkv_bias && llama.o_bias && llama.mlp_bias);
        let names: Vec<String> = llama.tensors().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"model.layers.2.self_attn.o_proj.bias".to_string()));
        assert!(names.contains(&"model.layers.0.mlp.down_proj.bias".to_string()));
    }

    #[test]
    fn sliding_windows_per_family() {
        let mistral =
            parse(serde_json::json!({"model_type": "mistral", "sliding_window": 16, "num_key_value_heads": 2}))
                .unwrap();
        assert_eq!(mistral.windows, vec![Some(16); 3]);
        let unset = parse(serde_json::json!({"model_type": "mistral", "num_key_value_heads": 4})).unwrap();
        assert_eq!(unset.windows, vec![Some(4096); 3]);
        let none =
            parse(serde_json::json!({"model_type": "mistral", "sliding_window": null, "num_key_value_heads": 4}));
        assert_eq!(none.unwrap().windows, vec![None; 3]);
        // Llama reads neither key.
        let llama = serde_json::json!({"sliding_window": 0, "layer_types": ["sliding_attention"]});
        assert_eq!(parse(llama).unwrap().windows, vec![None; 3]);
        // Qwen2 slides only when asked, from layer `max_window_layers` on.
        let off =
            parse(serde_json::json!({"model_type": "qwen2", "sliding_window": 16, "num_key_value_heads": 2})).unwrap();
        assert_eq!(off.windows, vec![None; 3]);
        let qwen = serde_json::json!({"model_type": "qwen2", "sliding_window": 16, "use_sliding_window": true, "max_window_layers": 1, "num_key_value_heads": 2});
        assert_eq!(parse(qwen).unwrap().windows, vec![None, Some(16), Some(16)]);
        let types = ["sliding_attention", "full_attention", "sliding_attention"];
        let typed = serde_json::json!({"model_type": "qwen2", "sliding_window": 4, "use_sliding_window": true, "layer_types": types, "num_key_value_heads": 2});
        assert_eq!(parse(typed).unwrap().windows, vec![Some(4), None, Some(4)]);
        let short =
            serde_json::json!({"model_type": "qwen2", "layer_types": ["full_attention"], "num_key_value_heads": 2});
        assert!(parse(short).is_err());
        let mistyped =
            serde_json::json!({"model_type": "qwen2", "use_sliding_window": "yes", "num_key_value_heads": 2});
        assert!(parse(mistyped).is_err());
    }

    #[test]
    fn unknown_and_unsupported_settings_are_errors() {
        assert!(parse(serde_json::json!({"qk_norm": true}))
            .unwrap_err()
            .contains("`qk_norm`"));
        assert!(parse(serde_json::json!({"hidden_act": "gelu"})).is_err());
        assert!(parse(serde_json::json!({"num_key_value_heads": 3})).is_err());
        assert!(parse(serde_json::json!({"model_type": "gemma"})).is_err());
        assert!(parse(serde_json::json!({"hidden_size": 0})).is_err());
        assert!(parse(serde_json::json!({"hidden_size": 2})).is_err());
        let partial = serde_json::json!({"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.5}});
        assert!(parse(partial).unwrap_err().contains("partial_rotary_factor"));
    }
}
