//! Which tensors LoRA adapts: the matrices of the layers' linear maps
//! (attention and MLP projections) whose names a glob matches. Embeddings,
//! the head, norms and biases are never adapted.

use super::arch::{Param, Role};
use super::LmConfig;

/// The names of the tensors `modules` selects for adapters, in the
/// config's order, with whether each is stored transposed (`[in, out]`).
pub fn targets(config: &LmConfig, modules: &str) -> Vec<(String, bool)> {
    config
        .slots()
        .into_iter()
        .filter_map(|slot| match slot.role {
            Role::Layer(_, _, Param::Weight) if slot.shape.len() == 2 => Some((slot.name, false)),
            Role::Layer(_, _, Param::TransposedWeight) if slot.shape.len() == 2 => Some((slot.name, true)),
            _ => None,
        })
        .filter(|(name, _)| crate::graph::spec_glob_match(modules, name))
        .collect()
}
