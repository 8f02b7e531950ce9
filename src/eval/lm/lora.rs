//! Which tensors LoRA adapts: the matrices of the layers' linear maps
//! (attention and MLP projections) whose names a glob matches. Embeddings,
//! the head, norms and biases are never adapted.

use super::arch::{Param, Piece, Role};
use super::LmConfig;

/// The names of the tensors `modules` selects for adapters, in the
/// config's order, with whether each is stored transposed (`[in, out]`).
/// `held` says which of a slot's possible names the checkpoint uses.
pub fn targets(config: &LmConfig, modules: &str, held: &dyn Fn(&str) -> bool) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for slot in config.slots() {
        let transposed = match slot.role {
            Role::Layer(_, piece, Param::Weight) if linear(piece) => false,
            Role::Layer(_, piece, Param::TransposedWeight) if linear(piece) => true,
            _ => continue,
        };
        let name = config.held_name(&slot.name, held);
        if crate::graph::spec_glob_match(modules, name) {
            out.push((name.to_string(), transposed));
        }
    }
    out
}

/// Whether a layer's piece is a linear map (not a norm).
fn linear(piece: Piece) -> bool {
    use Piece::*;
    !matches!(
        piece,
        AttentionNorm | AttentionPostNorm | MlpNorm | MlpPostNorm | QNorm | KNorm
    )
}
