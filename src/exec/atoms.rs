//! The values of a family's atoms for one tensor. A checkpoint's tensor is
//! read straight from its memory map; a primitive's is computed here, whole,
//! from its inputs (which may be sums of checkpoints, or other
//! primitives), and kept until the tensor is done.

use super::exact::Accurate;
use super::kernel::{Source, CHUNK};
use super::prims;
use crate::graph::{Graph, LeafId, NodeId, Op, ScalarId};
use rayon::prelude::*;
use std::collections::HashMap;

pub(super) struct TensorInputs<'g> {
    graph: &'g Graph,
    coef: &'g dyn Fn(ScalarId) -> f64,
    name: &'g str,
    /// Each checkpoint's bytes of this tensor, fetched once.
    fetched: HashMap<LeafId, &'g [u8]>,
    /// Each primitive's result for this tensor.
    computed: HashMap<NodeId, Vec<f32>>,
}

impl<'g> TensorInputs<'g> {
    pub fn new(graph: &'g Graph, coef: &'g dyn Fn(ScalarId) -> f64, name: &'g str) -> Self {
        TensorInputs {
            graph,
            coef,
            name,
            fetched: HashMap::new(),
            computed: HashMap::new(),
        }
    }

    /// Fetches and computes what `atoms` need, so `source` can lend it.
    pub fn prepare(&mut self, atoms: &[NodeId]) {
        for atom in atoms {
            self.prepare_atom(*atom);
        }
    }

    fn prepare_atom(&mut self, atom: NodeId) {
        if !self.active(atom) {
            return;
        }
        match &self.graph.node(atom).op {
            Op::Leaf(leaf) => {
                self.fetch(*leaf);
            }
            Op::Select { input, .. } => self.prepare_atom(*input),
            Op::Map { .. } => self.compute(atom),
            Op::Lin(_) => unreachable!("an atom is never a sum"),
        }
    }

    /// Where an atom's tensor comes from, once `prepare` has run: its
    /// checkpoint's bytes, a computed primitive, or zero where
    /// `only`/`except` removed it.
    pub fn source(&self, atom: NodeId) -> Source<'_> {
        if !self.active(atom) {
            return Source::Zero;
        }
        match &self.graph.node(atom).op {
            Op::Leaf(leaf) => self.stored(*leaf),
            Op::Select { input, .. } => self.source(*input),
            Op::Map { .. } => Source::F32(&self.computed[&atom]),
            Op::Lin(_) => unreachable!("an atom is never a sum"),
        }
    }

    /// A checkpoint's tensor as fetched (zero if it was not).
    fn stored(&self, leaf: LeafId) -> Source<'g> {
        let checkpoint = self.graph.leaf(leaf);
        match (checkpoint.index_of(self.name), self.fetched.get(&leaf)) {
            (Some(i), Some(bytes)) => Source::Raw(checkpoint.tensors()[i].dtype, bytes),
            _ => Source::Zero,
        }
    }

    /// Input bytes fetched from checkpoints so far.
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.values().map(|b| b.len() as u64).sum()
    }

    fn active(&self, node: NodeId) -> bool {
        let spec = self.graph.specs(node).find(self.name);
        spec.is_some_and(|s| s.active)
    }

    fn numel(&self, node: NodeId) -> usize {
        self.graph.specs(node).find(self.name).map_or(0, |s| s.numel())
    }

    fn fetch(&mut self, leaf: LeafId) -> Option<&'g [u8]> {
        let checkpoint = self.graph.leaf(leaf);
        let i = checkpoint.index_of(self.name)?;
        Some(*self.fetched.entry(leaf).or_insert_with(|| checkpoint.bytes(i)))
    }

    fn compute(&mut self, node: NodeId) {
        if self.computed.contains_key(&node) {
            return;
        }
        let Op::Map { prim, inputs } = &self.graph.node(node).op else {
            unreachable!("only primitives are computed")
        };
        let values: Vec<Vec<f64>> = inputs.iter().map(|n| self.values(*n)).collect();
        let slices: Vec<&[f64]> = values.iter().map(Vec::as_slice).collect();
        let shape = self.graph.specs(node).find(self.name).map_or(&[][..], |s| &s.shape);
        let result = prims::apply(prim, &slices, shape, self.name);
        self.computed.insert(node, result);
    }

    /// Tensor `name` of any node, in f64.
    fn values(&mut self, node: NodeId) -> Vec<f64> {
        let numel = self.numel(node);
        let mut out = vec![0.0; numel];
        if !self.active(node) {
            return out;
        }
        match &self.graph.node(node).op {
            Op::Leaf(leaf) => {
                self.fetch(*leaf);
                decode(&self.stored(*leaf), &mut out);
            }
            Op::Select { input, .. } => return self.values(*input),
            Op::Lin(terms) => {
                let parts: Vec<(f64, Vec<f64>)> = terms
                    .iter()
                    .map(|t| ((self.coef)(t.coef), self.values(t.node)))
                    .collect();
                // Summed accurately: a primitive rounds its result to f32,
                // so its input must not depend on how the sum was grouped.
                out.par_iter_mut().enumerate().for_each(|(i, o)| {
                    let mut acc = Accurate::default();
                    parts.iter().for_each(|(c, v)| acc.add(*c, v[i]));
                    *o = acc.value();
                });
            }
            Op::Map { .. } => {
                self.compute(node);
                decode(&Source::F32(&self.computed[&node]), &mut out);
            }
        }
        out
    }
}

fn decode(source: &Source, out: &mut [f64]) {
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| source.read_f64(i * CHUNK, chunk));
}

/// Every checkpoint `node` reads, each once.
pub(super) fn leaves_under(graph: &Graph, node: NodeId, out: &mut Vec<LeafId>) {
    match &graph.node(node).op {
        Op::Leaf(leaf) => out.push(*leaf),
        _ => graph.inputs(node).into_iter().for_each(|n| leaves_under(graph, n, out)),
    }
}
