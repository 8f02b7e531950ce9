//! Phi-3 (and Phi-4-mini): Llama's layout with queries, keys and values in
//! one `qkv_proj` and gate and up in one `gate_up_proj`; LongRoPE (which
//! its configs also call "su" or "yarn") and partial rotary embeddings.

use super::llama::{at, decoder};
use super::{activation, sliding_window, Piece, Sizes, Slot};
use crate::eval::lm::config::LmConfig;
use crate::eval::lm::keys::Keys;
use crate::eval::lm::rope::{Rope, RopeInputs};
use serde_json::Value;

pub(super) fn parse(keys: &Keys) -> Result<LmConfig, String> {
    // Dropout, and keys of Phi-4-mini's remote code that transformers'
    // Phi3 does not read.
    keys.inert(&[
        "resid_pdrop",
        "embd_pdrop",
        "attention_bias",
        "full_attn_mod",
        "interpolate_factor",
    ]);
    keys.require_value("mlp_bias", false)?;
    keys.require_value("lm_head_bias", false)?;
    let sizes = Sizes::read(keys, None, 4096)?;
    let rope = phi3_rope(keys, sizes.head_dim, sizes.max_positions)?;
    let layers = sizes.layers;
    let mut config = sizes.config(crate::eval::lm::config::Family::Phi3, keys, Some(rope), false)?;
    config.activation = activation(keys, "hidden_act", "silu")?;
    config.windows = vec![sliding_window(keys, None)?; layers];
    Ok(config)
}

fn phi3_rope(keys: &Keys, head_dim: usize, max_positions: usize) -> Result<Rope, String> {
    let (params, name) = super::rope_object(keys)?;
    let mut params = params.cloned();
    if let Some(map) = params.as_mut() {
        let kind = map.get("rope_type").or(map.get("type")).and_then(Value::as_str);
        if matches!(kind, Some("su" | "yarn")) {
            map.remove("type");
            map.insert("rope_type".into(), "longrope".into());
        }
    }
    Rope::parse(&RopeInputs {
        params: params.as_ref(),
        name,
        theta: keys.optional_number("rope_theta")?,
        default_theta: 10_000.0,
        partial: keys.optional_number("partial_rotary_factor")?,
        head_dim,
        max_positions,
        original_max: Some(keys.count("original_max_position_embeddings", Some(4096))?),
    })
}

pub(super) fn slots(config: &LmConfig) -> Vec<Slot> {
    let (h, ff) = (config.hidden_size, config.intermediate_size);
    let qkv = (config.heads + 2 * config.kv_heads) * config.head_dim;
    decoder(config, |s, i, p| {
        s.norm(&format!("{p}input_layernorm"), h, at(i, Piece::AttentionNorm));
        s.linear(
            &format!("{p}self_attn.qkv_proj"),
            qkv,
            h,
            false,
            at(i, Piece::QkvStacked),
        );
        let q = config.heads * config.head_dim;
        s.linear(&format!("{p}self_attn.o_proj"), h, q, false, at(i, Piece::O));
        s.norm(&format!("{p}post_attention_layernorm"), h, at(i, Piece::MlpNorm));
        s.linear(&format!("{p}mlp.gate_up_proj"), 2 * ff, h, false, at(i, Piece::GateUp));
        s.linear(&format!("{p}mlp.down_proj"), h, ff, false, at(i, Piece::Down));
    })
}
