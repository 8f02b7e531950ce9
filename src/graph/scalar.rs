//! Numbers that may depend on measurements. `cosine(a, b) * 2` is not known
//! until the tensors are read, so numbers are nodes too: constants fold at
//! once, the rest are evaluated after execution.

use super::MeasureId;
use crate::syntax::ast::BinOp;
use std::collections::HashMap;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScalarId(pub u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// A constant, by its bit pattern so it can be hashed.
    Const(u64),
    Measure(MeasureId),
    /// A sweep variable lowered once for all its values (see
    /// `lower::symbolic`): known only at each point of the report.
    Var(u32),
    Neg(ScalarId),
    Sqrt(ScalarId),
    Binary(BinOp, ScalarId, ScalarId),
}

/// Hash-consed arena of scalars.
#[derive(Default, Debug)]
pub struct Scalars {
    items: Vec<Scalar>,
    index: HashMap<Scalar, ScalarId>,
    /// Whether each scalar depends on a sweep variable.
    symbolic: Vec<bool>,
}

impl Scalars {
    fn intern(&mut self, scalar: Scalar) -> ScalarId {
        let symbolic = match scalar {
            Scalar::Const(_) | Scalar::Measure(_) => false,
            Scalar::Var(_) => true,
            Scalar::Neg(x) | Scalar::Sqrt(x) => self.is_symbolic(x),
            Scalar::Binary(_, a, b) => self.is_symbolic(a) || self.is_symbolic(b),
        };
        self.intern_flagged(scalar, symbolic)
    }

    /// Interns `scalar`, depending on a sweep variable as `symbolic` says.
    fn intern_flagged(&mut self, scalar: Scalar, symbolic: bool) -> ScalarId {
        if let Some(id) = self.index.get(&scalar) {
            return *id;
        }
        let id = ScalarId(self.items.len() as u32);
        self.items.push(scalar);
        self.symbolic.push(symbolic);
        self.index.insert(scalar, id);
        id
    }

    /// Whether `id` depends on a sweep variable, so that it has a value
    /// only at each point of a sweep.
    pub fn is_symbolic(&self, id: ScalarId) -> bool {
        self.symbolic[id.0 as usize]
    }

    /// The scalar for sweep variable `var`.
    pub fn var(&mut self, var: u32) -> ScalarId {
        self.intern(Scalar::Var(var))
    }

    pub fn get(&self, id: ScalarId) -> Scalar {
        self.items[id.0 as usize]
    }

    pub fn constant(&mut self, value: f64) -> ScalarId {
        self.intern(Scalar::Const(value.to_bits()))
    }

    /// The scalar of a measurement; `symbolic` when its weights depend on
    /// a sweep variable (decided when the measurement is first made).
    pub fn measure(&mut self, measure: MeasureId, symbolic: bool) -> ScalarId {
        self.intern_flagged(Scalar::Measure(measure), symbolic)
    }

    pub fn is_symbolic_measure(&self, measure: MeasureId) -> bool {
        let id = self.index.get(&Scalar::Measure(measure));
        id.is_some_and(|id| self.is_symbolic(*id))
    }

    /// The value if it needs no measurement. Constants fold as they are
    /// built, so every other scalar depends on a measurement.
    pub fn known(&self, id: ScalarId) -> Option<f64> {
        match self.get(id) {
            Scalar::Const(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }

    pub fn neg(&mut self, x: ScalarId) -> ScalarId {
        match self.known(x) {
            Some(v) => self.constant(-v),
            None => self.intern(Scalar::Neg(x)),
        }
    }

    pub fn sqrt(&mut self, x: ScalarId) -> ScalarId {
        match self.known(x) {
            Some(v) => self.constant(v.sqrt()),
            None => self.intern(Scalar::Sqrt(x)),
        }
    }

    /// `a op b`, folded when both are known.
    pub fn binary(&mut self, op: BinOp, a: ScalarId, b: ScalarId) -> ScalarId {
        match (self.known(a), self.known(b)) {
            (Some(x), Some(y)) => self.constant(apply(op, x, y)),
            _ => self.intern(Scalar::Binary(op, a, b)),
        }
    }

    /// Evaluates `id`, asking `measured` for measurement results; `None` if
    /// one of them is not available. Scalars form a DAG (`a + a` shares
    /// `a`), so each is evaluated once.
    pub fn value(&self, id: ScalarId, measured: &dyn Fn(MeasureId) -> Option<f64>) -> Option<f64> {
        self.value_with(id, measured, &|_| None)
    }

    /// Evaluates `id` with sweep variables too: `vars` gives their values.
    pub fn value_with(
        &self,
        id: ScalarId,
        measured: &dyn Fn(MeasureId) -> Option<f64>,
        vars: &dyn Fn(u32) -> Option<f64>,
    ) -> Option<f64> {
        self.value_memo(id, &(measured, vars), &mut HashMap::new())
    }

    fn value_memo(&self, id: ScalarId, lookup: &Lookup, memo: &mut HashMap<ScalarId, Option<f64>>) -> Option<f64> {
        if let Some(known) = memo.get(&id) {
            return *known;
        }
        let mut eval = |x| self.value_memo(x, lookup, memo);
        let value = match self.get(id) {
            Scalar::Const(bits) => Some(f64::from_bits(bits)),
            Scalar::Measure(m) => (lookup.0)(m),
            Scalar::Var(v) => (lookup.1)(v),
            Scalar::Neg(x) => eval(x).map(|v| -v),
            Scalar::Sqrt(x) => eval(x).map(f64::sqrt),
            Scalar::Binary(op, a, b) => eval(a).zip(eval(b)).map(|(x, y)| apply(op, x, y)),
        };
        memo.insert(id, value);
        value
    }

    /// Every measurement `id` depends on, each once.
    pub fn measures_in(&self, id: ScalarId, out: &mut Vec<MeasureId>) {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![id];
        while let Some(s) = stack.pop() {
            if !seen.insert(s) {
                continue;
            }
            match self.get(s) {
                Scalar::Const(_) | Scalar::Var(_) => {}
                Scalar::Measure(m) => out.push(m),
                Scalar::Neg(x) | Scalar::Sqrt(x) => stack.push(x),
                Scalar::Binary(_, a, b) => stack.extend([a, b]),
            }
        }
    }
}

/// Where measurements' and sweep variables' values come from.
type Lookup<'a> = (&'a dyn Fn(MeasureId) -> Option<f64>, &'a dyn Fn(u32) -> Option<f64>);

pub fn apply(op: BinOp, x: f64, y: f64) -> f64 {
    match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_fold_and_share() {
        let mut s = Scalars::default();
        let two = s.constant(2.0);
        let three = s.constant(3.0);
        let six = s.binary(BinOp::Mul, two, three);
        assert_eq!(s.known(six), Some(6.0));
        assert_eq!(six, s.constant(6.0));
    }

    #[test]
    fn measured_values_wait_for_execution() {
        let mut s = Scalars::default();
        let m = s.measure(MeasureId(0), false);
        let root = s.sqrt(m);
        assert_eq!(s.known(root), None);
        assert_eq!(s.value(root, &|_| Some(16.0)), Some(4.0));
    }
}
