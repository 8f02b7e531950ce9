//! The architecture line of `tv inspect`: which model the folder's
//! `config.json` describes, how many parameters it has, and whether the
//! checkpoint's tensors fit it.

use super::fit::Held;
use super::ModelConfig;
use crate::io::TensorInfo;
use std::path::Path;

/// A paragraph about the model in `folder`, or `None` when it has no config.
pub fn describe(folder: &Path, tensors: &[TensorInfo]) -> Option<String> {
    let path = folder.join("config.json");
    if !path.is_file() {
        return None;
    }
    let config = match ModelConfig::read(&path) {
        Ok(config) => config,
        Err((reason, _)) => return Some(format!("architecture: not recognised: {reason}\n")),
    };
    let (name, parameters) = match &config {
        ModelConfig::Mlp(mlp) => (format!("MLP {:?}", mlp.layers), None),
        ModelConfig::Causal(lm) => (lm_name(lm), Some(lm.parameters())),
    };
    let mut text = format!("architecture: {name}");
    if let Some(n) = parameters {
        text += &format!(", {} parameters ({})", grouped(n), rounded(n));
    }
    text.push('\n');
    let held: Vec<Held> = tensors
        .iter()
        .map(|t| Held {
            name: &t.name,
            shape: &t.shape,
            float: t.is_float(),
        })
        .collect();
    let fit = match super::fit::mismatches(&config, &held).as_slice() {
        [] => "the checkpoint's tensors fit it".to_string(),
        problems => format!("the checkpoint does not fit it: {}", problems.join("; ")),
    };
    Some(format!("{text}{fit}\n"))
}

fn lm_name(lm: &super::lm::LmConfig) -> String {
    let rope = match &lm.rope {
        None => "learned positions".to_string(),
        Some(r) if r.rotary_dim < lm.head_dim => format!(
            "RoPE {} on {} of {} dimensions per head",
            super::lm::rope::type_name(&r.scaling),
            r.rotary_dim,
            lm.head_dim
        ),
        Some(r) => format!("RoPE {}", super::lm::rope::type_name(&r.scaling)),
    };
    format!(
        "{} (model_type \"{}\"), {} layers, hidden {}, {} heads ({} key-value), {rope}",
        lm.family.name(),
        lm.family.model_type(),
        lm.layers,
        lm.hidden_size,
        lm.heads,
        lm.kv_heads
    )
}

/// `134515008` as `134,515,008`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `134515008` as `134.5M`.
fn rounded(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(grouped(134_515_008), "134,515,008");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(rounded(134_515_008), "134.5M");
        assert_eq!(rounded(1_235_814_400), "1.24B");
    }
}
