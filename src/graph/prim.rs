//! Non-linear primitives: per-tensor operations whose result is not a
//! weighted sum of their inputs (trimming, random drops, sign election,
//! slerp). The executor computes each one a whole tensor at a time and
//! treats the result as one more atom of a linear combination.
//!
//! Parameters are known when the graph is built (numbers written in the
//! program or sweep variables), so equal calls are one node.

use super::{Graph, NodeId, Op, Specs};
use crate::diag::Span;
use std::sync::Arc;

/// An f64 parameter, hashed by its bit pattern.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bits(u64);

impl Bits {
    pub fn new(value: f64) -> Bits {
        Bits(value.to_bits())
    }

    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// Where a random primitive draws from: its seed, and its position in the
/// list it was applied over (so models dropped together get independent
/// masks). The tensor name is mixed in when the tensor is computed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    pub seed: u64,
    pub index: u32,
}

/// What a `Map` node computes, with its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Prim {
    /// Keep the `max(1, floor(density * n))` largest magnitudes of each
    /// tensor; zero the rest. Inputs: `[w]`.
    Trim { density: Bits, rescale: bool },
    /// Drop the `floor(gamma * n)` largest magnitudes, then keep the next
    /// `floor(density * n)` (model breadcrumbs). Inputs: `[w]`.
    TrimOutliers { density: Bits, gamma: Bits, rescale: bool },
    /// Keep each element with probability `density`. Inputs: `[w]`.
    Drop {
        density: Bits,
        stream: Stream,
        rescale: bool,
    },
    /// Keep each element with a probability from `density - epsilon` to
    /// `density + epsilon` by its magnitude's rank in its row (DELLA).
    /// Inputs: `[w]`.
    DropRanked {
        density: Bits,
        epsilon: Bits,
        stream: Stream,
        rescale: bool,
    },
    /// The sign (+1 or -1) of the sum of the inputs, element by element;
    /// ties go to +1. Inputs: the deltas.
    Elect,
    /// Per element, the sum of the deltas whose sign agrees with the elected
    /// one, divided (when `normalize`) by the total weight of those deltas.
    /// Inputs: the deltas; one weight each.
    DisjointMean { weights: Vec<Bits>, normalize: bool },
    /// Spherical interpolation of each tensor. Inputs: `[a, b]`.
    Slerp { t: Bits },
    /// The model-stock interpolation ratio of each tensor (or each row),
    /// filled in. Inputs: the offsets from the base.
    StockRatio { filter_wise: bool },
    /// `(1 - t) * a + t * b` with `t` a tensor too. Inputs: `[a, b, t]`.
    Mix,
}

impl Prim {
    /// Its name in the language, for dumps and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Prim::Trim { .. } => "trim",
            Prim::TrimOutliers { .. } => "trim_outliers",
            Prim::Drop { .. } => "drop",
            Prim::DropRanked { .. } => "drop_ranked",
            Prim::Elect => "elect",
            Prim::DisjointMean { .. } => "disjoint_mean",
            Prim::Slerp { .. } => "slerp_tensors",
            Prim::StockRatio { .. } => "stock_ratio",
            Prim::Mix => "mix",
        }
    }

    /// Whether an all-zero input gives an all-zero output, so a tensor that
    /// `only`/`except` removed from every input stays removed.
    fn keeps_zero(&self) -> bool {
        !matches!(self, Prim::Elect)
    }
}

impl Graph {
    /// A primitive over `inputs`, whose tensors the caller has checked agree.
    pub fn map(&mut self, prim: Prim, inputs: Vec<NodeId>, span: Span) -> NodeId {
        let keeps_zero = prim.keeps_zero();
        let op = Op::Map {
            prim,
            inputs: inputs.clone(),
        };
        let specs = move |g: &Graph| {
            let first = g.specs(inputs[0]);
            let mut specs = Specs::union_active(first, inputs[1..].iter().map(|n| g.specs(*n).as_ref()));
            if !keeps_zero {
                specs.tensors.iter_mut().for_each(|s| s.active = true);
            }
            Arc::new(specs)
        };
        self.intern(op, specs, span)
    }
}
