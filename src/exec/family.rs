//! Families: everything one pass computes over the same tensor names,
//! shapes and float-ness, expressed over the family's atoms (checkpoints,
//! possibly with `only`/`except` applied).
//!
//! Every weights value lowers to `sum_k c_k x_k` over atoms. A measurement
//! `<a, b>` is then `sum_pq a_p b_q G_pq` with `G` the Gram matrix of the
//! basis `x_0, x_1 - x_0, x_2 - x_0, ...`: one pass computes `G`, and any
//! number of sweep points costs only that sum. Using differences from a
//! reference atom keeps `||ft - base||^2` free of cancellation; what still
//! cancels is detected after the pass and measured directly instead.

use crate::graph::{Graph, Measure, MeasureId, NodeId, Op, ScalarId, Spec};
use std::collections::HashMap;

/// A measurement over a family: its coefficients on the family's basis.
#[derive(Clone, Debug)]
pub struct Product {
    pub measure: MeasureId,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// A save over a family.
#[derive(Clone, Debug)]
pub struct SaveSum {
    /// Index into the plan's saves.
    pub save: usize,
    pub coefs: Vec<f64>,
}

#[derive(Clone, Debug, Default)]
pub struct Family {
    /// Atom nodes, sorted; atom 0 is the reference of the difference basis.
    pub atoms: Vec<NodeId>,
    /// Whether Gram entries are on the basis `x_0, x_k - x_0` (when Gram
    /// products are computed); direct products and saves are always on the
    /// atoms themselves.
    pub differences: bool,
    /// Gram entries computed per tensor, `(p, q)` with `p <= q`.
    pub pairs: Vec<(usize, usize)>,
    pub gram: Vec<Product>,
    /// Measurements computed directly: `<sum a_p e_p, sum b_q e_q>`.
    pub direct: Vec<Product>,
    pub saves: Vec<SaveSum>,
}

/// `node` as `sum_k c_k atom_k`.
pub fn atom_terms(graph: &Graph, node: NodeId, coef: &dyn Fn(ScalarId) -> f64) -> Vec<(NodeId, f64)> {
    match &graph.node(node).op {
        Op::Lin(terms) => terms.iter().map(|t| (t.node, coef(t.coef))).collect(),
        Op::Leaf(_) | Op::Select { .. } | Op::Map { .. } => vec![(node, 1.0)],
    }
}

/// What a family's members share, tensor by tensor: name, shape, and
/// whether it is computed on (float) or carried.
type FamilyKey = Vec<(String, Vec<usize>, bool)>;

fn family_key(graph: &Graph, node: NodeId) -> FamilyKey {
    let tensors = &graph.specs(node).tensors;
    tensors
        .iter()
        .map(|s: &Spec| (s.name.clone(), s.shape.clone(), s.float))
        .collect()
}

/// Groups a pass's measurements and saves into families. `coef` gives each
/// coefficient's value (structural callers may answer 1 for unknowns).
pub fn build(
    graph: &Graph,
    measures: &[MeasureId],
    saves: &[(usize, NodeId)],
    direct_only: &[MeasureId],
    coef: &dyn Fn(ScalarId) -> f64,
) -> Vec<Family> {
    let mut index: HashMap<FamilyKey, usize> = HashMap::new();
    let mut members: Vec<Members> = Vec::new();
    let mut family_of = |node: NodeId| {
        let next = members.len();
        let i = *index.entry(family_key(graph, node)).or_insert(next);
        if i == next {
            members.push(Members::default());
        }
        i
    };
    let mut placed = Vec::new();
    for m in measures {
        if let Measure::Dot(a, b) = graph.measure(*m) {
            placed.push((family_of(a), Member::Measure(*m, a, b)));
        }
    }
    for (save, node) in saves {
        placed.push((family_of(*node), Member::Save(*save, *node)));
    }
    for (family, member) in placed {
        members[family].add(member);
    }
    members
        .into_iter()
        .map(|m| m.into_family(graph, direct_only, coef))
        .collect()
}

enum Member {
    /// A measurement `<a, b>`.
    Measure(MeasureId, NodeId, NodeId),
    Save(usize, NodeId),
}

#[derive(Default)]
struct Members {
    measures: Vec<(MeasureId, NodeId, NodeId)>,
    saves: Vec<(usize, NodeId)>,
}

impl Members {
    fn add(&mut self, member: Member) {
        match member {
            Member::Measure(m, a, b) => self.measures.push((m, a, b)),
            Member::Save(i, node) => self.saves.push((i, node)),
        }
    }

    fn into_family(self, graph: &Graph, direct_only: &[MeasureId], coef: &dyn Fn(ScalarId) -> f64) -> Family {
        let terms = |node: NodeId| atom_terms(graph, node, coef);
        let sides: Vec<[Vec<(NodeId, f64)>; 2]> =
            self.measures.iter().map(|(_, a, b)| [terms(*a), terms(*b)]).collect();
        let saved: Vec<Vec<(NodeId, f64)>> = self.saves.iter().map(|(_, node)| terms(*node)).collect();
        let mut atoms: Vec<NodeId> = sides
            .iter()
            .flatten()
            .chain(&saved)
            .flatten()
            .map(|(n, _)| *n)
            .collect();
        atoms.sort();
        atoms.dedup();
        let position: HashMap<NodeId, usize> = atoms.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let raw = |terms: &[(NodeId, f64)]| {
            let mut v = vec![0.0; position.len()];
            for (n, c) in terms {
                v[position[n]] += c;
            }
            v
        };
        let products: Vec<(MeasureId, Vec<f64>, Vec<f64>)> = self
            .measures
            .iter()
            .zip(&sides)
            .map(|((m, _, _), [a, b])| (*m, raw(a), raw(b)))
            .collect();
        let saves: Vec<(usize, Vec<f64>)> = self
            .saves
            .iter()
            .zip(&saved)
            .map(|((i, _), terms)| (*i, raw(terms)))
            .collect();
        choose_paths(atoms, products, saves, direct_only)
    }
}

/// Gram products where they are cheaper than direct ones, on the basis of
/// differences; direct products and saves on the atoms.
fn choose_paths(
    atoms: Vec<NodeId>,
    products: Vec<(MeasureId, Vec<f64>, Vec<f64>)>,
    saves: Vec<(usize, Vec<f64>)>,
    direct_only: &[MeasureId],
) -> Family {
    let (forced, candidates): (Vec<_>, Vec<_>) = products.into_iter().partition(|(m, _, _)| direct_only.contains(m));
    let in_differences: Vec<Product> = candidates
        .iter()
        .map(|(measure, a, b)| Product {
            measure: *measure,
            a: to_differences(a),
            b: to_differences(b),
        })
        .collect();
    let pairs = needed_pairs(&in_differences);
    // Work per element: one multiply-add per Gram entry, against one per
    // term of each side of each direct product.
    let direct_cost: usize = candidates.iter().map(|(_, a, b)| nonzero(a) + nonzero(b) + 1).sum();
    let use_gram = !candidates.is_empty() && pairs.len() <= direct_cost;
    // Direct products and saves stay on the atoms: a term with coefficient
    // 0 is then skipped, not multiplied, so an atom holding inf or NaN
    // cannot reach a result that does not use it.
    let direct = |(measure, a, b): &(MeasureId, Vec<f64>, Vec<f64>)| Product {
        measure: *measure,
        a: a.clone(),
        b: b.clone(),
    };
    let mut family = Family {
        atoms,
        differences: use_gram,
        ..Family::default()
    };
    if use_gram {
        family.pairs = pairs;
        family.gram = in_differences;
    } else {
        family.direct = candidates.iter().map(direct).collect();
    }
    family.direct.extend(forced.iter().map(direct));
    family.saves = saves
        .iter()
        .map(|(save, c)| SaveSum {
            save: *save,
            coefs: c.clone(),
        })
        .collect();
    family
}

/// Coefficients on atoms to coefficients on `x_0, x_1 - x_0, ...`:
/// `sum_k c_k x_k = (sum_k c_k) x_0 + sum_{k>0} c_k (x_k - x_0)`.
pub fn to_differences(raw: &[f64]) -> Vec<f64> {
    let mut out = raw.to_vec();
    if let Some(first) = out.first_mut() {
        *first = raw.iter().sum();
    }
    out
}

fn nonzero(v: &[f64]) -> usize {
    v.iter().filter(|c| **c != 0.0).count()
}

/// The Gram entries the products touch, `(p, q)` with `p <= q`, sorted,
/// and the diagonal entry of every basis vector they use, which bounds the
/// rounding error of each result.
fn needed_pairs(products: &[Product]) -> Vec<(usize, usize)> {
    let mut pairs = std::collections::BTreeSet::new();
    for product in products {
        let used = |v: &[f64]| {
            v.iter()
                .enumerate()
                .filter(|(_, c)| **c != 0.0)
                .map(|(p, _)| p)
                .collect::<Vec<_>>()
        };
        let (a, b) = (used(&product.a), used(&product.b));
        for &p in &a {
            for &q in &b {
                pairs.insert((p.min(q), p.max(q)));
            }
        }
        pairs.extend(a.iter().chain(&b).map(|&p| (p, p)));
    }
    pairs.into_iter().collect()
}

/// A family's Gram matrix, dense and symmetric, built once per pass from
/// the entries computed; entries that no product needs are 0.
pub struct Gram {
    k: usize,
    entries: Vec<f64>,
}

impl Gram {
    /// The `k x k` matrix with `values[i]` at `pairs[i]` and its mirror.
    pub fn new(k: usize, pairs: &[(usize, usize)], values: &[f64]) -> Gram {
        let mut entries = vec![0.0; k * k];
        for (&(p, q), &value) in pairs.iter().zip(values) {
            entries[p * k + q] = value;
            entries[q * k + p] = value;
        }
        Gram { k, entries }
    }

    fn get(&self, p: usize, q: usize) -> f64 {
        self.entries[p * self.k + q]
    }
}

/// `sum_pq a_p b_q G_pq`, and the size of its largest possible rounding
/// error's scale, `sum_pq |a_p b_q| sqrt(G_pp G_qq)`.
pub fn evaluate(product: &Product, gram: &Gram) -> (f64, f64) {
    let (mut value, mut scale) = (0.0, 0.0);
    for (p, a) in product.a.iter().enumerate().filter(|(_, a)| **a != 0.0) {
        for (q, b) in product.b.iter().enumerate().filter(|(_, b)| **b != 0.0) {
            value += a * b * gram.get(p, q);
            scale += (a * b).abs() * (gram.get(p, p) * gram.get(q, q)).max(0.0).sqrt();
        }
    }
    (value, scale)
}

/// Whether a Gram result is too cancelled to trust, and is measured again
/// directly: its terms cancel by a factor of more than 1e4.
///
/// A heuristic with margin, not a bound. A Gram entry's rounding error is
/// typically some hundred f64 roundings of `sqrt(G_pp G_qq)` (chunked sums
/// grow their errors like a random walk), about 1e-14 of `scale`; beyond
/// 1e4 of cancellation that would be 1e-10 of the result, a tenth of the
/// 1e-9 relative accuracy tv aims for. It guards the common case of nearly
/// equal models, whose differences are tiny beside the models themselves.
pub fn cancels(value: f64, scale: f64) -> bool {
    scale > 0.0 && scale > 1e4 * value.abs()
}

/// Whether a Gram result must be measured again directly: it cancels, or
/// it is not finite. In the basis of differences every entry involves the
/// reference atom, so one checkpoint's inf or NaN reaches every result of
/// its family; measured directly on the atoms, only results that use it
/// stay non-finite.
pub fn untrusted(value: f64, scale: f64) -> bool {
    !value.is_finite() || !scale.is_finite() || cancels(value, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_read_the_gram_matrix_both_ways() {
        let gram = Gram::new(2, &[(0, 0), (0, 1), (1, 1)], &[4.0, 1.0, 9.0]);
        let product = Product {
            measure: MeasureId(0),
            a: vec![1.0, 2.0],
            b: vec![0.0, 1.0],
        };
        // <x0 + 2 x1, x1> = G01 + 2 G11; scale |1| sqrt(4 * 9) + |2| * 9.
        assert_eq!(evaluate(&product, &gram), (19.0, 24.0));
    }

    #[test]
    fn cancellation_beyond_1e4_is_remeasured() {
        assert!(cancels(1.0, 2e4));
        assert!(cancels(0.0, 1e-300));
        assert!(!cancels(1.0, 5e3));
        assert!(!cancels(0.0, 0.0));
    }
}
