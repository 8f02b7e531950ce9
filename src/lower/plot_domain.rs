//! What a figure's check knows of a sweep variable where an eval is
//! measured: its values as the report shows them (or, for a range too long
//! to list, its ends), to tell whether rows could collide at one point of
//! the figure's axes.

use super::domain::Values;
use super::Value;
use crate::diag::Span;
use crate::graph::scalar::Scalars;
use std::collections::BTreeSet;

/// Ranges with more values than this are kept as their ends.
const MAX_LISTED: usize = 10_000;

#[derive(Clone, Debug)]
pub enum Domain {
    /// The values as the report shows them, and the first one listed twice.
    Listed {
        shown: BTreeSet<String>,
        repeated: Option<String>,
    },
    /// A long range: its smallest and largest value and how many.
    Span { lo: f64, hi: f64, count: usize },
    /// Its domain had an error (reported already).
    Unknown,
}

impl Domain {
    pub fn of(values: Option<&Values>, scalars: &Scalars) -> Domain {
        match values {
            None => Domain::Unknown,
            Some(Values::Range(r)) if r.count > MAX_LISTED => {
                let (a, b) = (r.value(0), r.value(r.count - 1));
                Domain::Span {
                    lo: a.min(b),
                    hi: a.max(b),
                    count: r.count,
                }
            }
            Some(Values::Range(r)) => listed((0..r.count).map(|i| Some(crate::report::format_number(r.value(i))))),
            Some(Values::List(items)) => listed(items.iter().map(|v| match v {
                Value::Num(s) => scalars.known(*s).map(crate::report::format_number),
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })),
        }
    }

    /// One value only: the variable does not vary where it is.
    pub fn is_single(&self) -> bool {
        match self {
            Domain::Listed { shown, .. } => shown.len() == 1,
            Domain::Span { count, .. } => *count == 1,
            Domain::Unknown => true,
        }
    }

    pub fn repeated(&self) -> Option<&str> {
        match self {
            Domain::Listed { repeated, .. } => repeated.as_deref(),
            _ => None,
        }
    }

    /// No value in common (unknown domains are given the benefit of the
    /// doubt: their error is reported already).
    pub fn is_disjoint(&self, other: &Domain) -> bool {
        match (self, other) {
            (Domain::Unknown, _) | (_, Domain::Unknown) => true,
            (Domain::Listed { shown: a, .. }, Domain::Listed { shown: b, .. }) => a.is_disjoint(b),
            _ => match (self.ends(), other.ends()) {
                (Some((a0, a1)), Some((b0, b1))) => a1 < b0 || b1 < a0,
                _ => false,
            },
        }
    }

    fn ends(&self) -> Option<(f64, f64)> {
        match self {
            Domain::Span { lo, hi, .. } => Some((*lo, *hi)),
            Domain::Listed { shown, .. } => {
                let numbers: Option<Vec<f64>> = shown.iter().map(|s| s.parse().ok()).collect();
                let numbers = numbers?;
                let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                Some((lo, hi))
            }
            Domain::Unknown => None,
        }
    }

    /// The values of both (a sweep inside another is lowered once per
    /// outer point, and its domain may change with it).
    pub fn merge(&mut self, other: &Domain) {
        *self = match (std::mem::replace(self, Domain::Unknown), other) {
            (
                Domain::Listed { mut shown, repeated },
                Domain::Listed {
                    shown: more,
                    repeated: again,
                },
            ) => {
                shown.extend(more.iter().cloned());
                Domain::Listed {
                    shown,
                    repeated: repeated.or_else(|| again.clone()),
                }
            }
            (Domain::Unknown, other) => other.clone(),
            (mine, Domain::Unknown) => mine,
            (mine, theirs) => match (mine.ends(), theirs.ends()) {
                (Some((a0, a1)), Some((b0, b1))) => Domain::Span {
                    lo: a0.min(b0),
                    hi: a1.max(b1),
                    count: usize::MAX,
                },
                _ => Domain::Span {
                    lo: f64::NEG_INFINITY,
                    hi: f64::INFINITY,
                    count: usize::MAX,
                },
            },
        };
    }
}

fn listed(values: impl Iterator<Item = Option<String>>) -> Domain {
    let mut shown = BTreeSet::new();
    let mut repeated = None;
    for value in values.flatten() {
        if !shown.insert(value.clone()) && repeated.is_none() {
            repeated = Some(value);
        }
    }
    Domain::Listed { shown, repeated }
}

/// An eval statement with the sweep variables around it, outermost first.
#[derive(Clone, Debug)]
pub struct Site {
    pub span: Span,
    pub vars: Vec<(String, Domain)>,
}

impl Site {
    pub fn domain(&self, var: &str) -> Option<&Domain> {
        self.vars.iter().find(|(v, _)| v == var).map(|(_, d)| d)
    }

    /// Records another visit of the same statement.
    pub fn merge(&mut self, vars: &[(String, Domain)]) {
        for (var, domain) in vars {
            match self.vars.iter_mut().find(|(v, _)| v == var) {
                Some((_, mine)) => mine.merge(domain),
                None => self.vars.push((var.clone(), domain.clone())),
            }
        }
    }
}
