//! How accurate a measurement taken from a Gram matrix is, and when it
//! must be measured again directly.
//!
//! A Gram entry `G_pq = sum_i e_p,i e_q,i` is computed with an error of at
//! most `entry_error * sum_i |e_p,i e_q,i|`, which Cauchy-Schwarz bounds by
//! `entry_error * sqrt(G_pp G_qq)`. A result `sum_pq a_p b_q G_pq` is then
//! off by at most `(entry_error + (k^2 + 8) u) * S` with
//! `S = sum_pq |a_p b_q| sqrt(G_pp G_qq)` (the last term covers the sum of
//! `k^2` terms and the coefficients' change of basis). tv promises every
//! dot product (so every norm, distance and cosine numerator) to within
//! `RELATIVE` of its value, or, for nearly orthogonal vectors, within
//! `ABSOLUTE * ||a|| ||b||`: as good as summing the products directly in
//! f64 could promise. A Gram result whose bound meets neither is measured
//! again directly; with the reference atom chosen well that is only for
//! differences of nearly equal models.

/// The unit roundoff of f64.
const U: f64 = f64::EPSILON / 2.0;

/// Promised relative error of a measured dot product.
pub const RELATIVE: f64 = 1e-9;

/// Promised absolute error of a dot product of nearly orthogonal vectors,
/// relative to `||a|| ||b||` (so, of a cosine).
pub const ABSOLUTE: f64 = 1e-12;

/// A coefficient of the reference atom smaller than this times the sum of
/// the coefficients' magnitudes is rounding noise of the coefficients' own
/// arithmetic (`0.1 * ta + 0.2 * tb` leaves `-0.30000000000000004` on the
/// base, which no longer cancels exactly): it is treated as 0.
pub const NOISE: f64 = 8.0 * U;

/// Coefficients on the atoms to coefficients on `x_r, x_k - x_r`:
/// `sum_k c_k x_k = (sum_k c_k) x_r + sum_{k != r} c_k (x_k - x_r)`. The
/// sum is computed accurately; rounding noise is 0 (see `NOISE`).
pub fn differences(raw: &[f64], r: usize) -> Vec<f64> {
    let mut out = vec![0.0; raw.len()];
    differences_into(raw, r, &mut out);
    out
}

fn differences_into(raw: &[f64], r: usize, out: &mut [f64]) {
    out.copy_from_slice(raw);
    if r >= out.len() {
        return;
    }
    let mut sum = super::exact::Compensated::default();
    raw.iter().for_each(|c| sum.add(*c));
    let magnitude: f64 = raw.iter().map(|c| c.abs()).sum();
    let total = sum.value();
    // (Never for infinite coefficients: inf is not noise.)
    out[r] = match magnitude.is_finite() && total.abs() <= NOISE * magnitude {
        true => 0.0,
        false => total,
    };
}

/// A family's Gram matrix on the basis `x_r, x_k - x_r`, dense and
/// symmetric, with which entries were computed and how accurately.
#[derive(Debug)]
pub struct GramMatrix {
    k: usize,
    reference: usize,
    entries: Vec<f64>,
    computed: Vec<bool>,
    /// Error bound of each entry relative to `sum |e_p e_q|`.
    entry_error: f64,
}

impl GramMatrix {
    /// The `k x k` matrix with `values[i]` at `pairs[i]` and its mirror.
    pub fn new(k: usize, reference: usize, pairs: &[(usize, usize)], values: &[f64], entry_error: f64) -> Self {
        let mut entries = vec![0.0; k * k];
        let mut computed = vec![false; k * k];
        for (&(p, q), &value) in pairs.iter().zip(values) {
            for i in [p * k + q, q * k + p] {
                entries[i] = value;
                computed[i] = true;
            }
        }
        GramMatrix {
            k,
            reference,
            entries,
            computed,
            entry_error,
        }
    }

    /// `sum_pq a_p b_q G_pq` and `S`; `None` if it needs an entry that
    /// was not computed.
    fn form(&self, a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
        let (mut value, mut scale) = (0.0, 0.0);
        for (p, x) in a.iter().enumerate().filter(|(_, x)| **x != 0.0) {
            for (q, y) in b.iter().enumerate().filter(|(_, y)| **y != 0.0) {
                let (pq, pp, qq) = (p * self.k + q, p * self.k + p, q * self.k + q);
                if !(self.computed[pq] && self.computed[pp] && self.computed[qq]) {
                    return None;
                }
                value += x * y * self.entries[pq];
                scale += (x * y).abs() * (self.entries[pp].max(0.0) * self.entries[qq].max(0.0)).sqrt();
            }
        }
        Some((value, scale))
    }

    /// The error bound of a result of scale `S`.
    fn bound(&self, scale: f64) -> f64 {
        let k = self.k as f64;
        1.01 * (self.entry_error + (k * k + 8.0) * U) * scale
    }

    /// `<sum a_k x_k, sum b_k x_k>` for coefficients on the atoms, if its
    /// error bound keeps the promise; `None` if it must be measured
    /// directly (it cancels too much, or is not finite: on the basis of
    /// differences one atom's inf reaches entries that a direct
    /// measurement would not touch).
    pub fn evaluate(&self, a: &[f64], b: &[f64]) -> Option<f64> {
        // Sweeps evaluate this at every point: small families stay on the stack.
        const SMALL: usize = 16;
        if a.len() > SMALL {
            return self.evaluate_in(&differences(a, self.reference), &differences(b, self.reference));
        }
        let (mut da, mut db) = ([0.0; SMALL], [0.0; SMALL]);
        differences_into(a, self.reference, &mut da[..a.len()]);
        differences_into(b, self.reference, &mut db[..b.len()]);
        self.evaluate_in(&da[..a.len()], &db[..b.len()])
    }

    fn evaluate_in(&self, a: &[f64], b: &[f64]) -> Option<f64> {
        let (value, scale) = self.form(a, b)?;
        if !value.is_finite() || !scale.is_finite() {
            return None;
        }
        let bound = self.bound(scale);
        if bound <= RELATIVE * value.abs() {
            return Some(value);
        }
        // Nearly orthogonal: the error is small beside ||a|| ||b||, if
        // those norms are themselves accurate.
        let norm = |v: &[f64]| {
            let (n, s) = self.form(v, v)?;
            (n > 0.0 && n.is_finite() && self.bound(s) <= 0.01 * n).then_some(n)
        };
        let (na, nb) = (norm(a)?, norm(b)?);
        (bound <= ABSOLUTE * (na * nb).sqrt()).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_sum_onto_the_reference() {
        assert_eq!(differences(&[1.0, 2.0, -3.0], 0), vec![0.0, 2.0, -3.0]);
        assert_eq!(differences(&[1.0, 2.0, -1.0], 2), vec![1.0, 2.0, 2.0]);
        // 0.1 + 0.2 - fl(0.1 + 0.2) is rounding noise of the coefficients.
        assert_eq!(differences(&[0.1, 0.2, -(0.1 + 0.2)], 2)[2], 0.0);
        assert_eq!(differences(&[f64::INFINITY], 0), vec![f64::INFINITY]);
    }

    #[test]
    fn nearly_orthogonal_results_are_trusted() {
        // Basis: base (r = 0), t1, t2 with ||t|| = 1, <t1, t2> = 1e-6,
        // ||base||^2 = 1e4.
        let pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];
        let gram = GramMatrix::new(3, 0, &pairs, &[1e4, 0.5, 0.3, 1.0, 1e-6, 1.0], 1e-14);
        // Atoms base, ft1, ft2: <ft1 - base, ft2 - base>.
        assert_eq!(gram.evaluate(&[-1.0, 1.0, 0.0], &[-1.0, 0.0, 1.0]), Some(1e-6));
        // Exact zeros are zero, without a direct measurement.
        assert_eq!(gram.evaluate(&[0.0; 3], &[-1.0, 0.0, 1.0]), Some(0.0));
    }

    #[test]
    fn cancelling_and_non_finite_results_are_measured_directly() {
        // Basis base, t1, t2 with t1 and t2 nearly equal: ||ft1 - ft2||^2
        // from the entries cancels completely.
        let all = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];
        let gram = GramMatrix::new(3, 0, &all, &[1e4, 0.5, 0.5, 1.0, 1.0 - 1e-13, 1.0], 1e-14);
        assert_eq!(gram.evaluate(&[0.0, 1.0, -1.0], &[0.0, 1.0, -1.0]), None);
        let pairs = [(0, 0), (0, 1), (1, 1)];
        let broken = GramMatrix::new(2, 0, &pairs, &[f64::INFINITY, 1.0, 1.0], 1e-14);
        assert_eq!(broken.evaluate(&[1.0, 0.0], &[0.0, 1.0]), None);
        // An entry that was not computed is never read as 0.
        let partial = GramMatrix::new(2, 0, &[(0, 0)], &[1.0], 1e-14);
        assert_eq!(partial.evaluate(&[0.0, 1.0], &[0.0, 1.0]), None);
    }
}
