//! GPT-2: LayerNorm, learned positions, `Conv1D` weights stored
//! `[in, out]`, queries, keys and values in one `c_attn`, a GELU MLP, and a
//! head tied to the token embedding.

use super::{activation, Param, Piece, Role, Slot, Slots};
use crate::eval::lm::config::{Biases, Family, LmConfig, NormKind, QkNorm};
use crate::eval::lm::keys::Keys;

pub(super) fn parse(keys: &Keys) -> Result<LmConfig, String> {
    // Dropout, the sequence-summary head of GPT2DoubleHeadsModel, the
    // legacy context length, and an f16-precision option that f32 does not
    // need.
    keys.inert(&[
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
        "summary_type",
        "summary_use_proj",
        "summary_activation",
        "summary_proj_to_labels",
        "summary_first_dropout",
        "n_ctx",
        "reorder_and_upcast_attn",
    ]);
    if keys.flag("add_cross_attention", false)? {
        return Err("`add_cross_attention` is true; tv computes decoder-only models".into());
    }
    let hidden = keys.count("n_embd", Some(768))?;
    let heads = keys.count("n_head", Some(12))?;
    let layers = keys.count("n_layer", Some(12))?;
    let head_dim = hidden / heads;
    if head_dim * heads != hidden {
        return Err(format!("n_embd ({hidden}) is not a multiple of n_head ({heads})"));
    }
    let scale = match keys.flag("scale_attn_weights", true)? {
        true => 1.0 / (head_dim as f64).sqrt(),
        false => 1.0,
    };
    Ok(LmConfig {
        family: Family::Gpt2,
        vocab_size: keys.count("vocab_size", Some(50257))?,
        hidden_size: hidden,
        intermediate_size: keys.count("n_inner", Some(4 * hidden))?,
        layers,
        heads,
        kv_heads: heads,
        head_dim,
        max_positions: keys.count("n_positions", Some(1024))?,
        tied: keys.flag("tie_word_embeddings", true)?,
        norm: NormKind::Layer,
        norm_eps: keys.number("layer_norm_epsilon", Some(1e-5))?,
        rope: None,
        local_rope: None,
        windows: vec![None; layers],
        attention_scale: scale,
        scale_by_layer: keys.flag("scale_attn_by_inverse_layer_idx", false)?,
        attention_softcap: None,
        qk_norm: QkNorm::None,
        activation: activation(keys, "activation_function", "gelu_new")?,
        gated: false,
        parallel: false,
        embed_scale: false,
        final_softcap: None,
        biases: Biases {
            qkv: true,
            o: true,
            mlp: true,
        },
    })
}

pub(super) fn slots(config: &LmConfig) -> Vec<Slot> {
    let mut s = Slots::new(config);
    let (v, h, ff) = (config.vocab_size, config.hidden_size, config.intermediate_size);
    s.add("transformer.wte.weight".into(), vec![v, h], Role::Embed);
    s.add(
        "transformer.wpe.weight".into(),
        vec![config.max_positions, h],
        Role::Positions,
    );
    for i in 0..config.layers {
        let p = format!("transformer.h.{i}.");
        let at = |piece| move |param| Role::Layer(i, piece, param);
        s.norm(&format!("{p}ln_1"), h, at(Piece::AttentionNorm));
        conv1d(&mut s, &format!("{p}attn.c_attn"), h, 3 * h, Piece::QkvStacked, i);
        conv1d(&mut s, &format!("{p}attn.c_proj"), h, h, Piece::O, i);
        s.norm(&format!("{p}ln_2"), h, at(Piece::MlpNorm));
        conv1d(&mut s, &format!("{p}mlp.c_fc"), h, ff, Piece::Up, i);
        conv1d(&mut s, &format!("{p}mlp.c_proj"), ff, h, Piece::Down, i);
    }
    s.norm("transformer.ln_f", h, Role::FinalNorm);
    s.head();
    s.out
}

/// A `Conv1D`: weight `[in, out]` and bias `[out]`.
fn conv1d(s: &mut Slots, name: &str, inputs: usize, outputs: usize, piece: Piece, layer: usize) {
    let role = |param| Role::Layer(layer, piece, param);
    s.add(
        format!("{name}.weight"),
        vec![inputs, outputs],
        role(Param::TransposedWeight),
    );
    s.add(format!("{name}.bias"), vec![outputs], role(Param::Bias));
}
