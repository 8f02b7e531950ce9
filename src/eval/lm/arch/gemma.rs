//! Gemma 1, 2 and 3 (text): RMSNorm weights used as `1 + w`, embeddings
//! scaled by `sqrt(hidden_size)`, GeGLU, tied head. Gemma 2 and 3 add norms
//! after attention and around the MLP, `query_pre_attn_scalar`, and
//! alternate sliding-window and global layers; Gemma 2 soft-caps attention
//! and final logits; Gemma 3 normalises queries and keys per head and gives
//! its sliding layers their own RoPE base.

use super::llama::{at, attention, decoder, mlp};
use super::{activation, layer_types, rope, sliding_window, Piece, RopeDefaults, Sizes, Slot, ROPE_DEFAULTS};
use crate::eval::lm::config::{Family, LmConfig, NormKind, QkNorm};
use crate::eval::lm::keys::Keys;
use crate::eval::lm::rope::{Rope, RopeInputs};
use serde_json::{Map, Value};

const DEFAULT_WINDOW: usize = 4096;

pub(super) fn parse(family: Family, keys: &Keys) -> Result<LmConfig, String> {
    let (kv_heads, max_positions) = match family {
        Family::Gemma => (16, 8192),
        Family::Gemma2 => (4, 8192),
        _ => (4, 131_072),
    };
    if keys.flag("use_bidirectional_attention", false)? {
        return Err("`use_bidirectional_attention` is true; tv computes causal language models".into());
    }
    let mut sizes = Sizes::read(keys, Some(kv_heads), max_positions)?;
    sizes.head_dim = keys.count("head_dim", Some(256))?;
    let (head_dim, max_positions, layers) = (sizes.head_dim, sizes.max_positions, sizes.layers);
    let (global, local) = match family {
        Family::Gemma3 => gemma3_ropes(keys, head_dim, max_positions)?,
        _ => (rope(keys, head_dim, max_positions, "rope_theta", ROPE_DEFAULTS)?, None),
    };
    let mut config = sizes.config(family, keys, Some(global), true)?;
    config.local_rope = local;
    config.norm = NormKind::Rms { unit_offset: true };
    config.embed_scale = true;
    config.biases.qkv = keys.flag("attention_bias", false)?;
    config.biases.o = config.biases.qkv;
    if family == Family::Gemma {
        // transformers 5 reads `hidden_act` for Gemma 1, and takes its legacy
        // "gelu" to mean the tanh approximation.
        keys.inert(&["hidden_activation"]);
        config.activation = match keys.string("hidden_act", "gelu_pytorch_tanh")?.as_str() {
            "gelu" => crate::eval::lm::config::Activation::GeluTanh,
            _ => activation(keys, "hidden_act", "gelu_pytorch_tanh")?,
        };
        return Ok(config);
    }
    keys.inert(&["hidden_act"]);
    config.activation = activation(keys, "hidden_activation", "gelu_pytorch_tanh")?;
    config.attention_scale = 1.0 / keys.number("query_pre_attn_scalar", Some(256.0))?.sqrt();
    let (attention_cap, final_cap) = match family {
        Family::Gemma2 => (Some(50.0), Some(30.0)),
        _ => (None, None),
    };
    config.attention_softcap = softcap(keys, "attn_logit_softcapping", attention_cap)?;
    config.final_softcap = softcap(keys, "final_logit_softcapping", final_cap)?;
    let window = sliding_window(keys, Some(DEFAULT_WINDOW))?;
    let sliding = match layer_types(keys, layers)? {
        Some(types) => {
            keys.inert(&["sliding_window_pattern", "_sliding_window_pattern"]);
            types
        }
        None => {
            let pattern = match family {
                Family::Gemma2 => 2,
                _ => match keys.has("sliding_window_pattern") {
                    true => keys.count("sliding_window_pattern", None)?,
                    false => keys.count("_sliding_window_pattern", Some(6))?,
                },
            };
            (0..layers).map(|i| !(i + 1).is_multiple_of(pattern)).collect()
        }
    };
    config.windows = sliding.into_iter().map(|s| window.filter(|_| s)).collect();
    if family == Family::Gemma3 {
        config.qk_norm = QkNorm::PerHead;
    }
    Ok(config)
}

/// A soft cap: the family's default when absent, none when `null`.
fn softcap(keys: &Keys, key: &str, default: Option<f64>) -> Result<Option<f64>, String> {
    match keys.has_null(key) {
        true => Ok(None),
        false => Ok(keys.optional_number(key)?.or(default)),
    }
}

/// Gemma 3's RoPE of global layers (`rope_theta`, scaled by `rope_scaling`)
/// and of sliding layers (`rope_local_base_freq`), or both from
/// `rope_parameters` keyed by layer type.
fn gemma3_ropes(keys: &Keys, head_dim: usize, max_positions: usize) -> Result<(Rope, Option<Rope>), String> {
    let object = |key: &str| -> Result<Option<&Map<String, Value>>, String> {
        match keys.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(format!("`{key}` is not an object")),
        }
    };
    let parameters = object("rope_parameters")?;
    let scaling = object("rope_scaling")?;
    let nested = |layer: &str| parameters.and_then(|p| p.get(layer)).and_then(Value::as_object);
    if let Some(extra) = parameters.and_then(|p| {
        p.keys()
            .find(|k| !["full_attention", "sliding_attention"].contains(&k.as_str()))
    }) {
        return Err(format!(
            "`rope_parameters.{extra}` is not understood; Gemma 3 keys RoPE by layer type"
        ));
    }
    let global_params = match (scaling, nested("full_attention")) {
        (Some(s), Some(p)) if s != p => {
            return Err("`rope_scaling` and `rope_parameters.full_attention` are both given and differ".into())
        }
        (Some(s), _) => Some((s, "rope_scaling")),
        (None, p) => p.map(|p| (p, "rope_parameters.full_attention")),
    };
    let read = |params: Option<(&Map<String, Value>, &str)>, theta_key: &str, default: RopeDefaults| {
        Rope::parse(&RopeInputs {
            params: params.map(|(p, _)| p),
            name: params.map(|(_, n)| n).unwrap_or(theta_key),
            theta: keys.optional_number(theta_key)?,
            default_theta: default.theta,
            partial: None,
            head_dim,
            max_positions,
            original_max: None,
        })
    };
    let global = read(
        global_params,
        "rope_theta",
        RopeDefaults {
            theta: 1e6,
            ..ROPE_DEFAULTS
        },
    )?;
    let local_params = nested("sliding_attention").map(|p| (p, "rope_parameters.sliding_attention"));
    let local = read(local_params, "rope_local_base_freq", ROPE_DEFAULTS)?;
    Ok((global, Some(local)))
}

pub(super) fn slots(config: &LmConfig) -> Vec<Slot> {
    let h = config.hidden_size;
    decoder(config, |s, i, p| {
        s.norm(&format!("{p}input_layernorm"), h, at(i, Piece::AttentionNorm));
        attention(s, i, p);
        if config.family == Family::Gemma {
            s.norm(&format!("{p}post_attention_layernorm"), h, at(i, Piece::MlpNorm));
        } else {
            s.norm(
                &format!("{p}post_attention_layernorm"),
                h,
                at(i, Piece::AttentionPostNorm),
            );
            s.norm(&format!("{p}pre_feedforward_layernorm"), h, at(i, Piece::MlpNorm));
            s.norm(&format!("{p}post_feedforward_layernorm"), h, at(i, Piece::MlpPostNorm));
        }
        mlp(s, i, p);
    })
}
