//! Linear combinations that stay accurate when their terms cancel.
//!
//! `sum_k c_k x_k` for any f64 `c_k` and `x_k`: each product is split into
//! its rounded value and its exact rounding error with one fused
//! multiply-add (`c * x - round(c * x)` is exact in f64, barring overflow
//! and underflow), and the rounded products are added with TwoSum, carrying
//! every rounding error along. The result is within about one rounding of
//! the true value, however much the terms cancel, so `c * ft - c * base` is
//! as accurate as `c * (ft - base)`.

/// `a + b` as the rounded sum and its exact rounding error.
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let v = s - a;
    (s, (a - (s - v)) + (b - v))
}

/// `c * x` as the rounded product and its exact rounding error.
#[inline]
fn two_product(c: f64, x: f64) -> (f64, f64) {
    let p = c * x;
    (p, c.mul_add(x, -p))
}

/// An accumulator of exact terms.
#[derive(Clone, Copy, Default)]
pub struct Accurate {
    sum: f64,
    error: f64,
}

impl Accurate {
    /// Adds `c * x`.
    #[inline]
    pub fn add(&mut self, c: f64, x: f64) {
        let (p, product_error) = two_product(c, x);
        let (s, sum_error) = two_sum(self.sum, p);
        self.sum = s;
        self.error += product_error + sum_error;
    }

    /// The sum; an infinite or NaN sum as IEEE arithmetic gives it (the
    /// error terms of inf are NaN and mean nothing).
    pub fn value(self) -> f64 {
        match self.sum.is_finite() {
            true => self.sum + self.error,
            false => self.sum,
        }
    }
}

/// A sum of many terms with Neumaier's compensation: the rounding error
/// of each addition is carried along, so the result is within about two
/// roundings of the exact sum of the terms, however many there are.
#[derive(Clone, Copy, Default)]
pub struct Compensated {
    sum: f64,
    error: f64,
}

impl Compensated {
    #[inline]
    pub fn add(&mut self, x: f64) {
        let (s, e) = two_sum(self.sum, x);
        self.sum = s;
        self.error += e;
    }

    /// The sum; inf or NaN as IEEE arithmetic gives it.
    pub fn value(self) -> f64 {
        match self.sum.is_finite() {
            true => self.sum + self.error,
            false => self.sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_terms_sum_as_in_ieee_arithmetic() {
        let sum = |terms: &[(f64, f64)]| {
            let mut acc = Accurate::default();
            terms.iter().for_each(|(c, x)| acc.add(*c, *x));
            acc.value()
        };
        assert_eq!(sum(&[(1.0, f64::INFINITY), (2.0, 3.0)]), f64::INFINITY);
        assert_eq!(sum(&[(-1.0, f64::INFINITY)]), f64::NEG_INFINITY);
        assert!(sum(&[(1.0, f64::INFINITY), (-1.0, f64::INFINITY)]).is_nan());
        assert!(sum(&[(1.0, f64::NAN), (2.0, 3.0)]).is_nan());
    }

    /// `c * (x - y)` where `x - y` is exact in f64 (Sterbenz), against the
    /// accurate and the naive `c * x - c * y`.
    fn check(c: f64, x: f64, y: f64) {
        let mut acc = Accurate::default();
        acc.add(c, x);
        acc.add(-c, y);
        let exact = c * (x - y);
        assert!(
            (acc.value() - exact).abs() <= 2.0 * f64::EPSILON * exact.abs(),
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
    fn cancelling_f32_terms_keep_their_difference() {
        check(1.0 / 3.0, 1.000_000_1_f32 as f64, 1.0);
    }

    /// Inputs with all 53 bits of an f64 significand, where splitting the
    /// coefficient alone (Veltkamp) would not make the products exact.
    #[test]
    fn cancelling_f64_terms_keep_their_difference() {
        let x = 0.1f64 + 1.0 / 3.0;
        check(1.0 / 3.0, x, x - 3e-13);
    }

    #[test]
    fn compensated_sums_keep_small_terms() {
        let mut sum = Compensated::default();
        sum.add(1.0);
        for _ in 0..1000 {
            sum.add(1e-17);
        }
        sum.add(-1.0);
        assert!((sum.value() - 1e-14).abs() < 1e-26, "{}", sum.value());
    }

    #[test]
    fn two_product_is_exact() {
        // (1 + u)^2 = 1 + 2u + u^2: the last term is below the product's ulp.
        for u in [2f64.powi(-30), 2f64.powi(-52)] {
            assert_eq!(two_product(1.0 + u, 1.0 + u), (1.0 + 2.0 * u, u * u));
        }
    }
}
