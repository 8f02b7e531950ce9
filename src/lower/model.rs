//! Model measurements (`accuracy`, `loss`, `perplexity`): configs and
//! datasets are read and checked while lowering (they are small), so a bad
//! file fails the check before any work.

use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::eval::data::Dataset;
use crate::eval::fit::Held;
use crate::eval::mlp::MlpConfig;
use crate::eval::{EvalData, ModelConfig};
use crate::graph::{Measure, ModelKind, ModelMeasure, NodeId};
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
        let help = "a classifier's loss is the mean cross-entropy over all rows of its CSV file";
        self.language_model_only(&args[2..], &super::lm::TEXT_PARAMS, help)?;
        Some(if function == "accuracy" {
            ModelKind::Accuracy
        } else {
            ModelKind::Loss
        })
    }

    /// The config of the model `w` is, checked against its tensors.
    pub(super) fn model_config(&mut self, w: NodeId, span: Span, function: &str) -> Option<usize> {
        let Some(config_file) = self.graph.config_file(w) else {
            let diag = Diagnostic::new(
                "tv::no_model",
                format!("`{function}` needs a model, and these weights have no config.json"),
            )
            .at(span, "weights without a model config")
            .help("load a Hugging Face folder holding config.json, or make weights with init(\"config.json\")");
            self.error(diag);
            return None;
        };
        let index = self.read_config(&config_file, span)?;
        self.same_model_everywhere(w, &config_file, index, span)?;
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
        for config in self.graph.config_files_under(w) {
            if config == first {
                continue;
            }
            let other = self.read_config(&config, span)?;
            if self.graph.configs[other] != self.graph.configs[index] {
                let message = "these weights combine checkpoints of differently configured models";
                let diag = Diagnostic::new("tv::model_config", message)
                    .at(span, "these weights")
                    .help(format!(
                        "{} and {} differ; a measurement needs one model",
                        first.display(),
                        config.display()
                    ));
                self.error(diag);
                return None;
            }
            if tokenizer_of(first) != tokenizer_of(&config) {
                let message = "these weights combine checkpoints of models with different tokenizers";
                let diag = Diagnostic::new("tv::model_config", message)
                    .at(span, "these weights")
                    .help(format!(
                        "the tokenizer.json beside {} and beside {} differ; text would be read with the first only",
                        first.display(),
                        config.display()
                    ));
                self.error(diag);
                return None;
            }
        }
        Some(())
    }

    pub(super) fn read_config(&mut self, path: &Path, span: Span) -> Option<usize> {
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
    pub(super) fn dataset(&mut self, path: &str, span: Span, model: &MlpConfig) -> Option<usize> {
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

    pub(super) fn whole_number(&mut self, (value, span): &(Value, Span), what: &str, min: f64) -> Option<f64> {
        let n = self.known_value(value, *span, what)?;
        if n.fract() != 0.0 || n < min || n > 1e12 {
            let most = if n > 1e12 { " and at most 1e12" } else { "" };
            let diag = Diagnostic::new(
                "tv::argument",
                format!("{what} must be a whole number of at least {min}{most}"),
            )
            .at(*span, "this value");
            self.error(diag);
            return None;
        }
        Some(n)
    }

    pub(super) fn positive_number(&mut self, (value, span): &(Value, Span), what: &str) -> Option<f64> {
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

/// The bytes of the tokenizer beside a config file, if it has one.
fn tokenizer_of(config: &Path) -> Option<Vec<u8>> {
    std::fs::read(config.parent()?.join("tokenizer.json")).ok()
}

/// How a tensor the config calls for differs from what it says.
const DATA_FORMAT: &str =
    "a dataset is a CSV file: a header line, then one row per example: the class label (0, 1, ...), then the features";
