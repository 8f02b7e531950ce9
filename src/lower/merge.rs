//! The merge primitives as builtins: argument checks, and broadcasting over
//! lists of models, so that `trim(models - base, [0.3, 0.5])` trims each
//! model's task vector at its own density.

use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::graph::{Bits, NodeId, Prim, Stream};

/// A builtin's parameters, each with its default (`None`: required).
type Params = &'static [(&'static str, Option<f64>)];

/// The merge builtins and their parameters. `seed` defaults to the run's
/// seed.
pub const PARAMS: &[(&str, Params)] = &[
    ("trim", &[("w", None), ("density", None), ("rescale", Some(0.0))]),
    (
        "trim_outliers",
        &[
            ("w", None),
            ("density", None),
            ("gamma", Some(0.01)),
            ("rescale", Some(0.0)),
        ],
    ),
    (
        "drop",
        &[
            ("w", None),
            ("density", None),
            ("rescale", Some(0.0)),
            ("seed", Some(0.0)),
        ],
    ),
    (
        "drop_ranked",
        &[
            ("w", None),
            ("density", None),
            ("epsilon", Some(0.15)),
            ("rescale", Some(0.0)),
            ("seed", Some(0.0)),
        ],
    ),
    ("elect", &[("deltas", None)]),
    (
        "disjoint_mean",
        &[("deltas", None), ("weight", Some(1.0)), ("normalize", Some(1.0))],
    ),
    ("slerp_tensors", &[("a", None), ("b", None), ("t", None)]),
    ("stock_ratio", &[("offsets", None), ("filter_wise", Some(0.0))]),
    ("mix", &[("a", None), ("b", None), ("t", None)]),
    ("broadcast", &[("x", None), ("like", None)]),
    ("setting", &[("key", None)]),
];

pub fn params(name: &str) -> Option<Params> {
    PARAMS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// A builtin's argument, as evaluated, with where it was written.
type Arg = (Value, Span);

impl Lowerer<'_> {
    pub(super) fn merge_builtin(&mut self, function: &str, args: &[Arg], span: Span) -> Option<Value> {
        match function {
            "trim" | "trim_outliers" | "drop" | "drop_ranked" => self.sparsify(function, args, span),
            "elect" => {
                let deltas = self.weights_list(&args[0], function, 1, span)?;
                Some(Value::Weights(self.graph.map(Prim::Elect, deltas, span)))
            }
            "disjoint_mean" => self.disjoint_mean(args, span),
            "slerp_tensors" => {
                let (a, b) = self.weight_pair(args, function, span)?;
                let t = self.known_value(&args[2].0, args[2].1, "`t`")?;
                Some(Value::Weights(self.graph.map(
                    Prim::Slerp { t: Bits::new(t) },
                    vec![a, b],
                    span,
                )))
            }
            "stock_ratio" => {
                let offsets = self.weights_list(&args[0], function, 2, span)?;
                let filter_wise = self.flag(&args[1], "`filter_wise`")?;
                let prim = Prim::StockRatio { filter_wise };
                Some(Value::Weights(self.graph.map(prim, offsets, span)))
            }
            "mix" => {
                let (a, b) = self.weight_pair(args, function, span)?;
                if let Value::Num(t) = args[2].0 {
                    return Some(self.mix_by_number(a, b, t, span));
                }
                let t = self.weights_arg(&args[2], function)?;
                self.same_tensors(a, t, span).then_some(())?;
                Some(Value::Weights(self.graph.map(Prim::Mix, vec![a, b, t], span)))
            }
            "broadcast" => self.broadcast(args),
            "setting" => self.setting(&args[0]),
            other => unreachable!("`{other}` is not a merge builtin"),
        }
    }

    /// `(1 - t) * a + t * b` for a number `t`: plain weights arithmetic.
    fn mix_by_number(&mut self, a: NodeId, b: NodeId, t: crate::graph::ScalarId, span: Span) -> Value {
        use crate::syntax::ast::BinOp;
        let one = Value::Num(self.graph.scalars.constant(1.0));
        let keep = self.binary(BinOp::Sub, one, Value::Num(t), span);
        let from_a = self.binary(BinOp::Mul, keep, Value::Weights(a), span);
        let from_b = self.binary(BinOp::Mul, Value::Num(t), Value::Weights(b), span);
        self.binary(BinOp::Add, from_a, from_b, span)
    }

    /// `trim`, `trim_outliers`, `drop`, `drop_ranked` of weights or of each
    /// item of a list (numbers then apply to all, or a list gives one each).
    fn sparsify(&mut self, function: &str, args: &[Arg], span: Span) -> Option<Value> {
        let (items, listed) = match &args[0].0 {
            Value::List(items) => (items.clone(), true),
            Value::Weights(_) => (vec![args[0].0.clone()], false),
            other => {
                self.wrong_type(
                    args[0].1,
                    &format!("the first argument of `{function}`"),
                    "weights or a list of weights",
                    other,
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let w = self.weights_arg(&(item.clone(), args[0].1), function)?;
            let prim = self.sparsifier(function, args, index, items.len())?;
            out.push(Value::Weights(self.graph.map(prim, vec![w], span)));
        }
        match listed {
            true => Some(Value::List(out)),
            false => out.pop(),
        }
    }

    /// The primitive for model `index` of `count`.
    fn sparsifier(&mut self, function: &str, args: &[Arg], index: usize, count: usize) -> Option<Prim> {
        let density = self.fraction(&args[1], "`density`", index, count)?;
        let at = |i: usize| &args[i];
        let prim = match function {
            "trim" => Prim::Trim {
                density: Bits::new(density),
                rescale: self.flag(at(2), "`rescale`")?,
            },
            "trim_outliers" => Prim::TrimOutliers {
                density: Bits::new(density),
                gamma: Bits::new(self.fraction(at(2), "`gamma`", index, count)?),
                rescale: self.flag(at(3), "`rescale`")?,
            },
            "drop" => Prim::Drop {
                density: Bits::new(density),
                rescale: self.flag(at(2), "`rescale`")?,
                stream: self.stream(at(3), index)?,
            },
            "drop_ranked" => {
                let epsilon = self.per_model(at(2), "`epsilon`", index, count)?;
                self.check_epsilon(density, epsilon, at(2).1)?;
                Prim::DropRanked {
                    density: Bits::new(density),
                    epsilon: Bits::new(epsilon),
                    rescale: self.flag(at(3), "`rescale`")?,
                    stream: self.stream(at(4), index)?,
                }
            }
            other => unreachable!("`{other}` is not a sparsifier"),
        };
        Some(prim)
    }

    fn stream(&mut self, seed: &Arg, index: usize) -> Option<Stream> {
        let seed = self.whole_number(seed, "the seed", 0.0)? as u64;
        Some(Stream {
            seed,
            index: index as u32,
        })
    }

    /// DELLA's probabilities `density ± epsilon` must be probabilities.
    fn check_epsilon(&mut self, density: f64, epsilon: f64, span: Span) -> Option<()> {
        if epsilon < 0.0 {
            let diag = Diagnostic::new(
                "tv::argument",
                format!("`epsilon` must not be negative, found {epsilon}"),
            )
            .at(span, "negative")
            .help("epsilon is how far keep probabilities spread around the density");
            self.error(diag);
            return None;
        }
        let inside = density - epsilon > 0.0 && density + epsilon < 1.0;
        if inside || density <= 0.0 || density >= 1.0 {
            return Some(());
        }
        let diag = Diagnostic::new(
            "tv::argument",
            format!("`epsilon` {epsilon} takes the keep probability outside (0, 1) around density {density}"),
        )
        .at(span, "too large")
        .help("choose epsilon >= 0 with density - epsilon > 0 and density + epsilon < 1");
        self.error(diag);
        None
    }

    fn disjoint_mean(&mut self, args: &[Arg], span: Span) -> Option<Value> {
        let deltas = self.weights_list(&args[0], "disjoint_mean", 1, span)?;
        let count = deltas.len();
        let weights = (0..count)
            .map(|i| self.per_model(&args[1], "`weight`", i, count).map(Bits::new))
            .collect::<Option<Vec<_>>>()?;
        let normalize = self.flag(&args[2], "`normalize`")?;
        let prim = Prim::DisjointMean { weights, normalize };
        Some(Value::Weights(self.graph.map(prim, deltas, span)))
    }

    /// A list of at least `min` weights that hold the same tensors.
    fn weights_list(&mut self, arg: &Arg, function: &str, min: usize, span: Span) -> Option<Vec<NodeId>> {
        let Value::List(items) = &arg.0 else {
            self.wrong_type(
                arg.1,
                &format!("the first argument of `{function}`"),
                "a list of weights",
                &arg.0,
            );
            return None;
        };
        let nodes = items
            .iter()
            .map(|item| self.weights_arg(&(item.clone(), arg.1), function))
            .collect::<Option<Vec<_>>>()?;
        if nodes.len() < min {
            let diag = Diagnostic::new(
                "tv::argument",
                format!("`{function}` needs at least {min} weights, found {}", nodes.len()),
            )
            .at(arg.1, "too few");
            self.error(diag);
            return None;
        }
        let agree = nodes.iter().all(|n| self.same_tensors(nodes[0], *n, span));
        agree.then_some(nodes)
    }

    /// A number for model `index`: the number itself, or item `index` of a
    /// list of one per model.
    fn per_model(&mut self, (value, span): &Arg, what: &str, index: usize, count: usize) -> Option<f64> {
        let Value::List(items) = value else {
            return self.known_value(value, *span, what);
        };
        if items.len() != count {
            let diag = Diagnostic::new(
                "tv::argument",
                format!("{what} lists {} values for {count} models", items.len()),
            )
            .at(*span, "one per model")
            .help("give one number for every model, or a single number for all");
            self.error(diag);
            return None;
        }
        self.known_value(&items[index], *span, what)
    }

    /// A per-model number between 0 and 1.
    fn fraction(&mut self, arg: &Arg, what: &str, index: usize, count: usize) -> Option<f64> {
        let value = self.per_model(arg, what, index, count)?;
        if (0.0..=1.0).contains(&value) {
            return Some(value);
        }
        let diag = Diagnostic::new("tv::argument", format!("{what} must be between 0 and 1, found {value}"))
            .at(arg.1, "out of range");
        self.error(diag);
        None
    }

    /// A switch: 0 (off) or 1 (on).
    fn flag(&mut self, arg: &Arg, what: &str) -> Option<bool> {
        let value = self.known_value(&arg.0, arg.1, what)?;
        if value == 0.0 || value == 1.0 {
            return Some(value == 1.0);
        }
        let diag = Diagnostic::new("tv::argument", format!("{what} is a switch, 0 or 1; found {value}"))
            .at(arg.1, "not 0 or 1");
        self.error(diag);
        None
    }

    /// `x` as a list as long as `like`: repeated, or checked for length.
    fn broadcast(&mut self, args: &[Arg]) -> Option<Value> {
        let Value::List(like) = &args[1].0 else {
            self.wrong_type(args[1].1, "the second argument of `broadcast`", "a list", &args[1].0);
            return None;
        };
        match &args[0].0 {
            Value::List(items) if items.len() != like.len() => {
                let diag = Diagnostic::new(
                    "tv::argument",
                    format!("{} values given for a list of {} items", items.len(), like.len()),
                )
                .at(args[0].1, "wrong length")
                .help("give one value for every item, or a single value for all");
                self.error(diag);
                None
            }
            Value::List(_) => Some(args[0].0.clone()),
            x => Some(Value::List(vec![x.clone(); like.len()])),
        }
    }

    /// `setting("seed")`: the run's seed, so a `fn` can pass it on as a
    /// default.
    fn setting(&mut self, arg: &Arg) -> Option<Value> {
        let key = self.string_arg(arg, "the setting's name")?;
        if key == "seed" {
            return Some(Value::Num(self.graph.scalars.constant(self.settings.seed as f64)));
        }
        let diag = Diagnostic::new("tv::argument", format!("no readable setting \"{key}\""))
            .at(arg.1, "unknown")
            .help("`setting` reads \"seed\"");
        self.error(diag);
        None
    }
}
