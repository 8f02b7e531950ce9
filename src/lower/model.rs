//! Builtins for the built-in MLP: `accuracy`, `loss`, `init`, `finetune`.
//! Their configs and datasets are read and checked while lowering (they
//! are small); training happens here too, through the cache, so the rest
//! of the program sees trained weights as ordinary checkpoints.

use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::eval::cache::Key;
use crate::eval::data::Dataset;
use crate::eval::fit::Held;
use crate::eval::mlp::MlpConfig;
use crate::eval::train::{self, FinetuneArgs, Weights};
use crate::eval::{EvalData, ModelConfig};
use crate::graph::{Measure, ModelKind, ModelMeasure, NodeId};
use crate::io::{Dtype, SaveOptions, TensorInfo, Writer};
use std::path::Path;
use std::sync::Arc;

impl Lowerer<'_> {
    /// `accuracy(w, data)`, `loss(w, data, ...)`, `perplexity(w, data, ...)`.
    pub(super) fn model_measure(&mut self, function: &str, args: &[(Value, Span)]) -> Option<Value> {
        let w = self.weights_arg(&args[0], function)?;
        let path = self.string_arg(&args[1], "the data of a model measurement")?;
        let config = self.model_config(w, args[0].1, function)?;
        let model = self.graph.configs[config].clone();
        let (kind, data) = match &*model {
            ModelConfig::Mlp(mlp) => {
                let kind = self.classifier_kind(function, args)?;
                (kind, self.dataset(&path, args[1].1, mlp)?)
            }
            ModelConfig::Causal(lm) => self.text_measure(w, function, &path, args, lm)?,
        };
        let measure = Measure::Model(ModelMeasure {
            kind,
            node: w,
            config,
            data,
        });
        Some(Value::Num(self.graph.measured(measure)))
    }

    /// What a measurement means for the MLP classifier, whose data has no
    /// text settings.
    fn classifier_kind(&mut self, function: &str, args: &[(Value, Span)]) -> Option<ModelKind> {
        if function == "perplexity" {
            let diag = Diagnostic::new("tv::model_kind", "`perplexity` needs a language model")
                .at(args[0].1, "a built-in MLP classifier")
                .help("classifiers are measured with accuracy(w, data) and loss(w, data)");
            self.error(diag);
            return None;
        }
        for (arg, param) in args.iter().skip(2).zip(super::lm::TEXT_PARAMS) {
            let given = match &arg.0 {
                Value::Str(s) => s != super::lm::DEFAULT_FIELD,
                other => !self.is_known_nan(other),
            };
            if given {
                let diag = Diagnostic::new("tv::argument", format!("`{param}` applies to language models only"))
                    .at(arg.1, "not for a classifier")
                    .help("a classifier's loss is the mean cross-entropy over all rows of its CSV file");
                self.error(diag);
                return None;
            }
        }
        Some(if function == "accuracy" {
            ModelKind::Accuracy
        } else {
            ModelKind::Loss
        })
    }

    /// The config of the model `w` is, checked against its tensors.
    fn model_config(&mut self, w: NodeId, span: Span, function: &str) -> Option<usize> {
        let Some(folder) = self.graph.config_folder(w).map(Path::to_path_buf) else {
            let diag = Diagnostic::new(
                "tv::no_model",
                format!("`{function}` needs a model, and these weights have no config.json"),
            )
            .at(span, "weights without a model config")
            .help("load a Hugging Face folder holding config.json, or make weights with init(\"config.json\")");
            self.error(diag);
            return None;
        };
        let index = self.read_config(&folder.join("config.json"), span)?;
        self.same_model_everywhere(w, &folder, index, span)?;
        let mismatches = self.config_mismatches(w, index);
        if !mismatches.is_empty() {
            let diag = Diagnostic::new("tv::model_shape", "the weights do not fit their model config")
                .at(span, "these weights")
                .help(mismatches.join("; "));
            self.error(diag);
            return None;
        }
        Some(index)
    }

    /// The config of `w` is that of its first folder; weights made from
    /// folders of differently configured models have no one model.
    fn same_model_everywhere(&mut self, w: NodeId, first: &Path, index: usize, span: Span) -> Option<()> {
        for folder in self.graph.folders_under(w) {
            if folder == first {
                continue;
            }
            let other = self.read_config(&folder.join("config.json"), span)?;
            if self.graph.configs[other] != self.graph.configs[index] {
                let message = "these weights combine checkpoints of differently configured models";
                let diag = Diagnostic::new("tv::model_config", message)
                    .at(span, "these weights")
                    .help(format!(
                        "{} and {} have different config.json files; a measurement needs one model",
                        first.display(),
                        folder.display()
                    ));
                self.error(diag);
                return None;
            }
        }
        Some(())
    }

    fn read_config(&mut self, path: &Path, span: Span) -> Option<usize> {
        if let Some(known) = self.configs.get(path) {
            return known.clone().map_err(|d| self.error(d.at(span, "this model"))).ok();
        }
        let result = ModelConfig::read(path).map(|config| {
            self.graph.configs.push(Arc::new(config));
            self.graph.configs.len() - 1
        });
        let result = result.map_err(|(e, help)| Diagnostic::new("tv::model_config", e).help(help));
        self.configs.insert(path.to_path_buf(), result.clone());
        result.map_err(|d| self.error(d.at(span, "this model"))).ok()
    }

    /// The first few ways the weights' tensors differ from the config's.
    fn config_mismatches(&self, w: NodeId, config: usize) -> Vec<String> {
        let specs = self.graph.specs(w);
        let held: Vec<Held> = specs
            .tensors
            .iter()
            .map(|s| Held {
                name: &s.name,
                shape: &s.shape,
                float: s.float,
            })
            .collect();
        crate::eval::fit::mismatches(&self.graph.configs[config], &held)
    }

    /// A dataset for a model, read once per path.
    fn dataset(&mut self, path: &str, span: Span, model: &MlpConfig) -> Option<usize> {
        let resolved = self.resolve_path(path);
        let index = match self.datasets.get(&resolved) {
            Some(known) => known.clone(),
            None => {
                let read = Dataset::read(&resolved).map(|data| {
                    self.graph.datasets.push(Arc::new(EvalData::Table(data)));
                    self.graph.datasets.len() - 1
                });
                let read = read.map_err(|e| Diagnostic::new("tv::dataset", e).help(DATA_FORMAT));
                self.datasets.insert(resolved, read.clone());
                read
            }
        };
        let index = index.map_err(|d| self.error(d.at(span, "this dataset"))).ok()?;
        let EvalData::Table(data) = &*self.graph.datasets[index] else {
            return Some(index);
        };
        let problem = if data.width != model.layers[0] {
            Some(format!(
                "{} features per row, the model takes {}",
                data.width, model.layers[0]
            ))
        } else if data.classes() > model.classes() {
            Some(format!(
                "labels up to {}, the model has {} classes",
                data.classes() - 1,
                model.classes()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            let diag = Diagnostic::new("tv::dataset", format!("the dataset does not fit the model: {problem}"))
                .at(span, "this dataset");
            self.error(diag);
            return None;
        }
        Some(index)
    }

    /// `init(config, seed = 0)`: fresh weights, kept in the cache.
    pub(super) fn init(&mut self, args: &[(Value, Span)]) -> Option<Value> {
        // Training runs while lowering: never inside a trial.
        if self.fail_trial() {
            return None;
        }
        let path = self.string_arg(&args[0], "the config of `init`")?;
        let seed = self.whole_number(&args[1], "the seed", 0.0)?;
        let config_path = self.resolve_path(&path);
        let index = self.read_config(&config_path, args[0].1)?;
        let config = self.trainable(index, args[0].1, "init")?;
        let json = serde_json::to_vec(&config).unwrap_or_default();
        let mut key = Key::new("init-1");
        key.add(&json).add(&(seed as u64).to_le_bytes());
        self.trains = true;
        let folder = self.training.cache.entry("init", &key, |folder| {
            write_model(folder, &train::init_weights(&config, seed as u64), &json)
        });
        self.load_trained(folder, args[0].1)
    }

    /// `finetune(w, data, steps, lr, batch, seed)`: a trained copy of `w`.
    pub(super) fn finetune(&mut self, args: &[(Value, Span)], span: Span) -> Option<Value> {
        if self.fail_trial() {
            return None;
        }
        let w = self.weights_arg(&args[0], "finetune")?;
        let path = self.string_arg(&args[1], "the data of `finetune`")?;
        let config = self.model_config(w, args[0].1, "finetune")?;
        let model = self.trainable(config, args[0].1, "finetune")?;
        let data = self.dataset(&path, args[1].1, &model)?;
        let finetune = FinetuneArgs {
            steps: self.whole_number(&args[2], "`steps`", 0.0)? as usize,
            lr: self.positive_number(&args[3], "`lr`")?,
            batch: self.whole_number(&args[4], "`batch`", 1.0)? as usize,
            seed: self.whole_number(&args[5], "the seed", 0.0)? as u64,
        };
        self.trains = true;
        if self.dry > 0 || !self.training.run {
            // Checking only: the result has the same tensors as `w`.
            return Some(Value::Weights(w));
        }
        let weights = self.materialize_known(w, span)?;
        let EvalData::Table(dataset) = &*self.graph.datasets[data].clone() else {
            return None;
        };
        let json = serde_json::to_vec(&model).unwrap_or_default();
        let key = finetune_key(&json, &weights, dataset, &finetune);
        let folder = self.training.cache.entry("finetune", &key, |folder| {
            let progress = crate::report::progress::steps(finetune.steps as u64, &format!("finetune on {path}"));
            let trained = train::finetune(&model, &weights, dataset, finetune, &|| progress.inc(1)).map_err(|e| {
                crate::io::IoError::BadWrite {
                    path: folder.to_path_buf(),
                    reason: format!("training failed: {e}"),
                }
            })?;
            progress.finish_and_clear();
            write_model(folder, &trained, &json)
        });
        self.load_trained(folder, span)
    }

    /// The MLP config at `index`: the only architecture tv trains.
    fn trainable(&mut self, index: usize, span: Span, function: &str) -> Option<MlpConfig> {
        match &*self.graph.configs[index] {
            ModelConfig::Mlp(config) => Some(config.clone()),
            ModelConfig::Causal(_) => {
                let diag = Diagnostic::new("tv::model_kind", format!("`{function}` trains the built-in MLP only"))
                    .at(span, "a language model")
                    .help("language models are measured with perplexity(w, text) and loss(w, text)");
                self.error(diag);
                None
            }
        }
    }

    /// The float tensors of `w`, computed now; its coefficients must not
    /// depend on measurements.
    fn materialize_known(&mut self, w: NodeId, span: Span) -> Option<Weights> {
        let scalars = &self.graph.scalars;
        let coef = |s| scalars.known(s).unwrap_or(f64::NAN);
        let tensors = crate::exec::materialize::materialize(&self.graph, w, &coef);
        let tensors = tensors
            .map_err(|e| self.error(Diagnostic::new("tv::compute", e.to_string()).at(span, "while training")))
            .ok()?;
        let weights: Weights = tensors
            .into_iter()
            .filter(|(info, _)| info.is_float())
            .map(|(info, bytes)| {
                let values = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (info.name, info.shape, values)
            })
            .collect();
        if weights.iter().any(|(_, _, v)| v.iter().any(|x| x.is_nan())) {
            let diag = Diagnostic::new(
                "tv::needs_constant",
                "`finetune` needs weights known before any measurement",
            )
            .at(span, "these weights")
            .help("coefficients of the weights to train cannot depend on norm(), cosine() or other measurements");
            self.error(diag);
            return None;
        }
        Some(weights)
    }

    fn load_trained(&mut self, folder: Result<std::path::PathBuf, crate::io::IoError>, span: Span) -> Option<Value> {
        let folder = folder
            .map_err(|e| self.error(Diagnostic::new("tv::training", e.to_string()).at(span, "here")))
            .ok()?;
        self.load_at(&folder, span, "here")
    }

    pub(super) fn whole_number(&mut self, (value, span): &(Value, Span), what: &str, min: f64) -> Option<f64> {
        let n = self.known_value(value, *span, what)?;
        if n.fract() != 0.0 || n < min || n > 1e12 {
            let diag = Diagnostic::new(
                "tv::argument",
                format!("{what} must be a whole number of at least {min}"),
            )
            .at(*span, "this value");
            self.error(diag);
            return None;
        }
        Some(n)
    }

    fn positive_number(&mut self, (value, span): &(Value, Span), what: &str) -> Option<f64> {
        let n = self.known_value(value, *span, what)?;
        if !(n > 0.0 && n.is_finite()) {
            self.error(
                Diagnostic::new("tv::argument", format!("{what} must be a positive number")).at(*span, "this value"),
            );
            return None;
        }
        Some(n)
    }

    pub(super) fn known_value(&mut self, value: &Value, span: Span, what: &str) -> Option<f64> {
        match value {
            Value::Num(n) => {
                let known = self.graph.scalars.known(*n);
                if known.is_none() {
                    self.not_known_yet(span, &format!("used as {what}"));
                }
                known
            }
            other => {
                self.wrong_type(span, what, "a number", other);
                None
            }
        }
    }
}

/// How a tensor the config calls for differs from what it says.
const DATA_FORMAT: &str =
    "a dataset is a CSV file: a header line, then one row per example: the class label (0, 1, ...), then the features";

/// Everything a fine-tuned model depends on.
fn finetune_key(config: &[u8], weights: &Weights, data: &Dataset, args: &FinetuneArgs) -> Key {
    let mut key = Key::new("finetune-2");
    key.add(config);
    for (name, shape, values) in weights {
        key.add(name.as_bytes());
        key.add(&shape.iter().flat_map(|d| (*d as u64).to_le_bytes()).collect::<Vec<_>>());
        key.add(&values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
    }
    key.add(&data.labels.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<_>>());
    key.add(&data.features.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
    key.add(&(args.steps as u64).to_le_bytes())
        .add(&args.lr.to_le_bytes())
        .add(&(args.batch as u64).to_le_bytes())
        .add(&args.seed.to_le_bytes());
    key
}

/// Writes weights and their config as a Hugging Face folder, atomically.
fn write_model(folder: &Path, weights: &Weights, config: &[u8]) -> Result<(), crate::io::IoError> {
    let mut sorted: Vec<&(String, Vec<usize>, Vec<f32>)> = weights.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let infos: Vec<TensorInfo> = sorted
        .iter()
        .map(|(n, s, _)| TensorInfo::new(n.clone(), Dtype::F32, s.clone()))
        .collect();
    let options = SaveOptions {
        config_json: Some(config.to_vec()),
        ..SaveOptions::default()
    };
    let writer = Writer::create(folder, &infos, &options)?;
    for (i, (_, _, values)) in sorted.iter().enumerate() {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        writer.write(i, &bytes)?;
    }
    writer.finish()
}
