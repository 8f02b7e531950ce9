//! What a training job's result depends on, as a cache key, without
//! computing its input: a loaded checkpoint counts by the content of its
//! tensors, a trained one by its own job's key, and arithmetic by its
//! operations and coefficients. So `tv plan` knows which jobs are cached
//! before anything trains, and a chain (`finetune(init(...))`) is found
//! whole in the cache on a rerun.

use crate::eval::cache::Key;
use crate::graph::train::Settings;
use crate::graph::{Graph, LeafId, NodeId, Op, ScalarId, TrainJob, TrainKind};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Bumped whenever what a kind of job computes changes.
const INIT_VERSION: &str = "init-2";
const FINETUNE_VERSION: &str = "finetune-3";

pub(crate) struct Fingerprints<'g> {
    graph: &'g Graph,
    /// Each checkpoint's content hash, each trained leaf's key.
    leaves: HashMap<LeafId, [u8; 32]>,
}

impl<'g> Fingerprints<'g> {
    pub fn new(graph: &'g Graph) -> Fingerprints<'g> {
        Fingerprints {
            graph,
            leaves: HashMap::new(),
        }
    }

    /// The cache key of `job`; `None` while a coefficient of its input
    /// waits for a measurement. Errors name a file that cannot be read.
    pub fn key(&mut self, job: &TrainJob, coef: &dyn Fn(ScalarId) -> Option<f64>) -> Result<Option<Key>, String> {
        let config = read(&job.config_file)?;
        let mut key = match &job.kind {
            TrainKind::Init { seed } => {
                let mut key = Key::new(INIT_VERSION);
                key.add(&seed.to_le_bytes());
                key
            }
            TrainKind::Finetune { input, data, args } => {
                let Some(input) = self.node(*input, coef)? else {
                    return Ok(None);
                };
                let mut key = Key::new(FINETUNE_VERSION);
                key.add(&input).add(&self.data(*data)).add(describe(args).as_bytes());
                key
            }
        };
        key.add(&config);
        // The tokenizer travels with the result.
        let tokenizer = job.model_folder().join("tokenizer.json");
        if tokenizer.is_file() {
            key.add(&read(&tokenizer)?);
        }
        Ok(Some(key))
    }

    /// A hash of what `node` computes.
    fn node(&mut self, node: NodeId, coef: &dyn Fn(ScalarId) -> Option<f64>) -> Result<Option<[u8; 32]>, String> {
        let mut hasher = Sha256::new();
        match &self.graph.node(node).op {
            Op::Leaf(leaf) => return self.leaf(*leaf, coef),
            Op::Lin(terms) => {
                hasher.update(b"lin");
                for term in terms {
                    let (Some(c), Some(fingerprint)) = (coef(term.coef), self.node(term.node, coef)?) else {
                        return Ok(None);
                    };
                    hasher.update(c.to_le_bytes());
                    hasher.update(fingerprint);
                }
            }
            Op::Select { input, glob, keep } => {
                let Some(fingerprint) = self.node(*input, coef)? else {
                    return Ok(None);
                };
                hasher.update(format!("select {glob:?} {keep}"));
                hasher.update(fingerprint);
            }
            Op::Map { prim, inputs } => {
                hasher.update(format!("map {prim:?}"));
                for input in inputs {
                    let Some(fingerprint) = self.node(*input, coef)? else {
                        return Ok(None);
                    };
                    hasher.update(fingerprint);
                }
            }
        }
        Ok(Some(hasher.finalize().into()))
    }

    fn leaf(&mut self, leaf: LeafId, coef: &dyn Fn(ScalarId) -> Option<f64>) -> Result<Option<[u8; 32]>, String> {
        if let Some(known) = self.leaves.get(&leaf) {
            return Ok(Some(*known));
        }
        let fingerprint = match self.graph.training_of(leaf) {
            Some(job) => match self.key(job, coef)? {
                Some(key) => key.digest(),
                None => return Ok(None),
            },
            None => content(self.graph.leaf(leaf)),
        };
        self.leaves.insert(leaf, fingerprint);
        Ok(Some(fingerprint))
    }

    /// A hash of a dataset's content: rows, or token ids.
    fn data(&self, index: usize) -> [u8; 32] {
        let mut hasher = Sha256::new();
        match &*self.graph.datasets[index] {
            crate::eval::EvalData::Table(data) => {
                data.labels.iter().for_each(|l| hasher.update(l.to_le_bytes()));
                data.features.iter().for_each(|v| hasher.update(v.to_le_bytes()));
            }
            crate::eval::EvalData::Text(task) => {
                for document in task.documents.iter() {
                    hasher.update((document.len() as u64).to_le_bytes());
                    document.iter().for_each(|t| hasher.update(t.to_le_bytes()));
                }
            }
        }
        hasher.finalize().into()
    }
}

/// Every tensor of a checkpoint: name, dtype, shape and bytes.
fn content(checkpoint: &crate::io::Checkpoint) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (i, tensor) in checkpoint.tensors().iter().enumerate() {
        hasher.update(format!("{:?} {:?} {:?}", tensor.name, tensor.dtype, tensor.shape));
        hasher.update(checkpoint.bytes(i));
    }
    hasher.finalize().into()
}

fn describe(args: &Settings) -> String {
    format!("{args:?}")
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
