//! GPT-NeoX and the Pythia suite: LayerNorm, queries, keys and values
//! interleaved per head in one `query_key_value`, rotary embeddings over
//! the first `rotary_pct` of each head, a GELU MLP, attention and MLP in
//! parallel on the same input, and an untied `embed_out` head.

use super::{activation, Piece, Role, Sizes, Slot, Slots};
use crate::eval::lm::config::{Biases, Family, LmConfig, NormKind};
use crate::eval::lm::keys::Keys;
use crate::eval::lm::rope::{Rope, RopeInputs};

pub(super) fn parse(keys: &Keys) -> Result<LmConfig, String> {
    keys.inert(&["hidden_dropout", "classifier_dropout", "is_decoder"]);
    let sizes = Sizes::read(keys, None, 2048)?;
    if keys.has("num_key_value_heads") || keys.has("head_dim") {
        return Err("GPT-NeoX has neither `num_key_value_heads` nor `head_dim`".into());
    }
    let (params, name) = super::rope_object(keys)?;
    let rope = Rope::parse(&RopeInputs {
        params,
        name,
        theta: keys.optional_number("rotary_emb_base")?,
        default_theta: 10_000.0,
        partial: Some(keys.optional_number("rotary_pct")?.unwrap_or(0.25)),
        head_dim: sizes.head_dim,
        max_positions: sizes.max_positions,
        original_max: None,
    })?;
    let mut config = sizes.config(Family::GptNeox, keys, Some(rope), false)?;
    config.norm = NormKind::Layer;
    config.activation = activation(keys, "hidden_act", "gelu")?;
    config.gated = false;
    config.parallel = keys.flag("use_parallel_residual", true)?;
    let bias = keys.flag("attention_bias", true)?;
    config.biases = Biases {
        qkv: bias,
        o: bias,
        mlp: true,
    };
    Ok(config)
}

pub(super) fn slots(config: &LmConfig) -> Vec<Slot> {
    let mut s = Slots::new(config);
    let (v, h, ff) = (config.vocab_size, config.hidden_size, config.intermediate_size);
    let b = config.biases;
    s.add("gpt_neox.embed_in.weight".into(), vec![v, h], Role::Embed);
    for i in 0..config.layers {
        let p = format!("gpt_neox.layers.{i}.");
        let at = |piece| move |param| Role::Layer(i, piece, param);
        s.norm(&format!("{p}input_layernorm"), h, at(Piece::AttentionNorm));
        s.norm(&format!("{p}post_attention_layernorm"), h, at(Piece::MlpNorm));
        s.linear(
            &format!("{p}attention.query_key_value"),
            3 * h,
            h,
            b.qkv,
            at(Piece::QkvPerHead),
        );
        s.linear(&format!("{p}attention.dense"), h, h, b.o, at(Piece::O));
        s.linear(&format!("{p}mlp.dense_h_to_4h"), ff, h, b.mlp, at(Piece::Up));
        s.linear(&format!("{p}mlp.dense_4h_to_h"), h, ff, b.mlp, at(Piece::Down));
    }
    s.norm("gpt_neox.final_layer_norm", h, Role::FinalNorm);
    s.head();
    s.out
}
