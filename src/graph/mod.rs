//! The lazy tensor graph: an arena of hash-consed nodes. Each node knows the
//! names, shapes and dtypes of its tensors when it is built (from checkpoint
//! headers alone) and the source span it came from.

mod dump;
mod linear;
pub mod prim;
pub mod scalar;
mod spec;
pub mod train;

pub use dump::dump;
pub use linear::Term;
pub use prim::{Bits, Prim, Stream};
pub use scalar::{Scalar, ScalarId, Scalars};
pub use spec::{glob_match as spec_glob_match, Mismatch, Spec, Specs};
pub use train::{TrainJob, TrainKind};

use crate::diag::Span;
use crate::io::Checkpoint;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeafId(pub u32);

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeasureId(pub u32);

/// What a node computes, tensor by tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// The tensors of a checkpoint: loaded, or made by a training job (see
    /// `train`) once the executor has run it.
    Leaf(LeafId),
    /// `sum_i c_i * x_i`. Terms are never themselves `Lin` (they are
    /// flattened on construction), and keep the order of the source so the
    /// first term is the left operand that carries non-float tensors.
    Lin(Vec<Term>),
    /// `only` (keep = true) or `except` (keep = false): zero the float
    /// tensors whose names do not / do match the glob.
    Select { input: NodeId, glob: String, keep: bool },
    /// A non-linear primitive, computed a whole tensor at a time.
    Map { prim: Prim, inputs: Vec<NodeId> },
}

#[derive(Debug)]
pub struct Node {
    pub op: Op,
    pub specs: Arc<Specs>,
    pub span: Span,
    /// Depends on a sweep variable (through a coefficient).
    pub symbolic: bool,
}

/// A number measured from weights.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Measure {
    /// `<a, b>` over all float tensors, accumulated in f64; the pair is
    /// ordered so `dot(a, b)` and `dot(b, a)` share.
    Dot(NodeId, NodeId),
    /// A model evaluated on a dataset (see `eval`).
    Model(ModelMeasure),
    /// An external command run on the weights `node`; `command` indexes
    /// the graph's commands.
    Command { node: NodeId, command: usize },
}

impl Measure {
    /// The weights it reads.
    pub fn nodes(self) -> Vec<NodeId> {
        match self {
            Measure::Dot(a, b) => vec![a, b],
            Measure::Model(m) => vec![m.node],
            Measure::Command { node, .. } => vec![node],
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    Accuracy,
    /// Mean cross-entropy: per row for a classifier, per token for a
    /// language model.
    Loss,
    Perplexity,
}

/// `accuracy`, `loss` or `perplexity`: `node` as the model `config`
/// describes, scored on dataset `data` (indices into the graph's registries).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelMeasure {
    pub kind: ModelKind,
    pub node: NodeId,
    pub config: usize,
    pub data: usize,
}

/// A checkpoint, or the place of one a training job will make.
#[derive(Debug)]
struct Leaf {
    checkpoint: OnceLock<Arc<Checkpoint>>,
    /// The job that makes it (an index into `trainings`).
    training: Option<usize>,
}

#[derive(Default)]
pub struct Graph {
    nodes: Vec<Node>,
    index: HashMap<Op, NodeId>,
    leaves: Vec<Leaf>,
    /// `init` and `finetune` calls, each the source of one leaf.
    trainings: Vec<TrainJob>,
    measures: Vec<Measure>,
    measure_index: HashMap<Measure, MeasureId>,
    pub scalars: Scalars,
    /// Model configs and datasets that model measurements refer to.
    pub configs: Vec<Arc<crate::eval::ModelConfig>>,
    pub datasets: Vec<Arc<crate::eval::EvalData>>,
    /// The commands of `command(...)` measurements.
    pub commands: Vec<Arc<crate::eval::command::CommandSpec>>,
    /// Divisions by measured numbers, with their place (`file:line:col`).
    pub divisions: Vec<(ScalarId, String)>,
}

impl Graph {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// Whether `id`'s tensors depend on a sweep variable.
    pub fn is_symbolic(&self, id: NodeId) -> bool {
        self.node(id).symbolic
    }

    pub fn specs(&self, id: NodeId) -> &Arc<Specs> {
        &self.node(id).specs
    }

    /// The checkpoint of a leaf. A trained leaf is filled by the executor
    /// before anything that reads it is scheduled (see `exec::schedule`).
    pub fn leaf(&self, id: LeafId) -> &Arc<Checkpoint> {
        self.leaves[id.0 as usize]
            .checkpoint
            .get()
            .expect("a trained leaf is read only after its training ran")
    }

    /// The checkpoints at hand: loaded ones, and trained ones once trained.
    pub fn leaves(&self) -> impl Iterator<Item = &Arc<Checkpoint>> {
        self.leaves.iter().filter_map(|l| l.checkpoint.get())
    }

    /// The checkpoints the program loads (not those training makes).
    pub fn loaded_leaves(&self) -> impl Iterator<Item = &Arc<Checkpoint>> {
        let loaded = self.leaves.iter().filter(|l| l.training.is_none());
        loaded.filter_map(|l| l.checkpoint.get())
    }

    /// The checkpoints the program loads (trained ones not counted).
    pub fn loaded_count(&self) -> usize {
        self.leaves.iter().filter(|l| l.training.is_none()).count()
    }

    /// The training job that makes a leaf, if it is not loaded from a file.
    pub fn training_of(&self, id: LeafId) -> Option<&TrainJob> {
        self.leaves[id.0 as usize].training.map(|t| &self.trainings[t])
    }

    /// The index of the training job that makes a leaf.
    pub fn training_index(&self, id: LeafId) -> Option<usize> {
        self.leaves[id.0 as usize].training
    }

    /// Every training job, in the order lowering met them (inputs first).
    pub fn trainings(&self) -> &[TrainJob] {
        &self.trainings
    }

    /// Float bytes of a leaf's checkpoint: as stored, or as its training
    /// job promises them (f32).
    pub fn leaf_float_bytes(&self, id: LeafId) -> u64 {
        match (self.leaves[id.0 as usize].checkpoint.get(), self.training_of(id)) {
            (Some(c), _) => c
                .tensors()
                .iter()
                .filter(|t| t.is_float())
                .map(|t| t.byte_len() as u64)
                .sum(),
            (None, Some(job)) => job.specs.tensors.iter().map(|s| s.numel() as u64 * 4).sum(),
            (None, None) => 0,
        }
    }

    /// Whether a trained leaf has its checkpoint.
    pub fn is_trained(&self, id: LeafId) -> bool {
        self.leaves[id.0 as usize].checkpoint.get().is_some()
    }

    /// Gives a training job its result; the checkpoint must hold exactly
    /// the tensors lowering promised (the caller checks).
    pub fn fill(&self, id: LeafId, checkpoint: Arc<Checkpoint>) {
        let _ = self.leaves[id.0 as usize].checkpoint.set(checkpoint);
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn measure(&self, id: MeasureId) -> Measure {
        self.measures[id.0 as usize]
    }

    pub fn measure_count(&self) -> usize {
        self.measures.len()
    }

    /// The folder whose config and tokenizer files travel with `node`: that
    /// of the first checkpoint of its expression that is a folder.
    pub fn config_folder(&self, node: NodeId) -> Option<std::path::PathBuf> {
        self.config_file(node)
            .and_then(|f| f.parent().map(std::path::Path::to_path_buf))
    }

    /// The model config of `node`: its first folder's `config.json`, or the
    /// config of the training job that makes it (whose result, once
    /// trained, carries a copy).
    pub fn config_file(&self, node: NodeId) -> Option<std::path::PathBuf> {
        match &self.node(node).op {
            Op::Leaf(leaf) => self.leaf_config_file(*leaf),
            _ => self.inputs(node).into_iter().find_map(|n| self.config_file(n)),
        }
    }

    fn leaf_config_file(&self, leaf: LeafId) -> Option<std::path::PathBuf> {
        let slot = &self.leaves[leaf.0 as usize];
        match (slot.checkpoint.get(), slot.training) {
            (Some(checkpoint), _) => checkpoint.folder().map(|f| f.join("config.json")),
            (None, Some(t)) => Some(self.trainings[t].config_file.clone()),
            (None, None) => None,
        }
    }

    /// The model configs of every checkpoint `node` is computed from, each
    /// once, in order of first appearance.
    pub fn config_files_under(&self, node: NodeId) -> Vec<std::path::PathBuf> {
        let (mut seen, mut stack, mut out) = (std::collections::HashSet::new(), vec![node], Vec::new());
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            if let Op::Leaf(leaf) = &self.node(n).op {
                let config = self.leaf_config_file(*leaf);
                out.extend(config.filter(|f| !out.contains(f)));
            }
            stack.extend(self.inputs(n).into_iter().rev());
        }
        out
    }

    /// The nodes `node` is computed from, the left operand first; none for
    /// a checkpoint.
    pub fn inputs(&self, node: NodeId) -> Vec<NodeId> {
        match &self.node(node).op {
            Op::Leaf(_) => Vec::new(),
            Op::Select { input, .. } => vec![*input],
            Op::Lin(terms) => terms.iter().map(|t| t.node).collect(),
            Op::Map { inputs, .. } => inputs.clone(),
        }
    }

    /// Interns `op`; an existing equal node is returned as is, keeping the
    /// span where it first appeared.
    fn intern(&mut self, op: Op, specs: impl FnOnce(&Graph) -> Arc<Specs>, span: Span) -> NodeId {
        if let Some(id) = self.index.get(&op) {
            return *id;
        }
        let specs = specs(self);
        let symbolic = match &op {
            Op::Leaf(_) => false,
            Op::Lin(terms) => terms
                .iter()
                .any(|t| self.scalars.is_symbolic(t.coef) || self.is_symbolic(t.node)),
            Op::Select { input, .. } => self.is_symbolic(*input),
            Op::Map { inputs, .. } => inputs.iter().any(|n| self.is_symbolic(*n)),
        };
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node {
            op: op.clone(),
            specs,
            span,
            symbolic,
        });
        self.index.insert(op, id);
        id
    }

    /// A node for a checkpoint; loading the same checkpoint twice gives the
    /// same node.
    pub fn load(&mut self, checkpoint: Arc<Checkpoint>, span: Span) -> NodeId {
        let same = |l: &Leaf| l.checkpoint.get().is_some_and(|c| Arc::ptr_eq(c, &checkpoint));
        let existing = self.leaves.iter().position(|l| l.training.is_none() && same(l));
        let leaf = LeafId(existing.unwrap_or(self.leaves.len()) as u32);
        if existing.is_none() {
            let slot = OnceLock::new();
            let _ = slot.set(checkpoint);
            self.leaves.push(Leaf {
                checkpoint: slot,
                training: None,
            });
        }
        let specs = |g: &Graph| Arc::new(Specs::of_checkpoint(g.leaf(leaf)));
        self.intern(Op::Leaf(leaf), specs, span)
    }

    /// A node for the result of a training job, holding `specs` once
    /// trained; the job's `leaf` is set here.
    pub fn train(&mut self, mut job: TrainJob) -> NodeId {
        let leaf = LeafId(self.leaves.len() as u32);
        job.leaf = leaf;
        let (span, specs) = (job.span, job.specs.clone());
        self.leaves.push(Leaf {
            checkpoint: OnceLock::new(),
            training: Some(self.trainings.len()),
        });
        self.trainings.push(job);
        self.intern(Op::Leaf(leaf), |_| specs, span)
    }

    /// The nodes `node` waits for: its inputs, and for a trained
    /// checkpoint the weights it is trained from.
    pub fn dependencies(&self, node: NodeId) -> Vec<NodeId> {
        match &self.node(node).op {
            Op::Leaf(leaf) => self.training_of(*leaf).and_then(TrainJob::input).into_iter().collect(),
            _ => self.inputs(node),
        }
    }

    /// `only`/`except`.
    ///
    /// Selection is linear, so it moves inside sums:
    /// `only(sum c_i x_i) -> sum c_i only(x_i)`. Every term of a linear
    /// combination is then a selection of a checkpoint, which the executor
    /// reads straight from its file.
    pub fn select(&mut self, input: NodeId, glob: &str, keep: bool, span: Span) -> NodeId {
        if let Op::Lin(terms) = &self.node(input).op {
            let selected: Vec<Term> = terms
                .clone()
                .into_iter()
                .map(|t| Term {
                    coef: t.coef,
                    node: self.select(t.node, glob, keep, span),
                })
                .collect();
            return self.lin(&selected, span);
        }
        let op = Op::Select {
            input,
            glob: glob.to_string(),
            keep,
        };
        let specs = |g: &Graph| Arc::new(g.specs(input).selected(glob, keep));
        self.intern(op, specs, span)
    }

    /// Interns a reduction and returns the scalar that stands for its result.
    pub fn dot(&mut self, a: NodeId, b: NodeId) -> ScalarId {
        self.measured(Measure::Dot(a.min(b), a.max(b)))
    }

    /// The scalar that stands for a measurement's result.
    pub fn measured(&mut self, measure: Measure) -> ScalarId {
        let next = MeasureId(self.measures.len() as u32);
        let id = *self.measure_index.entry(measure).or_insert(next);
        if id == next {
            self.measures.push(measure);
        }
        let symbolic = measure.nodes().into_iter().any(|n| self.is_symbolic(n));
        self.scalars.measure(id, symbolic)
    }
}
