//! OLMo 2: Llama's layers with the norms after attention and MLP instead
//! of before, and RMSNorm over the whole query and key projections.

use super::llama::{at, attention, decoder, mlp};
use super::{activation, rope, Piece, Sizes, Slot, ROPE_DEFAULTS};
use crate::eval::lm::config::{Family, LmConfig, QkNorm};
use crate::eval::lm::keys::Keys;

pub(super) fn parse(keys: &Keys) -> Result<LmConfig, String> {
    let sizes = Sizes::read(keys, None, 2048)?;
    let rope = rope(keys, sizes.head_dim, sizes.max_positions, "rope_theta", ROPE_DEFAULTS)?;
    let mut config = sizes.config(Family::Olmo2, keys, Some(rope), false)?;
    config.activation = activation(keys, "hidden_act", "silu")?;
    config.biases.qkv = keys.flag("attention_bias", false)?;
    config.biases.o = config.biases.qkv;
    config.qk_norm = QkNorm::Whole;
    Ok(config)
}

pub(super) fn slots(config: &LmConfig) -> Vec<Slot> {
    let h = config.hidden_size;
    decoder(config, |s, i, p| {
        attention(s, i, p);
        s.norm(
            &format!("{p}post_attention_layernorm"),
            h,
            at(i, Piece::AttentionPostNorm),
        );
        mlp(s, i, p);
        s.norm(&format!("{p}post_feedforward_layernorm"), h, at(i, Piece::MlpPostNorm));
    })
}
