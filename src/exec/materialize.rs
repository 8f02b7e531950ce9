//! Whole models in memory, for the measurements and training that need a
//! model rather than a reduction: the same fused kernels, writing into
//! buffers instead of files.

use super::atoms::TensorInputs;
use super::family;
use super::kernel::{self, SaveOut, TensorWork};
use super::save::carried_bytes;
use crate::graph::{Graph, NodeId, ScalarId};
use crate::io::{Dtype, IoError, TensorInfo};
use std::sync::Mutex;

/// Every tensor of `node`, float ones as f32 little-endian bytes, the others
/// as stored. `coef` gives each coefficient's value.
pub fn materialize(
    graph: &Graph,
    node: NodeId,
    coef: &dyn Fn(ScalarId) -> f64,
) -> Result<Vec<(TensorInfo, Vec<u8>)>, IoError> {
    let known = |s: ScalarId| Some(coef(s));
    let work = family::Work {
        measures: &[],
        requests: &[],
        saves: &[(0, node)],
        coef: &known,
        sample: &|_| 1.0,
    };
    let families = family::build(graph, &work);
    let (Some(family), Some(save)) = (families.first(), families.first().and_then(|f| f.saves.first())) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for spec in &graph.specs(node).tensors {
        if !spec.float {
            let bytes = carried_bytes(graph, node, &spec.name);
            out.push((
                TensorInfo::new(spec.name.clone(), spec.dtype, spec.shape.clone()),
                bytes.to_vec(),
            ));
            continue;
        }
        let buffer = Mutex::new(vec![0u8; spec.numel() * 4]);
        let emit = |offset: usize, bytes: &[u8]| {
            let mut buffer = buffer.lock().unwrap_or_else(|p| p.into_inner());
            buffer[offset..offset + bytes.len()].copy_from_slice(bytes);
            Ok(())
        };
        let mut inputs = TensorInputs::new(graph, coef, &spec.name);
        inputs.prepare(&family.atoms);
        let sources = family.atoms.iter().map(|a| inputs.source(*a)).collect();
        // Models scored from these weights show inf or NaN as such.
        let non_finite = std::sync::atomic::AtomicBool::new(false);
        let work = TensorWork {
            sources,
            reference: family.reference,
            pairs: &[],
            direct: Vec::new(),
            saves: vec![SaveOut {
                coefs: &save.coefs,
                dtype: Dtype::F32,
                emit: &emit,
                non_finite: &non_finite,
            }],
        };
        kernel::run(&work, spec.numel())?;
        let bytes = buffer.into_inner().unwrap_or_else(|p| p.into_inner());
        out.push((
            TensorInfo::new(spec.name.clone(), Dtype::F32, spec.shape.clone()),
            bytes,
        ));
    }
    Ok(out)
}
