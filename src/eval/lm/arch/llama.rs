//! Llama (2 and 3.x), Mistral, Qwen2 and Qwen3: pre-norm RMSNorm, SwiGLU,
//! grouped-query attention; they differ in biases, sliding windows and
//! Qwen3's per-head query and key norms. Their tensor names are shared by
//! most families, so the helpers naming them live here.

use super::{activation, layer_types, rope, sliding_window, Param, Piece, Role, Sizes, Slot, Slots, ROPE_DEFAULTS};
use crate::eval::lm::config::{Biases, Family, LmConfig, QkNorm};
use crate::eval::lm::keys::Keys;

/// Mistral's window when its config names none, and Qwen's when sliding
/// is on: transformers' defaults.
const DEFAULT_WINDOW: usize = 4096;
const QWEN_MAX_WINDOW_LAYERS: usize = 28;

pub(super) fn parse(family: Family, keys: &Keys) -> Result<LmConfig, String> {
    let (kv_heads, max_positions) = match family {
        Family::Llama => (None, 2048),
        Family::Mistral => (Some(8), 4096 * 32),
        _ => (Some(32), 32768),
    };
    let sizes = Sizes::read(keys, kv_heads, max_positions)?;
    let rope = rope(keys, sizes.head_dim, sizes.max_positions, "rope_theta", ROPE_DEFAULTS)?;
    let layers = sizes.layers;
    let mut config = sizes.config(family, keys, Some(rope), false)?;
    config.activation = activation(keys, "hidden_act", "silu")?;
    let attention_bias = keys.flag("attention_bias", false)?;
    config.biases = match family {
        Family::Llama => Biases {
            qkv: attention_bias,
            o: attention_bias,
            mlp: keys.flag("mlp_bias", false)?,
        },
        Family::Qwen2 => Biases {
            qkv: true,
            o: false,
            mlp: false,
        },
        Family::Qwen3 => Biases {
            qkv: attention_bias,
            o: attention_bias,
            mlp: false,
        },
        _ => config.biases,
    };
    if family == Family::Mistral && attention_bias {
        return Err("`attention_bias` is true; Mistral models have none".into());
    }
    if family == Family::Qwen3 {
        config.qk_norm = QkNorm::PerHead;
    }
    config.windows = windows(keys, family, layers)?;
    Ok(config)
}

/// The attention window of each layer, as transformers 5 configures it:
/// Llama never slides; Mistral slides in every layer (4096 tokens unless
/// `sliding_window` says otherwise, `null` for none); Qwen slides only with
/// `use_sliding_window`, in the layers `layer_types` marks, by default those
/// from `max_window_layers` (28) on.
fn windows(keys: &Keys, family: Family, layers: usize) -> Result<Vec<Option<usize>>, String> {
    let qwen_keys = ["use_sliding_window", "max_window_layers", "layer_types"];
    match family {
        Family::Llama => {
            keys.inert(&qwen_keys);
            keys.inert(&["sliding_window"]);
            Ok(vec![None; layers])
        }
        Family::Mistral => {
            keys.inert(&qwen_keys);
            Ok(vec![sliding_window(keys, Some(DEFAULT_WINDOW))?; layers])
        }
        _ => {
            let window = match keys.flag("use_sliding_window", false)? {
                true => sliding_window(keys, Some(DEFAULT_WINDOW))?,
                false => {
                    keys.inert(&["sliding_window"]);
                    None
                }
            };
            let sliding = match layer_types(keys, layers)? {
                Some(types) => {
                    keys.inert(&["max_window_layers"]);
                    types
                }
                None => {
                    let first = keys.count("max_window_layers", Some(QWEN_MAX_WINDOW_LAYERS))?;
                    (0..layers).map(|i| i >= first).collect()
                }
            };
            Ok(sliding.into_iter().map(|s| window.filter(|_| s)).collect())
        }
    }
}

pub(super) fn slots(config: &LmConfig) -> Vec<Slot> {
    decoder(config, |s, i, p| {
        s.norm(
            &format!("{p}input_layernorm"),
            config.hidden_size,
            at(i, Piece::AttentionNorm),
        );
        attention(s, i, p);
        s.norm(
            &format!("{p}post_attention_layernorm"),
            config.hidden_size,
            at(i, Piece::MlpNorm),
        );
        mlp(s, i, p);
    })
}

pub(super) fn at(layer: usize, piece: Piece) -> impl Fn(Param) -> Role {
    move |param| Role::Layer(layer, piece, param)
}

/// `model.embed_tokens`, the layers, `model.norm` and the head.
pub(super) fn decoder(config: &LmConfig, layer: impl Fn(&mut Slots, usize, &str)) -> Vec<Slot> {
    let mut s = Slots::new(config);
    let (v, h) = (config.vocab_size, config.hidden_size);
    s.add("model.embed_tokens.weight".into(), vec![v, h], Role::Embed);
    for i in 0..config.layers {
        layer(&mut s, i, &format!("model.layers.{i}."));
    }
    s.norm("model.norm", h, Role::FinalNorm);
    s.head();
    s.out
}

/// `self_attn.{q,k,v,o}_proj`, and the query and key norms if any.
pub(super) fn attention(s: &mut Slots, i: usize, p: &str) {
    let c = s.config;
    let (h, q, kv) = (c.hidden_size, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let b = c.biases;
    s.linear(&format!("{p}self_attn.q_proj"), q, h, b.qkv, at(i, Piece::Q));
    s.linear(&format!("{p}self_attn.k_proj"), kv, h, b.qkv, at(i, Piece::K));
    s.linear(&format!("{p}self_attn.v_proj"), kv, h, b.qkv, at(i, Piece::V));
    s.linear(&format!("{p}self_attn.o_proj"), h, q, b.o, at(i, Piece::O));
    let (q_dim, k_dim) = match c.qk_norm {
        QkNorm::None => return,
        QkNorm::PerHead => (c.head_dim, c.head_dim),
        QkNorm::Whole => (q, kv),
    };
    s.norm(&format!("{p}self_attn.q_norm"), q_dim, at(i, Piece::QNorm));
    s.norm(&format!("{p}self_attn.k_norm"), k_dim, at(i, Piece::KNorm));
}

/// `mlp.{gate,up,down}_proj`.
pub(super) fn mlp(s: &mut Slots, i: usize, p: &str) {
    let c = s.config;
    let (h, ff, bias) = (c.hidden_size, c.intermediate_size, c.biases.mlp);
    s.linear(&format!("{p}mlp.gate_proj"), ff, h, bias, at(i, Piece::Gate));
    s.linear(&format!("{p}mlp.up_proj"), ff, h, bias, at(i, Piece::Up));
    s.linear(&format!("{p}mlp.down_proj"), h, ff, bias, at(i, Piece::Down));
}
