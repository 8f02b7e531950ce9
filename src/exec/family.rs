//! Families: everything one pass computes over the same tensor names and
//! shapes, expressed over the family's atoms (checkpoints, possibly with
//! `only`/`except` applied).
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
    /// Whether the basis is `x_0, x_k - x_0` (when Gram products are
    /// computed) or the atoms themselves.
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
        Op::Leaf(_) | Op::Select { .. } => vec![(node, 1.0)],
    }
}

/// The tensor names and shapes shared by a family.
fn family_key(graph: &Graph, node: NodeId) -> Vec<(String, Vec<usize>)> {
    let tensors = &graph.specs(node).tensors;
    tensors
        .iter()
        .map(|s: &Spec| (s.name.clone(), s.shape.clone()))
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
    let mut index: HashMap<Vec<(String, Vec<usize>)>, usize> = HashMap::new();
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
        if let Measure::Dot(a, _) = graph.measure(*m) {
            placed.push((family_of(a), Member::Measure(*m)));
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
    Measure(MeasureId),
    Save(usize, NodeId),
}

#[derive(Default)]
struct Members {
    measures: Vec<MeasureId>,
    saves: Vec<(usize, NodeId)>,
}

impl Members {
    fn add(&mut self, member: Member) {
        match member {
            Member::Measure(m) => self.measures.push(m),
            Member::Save(i, node) => self.saves.push((i, node)),
        }
    }

    fn into_family(self, graph: &Graph, direct_only: &[MeasureId], coef: &dyn Fn(ScalarId) -> f64) -> Family {
        let mut sums: Vec<Vec<(NodeId, f64)>> = Vec::new();
        for m in &self.measures {
            let [a, b] = graph.measure(*m).nodes()[..] else {
                continue;
            };
            sums.push(atom_terms(graph, a, coef));
            sums.push(atom_terms(graph, b, coef));
        }
        for (_, node) in &self.saves {
            sums.push(atom_terms(graph, *node, coef));
        }
        let mut atoms: Vec<NodeId> = sums.iter().flatten().map(|(n, _)| *n).collect();
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
            .zip(sums.chunks(2))
            .map(|(m, pair)| (*m, raw(&pair[0]), raw(&pair[1])))
            .collect();
        let saves: Vec<(usize, Vec<f64>)> = self
            .saves
            .iter()
            .zip(&sums[2 * self.measures.len()..])
            .map(|((i, _), terms)| (*i, raw(terms)))
            .collect();
        choose_paths(atoms, products, saves, direct_only)
    }
}

/// Gram products where they are cheaper than direct ones; the basis is
/// differences whenever any Gram product is computed.
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
    let basis = |v: &[f64]| if use_gram { to_differences(v) } else { v.to_vec() };
    let direct = |(measure, a, b): &(MeasureId, Vec<f64>, Vec<f64>)| Product {
        measure: *measure,
        a: basis(a),
        b: basis(b),
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
            coefs: basis(c),
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

/// `sum_pq a_p b_q G_pq`, and the size of its largest possible rounding
/// error's scale, `sum_pq |a_p b_q| sqrt(G_pp G_qq)`.
pub fn evaluate(product: &Product, pairs: &[(usize, usize)], gram: &[f64]) -> (f64, f64) {
    let entry: HashMap<(usize, usize), f64> = pairs.iter().copied().zip(gram.iter().copied()).collect();
    let g = |p: usize, q: usize| entry.get(&(p.min(q), p.max(q))).copied().unwrap_or(0.0);
    let (mut value, mut scale) = (0.0, 0.0);
    for (p, a) in product.a.iter().enumerate().filter(|(_, a)| **a != 0.0) {
        for (q, b) in product.b.iter().enumerate().filter(|(_, b)| **b != 0.0) {
            value += a * b * g(p, q);
            scale += (a * b).abs() * (g(p, p) * g(q, q)).max(0.0).sqrt();
        }
    }
    (value, scale)
}

/// Whether a Gram result may be off by more than tv promises (1e-9
/// relative): its terms cancel by a factor of more than 1e5.
pub fn cancels(value: f64, scale: f64) -> bool {
    scale > 0.0 && scale > 1e5 * value.abs()
}
