//! The points of sweeps lowered once (`report::block`): each level's evals
//! compiled into a small program over its sweep variables (a tape), run at
//! every point against the Gram matrices the passes computed.
//!
//! The same walk serves twice: once in the executor to find the points
//! whose Gram results cannot be trusted (`check`), which are then measured
//! directly, and once to write the report's rows (`write_rows`), which
//! stream to the output and are never all in memory.

use super::family::{Coef, Request};
use super::{request, GramForm};
use crate::graph::{Graph, MeasureId, Scalar, ScalarId};
use crate::lower::Plan;
use crate::report::block::{Item, Level, SweepBlock};
use crate::report::format_number;
use crate::report::table::Columns;
use crate::syntax::ast::BinOp;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Direct measurements per pass when re-measuring sweep points.
pub const BATCH: usize = 1 << 12;

/// Gram results at single sweep points to measure directly: each request
/// is tagged with its position, and `keys` says at which point (as a
/// number of the variables its measurement depends on).
#[derive(Debug, Default)]
pub struct PointRequests {
    pub requests: Vec<Request>,
    pub keys: Vec<u64>,
}

/// What the formulas read: measurements made once, Gram forms, and
/// measurements taken directly at single points.
pub struct Values<'a> {
    pub graph: &'a Graph,
    pub measured: &'a [Option<f64>],
    pub forms: &'a HashMap<MeasureId, GramForm>,
    pub at_points: &'a HashMap<(MeasureId, u64), f64>,
}

/// Every point of every block whose Gram result cannot be trusted and has
/// not been measured directly yet.
pub fn check(
    plan: &Plan,
    measured: &[Option<f64>],
    forms: &HashMap<MeasureId, GramForm>,
    at_points: &HashMap<(MeasureId, u64), f64>,
) -> PointRequests {
    let values = Values {
        graph: &plan.graph,
        measured,
        forms,
        at_points,
    };
    let mut found = PointRequests::default();
    let mut seen = HashSet::new();
    for block in plan
        .table
        .blocks()
        .iter()
        .filter(|b| measures_per_point(&plan.graph, b))
    {
        let mut walk = Walk::new(block, &values);
        let mut on_untrusted = |m: MeasureId, key: u64, atoms: &[crate::graph::NodeId], a: &[f64], b: &[f64]| {
            if seen.insert((m, key)) {
                found.requests.push(request(m, found.keys.len(), atoms, a, b));
                found.keys.push(key);
            }
        };
        let tapes = Tapes::compile(&block.level, &walk);
        walk.level(&block.level, &tapes, &mut |_, _| Ok(()), &mut on_untrusted)
            .unwrap_or(());
    }
    found
}

/// Whether any eval of the block measures weights that depend on its
/// variables (else no point can need a direct measurement).
fn measures_per_point(graph: &Graph, block: &SweepBlock) -> bool {
    let mut scalars = Vec::new();
    block.level.scalars(&mut scalars);
    let mut measures = Vec::new();
    scalars
        .iter()
        .for_each(|s| graph.scalars.measures_in(*s, &mut measures));
    measures.iter().any(|m| graph.scalars.is_symbolic_measure(*m))
}

/// Writes a block's rows through `emit`, with the table's `columns`.
pub fn write_rows(
    block: &SweepBlock,
    columns: &Columns,
    values: &Values,
    emit: &mut dyn FnMut(&[String]) -> Result<(), csv::Error>,
) -> Result<(), csv::Error> {
    let mut walk = Walk::new(block, values);
    let tapes = Tapes::compile(&block.level, &walk);
    let mut row = |cells: &RowCells, level: &Level| emit(&cells.render(block, level, columns));
    walk.level(&block.level, &tapes, &mut row, &mut |_, _, _, _, _| {})?;
    for place in &walk.zero_divisions {
        let (_, place) = &values.graph.divisions[*place];
        super::nonfinite::warn_division(place);
    }
    Ok(())
}

/// What a row needs: the variables in scope and how their values show,
/// and the evals' values.
struct RowCells<'w> {
    scope: &'w [(String, usize)],
    shown: &'w [String],
    values: &'w [f64],
}

impl RowCells<'_> {
    fn render(&self, block: &SweepBlock, level: &Level, columns: &Columns) -> Vec<String> {
        let own: Vec<(&str, f64)> = level.evals().zip(self.values).map(|((n, _), v)| (n, *v)).collect();
        let var = |name: &String| {
            if let Some((_, shown)) = block.outer.iter().find(|(n, _)| n == name) {
                return shown.clone();
            }
            let slot = self.scope.iter().find(|(n, _)| n == name).map(|(_, s)| *s);
            slot.map(|s| self.shown[s].clone()).unwrap_or_default()
        };
        let eval = |name: &String| {
            let found = own.iter().find(|(n, _)| *n == name);
            found.map(|(_, v)| format_number(*v)).unwrap_or_default()
        };
        columns
            .vars
            .iter()
            .map(var)
            .chain(columns.evals.iter().map(eval))
            .collect()
    }
}

type OnRow<'r> = dyn FnMut(&RowCells, &Level) -> Result<(), csv::Error> + 'r;
type OnUntrusted<'u> = dyn FnMut(MeasureId, u64, &[crate::graph::NodeId], &[f64], &[f64]) + 'u;

/// Walks a block's points in report order.
struct Walk<'v> {
    values: &'v Values<'v>,
    first_var: u32,
    /// Each variable's current value and position, and how it shows.
    vars: Vec<f64>,
    indices: Vec<usize>,
    shown: Vec<String>,
    /// Domain sizes, by variable slot.
    sizes: Vec<usize>,
    /// The variables of the levels entered, by name.
    scope: Vec<(String, usize)>,
    /// Listed values of domains small enough to list.
    listed: Vec<Option<(Vec<f64>, Vec<String>)>>,
    registers: Vec<f64>,
    /// Coefficient buffers, reused from point to point.
    a: Vec<f64>,
    b: Vec<f64>,
    waiting: Vec<bool>,
    /// Divisions (by index in `Graph::divisions`) whose divisor was 0.
    zero_divisions: BTreeSet<usize>,
}

/// Domains up to this size have their values and texts computed once.
const LISTED: usize = 1 << 20;

impl<'v> Walk<'v> {
    fn new(block: &SweepBlock, values: &'v Values<'v>) -> Self {
        let n = block.var_count as usize;
        let mut walk = Walk {
            values,
            first_var: block.first_var,
            vars: vec![0.0; n],
            indices: vec![0; n],
            shown: vec![String::new(); n],
            sizes: vec![1; n],
            scope: Vec::new(),
            listed: vec![None; n],
            registers: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
            waiting: Vec::new(),
            zero_divisions: BTreeSet::new(),
        };
        walk.note_domains(&block.level);
        walk
    }

    fn note_domains(&mut self, level: &Level) {
        for var in &level.vars {
            let slot = (var.id - self.first_var) as usize;
            let size = var.domain.len();
            self.sizes[slot] = size;
            if size <= LISTED {
                let values: Vec<f64> = (0..size).map(|i| var.domain.value(i)).collect();
                let shown = values.iter().map(|v| format_number(*v)).collect();
                self.listed[slot] = Some((values, shown));
            }
        }
        for inner in level.nested() {
            self.note_domains(inner);
        }
    }

    fn set(&mut self, slot: usize, index: usize, level: &Level, which: usize) {
        self.indices[slot] = index;
        match &self.listed[slot] {
            Some((values, shown)) => {
                self.vars[slot] = values[index];
                self.shown[slot].clone_from(&shown[index]);
            }
            None => {
                let value = level.vars[which].domain.value(index);
                self.vars[slot] = value;
                self.shown[slot] = format_number(value);
            }
        }
    }

    fn level(
        &mut self,
        level: &Level,
        tapes: &Tapes,
        on_row: &mut OnRow,
        on_untrusted: &mut OnUntrusted,
    ) -> Result<(), csv::Error> {
        let mut out = vec![0.0; tapes.tape.roots.len()];
        let scope_len = self.scope.len();
        for var in &level.vars {
            self.scope.push((var.name.clone(), (var.id - self.first_var) as usize));
        }
        let walked = self.points(level, tapes, &mut out, on_row, on_untrusted);
        self.scope.truncate(scope_len);
        walked
    }

    fn points(
        &mut self,
        level: &Level,
        tapes: &Tapes,
        out: &mut [f64],
        on_row: &mut OnRow,
        on_untrusted: &mut OnUntrusted,
    ) -> Result<(), csv::Error> {
        for point in 0..level.points() {
            let mut rest = point;
            for (which, var) in level.vars.iter().enumerate().rev() {
                let size = var.domain.len() as u64;
                let slot = (var.id - self.first_var) as usize;
                self.set(slot, (rest % size) as usize, level, which);
                rest /= size;
            }
            tapes.tape.run(self, out, on_untrusted);
            let mut written = false;
            let mut nested = tapes.nested.iter();
            for item in &level.items {
                match item {
                    Item::Eval(..) if !written => {
                        written = true;
                        let cells = RowCells {
                            scope: &self.scope,
                            shown: &self.shown,
                            values: out,
                        };
                        on_row(&cells, level)?;
                    }
                    Item::Eval(..) => {}
                    Item::Sweep(inner) => {
                        let inner_tapes = nested.next().expect("a tape per nested level");
                        self.level(inner, inner_tapes, on_row, on_untrusted)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where an instruction's operand comes from.
#[derive(Copy, Clone, Debug)]
enum Operand {
    Register(usize),
    Value(f64),
}

enum Instr {
    Var(usize),
    Neg(Operand),
    Sqrt(Operand),
    Binary(BinOp, Operand, Operand),
    /// A division by a measured number, with its place in
    /// `Graph::divisions`: a zero divisor is reported.
    Divide(Operand, Operand, usize),
    Form(Box<FormAt>),
}

/// A measurement from its Gram form, its coefficients from operands.
struct FormAt {
    measure: MeasureId,
    form: Option<GramForm>,
    a: Vec<Operand>,
    b: Vec<Operand>,
    /// The variables it depends on, as `(slot, stride)`: its point key.
    key: Vec<(usize, u64)>,
}

/// A level's tape and, in order, those of its nested levels: compiled once
/// per walk, however many times a nested level is entered.
struct Tapes {
    tape: Tape,
    nested: Vec<Tapes>,
}

impl Tapes {
    fn compile(level: &Level, walk: &Walk) -> Tapes {
        Tapes {
            tape: Tape::compile(level, walk),
            nested: level.nested().map(|inner| Tapes::compile(inner, walk)).collect(),
        }
    }
}

/// A level's evals as one straight-line program, in scalar order (which is
/// an order of dependencies: a scalar is made after its operands).
struct Tape {
    instrs: Vec<Instr>,
    roots: Vec<Operand>,
}

impl Tape {
    fn compile(level: &Level, walk: &Walk) -> Tape {
        let graph = walk.values.graph;
        let roots: Vec<Option<ScalarId>> = level.evals().map(|(_, s)| s).collect();
        let mut symbolic = BTreeSet::new();
        let mut stack: Vec<ScalarId> = roots.iter().flatten().copied().collect();
        while let Some(s) = stack.pop() {
            if !graph.scalars.is_symbolic(s) || !symbolic.insert(s) {
                continue;
            }
            stack.extend(operands(graph, s, walk.values.forms));
        }
        let mut compiler = Compiler {
            walk,
            registers: HashMap::new(),
            deps: Vec::new(),
            instrs: Vec::new(),
        };
        for s in symbolic {
            compiler.add(s);
        }
        let roots = roots
            .iter()
            .map(|s| s.map_or(Operand::Value(f64::NAN), |s| compiler.operand(s)));
        let roots = roots.collect();
        Tape {
            instrs: compiler.instrs,
            roots,
        }
    }

    fn run(&self, walk: &mut Walk, out: &mut [f64], on_untrusted: &mut OnUntrusted) {
        let mut registers = std::mem::take(&mut walk.registers);
        registers.resize(self.instrs.len(), 0.0);
        // Registers that wait for a direct measurement at this point: what
        // is computed from them is not asked for until it is made.
        let mut waiting = std::mem::take(&mut walk.waiting);
        waiting.clear();
        waiting.resize(self.instrs.len(), false);
        let get = |r: &[f64], o: Operand| match o {
            Operand::Register(i) => r[i],
            Operand::Value(v) => v,
        };
        let waits = |w: &[bool], o: &Operand| matches!(o, Operand::Register(i) if w[*i]);
        for (i, instr) in self.instrs.iter().enumerate() {
            waiting[i] = match instr {
                Instr::Var(_) => false,
                Instr::Neg(x) | Instr::Sqrt(x) => waits(&waiting, x),
                Instr::Binary(_, x, y) | Instr::Divide(x, y, _) => waits(&waiting, x) || waits(&waiting, y),
                Instr::Form(f) => f.a.iter().chain(&f.b).any(|o| waits(&waiting, o)),
            };
            registers[i] = match instr {
                Instr::Var(slot) => walk.vars[*slot],
                Instr::Neg(x) => -get(&registers, *x),
                Instr::Sqrt(x) => get(&registers, *x).sqrt(),
                Instr::Binary(op, x, y) => crate::graph::scalar::apply(*op, get(&registers, *x), get(&registers, *y)),
                Instr::Divide(x, y, place) => {
                    let divisor = get(&registers, *y);
                    if divisor == 0.0 {
                        walk.zero_divisions.insert(*place);
                    }
                    get(&registers, *x) / divisor
                }
                Instr::Form(_) if waiting[i] => f64::NAN,
                Instr::Form(f) => {
                    let (mut a, mut b) = (std::mem::take(&mut walk.a), std::mem::take(&mut walk.b));
                    a.clear();
                    b.clear();
                    a.extend(f.a.iter().map(|o| get(&registers, *o)));
                    b.extend(f.b.iter().map(|o| get(&registers, *o)));
                    let value = evaluate_form(f, walk, &a, &b, on_untrusted);
                    (walk.a, walk.b) = (a, b);
                    waiting[i] = value.is_none();
                    value.unwrap_or(f64::NAN)
                }
            };
        }
        for (o, root) in out.iter_mut().zip(&self.roots) {
            *o = get(&registers, *root);
        }
        walk.registers = registers;
        walk.waiting = waiting;
    }
}

/// The form's value at this point; `None` while it waits for a direct
/// measurement (asked for through `on_untrusted`).
fn evaluate_form(f: &FormAt, walk: &Walk, a: &[f64], b: &[f64], on_untrusted: &mut OnUntrusted) -> Option<f64> {
    let Some(form) = &f.form else { return Some(f64::NAN) };
    if let Some(value) = form.gram.evaluate(a, b) {
        return Some(value);
    }
    let key: u64 = f
        .key
        .iter()
        .map(|(slot, stride)| walk.indices[*slot] as u64 * stride)
        .sum();
    let value = walk.values.at_points.get(&(f.measure, key)).copied();
    if value.is_none() {
        on_untrusted(f.measure, key, &form.atoms, a, b);
    }
    value
}

/// The scalars a symbolic scalar is computed from.
fn operands(graph: &Graph, s: ScalarId, forms: &HashMap<MeasureId, GramForm>) -> Vec<ScalarId> {
    match graph.scalars.get(s) {
        Scalar::Const(_) | Scalar::Var(_) => Vec::new(),
        Scalar::Neg(x) | Scalar::Sqrt(x) => vec![x],
        Scalar::Binary(_, x, y) => vec![x, y],
        Scalar::Measure(m) => {
            let Some(form) = forms.get(&m) else { return Vec::new() };
            let scalars = form.a.iter().chain(&form.b).filter_map(|c| match c {
                Coef::Scalar(s) => Some(*s),
                Coef::Known(_) => None,
            });
            scalars.collect()
        }
    }
}

struct Compiler<'w, 'v> {
    walk: &'w Walk<'v>,
    registers: HashMap<ScalarId, usize>,
    /// The variable slots each register depends on.
    deps: Vec<BTreeSet<usize>>,
    instrs: Vec<Instr>,
}

impl Compiler<'_, '_> {
    /// An operand for `s`: its register, or its value if it has one now.
    fn operand(&self, s: ScalarId) -> Operand {
        if let Some(r) = self.registers.get(&s) {
            return Operand::Register(*r);
        }
        let values = self.walk.values;
        Operand::Value(super::coefficient(values.graph, values.measured, s))
    }

    fn deps_of(&self, o: Operand) -> BTreeSet<usize> {
        match o {
            Operand::Register(r) => self.deps[r].clone(),
            Operand::Value(_) => BTreeSet::new(),
        }
    }

    fn coef(&self, c: &Coef) -> Operand {
        match c {
            Coef::Known(v) => Operand::Value(*v),
            Coef::Scalar(s) => self.operand(*s),
        }
    }

    fn add(&mut self, s: ScalarId) {
        let graph = self.walk.values.graph;
        let (instr, deps) = match graph.scalars.get(s) {
            Scalar::Var(v) => {
                let slot = (v - self.walk.first_var) as usize;
                (Instr::Var(slot), BTreeSet::from([slot]))
            }
            Scalar::Neg(x) => (Instr::Neg(self.operand(x)), self.deps_of(self.operand(x))),
            Scalar::Sqrt(x) => (Instr::Sqrt(self.operand(x)), self.deps_of(self.operand(x))),
            Scalar::Binary(op, x, y) => {
                let place = self.division_place(op, y);
                let (x, y) = (self.operand(x), self.operand(y));
                let mut deps = self.deps_of(x);
                deps.extend(self.deps_of(y));
                match place {
                    Some(place) => (Instr::Divide(x, y, place), deps),
                    None => (Instr::Binary(op, x, y), deps),
                }
            }
            Scalar::Measure(m) => self.form(m),
            Scalar::Const(_) => return,
        };
        self.registers.insert(s, self.instrs.len());
        self.instrs.push(instr);
        self.deps.push(deps);
    }

    /// Where the program divides by `divisor`, if it is a measured number.
    fn division_place(&self, op: BinOp, divisor: ScalarId) -> Option<usize> {
        let graph = self.walk.values.graph;
        if op != BinOp::Div {
            return None;
        }
        let mut measures = Vec::new();
        graph.scalars.measures_in(divisor, &mut measures);
        let place = graph.divisions.iter().position(|(d, _)| *d == divisor);
        place.filter(|_| !measures.is_empty())
    }

    fn form(&self, measure: MeasureId) -> (Instr, BTreeSet<usize>) {
        let form = self.walk.values.forms.get(&measure).cloned();
        let (a, b): (Vec<Operand>, Vec<Operand>) = match &form {
            Some(f) => (
                f.a.iter().map(|c| self.coef(c)).collect(),
                f.b.iter().map(|c| self.coef(c)).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let mut deps = BTreeSet::new();
        a.iter().chain(&b).for_each(|o| deps.extend(self.deps_of(*o)));
        // Mixed radix over the variables it depends on, the last fastest.
        let mut stride = 1u64;
        let mut key: Vec<(usize, u64)> = Vec::new();
        for slot in deps.iter().rev() {
            key.push((*slot, stride));
            stride = stride.saturating_mul(self.walk.sizes[*slot] as u64);
        }
        let at = FormAt {
            measure,
            form,
            a,
            b,
            key,
        };
        (Instr::Form(Box::new(at)), deps)
    }
}
