//! Training levels: each `init` and `finetune` job a level needs runs
//! before its pass, through the cache: its input is materialised (with the
//! coefficients measured so far), trained, written as a Hugging Face
//! folder in the cache, and opened as the checkpoint of the job's leaf.

use super::fingerprint::Fingerprints;
use crate::diag::Diagnostic;
use crate::eval::cache::Cache;
use crate::eval::train::{self as mlp_train, Weights};
use crate::eval::{EvalData, ModelConfig};
use crate::graph::train::Settings;
use crate::graph::{Graph, ScalarId, TrainJob, TrainKind};
use crate::io::{Checkpoint, Dtype, IoError, SaveOptions, TensorInfo, Writer};
use candle_core::{Device, Tensor};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

/// What a training level needs from the executor.
pub(super) struct Trainer<'a> {
    pub graph: &'a Graph,
    pub cache: &'a Cache,
    pub device: Device,
    pub progress: bool,
    pub coef: &'a dyn Fn(ScalarId) -> Option<f64>,
}

impl Trainer<'_> {
    /// Runs (or finds in the cache) each job not yet trained, in order: a
    /// job's trained input comes before it.
    pub fn run(&self, jobs: &[usize], wanted: &BTreeSet<usize>) -> Result<(), Diagnostic> {
        let mut fingerprints = Fingerprints::new(self.graph);
        let mut keys = HashMap::new();
        for &index in jobs {
            let job = &self.graph.trainings()[index];
            let key = fingerprints.key(job, self.coef).map_err(|e| failed(job, e))?;
            let key = key.ok_or_else(|| failed(job, "a coefficient of its input was never measured".into()))?;
            keys.insert(index, key);
        }
        let cached = |index: usize| {
            let job = &self.graph.trainings()[index];
            self.graph.is_trained(job.leaf) || self.cache.holds(job.name(), &keys[&index])
        };
        let needed = super::schedule::jobs_to_run(self.graph, jobs, wanted, &cached);
        for &index in jobs.iter().filter(|j| needed.contains(j)) {
            let job = &self.graph.trainings()[index];
            if self.graph.is_trained(job.leaf) {
                continue;
            }
            let key = &keys[&index];
            // Training's own failures are told as they are, not as a write error.
            let mut failure = None;
            let folder = self
                .cache
                .entry(job.name(), key, |folder| self.make(job, folder, &mut failure));
            let folder = folder.map_err(|e| failed(job, failure.take().unwrap_or_else(|| e.to_string())))?;
            let checkpoint = Checkpoint::open(&folder).map_err(|e| failed(job, e.to_string()))?;
            check_promise(job, &checkpoint)?;
            self.graph.fill(job.leaf, Arc::new(checkpoint));
        }
        Ok(())
    }

    /// Trains `job` and writes its folder.
    fn make(&self, job: &TrainJob, folder: &Path, failure: &mut Option<String>) -> Result<(), IoError> {
        let mut bad = |reason: String| {
            *failure = Some(reason.clone());
            IoError::BadWrite {
                path: folder.to_path_buf(),
                reason,
            }
        };
        let config_json = std::fs::read(&job.config_file).map_err(|source| IoError::Read {
            path: job.config_file.clone(),
            source,
        })?;
        let weights = self.weights(job, &config_json).map_err(&mut bad)?;
        write_model(folder, &weights, config_json, &job.model_folder())
    }

    fn weights(&self, job: &TrainJob, config_json: &[u8]) -> Result<Weights, String> {
        let config = &*self.graph.configs[job.config];
        match (&job.kind, config) {
            (TrainKind::Init { seed }, ModelConfig::Mlp(mlp)) => Ok(mlp_train::init_weights(mlp, *seed)),
            (TrainKind::Init { seed }, ModelConfig::Causal(lm)) => {
                let json = serde_json::from_slice(config_json).unwrap_or(serde_json::Value::Null);
                let range = crate::eval::lm::init::initializer_range(&json);
                Ok(crate::eval::lm::init::init_weights(lm, range, *seed))
            }
            (TrainKind::Finetune { input, data, args }, _) => {
                let tensors =
                    super::materialize::materialize(self.graph, *input, &|s| (self.coef)(s).unwrap_or(f64::NAN));
                self.finetune(job, config, tensors.map_err(|e| e.to_string())?, *data, args)
            }
        }
    }

    fn finetune(
        &self,
        job: &TrainJob,
        config: &ModelConfig,
        tensors: Vec<(TensorInfo, Vec<u8>)>,
        data: usize,
        args: &Settings,
    ) -> Result<Weights, String> {
        let label = format!("{} {}", job.name(), job_data_name(self.graph, data));
        match (config, &*self.graph.datasets[data], args) {
            (ModelConfig::Mlp(mlp), EvalData::Table(rows), Settings::Mlp(args)) => {
                let bar = self.bar(args.steps, &label);
                let trained = mlp_train::finetune(mlp, &decode(tensors), rows, *args, &|| bar.inc(1));
                bar.finish_and_clear();
                trained.map_err(|e| e.to_string())
            }
            (ModelConfig::Causal(lm), EvalData::Text(task), Settings::Lm(args)) => {
                let tensors = super::models::to_tensors(tensors, &self.device).map_err(|e| e.to_string())?;
                let bar = self.bar(args.steps, &label);
                let started = std::time::Instant::now();
                let mut on_step = |_step: usize, loss: f64, tokens: u64| {
                    let rate = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    bar.set_message(format!("{label}: loss {loss:.3}, {rate:.0} tok/s"));
                    bar.inc(1);
                };
                let trained =
                    crate::eval::lm::train::finetune(lm, &tensors, &task.documents, args, &self.device, &mut on_step);
                bar.finish_and_clear();
                from_tensors(trained?)
            }
            _ => Err("the data does not suit the model".into()),
        }
    }

    fn bar(&self, steps: usize, label: &str) -> indicatif::ProgressBar {
        match self.progress {
            true => crate::report::progress::steps(steps as u64, label),
            false => indicatif::ProgressBar::hidden(),
        }
    }
}

fn job_data_name(graph: &Graph, data: usize) -> String {
    match &*graph.datasets[data] {
        EvalData::Text(task) => task.path.display().to_string(),
        EvalData::Table(_) => format!("dataset {data}"),
    }
}

/// The trained checkpoint must hold what lowering promised, or the rest of
/// the plan would read tensors that are not there.
fn check_promise(job: &TrainJob, checkpoint: &Checkpoint) -> Result<(), Diagnostic> {
    let held = crate::graph::Specs::of_checkpoint(checkpoint);
    let mismatches = held.mismatches(&job.specs);
    if mismatches.is_empty() && held.tensors.iter().all(|s| s.dtype == Dtype::F32) {
        return Ok(());
    }
    let first: Vec<String> = mismatches.iter().take(3).map(|m| m.to_string()).collect();
    Err(failed(
        job,
        format!("the trained model differs from its description: {}", first.join("; ")),
    ))
}

fn failed(job: &TrainJob, reason: String) -> Diagnostic {
    Diagnostic::new("tv::training", format!("`{}` failed: {reason}", job.name()))
        .at(job.span, "this training")
        .help("nothing was saved; a cached result is only kept once complete")
}

/// The float tensors of materialised weights (f32 little-endian bytes), as
/// the classifier's trainer takes them.
fn decode(tensors: Vec<(TensorInfo, Vec<u8>)>) -> Weights {
    tensors
        .into_iter()
        .filter(|(info, _)| info.is_float())
        .map(|(info, bytes)| {
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (info.name, info.shape, values)
        })
        .collect()
}

/// Trained tensors as weights to write (`write_model` sorts them).
fn from_tensors(tensors: HashMap<String, Tensor>) -> Result<Weights, String> {
    tensors
        .into_iter()
        .map(|(name, tensor)| {
            let shape = tensor.dims().to_vec();
            let values = tensor.flatten_all().and_then(|t| t.to_dtype(candle_core::DType::F32));
            let values = values.and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())?;
            Ok((name, shape, values))
        })
        .collect()
}

/// Writes weights as a Hugging Face folder, atomically, with the config
/// file's bytes as `config.json` and the model folder's tokenizer files.
fn write_model(folder: &Path, weights: &Weights, config: Vec<u8>, model_folder: &Path) -> Result<(), IoError> {
    let mut sorted: Vec<&(String, Vec<usize>, Vec<f32>)> = weights.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let infos: Vec<TensorInfo> = sorted
        .iter()
        .map(|(n, s, _)| TensorInfo::new(n.clone(), Dtype::F32, s.clone()))
        .collect();
    let options = SaveOptions {
        config_json: Some(config),
        copy_from: Some(model_folder.to_path_buf()),
        ..SaveOptions::default()
    };
    let writer = Writer::create(folder, &infos, &options)?;
    for (i, (_, _, values)) in sorted.iter().enumerate() {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        writer.write(i, &bytes)?;
    }
    writer.finish()
}
