//! A deliberately naive executor, the yardstick for the fast one: every
//! measurement on its own, every node materialised in f64, tensor by tensor,
//! with plain sequential sums. No Gram matrix, no fusion, no chunking.

use super::exact::Accurate;
use super::schedule::needed_measures;
use crate::graph::{Graph, Measure, MeasureId, NodeId, Op};
use crate::io::Dtype;
use crate::lower::Plan;

/// Every measurement the plan needs (others `None`), by `MeasureId`.
pub fn measure(plan: &Plan) -> Vec<Option<f64>> {
    let graph = &plan.graph;
    let mut measured: Vec<Option<f64>> = vec![None; graph.measure_count()];
    let mut pending = needed_measures(plan);
    // Measurements whose coefficients need other measurements wait for them.
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|m| match dot(graph, *m, &measured) {
            Some(value) => {
                measured[m.0 as usize] = Some(value);
                false
            }
            None => true,
        });
        if pending.len() == before {
            break;
        }
    }
    measured
}

fn dot(graph: &Graph, m: MeasureId, measured: &[Option<f64>]) -> Option<f64> {
    // Model measurements are not the reference's business.
    let Measure::Dot(a, b) = graph.measure(m) else {
        return None;
    };
    let mut total = 0.0;
    for spec in graph.specs(a).tensors.iter().filter(|s| s.float) {
        let x = values(graph, a, &spec.name, measured)?;
        let y = values(graph, b, &spec.name, measured)?;
        total += x.iter().zip(&y).map(|(p, q)| p * q).sum::<f64>();
    }
    Some(total)
}

/// Tensor `name` of `node` in f64; `None` while a coefficient is unknown.
fn values(graph: &Graph, node: NodeId, name: &str, measured: &[Option<f64>]) -> Option<Vec<f64>> {
    let spec = graph.specs(node).find(name)?;
    if !spec.active {
        return Some(vec![0.0; spec.numel()]);
    }
    match &graph.node(node).op {
        Op::Leaf(leaf) => {
            let checkpoint = graph.leaf(*leaf);
            let i = checkpoint.index_of(name)?;
            decode(checkpoint.tensors()[i].dtype, checkpoint.bytes(i))
        }
        Op::Select { input, .. } => values(graph, *input, name, measured),
        Op::Lin(terms) => {
            // Each element is summed accurately however its terms cancel.
            let mut out = vec![Accurate::default(); spec.numel()];
            for term in terms {
                let known = |m: MeasureId| measured.get(m.0 as usize).copied().flatten();
                let coef = graph.scalars.value(term.coef, &known)?;
                for (o, v) in out.iter_mut().zip(values(graph, term.node, name, measured)?) {
                    o.add(coef, v);
                }
            }
            Some(out.into_iter().map(Accurate::value).collect())
        }
        // The primitives themselves are checked against mergekit and by
        // hand; the reference checks how results combine.
        Op::Map { prim, inputs } => {
            let values: Vec<Vec<f64>> = inputs
                .iter()
                .map(|n| values(graph, *n, name, measured))
                .collect::<Option<_>>()?;
            let slices: Vec<&[f64]> = values.iter().map(Vec::as_slice).collect();
            let result = super::prims::apply(prim, &slices, &spec.shape, name);
            Some(result.into_iter().map(f64::from).collect())
        }
    }
}

/// A float tensor's bytes as f64, every dtype exactly.
fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    let element: fn(&[u8]) -> f64 = match dtype {
        Dtype::F64 => |b| f64::from_le_bytes(b.try_into().unwrap_or_default()),
        Dtype::F32 => |b| f32::from_le_bytes(b.try_into().unwrap_or_default()).into(),
        Dtype::F16 => |b| half::f16::from_le_bytes(b.try_into().unwrap_or_default()).into(),
        Dtype::BF16 => |b| half::bf16::from_le_bytes(b.try_into().unwrap_or_default()).into(),
        _ => return None,
    };
    Some(bytes.chunks_exact(dtype.bitsize() / 8).map(element).collect())
}
