//! Sweep domains: lists and ranges, with range values printed the way a
//! person wrote them (`0.3`, never `0.30000000000000004`).

use super::env::Env;
use super::{Lowerer, Value};
use crate::diag::Diagnostic;
pub use crate::report::block::Range;
use crate::syntax::ast::{Binding, Domain};

/// Decimal places in the shortest representation of `x` (`0.25` -> 2,
/// `1e-3` -> 3, `2` -> 0).
fn decimals(x: f64) -> usize {
    let text = format!("{:e}", x.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let fraction = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i64);
    (fraction - exponent).max(0) as usize
}

/// Why a range has no values, or could not be built.
#[derive(Debug, PartialEq)]
pub enum RangeError {
    ZeroStep,
    NotFinite,
    Empty,
    TooLarge(f64),
}

/// The most points a sweep elaborated point by point (see `symbolic`), with
/// the sweeps around it, may have. Each point is lowered (checked and
/// built) on its own, which takes some hundred bytes and a few
/// microseconds per statement, so ten million points stay within a few
/// GiB; more are surely a mistake.
pub const MAX_POINTS: f64 = 1e7;

/// The most points a sweep lowered once for all its points may have: its
/// cost per point is a few formulas, so the limit is the report's size.
pub const MAX_SYMBOLIC_POINTS: f64 = 1e8;

/// A sweep variable's values, as lowered: a range is not listed.
pub enum Values {
    List(Vec<Value>),
    Range(Range),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::List(items) => items.len(),
            Values::Range(range) => range.count,
        }
    }
}

/// The values `start + i*step` in `[start, end]` (or `[start, end)`), each
/// rounded to the decimals of `start` and `step`, so that they are the
/// numbers a person means. Descending ranges take a negative step.
pub fn range_values(start: f64, end: f64, step: f64, inclusive: bool) -> Result<Vec<f64>, RangeError> {
    let range = range(start, end, step, inclusive)?;
    Ok((0..range.count).map(|i| range.value(i)).collect())
}

/// The range `start..end` (or `..=`) by `step`, its values computed when
/// asked for.
pub fn range(start: f64, end: f64, step: f64, inclusive: bool) -> Result<Range, RangeError> {
    if !(start.is_finite() && end.is_finite() && step.is_finite()) {
        return Err(RangeError::NotFinite);
    }
    if step == 0.0 {
        return Err(RangeError::ZeroStep);
    }
    let places = decimals(start).max(decimals(step));
    // A relative slack so `0..=1 step 0.1` ends at 1 despite rounding.
    let span = (end - start) / step;
    let slack = 1e-9 * span.abs().max(1.0);
    let last = if inclusive {
        (span + slack).floor()
    } else {
        (span - slack).ceil() - 1.0
    };
    if last < 0.0 {
        return Err(RangeError::Empty);
    }
    if last + 1.0 > MAX_SYMBOLIC_POINTS {
        return Err(RangeError::TooLarge(last + 1.0));
    }
    // Rounding to decimal places makes `0.1 * 3` print as `0.3`; it would
    // erase values too small for fixed decimals, which stay as computed.
    Ok(Range {
        start,
        step,
        count: last as usize + 1,
        places: (places <= 15).then_some(places),
    })
}

impl Lowerer<'_> {
    /// The values a sweep variable takes; `None` after reporting why not.
    pub(super) fn domain(&mut self, env: &mut Env, binding: &Binding) -> Option<Values> {
        match &binding.domain {
            Domain::List(expr) => self.list_domain(env, expr).map(Values::List),
            Domain::Range {
                start,
                end,
                inclusive,
                step,
            } => {
                let a = self.known_number(env, start, "a range bound");
                let b = self.known_number(env, end, "a range bound");
                let s = match step {
                    Some(step) => self.known_number(env, step, "a range step"),
                    None => Some(1.0),
                };
                let span = start.span.to(step.as_ref().map_or(end.span, |s| s.span));
                match range(a?, b?, s?, *inclusive) {
                    Ok(range) => Some(Values::Range(range)),
                    Err(e) => {
                        self.error(range_error(e, span, &binding.var.node));
                        None
                    }
                }
            }
        }
    }

    /// A domain's values one by one, as the program's numbers.
    pub(super) fn listed(&mut self, values: Values) -> Vec<Value> {
        match values {
            Values::List(items) => items,
            Values::Range(range) => (0..range.count)
                .map(|i| Value::Num(self.graph.scalars.constant(range.value(i))))
                .collect(),
        }
    }

    fn list_domain(&mut self, env: &mut Env, expr: &crate::syntax::ast::Expr) -> Option<Vec<Value>> {
        let items = match self.expr(env, expr) {
            Value::List(items) => items,
            Value::Error => return None,
            other => {
                self.wrong_type(expr.span, "a sweep domain", "a list or a range", &other);
                return None;
            }
        };
        if items.is_empty() {
            let diag = Diagnostic::new("tv::empty_domain", "the sweep domain is empty")
                .at(expr.span, "no values")
                .help("a sweep needs at least one value");
            self.error(diag);
            return None;
        }
        for item in &items {
            match item {
                Value::Num(n) if self.graph.scalars.known(*n).is_none() => {
                    self.not_known_yet(expr.span, "swept over");
                    return None;
                }
                Value::Num(_) | Value::Str(_) => {}
                Value::Error => return None,
                other => {
                    self.wrong_type(expr.span, "a sweep value", "a number or a string", other);
                    return None;
                }
            }
        }
        Some(items)
    }
}

fn range_error(error: RangeError, span: crate::diag::Span, var: &str) -> Diagnostic {
    let (code, message, help) = match error {
        RangeError::Empty => (
            "tv::empty_domain",
            format!("the range of `{var}` is empty"),
            "`A..=B` includes B, `A..B` does not; a descending range needs a negative step".to_string(),
        ),
        RangeError::ZeroStep => (
            "tv::bad_range",
            "a range step of 0".to_string(),
            "the step must be non-zero: positive to count up, negative to count down".to_string(),
        ),
        RangeError::NotFinite => (
            "tv::bad_range",
            "a range bound or step is not finite".to_string(),
            "bounds and step must be ordinary numbers".to_string(),
        ),
        RangeError::TooLarge(n) => (
            "tv::bad_range",
            format!("the range of `{var}` has {n} points"),
            "at most 100 million: use a larger step".to_string(),
        ),
    };
    Diagnostic::new(code, message).at(span, "this range").help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_places() {
        assert_eq!(decimals(0.25), 2);
        assert_eq!(decimals(1e-3), 3);
        assert_eq!(decimals(2.0), 0);
        assert_eq!(decimals(2012.0), 0);
        assert_eq!(decimals(0.1), 1);
    }

    #[test]
    fn tenths_are_exact_decimals() {
        let v = range_values(0.0, 1.0, 0.1, true).unwrap();
        assert_eq!(v.len(), 11);
        assert_eq!(v[3], 0.3);
        assert_eq!(v[10], 1.0);
        assert_eq!(v[7], 0.7);
    }

    #[test]
    fn exclusive_and_integer_ranges() {
        assert_eq!(
            range_values(2012.0, 2016.0, 1.0, true).unwrap(),
            vec![2012.0, 2013.0, 2014.0, 2015.0, 2016.0]
        );
        assert_eq!(range_values(0.0, 3.0, 1.0, false).unwrap(), vec![0.0, 1.0, 2.0]);
        assert_eq!(range_values(0.0, 1.0, 0.25, false).unwrap(), vec![0.0, 0.25, 0.5, 0.75]);
        assert_eq!(range_values(1.0, 0.0, -0.5, true).unwrap(), vec![1.0, 0.5, 0.0]);
    }

    #[test]
    fn tiny_steps_are_not_rounded_away() {
        let v = range_values(1e-20, 5e-20, 1e-20, true).unwrap();
        assert_eq!(v.len(), 5);
        assert!(v.iter().all(|x| *x > 0.0));
        assert!(v.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn empty_and_bad_ranges() {
        assert_eq!(range_values(1.0, 1.0, 1.0, false), Err(RangeError::Empty));
        assert_eq!(range_values(2.0, 1.0, 1.0, true), Err(RangeError::Empty));
        assert_eq!(range_values(0.0, 1.0, 0.0, true), Err(RangeError::ZeroStep));
        assert_eq!(range_values(0.0, 1.0, f64::NAN, true), Err(RangeError::NotFinite));
    }
}
