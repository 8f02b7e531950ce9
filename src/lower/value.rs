//! The values a tv program computes with while it is lowered to a graph.

use crate::graph::{NodeId, ScalarId};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// A number, known now or once measurements are made.
    Num(ScalarId),
    Str(String),
    List(Vec<Value>),
    /// A lazy set of named tensors.
    Weights(NodeId),
    /// The value of something that failed; it was reported once and stays
    /// silent from then on, so one mistake gives one diagnostic.
    Error,
}

impl Value {
    /// The type, as diagnostics name it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Weights(_) => "weights",
            Value::Error => "an error",
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error)
    }
}
