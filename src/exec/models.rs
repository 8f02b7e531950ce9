//! Model measurements: the weights of each measured node are materialised
//! in memory once, straight from the memory-mapped leaves, then every
//! measurement of them is taken (each dataset scored once, every command
//! run on one saved copy), and they are dropped before the next node.

use super::materialize::materialize;
use crate::diag::Diagnostic;
use crate::eval::command::CommandSpec;
use crate::eval::lm::{window_losses, CausalLm, TextTask};
use crate::eval::mlp::{evaluate, Mlp};
use crate::eval::{EvalData, ModelConfig};
use crate::graph::{Graph, Measure, MeasureId, ModelKind, NodeId, ScalarId};
use crate::io::{SaveOptions, TensorInfo, Writer};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};

/// Called with one model's results as soon as they are made.
pub(super) type OnModel<'a> = dyn FnMut(&[(MeasureId, f64)]) -> Result<(), Diagnostic> + 'a;

/// Scores every model and command measurement in `measures`; `on_model`
/// gets each model's results as soon as they are made.
pub(super) fn measure(
    graph: &Graph,
    measures: &[MeasureId],
    coef: &dyn Fn(ScalarId) -> f64,
    device: &Device,
    progress: bool,
    on_model: &mut OnModel,
) -> Result<Vec<(MeasureId, f64)>, Diagnostic> {
    let mut by_node: BTreeMap<NodeId, Vec<MeasureId>> = BTreeMap::new();
    for m in measures {
        match graph.measure(*m) {
            Measure::Model(model) => by_node.entry(model.node).or_default().push(*m),
            Measure::Command { node, .. } => by_node.entry(node).or_default().push(*m),
            Measure::Dot(..) => {}
        }
    }
    let mut out = Vec::new();
    for (node, group) in by_node {
        let first = out.len();
        let tensors = materialize(graph, node, coef).map_err(|e| failed(e.to_string()))?;
        let mut scorer = Scorer {
            graph,
            device,
            progress,
            models: HashMap::new(),
            scores: HashMap::new(),
        };
        let commands: Vec<(MeasureId, usize)> = group
            .iter()
            .filter_map(|m| match graph.measure(*m) {
                Measure::Command { command, .. } => Some((*m, command)),
                _ => None,
            })
            .collect();
        if !commands.is_empty() {
            let saved = save_for_commands(graph, node, &tensors)?;
            for (m, command) in commands {
                out.push((m, run_command(&saved, &graph.commands[command])?));
            }
        }
        let tensors = to_tensors(tensors, device).map_err(|e| failed(e.to_string()))?;
        for m in group {
            if let Measure::Model(model) = graph.measure(m) {
                let score = scorer.score(&tensors, model.config, model.data).map_err(failed)?;
                let value = match model.kind {
                    ModelKind::Accuracy => score.accuracy,
                    ModelKind::Loss => score.loss,
                    ModelKind::Perplexity => score.loss.exp(),
                };
                out.push((m, value));
            }
        }
        on_model(&out[first..])?;
    }
    Ok(out)
}

fn failed(reason: String) -> Diagnostic {
    Diagnostic::new("tv::model", format!("model evaluation failed: {reason}"))
}

/// What a dataset gave a model; a language model has no accuracy.
#[derive(Clone, Copy)]
struct Score {
    accuracy: f64,
    loss: f64,
}

enum Built {
    Mlp(Mlp),
    Lm(Box<CausalLm>),
}

/// Builds each architecture of one set of weights once and scores each
/// dataset once.
struct Scorer<'a> {
    graph: &'a Graph,
    device: &'a Device,
    progress: bool,
    models: HashMap<usize, Built>,
    scores: HashMap<usize, Score>,
}

impl Scorer<'_> {
    fn score(&mut self, tensors: &HashMap<String, Tensor>, config: usize, data: usize) -> Result<Score, String> {
        if let Some(score) = self.scores.get(&data) {
            return Ok(*score);
        }
        if !self.models.contains_key(&config) {
            let built = match &*self.graph.configs[config] {
                ModelConfig::Mlp(c) => Mlp::new(c, tensors).map(Built::Mlp),
                ModelConfig::Causal(c) => CausalLm::new(c, tensors).map(|lm| Built::Lm(Box::new(lm))),
            };
            self.models.insert(config, built.map_err(|e| e.to_string())?);
        }
        let score = match (&self.models[&config], &*self.graph.datasets[data]) {
            (Built::Mlp(mlp), EvalData::Table(rows)) => {
                let scores = evaluate(mlp, rows, self.device).map_err(|e| e.to_string())?;
                Score {
                    accuracy: scores.accuracy,
                    loss: scores.loss,
                }
            }
            (Built::Lm(lm), EvalData::Text(task)) => Score {
                accuracy: f64::NAN,
                loss: mean_loss(lm, task, self.device, self.progress)?,
            },
            _ => return Err("the data does not suit the model".into()),
        };
        self.scores.insert(data, score);
        Ok(score)
    }
}

/// The mean negative log-likelihood per scored token.
fn mean_loss(lm: &CausalLm, task: &TextTask, device: &Device, progress: bool) -> Result<f64, String> {
    let label = format!("scoring {}", task.path.display());
    let bar = match progress {
        true => crate::report::progress::windows(task.windows.len() as u64, &label),
        false => indicatif::ProgressBar::hidden(),
    };
    let tick = |n: usize| bar.inc(n as u64);
    let losses = window_losses(lm, &task.documents, &task.windows, task.windowing.batch, device, &tick);
    let losses = losses.map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(losses.iter().sum::<f64>() / losses.len() as f64)
}

/// Float tensors as f32 candle tensors on `device`, the buffers freed one
/// by one as they are copied.
pub(super) fn to_tensors(
    tensors: Vec<(TensorInfo, Vec<u8>)>,
    device: &Device,
) -> candle_core::Result<HashMap<String, Tensor>> {
    use rayon::prelude::*;
    // In parallel: for a large model these copies are a visible part of
    // a run's start.
    tensors
        .into_par_iter()
        .filter(|(info, _)| info.is_float())
        .map(|(info, bytes)| {
            Ok((
                info.name,
                Tensor::from_raw_buffer(&bytes, DType::F32, &info.shape, device)?,
            ))
        })
        .collect()
}

/// The weights saved to a temporary Hugging Face folder, with the config
/// and tokenizer files of their source; removed when dropped, or by the
/// interrupt handler if the run is interrupted (it is registered as staging).
struct SavedModel {
    temporary: tempfile::TempDir,
    folder: std::path::PathBuf,
}

impl Drop for SavedModel {
    fn drop(&mut self) {
        crate::io::staging::lock().forget(self.temporary.path());
    }
}

fn save_for_commands(graph: &Graph, node: NodeId, tensors: &[(TensorInfo, Vec<u8>)]) -> Result<SavedModel, Diagnostic> {
    let temporary = tempfile::Builder::new()
        .prefix("tv-model-")
        .tempdir_in(crate::eval::command::temporary_root())
        .map_err(|e| failed(format!("cannot make a temporary folder: {e}")))?;
    crate::io::staging::lock().add(temporary.path());
    let saved = SavedModel {
        folder: temporary.path().join("model"),
        temporary,
    };
    let folder = &saved.folder;
    let options = SaveOptions {
        copy_from: graph.config_folder(node).map(|p| p.to_path_buf()),
        ..SaveOptions::default()
    };
    let infos: Vec<TensorInfo> = tensors.iter().map(|(info, _)| info.clone()).collect();
    let write = || -> Result<(), crate::io::IoError> {
        let writer = Writer::create(folder, &infos, &options)?;
        for (i, (_, bytes)) in tensors.iter().enumerate() {
            writer.write(i, bytes)?;
        }
        writer.finish()
    };
    write().map_err(|e| failed(format!("cannot save the weights for the command: {e}")))?;
    Ok(saved)
}

/// Runs a command on saved weights.
fn run_command(saved: &SavedModel, command: &CommandSpec) -> Result<f64, Diagnostic> {
    command.run(&saved.folder).map_err(|reason| {
        Diagnostic::new(
            "tv::command",
            format!("the command `{}` failed: {reason}", command.shown()),
        )
        .at(command.span, "this command")
        .help("the command is run by `sh -c` in the experiment's folder, with {model} replaced by the weights' folder")
    })
}
