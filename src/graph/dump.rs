//! A text dump of the graph, for `tv plan`, debugging and golden tests.

use super::{Graph, Measure, Op, Scalar, ScalarId};
use std::fmt::Write;

/// One line per node and per measurement, in creation order.
pub fn dump(graph: &Graph) -> String {
    let mut out = String::new();
    for i in 0..graph.node_count() {
        let node = graph.node(super::NodeId(i as u32));
        let line = match &node.op {
            Op::Leaf(leaf) => match graph.training_of(*leaf) {
                Some(job) => super::train::describe(graph, job),
                None => format!("load {:?}", graph.leaf(*leaf).path()),
            },
            Op::Lin(terms) => terms
                .iter()
                .map(|t| format!("{} * %{}", scalar(graph, t.coef), t.node.0))
                .collect::<Vec<_>>()
                .join(" + "),
            Op::Select { input, glob, keep } => {
                let f = if *keep { "only" } else { "except" };
                format!("{f}(%{}, {glob:?})", input.0)
            }
            Op::Map { prim, inputs } => {
                let inputs: Vec<String> = inputs.iter().map(|n| format!("%{}", n.0)).collect();
                format!("{}({}) {:?}", prim.name(), inputs.join(", "), prim)
            }
        };
        let _ = writeln!(out, "%{i} = {line}");
    }
    for i in 0..graph.measure_count() {
        let line = match graph.measure(super::MeasureId(i as u32)) {
            Measure::Dot(a, b) => format!("dot(%{}, %{})", a.0, b.0),
            Measure::Model(m) => format!("{:?}(%{}, data {})", m.kind, m.node.0, m.data).to_lowercase(),
            Measure::Command { node, command } => format!("command(%{}, {command})", node.0),
        };
        let _ = writeln!(out, "m{i} = {line}");
    }
    out
}

/// A scalar as an expression, up to a few levels deep (shared scalars
/// would otherwise print exponentially often); deeper ones by id.
fn scalar(graph: &Graph, id: ScalarId) -> String {
    scalar_at(graph, id, 0)
}

fn scalar_at(graph: &Graph, id: ScalarId, depth: usize) -> String {
    if depth > 4 {
        return format!("s{}", id.0);
    }
    let scalar = |x| scalar_at(graph, x, depth + 1);
    match graph.scalars.get(id) {
        Scalar::Const(bits) => crate::report::format_number(f64::from_bits(bits)),
        Scalar::Measure(m) => format!("m{}", m.0),
        Scalar::Var(v) => format!("v{v}"),
        Scalar::Neg(x) => format!("-({})", scalar(x)),
        Scalar::Sqrt(x) => format!("sqrt({})", scalar(x)),
        Scalar::Binary(op, a, b) => format!("({} {} {})", scalar(a), op.symbol(), scalar(b)),
    }
}
