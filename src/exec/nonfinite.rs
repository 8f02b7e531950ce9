//! Telling the user where inf and NaN come from. The kernels never check
//! values on the way; after a tensor, a non-finite sum or saved value sends
//! tv looking, at that tensor only, for the checkpoints that hold such
//! values, so the usual all-finite run pays nothing but a glance at its
//! saved bytes.

use super::atoms::leaves_under;
use crate::diag::warn;
use crate::graph::{Graph, NodeId};
use crate::io::Dtype;

/// How many of `bytes` (little-endian elements of `dtype`) are inf or NaN:
/// the exponent bits all set. Zero for non-float dtypes.
pub fn count_non_finite(dtype: Dtype, bytes: &[u8]) -> usize {
    let all_ones = |bits: u64, shift: u32, width: u32| (bits >> shift) & ((1 << width) - 1) == (1 << width) - 1;
    match dtype {
        Dtype::F64 => bytes
            .chunks_exact(8)
            .filter(|b| all_ones(u64::from_le_bytes((*b).try_into().unwrap_or([0; 8])), 52, 11))
            .count(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .filter(|b| all_ones(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64, 23, 8))
            .count(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .filter(|b| all_ones(u16::from_le_bytes([b[0], b[1]]) as u64, 10, 5))
            .count(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .filter(|b| all_ones(u16::from_le_bytes([b[0], b[1]]) as u64, 7, 8))
            .count(),
        _ => 0,
    }
}

/// Warns, once per checkpoint and tensor, about inputs of `atoms` whose
/// tensor `name` holds inf or NaN; returns whether any does.
pub fn warn_inputs(graph: &Graph, atoms: &[NodeId], name: &str) -> bool {
    let mut leaves = Vec::new();
    atoms.iter().for_each(|a| leaves_under(graph, *a, &mut leaves));
    leaves.sort();
    leaves.dedup();
    let mut found = false;
    for leaf in leaves {
        let checkpoint = graph.leaf(leaf);
        let Some(k) = checkpoint.index_of(name) else { continue };
        let info = &checkpoint.tensors()[k];
        let bad = count_non_finite(info.dtype, checkpoint.bytes(k));
        if bad > 0 {
            found = true;
            warn(format!(
                "checkpoint {}: tensor {name:?} holds {bad} inf or NaN value{} (of {}); results that use it are not finite",
                checkpoint.path().display(),
                if bad == 1 { "" } else { "s" },
                info.numel(),
            ));
        }
    }
    found
}

/// Warns about a save whose tensor came out non-finite from finite inputs:
/// values too large for its dtype, or a coefficient that is not finite.
/// Warns that the division at `place` (`file:line:col`) had a measured
/// divisor of zero.
pub fn warn_division(place: &str) {
    crate::diag::warn(format!(
        "{place}: division by a measured zero; the result is inf or NaN"
    ));
}

pub fn warn_save(path: &std::path::Path, name: &str, dtype: Dtype, coefs: &[f64]) {
    let cause = match coefs.iter().any(|c| !c.is_finite()) {
        true => "a coefficient is not finite (a division by a measured zero?)".to_string(),
        false => format!("its values overflow {}", dtype.to_string().to_lowercase()),
    };
    warn(format!(
        "save to {}: tensor {name:?} holds inf or NaN values: {cause}",
        path.display()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_counted_in_every_float_dtype() {
        let values = [1.0f32, f32::INFINITY, -2.5, f32::NAN, f32::NEG_INFINITY, 65504.0];
        let f32s: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f64s: Vec<u8> = values.iter().flat_map(|v| (*v as f64).to_le_bytes()).collect();
        let f16s: Vec<u8> = values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let bf16s: Vec<u8> = values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        for (dtype, bytes) in [
            (Dtype::F32, f32s),
            (Dtype::F64, f64s),
            (Dtype::F16, f16s),
            (Dtype::BF16, bf16s),
        ] {
            assert_eq!(count_non_finite(dtype, &bytes), 3, "{dtype:?}");
        }
        let overflow = half::f16::from_f32(70000.0).to_le_bytes();
        assert_eq!(count_non_finite(Dtype::F16, &overflow), 1);
        assert_eq!(count_non_finite(Dtype::I64, &[0xff; 8]), 0);
    }
}
