//! Sweeps lowered once for all their points: the report's rows of such a
//! sweep are not elaborated while the program is lowered, but produced
//! point by point once the measurements are made, from one compiled
//! formula per eval (see `exec::points`). Lowering time and memory do not
//! depend on the number of points.

use crate::graph::ScalarId;

/// The values of a sweep variable, without listing a range's values.
#[derive(Clone, Debug)]
pub enum SweepDomain {
    Values(Vec<f64>),
    Range(Range),
}

/// `start + i * step` for `i < count`, each rounded to `places` decimals
/// (see `lower::range_values`), computed when asked for.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Range {
    pub start: f64,
    pub step: f64,
    pub count: usize,
    /// Decimals to round to; `None` for values too small for fixed decimals.
    pub places: Option<usize>,
}

impl Range {
    pub fn value(&self, i: usize) -> f64 {
        let x = self.start + i as f64 * self.step;
        match self.places {
            // Through the decimal text: the f64 nearest to that decimal.
            Some(places) => format!("{x:.places$}").parse().unwrap_or(x),
            None => x,
        }
    }
}

impl SweepDomain {
    pub fn len(&self) -> usize {
        match self {
            SweepDomain::Values(v) => v.len(),
            SweepDomain::Range(r) => r.count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn value(&self, i: usize) -> f64 {
        match self {
            SweepDomain::Values(v) => v[i],
            SweepDomain::Range(r) => r.value(i),
        }
    }
}

/// A sweep variable of a block: `Scalar::Var(id)` in its formulas.
#[derive(Clone, Debug)]
pub struct SweptVar {
    pub name: String,
    pub id: u32,
    pub domain: SweepDomain,
}

/// One sweep statement of a block, run over the cartesian product of its
/// variables (the first slowest): its evals make one row per point, and
/// its nested sweeps their own rows, in statement order.
#[derive(Clone, Debug, Default)]
pub struct Level {
    pub vars: Vec<SweptVar>,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug)]
pub enum Item {
    /// An eval of this level's rows (`None`: it failed to lower).
    Eval(String, Option<ScalarId>),
    Sweep(Level),
}

impl Level {
    /// Points of this level alone.
    pub fn points(&self) -> u64 {
        self.vars.iter().map(|v| v.domain.len() as u64).product()
    }

    /// Innermost points, counting nested sweeps.
    pub fn innermost_points(&self) -> u64 {
        let nested: Vec<&Level> = self.nested().collect();
        match nested.is_empty() {
            true => self.points(),
            false => self.points() * nested.iter().map(|l| l.innermost_points()).sum::<u64>(),
        }
    }

    pub fn nested(&self) -> impl Iterator<Item = &Level> {
        self.items.iter().filter_map(|i| match i {
            Item::Sweep(level) => Some(level),
            Item::Eval(..) => None,
        })
    }

    /// This level's evals, in order.
    pub fn evals(&self) -> impl Iterator<Item = (&str, Option<ScalarId>)> {
        self.items.iter().filter_map(|i| match i {
            Item::Eval(name, scalar) => Some((name.as_str(), *scalar)),
            Item::Sweep(_) => None,
        })
    }

    /// Every eval's scalar, this level's and nested ones.
    pub fn scalars(&self, out: &mut Vec<ScalarId>) {
        for item in &self.items {
            match item {
                Item::Eval(_, scalar) => out.extend(scalar),
                Item::Sweep(level) => level.scalars(out),
            }
        }
    }

    /// Every eval's name, in the order they first appear.
    pub fn eval_names(&self, out: &mut Vec<String>) {
        for item in &self.items {
            match item {
                Item::Eval(name, _) if !out.contains(name) => out.push(name.clone()),
                Item::Eval(..) => {}
                Item::Sweep(level) => level.eval_names(out),
            }
        }
    }
}

/// A sweep lowered once, with the values of the elaborated sweeps around
/// it, which every one of its rows shows.
#[derive(Clone, Debug)]
pub struct SweepBlock {
    pub outer: Vec<(String, String)>,
    pub level: Level,
    /// Its variables' ids are `first_var..first_var + var_count`.
    pub first_var: u32,
    pub var_count: u32,
}
