//! Values of graph nodes for one tensor name.

use crate::graph::{Graph, LeafId, NodeId, Op};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

/// One tensor of a node: statically zero (selected away), or computed.
#[derive(Clone)]
pub(super) enum TVal {
    Zero,
    Float(Tensor),
}

/// Computes the nodes' tensors of one name; each input is read at most once.
pub(super) struct TensorCtx<'a> {
    pub graph: &'a Graph,
    pub name: &'a str,
    pub measured: &'a [Option<f64>],
    pub device: &'a Device,
    leaves: HashMap<LeafId, TVal>,
}

impl<'a> TensorCtx<'a> {
    pub fn new(graph: &'a Graph, name: &'a str, measured: &'a [Option<f64>], device: &'a Device) -> Self {
        TensorCtx {
            graph,
            name,
            measured,
            device,
            leaves: HashMap::new(),
        }
    }

    /// The float tensor `name` of `node`. The caller checks the node holds
    /// such a tensor.
    pub fn value(&mut self, node: NodeId) -> candle_core::Result<TVal> {
        let graph = self.graph;
        let spec_active = graph.specs(node).find(self.name).is_some_and(|s| s.active);
        if !spec_active {
            return Ok(TVal::Zero);
        }
        match &graph.node(node).op {
            Op::Leaf(leaf) => self.leaf(*leaf),
            Op::Select { input, .. } => self.value(*input),
            Op::Lin(terms) => {
                let mut sum: Option<Tensor> = None;
                for term in terms {
                    let TVal::Float(x) = self.value(term.node)? else {
                        continue;
                    };
                    let coef = self.coefficient(term.coef)?;
                    let scaled = x.affine(coef, 0.0)?;
                    sum = Some(match sum {
                        None => scaled,
                        Some(acc) => (acc + scaled)?,
                    });
                }
                Ok(sum.map_or(TVal::Zero, TVal::Float))
            }
        }
    }

    fn coefficient(&self, id: crate::graph::ScalarId) -> candle_core::Result<f64> {
        let measured = |m: crate::graph::MeasureId| self.measured.get(m.0 as usize).copied().flatten();
        self.graph
            .scalars
            .value(id, &measured)
            .ok_or_else(|| candle_core::Error::Msg("a coefficient was needed before it was measured".into()))
    }

    fn leaf(&mut self, leaf: LeafId) -> candle_core::Result<TVal> {
        if let Some(value) = self.leaves.get(&leaf) {
            return Ok(value.clone());
        }
        let checkpoint = self.graph.leaf(leaf);
        let missing =
            || candle_core::Error::Msg(format!("no tensor `{}` in {}", self.name, checkpoint.path().display()));
        let index = checkpoint.index_of(self.name).ok_or_else(missing)?;
        let info = &checkpoint.tensors()[index];
        let data = crate::io::decode_f32(info.dtype, checkpoint.bytes(index))
            .ok_or_else(|| candle_core::Error::Msg(format!("`{}` is not a float tensor", self.name)))?;
        let tensor = Tensor::from_vec(data, info.shape.clone(), self.device)?;
        let value = TVal::Float(tensor);
        self.leaves.insert(leaf, value.clone());
        Ok(value)
    }
}

/// `<a, b>` accumulated in f64.
pub(super) fn dot(a: &TVal, b: &TVal) -> candle_core::Result<f64> {
    let (TVal::Float(a), TVal::Float(b)) = (a, b) else {
        return Ok(0.0);
    };
    let a = a.to_dtype(DType::F64)?;
    let b = b.to_dtype(DType::F64)?;
    (a * b)?.sum_all()?.to_scalar::<f64>()
}

/// The values as f32, in row-major order (zeros for a zero tensor).
pub(super) fn to_f32(value: &TVal, numel: usize) -> candle_core::Result<Vec<f32>> {
    match value {
        TVal::Zero => Ok(vec![0.0; numel]),
        TVal::Float(t) => t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>(),
    }
}
