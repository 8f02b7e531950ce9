//! Families: everything one pass computes over the same tensor names,
//! shapes and float-ness, expressed over the family's atoms (checkpoints,
//! possibly with `only`/`except` applied, and primitives).
//!
//! Every weights value lowers to `sum_k c_k x_k` over atoms. A measurement
//! `<a, b>` is then `sum_pq a_p b_q G_pq` with `G` the Gram matrix of the
//! basis `x_r, x_k - x_r` for a reference atom `r`: one pass computes `G`,
//! and any number of sweep points, and any coefficients (numbers, sweep
//! variables, other measurements), cost only that sum. The reference is
//! chosen so that the differences the program uses are single basis
//! elements (`ft - base` with `r = base`), which keeps them free of
//! cancellation; `precision` bounds each result's error and sends the
//! few that cannot be trusted to be measured directly.

use super::precision::differences;
use crate::graph::{Graph, Measure, MeasureId, NodeId, Op, ScalarId, Spec};
use std::collections::{BTreeSet, HashMap};

/// A coefficient of a product: a number, or a scalar whose value is known
/// only later (a measurement of the same pass, or a sweep variable).
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Coef {
    Known(f64),
    Scalar(ScalarId),
}

/// A measurement over a family taken from its Gram matrix: its
/// coefficients on the atoms.
#[derive(Clone, Debug)]
pub struct GramProduct {
    pub measure: MeasureId,
    pub a: Vec<Coef>,
    pub b: Vec<Coef>,
}

/// A measurement computed directly: `<sum a_k x_k, sum b_k x_k>` on the
/// atoms. `tag` tells the caller which request it answers.
#[derive(Clone, Debug)]
pub struct DirectProduct {
    pub measure: MeasureId,
    pub tag: usize,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// A measurement to take directly with known coefficients (a Gram result
/// that could not be trusted, at one sweep point or for the whole run).
#[derive(Clone, Debug)]
pub struct Request {
    pub measure: MeasureId,
    pub tag: usize,
    pub a: Vec<(NodeId, f64)>,
    pub b: Vec<(NodeId, f64)>,
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
    /// Atom nodes, sorted.
    pub atoms: Vec<NodeId>,
    /// The reference atom of the Gram basis `x_r, x_k - x_r`.
    pub reference: usize,
    /// Gram entries computed per tensor, `(p, q)` with `p <= q`.
    pub pairs: Vec<(usize, usize)>,
    pub gram: Vec<GramProduct>,
    pub direct: Vec<DirectProduct>,
    pub saves: Vec<SaveSum>,
}

/// `node` as `sum_k c_k atom_k`, coefficients as scalars (`None`: 1).
fn atom_scalars(graph: &Graph, node: NodeId) -> Vec<(NodeId, Option<ScalarId>)> {
    match &graph.node(node).op {
        Op::Lin(terms) => terms.iter().map(|t| (t.node, Some(t.coef))).collect(),
        Op::Leaf(_) | Op::Select { .. } | Op::Map { .. } => vec![(node, None)],
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

/// What a pass asks of its families.
pub struct Work<'a> {
    /// Weight-space measurements (`Dot`), from the Gram matrix or directly.
    pub measures: &'a [MeasureId],
    /// Measurements to take directly, with their coefficients.
    pub requests: &'a [Request],
    /// Saves: `(index into the plan's saves, node)`.
    pub saves: &'a [(usize, NodeId)],
    /// A coefficient's value, if known by this pass.
    pub coef: &'a dyn Fn(ScalarId) -> Option<f64>,
    /// A coefficient's value at some typical point, for choosing the
    /// reference atom (unknowns may answer anything non-zero).
    pub sample: &'a dyn Fn(ScalarId) -> f64,
}

/// Groups a pass's measurements and saves into families.
pub fn build(graph: &Graph, work: &Work) -> Vec<Family> {
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
    for m in work.measures {
        if let Measure::Dot(a, b) = graph.measure(*m) {
            placed.push((family_of(a), Member::Measure(*m, a, b)));
        }
    }
    for (i, request) in work.requests.iter().enumerate() {
        if let Measure::Dot(a, _) = graph.measure(request.measure) {
            placed.push((family_of(a), Member::Request(i)));
        }
    }
    for (save, node) in work.saves {
        placed.push((family_of(*node), Member::Save(*save, *node)));
    }
    for (family, member) in placed {
        members[family].add(member);
    }
    members.into_iter().map(|m| m.into_family(graph, work)).collect()
}

enum Member {
    /// A measurement `<a, b>`.
    Measure(MeasureId, NodeId, NodeId),
    /// Index into `Work::requests`.
    Request(usize),
    Save(usize, NodeId),
}

#[derive(Default)]
struct Members {
    measures: Vec<(MeasureId, NodeId, NodeId)>,
    requests: Vec<usize>,
    saves: Vec<(usize, NodeId)>,
}

type Terms = Vec<(NodeId, Option<ScalarId>)>;

impl Members {
    fn add(&mut self, member: Member) {
        match member {
            Member::Measure(m, a, b) => self.measures.push((m, a, b)),
            Member::Request(i) => self.requests.push(i),
            Member::Save(i, node) => self.saves.push((i, node)),
        }
    }

    fn into_family(self, graph: &Graph, work: &Work) -> Family {
        let sides: Vec<[Terms; 2]> = self
            .measures
            .iter()
            .map(|(_, a, b)| [atom_scalars(graph, *a), atom_scalars(graph, *b)])
            .collect();
        let saved: Vec<Terms> = self.saves.iter().map(|(_, node)| atom_scalars(graph, *node)).collect();
        let requested = self.requests.iter().map(|i| &work.requests[*i]);
        let mut atoms: Vec<NodeId> = sides
            .iter()
            .flatten()
            .chain(&saved)
            .flatten()
            .map(|(n, _)| *n)
            .collect();
        atoms.extend(requested.clone().flat_map(|r| r.a.iter().chain(&r.b).map(|(n, _)| *n)));
        atoms.sort();
        atoms.dedup();
        let position: HashMap<NodeId, usize> = atoms.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let coefs = |terms: &Terms| {
            let mut v = vec![Coef::Known(0.0); atoms.len()];
            for (node, scalar) in terms {
                v[position[node]] = match scalar {
                    None => Coef::Known(1.0),
                    Some(s) => (work.coef)(*s).map_or(Coef::Scalar(*s), Coef::Known),
                };
            }
            v
        };
        let products: Vec<GramProduct> = self
            .measures
            .iter()
            .zip(&sides)
            .map(|((m, _, _), [a, b])| GramProduct {
                measure: *m,
                a: coefs(a),
                b: coefs(b),
            })
            .collect();
        let known = |terms: &Terms| -> Vec<f64> {
            let values = coefs(terms).into_iter().map(|c| match c {
                Coef::Known(v) => v,
                Coef::Scalar(_) => f64::NAN,
            });
            values.collect()
        };
        let on_atoms = |terms: &[(NodeId, f64)]| {
            let mut v = vec![0.0; atoms.len()];
            terms.iter().for_each(|(n, c)| v[position[n]] += c);
            v
        };
        let forced: Vec<DirectProduct> = requested
            .map(|r| DirectProduct {
                measure: r.measure,
                tag: r.tag,
                a: on_atoms(&r.a),
                b: on_atoms(&r.b),
            })
            .collect();
        let saves = self.saves.iter().zip(&saved).map(|((i, _), terms)| SaveSum {
            save: *i,
            coefs: known(terms),
        });
        let mut family = choose_paths(atoms.clone(), products, work.sample);
        family.direct.extend(forced);
        family.saves = saves.collect();
        family
    }
}

/// Gram products where they are cheaper than direct ones (always for
/// coefficients not known yet); direct products on the atoms. Products
/// with known coefficients go direct only when the Gram entries they would
/// add cost more per element than measuring them directly.
fn choose_paths(atoms: Vec<NodeId>, products: Vec<GramProduct>, sample: &dyn Fn(ScalarId) -> f64) -> Family {
    let reference = choose_reference(atoms.len(), &products, sample);
    let all_known = |p: &GramProduct| p.a.iter().chain(&p.b).all(|c| matches!(c, Coef::Known(_)));
    let (known, unknown): (Vec<GramProduct>, Vec<GramProduct>) = products.into_iter().partition(all_known);
    let all_pairs = needed_pairs(known.iter().chain(&unknown), reference);
    let forced_pairs = needed_pairs(unknown.iter(), reference);
    // Work per element: one multiply-add per Gram entry, against one per
    // term of each side of each direct product.
    let direct_cost: usize = known.iter().map(|p| nonzero(&p.a) + nonzero(&p.b) + 1).sum();
    let mut family = Family {
        atoms,
        reference,
        ..Family::default()
    };
    if all_pairs.len() - forced_pairs.len() <= direct_cost {
        family.pairs = all_pairs;
        family.gram = known.into_iter().chain(unknown).collect();
        return family;
    }
    family.pairs = forced_pairs;
    family.direct = known
        .iter()
        .map(|p| DirectProduct {
            measure: p.measure,
            tag: usize::MAX,
            a: p.a.iter().map(known_value).collect(),
            b: p.b.iter().map(known_value).collect(),
        })
        .collect();
    family.gram = unknown;
    family
}

fn known_value(c: &Coef) -> f64 {
    match c {
        Coef::Known(v) => *v,
        Coef::Scalar(_) => f64::NAN,
    }
}

fn nonzero(v: &[Coef]) -> usize {
    v.iter().filter(|c| **c != Coef::Known(0.0)).count()
}

/// Products looked at when choosing the reference: enough to see the
/// program's shape, few enough to stay cheap for elaborated sweeps.
const SAMPLED_PRODUCTS: usize = 1000;

/// The atom whose differences make the products' sides sparsest: for
/// task vectors `ft_i - base`, the shared `base`, so that each task vector
/// is one basis element and their Gram entries are computed, not
/// recovered from cancelling sums. Ties go to the first atom.
fn choose_reference(k: usize, products: &[GramProduct], sample: &dyn Fn(ScalarId) -> f64) -> usize {
    let value = |c: &Coef| match c {
        Coef::Known(v) => *v,
        Coef::Scalar(s) => sample(*s),
    };
    let sides: Vec<Vec<f64>> = products
        .iter()
        .take(SAMPLED_PRODUCTS)
        .flat_map(|p| [p.a.iter().map(value).collect(), p.b.iter().map(value).collect()])
        .collect();
    let cost = |r: usize| -> usize {
        let in_basis = sides.iter().map(|side| differences(side, r));
        in_basis.map(|d| d.iter().filter(|c| **c != 0.0).count()).sum()
    };
    (0..k).min_by_key(|r| cost(*r)).unwrap_or(0)
}

/// The basis elements a side may use with reference `r`: every atom whose
/// coefficient is not known to be 0, and `r` unless the known coefficients
/// sum to 0 (within the rounding of the coefficients themselves).
fn support(side: &[Coef], r: usize) -> Vec<usize> {
    let all_known: Option<Vec<f64>> = side
        .iter()
        .map(|c| match c {
            Coef::Known(v) => Some(*v),
            Coef::Scalar(_) => None,
        })
        .collect();
    match all_known {
        Some(values) => {
            let d = differences(&values, r);
            (0..d.len()).filter(|p| d[*p] != 0.0).collect()
        }
        None => (0..side.len())
            .filter(|p| *p == r || side[*p] != Coef::Known(0.0))
            .collect(),
    }
}

/// The Gram entries the products touch, `(p, q)` with `p <= q`, sorted:
/// those of `<a, b>`, and those of `<a, a>` and `<b, b>`, whose values
/// bound what a nearly orthogonal `<a, b>` may be (see `precision`).
fn needed_pairs<'p>(products: impl IntoIterator<Item = &'p GramProduct>, r: usize) -> Vec<(usize, usize)> {
    let mut pairs = BTreeSet::new();
    for product in products {
        let (a, b) = (support(&product.a, r), support(&product.b, r));
        for (x, y) in [(&a, &b), (&a, &a), (&b, &b)] {
            for &p in x {
                for &q in y {
                    pairs.insert((p.min(q), p.max(q)));
                }
            }
        }
    }
    pairs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(a: &[f64], b: &[f64]) -> GramProduct {
        let coefs = |v: &[f64]| v.iter().map(|x| Coef::Known(*x)).collect();
        GramProduct {
            measure: MeasureId(0),
            a: coefs(a),
            b: coefs(b),
        }
    }

    #[test]
    fn the_shared_base_of_task_vectors_is_the_reference() {
        // Atoms: a, b, base. <a - base, b - base> and ||a - base||.
        let products = [
            product(&[1.0, 0.0, -1.0], &[0.0, 1.0, -1.0]),
            product(&[1.0, 0.0, -1.0], &[1.0, 0.0, -1.0]),
        ];
        let r = choose_reference(3, &products, &|_| 1.0);
        assert_eq!(r, 2);
        // Each task vector is then one basis element: entries (0,0), (0,1),
        // (1,1) only, none with the base itself.
        assert_eq!(needed_pairs(&products, r), vec![(0, 0), (0, 1), (1, 1)]);
        let family = choose_paths(vec![NodeId(0), NodeId(1), NodeId(2)], products.to_vec(), &|_| 1.0);
        assert_eq!((family.gram.len(), family.direct.len()), (2, 0));
    }

    #[test]
    fn unknown_coefficients_keep_the_reference_in_the_support() {
        let side = [Coef::Scalar(ScalarId(0)), Coef::Known(0.0), Coef::Known(-1.0)];
        assert_eq!(support(&side, 2), vec![0, 2]);
        assert_eq!(support(&[Coef::Known(1.0), Coef::Known(-1.0)], 1), vec![0]);
    }
}
