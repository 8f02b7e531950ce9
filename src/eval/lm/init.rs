//! Fresh weights for a language model config (`init`), as transformers
//! initialises them: matrices and embeddings normal with standard deviation
//! `initializer_range` (0.02 unless the config says otherwise), norm
//! scales one (zero where the stored weight is an offset from one, as in
//! Gemma), biases zero. Drawn slot by slot from one seeded generator.

use super::arch::{Param, Piece, Role};
use super::config::NormKind;
use super::LmConfig;
use crate::eval::train::Weights;
use crate::synth::Rng;

/// transformers' default `initializer_range`.
pub const DEFAULT_RANGE: f64 = 0.02;

pub fn init_weights(config: &LmConfig, range: f64, seed: u64) -> Weights {
    let mut rng = Rng::new(seed);
    let unit_offset = matches!(config.norm, NormKind::Rms { unit_offset: true });
    config
        .slots()
        .into_iter()
        .map(|slot| {
            let count: usize = slot.shape.iter().product();
            let values = match kind(slot.role) {
                Kind::Scale if unit_offset => vec![0.0; count],
                Kind::Scale => vec![1.0; count],
                Kind::Bias => vec![0.0; count],
                Kind::Random => rng.normals(count, range),
            };
            (slot.name, slot.shape, values)
        })
        .collect()
}

/// The `initializer_range` of a config file's JSON, if it gives one.
pub fn initializer_range(json: &serde_json::Value) -> f64 {
    let range = json.get("initializer_range").and_then(serde_json::Value::as_f64);
    range.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(DEFAULT_RANGE)
}

enum Kind {
    Scale,
    Bias,
    Random,
}

fn kind(role: Role) -> Kind {
    let is_norm = |piece: Piece| {
        matches!(
            piece,
            Piece::AttentionNorm
                | Piece::AttentionPostNorm
                | Piece::MlpNorm
                | Piece::MlpPostNorm
                | Piece::QNorm
                | Piece::KNorm
        )
    };
    match role {
        Role::FinalNorm(Param::Bias) | Role::Layer(_, _, Param::Bias) => Kind::Bias,
        Role::FinalNorm(_) => Kind::Scale,
        Role::Layer(_, piece, _) if is_norm(piece) => Kind::Scale,
        _ => Kind::Random,
    }
}
