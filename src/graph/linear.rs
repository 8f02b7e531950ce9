//! Linear combinations. Built flattened, so `theta + a*tau_j + b*(tau_k -
//! tau_j)` with `tau = ft - base` is one weighted sum of three checkpoints:
//! one fused pass over its inputs, and the shape the Gram path works on.

use super::{Graph, NodeId, Op, ScalarId, Specs};
use crate::diag::Span;
use crate::syntax::ast::BinOp;

/// `coef * node`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Term {
    pub coef: ScalarId,
    pub node: NodeId,
}

impl Graph {
    /// `sum_i c_i * x_i`. The caller has checked the terms' tensors agree.
    pub fn lin(&mut self, terms: &[Term], span: Span) -> NodeId {
        let mut flat: Vec<Term> = Vec::new();
        for term in terms {
            match &self.node(term.node).op {
                Op::Lin(inner) => {
                    for t in inner.clone() {
                        let coef = self.scalars.binary(BinOp::Mul, term.coef, t.coef);
                        self.push_term(&mut flat, Term { coef, node: t.node });
                    }
                }
                _ => self.push_term(&mut flat, *term),
            }
        }
        // 1 * x -> x
        if let [only] = flat.as_slice() {
            if self.scalars.known(only.coef) == Some(1.0) {
                return only.node;
            }
        }
        // Usually every term is active wherever the first is: then the sum
        // shares the first term's specs instead of copying every tensor name.
        let specs = |g: &Graph| {
            let first = g.specs(flat[0].node);
            let rest = || flat[1..].iter().map(|t| g.specs(t.node).as_ref());
            let covered = |s: &Specs| s.tensors.iter().zip(&first.tensors).all(|(t, f)| f.active || !t.active);
            if rest().all(covered) {
                first.clone()
            } else {
                std::sync::Arc::new(Specs::union_active(first, rest()))
            }
        };
        let op = Op::Lin(flat.clone());
        self.intern(op, specs, span)
    }

    /// `c * x`.
    pub fn scale(&mut self, coef: ScalarId, node: NodeId, span: Span) -> NodeId {
        self.lin(&[Term { coef, node }], span)
    }

    /// Adds a term, merging it into an earlier term of the same node
    /// (`x + x -> 2x`), which keeps that earlier position.
    fn push_term(&mut self, terms: &mut Vec<Term>, term: Term) {
        match terms.iter_mut().find(|t| t.node == term.node) {
            Some(existing) => existing.coef = self.scalars.binary(BinOp::Add, existing.coef, term.coef),
            None => terms.push(term),
        }
    }
}
