//! Whether a set of tensors fits a model config: every tensor the config
//! needs, with its shape, in floating point, and (for a language model)
//! nothing it does not know.

use super::ModelConfig;
use std::collections::{HashMap, HashSet};

/// A tensor as weights or a checkpoint hold it.
pub struct Held<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub float: bool,
}

/// The first few ways the tensors differ from the config's.
pub fn mismatches(config: &ModelConfig, held: &[Held]) -> Vec<String> {
    let by_name: HashMap<&str, &Held> = held.iter().map(|h| (h.name, h)).collect();
    let mut required = config.tensors();
    if let ModelConfig::Causal(lm) = config {
        for (name, _) in &mut required {
            *name = lm.held_name(name, |n| by_name.contains_key(n)).to_string();
        }
    }
    let mut out = Vec::new();
    for (name, shape) in &required {
        match by_name.get(name.as_str()) {
            None => out.push(format!("`{name}` is missing")),
            Some(h) => out.extend(problem(h, shape)),
        }
    }
    // A language model's checkpoint holds nothing else, but for the
    // tensors it may hold or not.
    if let ModelConfig::Causal(lm) = config {
        let known: HashSet<&str> = required.iter().map(|(n, _)| n.as_str()).collect();
        let optional: HashMap<String, Vec<usize>> = lm.optional_tensors().into_iter().collect();
        let others = held.iter().filter(|h| !known.contains(h.name) && !lm.ignores(h.name));
        for h in others {
            match optional.get(h.name) {
                Some(shape) => out.extend(problem(h, shape)),
                None => out.push(format!("`{}` is not part of a {} model", h.name, lm.family.name())),
            }
        }
    }
    out.truncate(3);
    out
}

fn problem(held: &Held, shape: &[usize]) -> Option<String> {
    let name = held.name;
    if held.shape != shape {
        Some(format!(
            "`{name}` has shape {:?}, the config says {shape:?}",
            held.shape
        ))
    } else if !held.float {
        Some(format!("`{name}` is not floating point"))
    } else {
        None
    }
}
