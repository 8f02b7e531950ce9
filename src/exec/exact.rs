//! Linear combinations that stay accurate when their terms cancel.
//!
//! `sum_k c_k x_k` with f32 inputs: each coefficient is split into a high
//! and a low half of at most 27 significant bits (Veltkamp), so each half
//! times an f32 (24 bits) is exact in f64; the exact products are added with
//! TwoSum, carrying the rounding errors along. The result is within about
//! one rounding of the true value, however much the terms cancel, so
//! `c * ft - c * base` is as accurate as `c * (ft - base)`.

/// A coefficient split so that `hi * x` and `lo * x` are exact for f32 `x`.
#[derive(Clone, Copy, Debug)]
pub struct Split {
    hi: f64,
    lo: f64,
}

impl Split {
    pub fn new(c: f64) -> Split {
        // 2^27 + 1: splits a 53-bit significand into 26 and 27 bits.
        const FACTOR: f64 = 134_217_729.0;
        let t = FACTOR * c;
        let hi = if t.is_finite() { t - (t - c) } else { c };
        Split { hi, lo: c - hi }
    }
}

/// `a + b` as the rounded sum and its exact rounding error.
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let v = s - a;
    (s, (a - (s - v)) + (b - v))
}

/// An accumulator of exact terms.
#[derive(Clone, Copy, Default)]
pub struct Accurate {
    sum: f64,
    error: f64,
}

impl Accurate {
    /// Adds `c * x` for an f32-representable `x`.
    #[inline]
    pub fn add(&mut self, c: Split, x: f64) {
        for part in [c.hi * x, c.lo * x] {
            let (s, e) = two_sum(self.sum, part);
            self.sum = s;
            self.error += e;
        }
    }

    pub fn value(self) -> f64 {
        self.sum + self.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_terms_keep_their_difference() {
        let c = 1.0 / 3.0;
        let (x, y) = (1.000_000_1_f32 as f64, 1.0_f64);
        let mut acc = Accurate::default();
        acc.add(Split::new(c), x);
        acc.add(Split::new(-c), y);
        // Exact: c * (x - y), with x - y exact in f64.
        let exact = c * (x - y);
        assert!(
            (acc.value() - exact).abs() <= 1e-16 * exact.abs(),
            "{} vs {exact}",
            acc.value()
        );
        let naive = c * x - c * y;
        assert!(
            (naive - exact).abs() > 1e-12 * exact.abs(),
            "the naive sum should lose digits here"
        );
    }

    #[test]
    fn split_halves_add_up() {
        for c in [0.1, -3.7e12, 1.0 / 7.0, 5e-300, 0.0] {
            let s = Split::new(c);
            assert_eq!(s.hi + s.lo, c);
        }
    }
}
