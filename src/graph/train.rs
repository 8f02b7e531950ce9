//! Training as a node of the graph: `init` and `finetune` results are
//! checkpoints that do not exist yet. Lowering describes each job and the
//! tensors it will produce (from its config and its input's headers); the
//! executor trains it when a measurement or a save first needs it, and
//! fills its leaf with the trained checkpoint.

use super::{LeafId, NodeId, Specs};
use crate::diag::Span;
use crate::eval::lm::train::TrainArgs;
use crate::eval::train::FinetuneArgs;
use std::path::PathBuf;
use std::sync::Arc;

/// What a training job makes.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainKind {
    /// Fresh weights for the config.
    Init { seed: u64 },
    /// A trained copy of `input` on dataset `data` (an index into the
    /// graph's datasets).
    Finetune { input: NodeId, data: usize, args: Settings },
}

/// How a model is fine-tuned, by kind of model.
#[derive(Clone, Debug, PartialEq)]
pub enum Settings {
    Mlp(FinetuneArgs),
    Lm(TrainArgs),
}

/// One `init` or `finetune` call, as lowered.
#[derive(Clone, Debug)]
pub struct TrainJob {
    pub kind: TrainKind,
    /// The model config (an index into the graph's configs) and the file it
    /// was read from, which the trained folder carries with its tokenizer.
    pub config: usize,
    pub config_file: PathBuf,
    /// Where the result appears in the graph: a leaf filled once trained.
    pub leaf: LeafId,
    /// The tensors it promises: a trained checkpoint must hold exactly these.
    pub specs: Arc<Specs>,
    pub span: Span,
}

impl TrainJob {
    /// The weights it trains from, if any.
    pub fn input(&self) -> Option<NodeId> {
        match &self.kind {
            TrainKind::Init { .. } => None,
            TrainKind::Finetune { input, .. } => Some(*input),
        }
    }

    /// The folder whose tokenizer and other model files travel with the
    /// result: the config file's.
    pub fn model_folder(&self) -> PathBuf {
        self.config_file.parent().map(PathBuf::from).unwrap_or_default()
    }

    /// "init" or "finetune", as the cache names its entries.
    pub fn name(&self) -> &'static str {
        match self.kind {
            TrainKind::Init { .. } => "init",
            TrainKind::Finetune { .. } => "finetune",
        }
    }
}

/// A description of the job for plans and graph dumps: the same before and
/// after it is trained.
pub fn describe(graph: &super::Graph, job: &TrainJob) -> String {
    match &job.kind {
        TrainKind::Init { seed } => format!("init({:?}, seed = {seed})", job.config_file),
        TrainKind::Finetune { input, data, args } => {
            let settings = match args {
                Settings::Mlp(a) => format!(
                    "steps = {}, lr = {}, batch = {}, seed = {}",
                    a.steps, a.lr, a.batch, a.seed
                ),
                Settings::Lm(a) => lm_settings(a),
            };
            let data = match &*graph.datasets[*data] {
                crate::eval::EvalData::Text(task) => format!("{:?}", task.path),
                crate::eval::EvalData::Table(_) => format!("dataset {data}"),
            };
            format!("finetune(%{}, {data}, {settings})", input.0)
        }
    }
}

fn lm_settings(a: &TrainArgs) -> String {
    let mut text = format!(
        "steps = {}, lr = {}, batch = {}, accumulate = {}, context = {}, warmup = {}, clip = {}, weight_decay = {}, seed = {}",
        a.steps, a.lr, a.batch, a.accumulate, a.context, a.warmup, a.clip, a.weight_decay, a.seed
    );
    if let Some(lora) = &a.lora {
        text += &format!(
            ", lora = {}, lora_alpha = {}, modules = {:?}",
            lora.rank, lora.alpha, lora.modules
        );
    }
    text
}
