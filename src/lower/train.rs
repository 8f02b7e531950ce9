//! `init` and `finetune`: training jobs, described here and run by the
//! executor. Lowering reads only configs, datasets and headers: the job's
//! tensors follow from its config (`init`) or its input (`finetune`), so
//! `tv check` and `tv plan` see the graph `tv run` executes.

use super::lm::{context_setting, Setting, NO_LIMIT};
use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::eval::lm::train::{Lora, TrainArgs};
use crate::eval::lm::LmConfig;
use crate::eval::train::FinetuneArgs;
use crate::eval::ModelConfig;
use crate::graph::train::Settings;
use crate::graph::{LeafId, NodeId, Specs, TrainJob, TrainKind};
use std::path::PathBuf;
use std::sync::Arc;

/// `finetune`'s parameters that only language models take, after the
/// shared `w, data, steps, lr, batch, seed`.
pub(super) const LM_PARAMS: [&str; 9] = [
    "context",
    "accumulate",
    "warmup",
    "clip",
    "weight_decay",
    "lora",
    "lora_alpha",
    "modules",
    "field",
];

/// Defaults of a language model's training settings.
const DEFAULT_CLIP: f64 = 1.0;
const DEFAULT_WEIGHT_DECAY: f64 = 0.0;
const DEFAULT_TRAIN_CONTEXT: usize = 128;

impl Lowerer<'_> {
    /// `init(config, seed = 0)`: fresh weights for a config.
    pub(super) fn init(&mut self, args: &[(Value, Span)], span: Span) -> Option<Value> {
        // A sweep point's training is its own job: never lowered symbolically.
        if self.fail_trial() {
            return None;
        }
        let path = self.string_arg(&args[0], "the config of `init`")?;
        let seed = self.whole_number(&args[1], "the seed", 0.0)? as u64;
        let config_file = self.resolve_path(&path);
        let config = self.read_config(&config_file, args[0].1)?;
        let specs = Specs::trained(self.graph.configs[config].tensors());
        let kind = TrainKind::Init { seed };
        Some(Value::Weights(self.training_node(
            kind,
            (config, config_file),
            specs,
            span,
        )))
    }

    /// `finetune(w, data, ...)`: a trained copy of `w`, with `w`'s float
    /// tensors in f32.
    pub(super) fn finetune(&mut self, args: &[(Value, Span)], span: Span) -> Option<Value> {
        if self.fail_trial() {
            return None;
        }
        let w = self.weights_arg(&args[0], "finetune")?;
        let paths = self.data_paths(&args[1])?;
        let config = self.model_config(w, args[0].1, "finetune")?;
        let config_file = self.graph.config_file(w)?;
        let steps = self.whole_number(&args[2], "`steps`", 0.0)? as usize;
        let lr = self.positive_number(&args[3], "`lr`")?;
        let batch = self.whole_number(&args[4], "`batch`", 1.0)? as usize;
        let seed = self.whole_number(&args[5], "the seed", 0.0)? as u64;
        let model = self.graph.configs[config].clone();
        let (data, settings) = match &*model {
            ModelConfig::Mlp(mlp) => {
                let help = "a classifier is fine-tuned with steps, lr, batch and seed";
                self.language_model_only(&args[6..], &LM_PARAMS, help)?;
                let [path] = &paths[..] else {
                    let diag = Diagnostic::new("tv::argument", "a classifier trains on one CSV file")
                        .at(args[1].1, "a list of files")
                        .help("lists of text files are for language models; join the rows into one CSV file");
                    self.error(diag);
                    return None;
                };
                let data = self.dataset(path, args[1].1, mlp)?;
                let settings = Settings::Mlp(FinetuneArgs { steps, lr, batch, seed });
                (data, settings)
            }
            ModelConfig::Causal(lm) => {
                if steps == 0 {
                    let diag = Diagnostic::new("tv::argument", "`steps` must be at least 1 for a language model")
                        .at(args[2].1, "no training step")
                        .help("a model trained for no steps is the model itself: use it as it is");
                    self.error(diag);
                    return None;
                }
                let shared = (steps, lr, batch, seed);
                let args_lm = self.lm_train_args(w, &args[6..], shared, lm)?;
                let data = self.training_text(w, &paths, args, lm, &args_lm)?;
                (data, Settings::Lm(args_lm))
            }
        };
        let specs = self.graph.specs(w).tensors.iter().filter(|s| s.float);
        let specs = Specs::trained(specs.map(|s| (s.name.clone(), s.shape.clone())));
        let kind = TrainKind::Finetune {
            input: w,
            data,
            args: settings,
        };
        Some(Value::Weights(self.training_node(
            kind,
            (config, config_file),
            specs,
            span,
        )))
    }

    /// The node of a job; the same call made again (at another sweep point,
    /// say) is the same job.
    fn training_node(
        &mut self,
        kind: TrainKind,
        (config, config_file): (usize, PathBuf),
        specs: Specs,
        span: Span,
    ) -> NodeId {
        let job = TrainJob {
            kind,
            config,
            config_file,
            leaf: LeafId(0),
            specs: Arc::new(specs),
            span,
        };
        self.trains = true;
        let key = format!("{:?} {} {:?}", job.kind, job.config, job.config_file);
        if let Some(node) = self.train_jobs.get(&key) {
            return *node;
        }
        let node = self.graph.train(job);
        self.train_jobs.insert(key, node);
        node
    }

    /// Refuses the first of `params` (language-model settings) that was
    /// given to a classifier; `help` says what the classifier takes.
    pub(super) fn language_model_only(&mut self, args: &[(Value, Span)], params: &[&str], help: &str) -> Option<()> {
        for ((value, span), param) in args.iter().zip(params) {
            let given = match value {
                Value::Str(s) => s != lm_string_default(param),
                other => !self.is_known_nan(other),
            };
            if given {
                let diag = Diagnostic::new("tv::argument", format!("`{param}` applies to language models only"))
                    .at(*span, "not for a classifier")
                    .help(help);
                self.error(diag);
                return None;
            }
        }
        Some(())
    }

    /// A language model's training settings; unset ones take defaults.
    fn lm_train_args(
        &mut self,
        w: NodeId,
        args: &[(Value, Span)],
        (steps, lr, batch, seed): (usize, f64, usize, u64),
        config: &LmConfig,
    ) -> Option<TrainArgs> {
        let context = self.setting_or(&args[0], context_setting(config, DEFAULT_TRAIN_CONTEXT))?;
        let accumulate = self.setting_or(&args[1], count("`accumulate`", 1, 1))?;
        let warmup = self.setting_or(&args[2], count("`warmup`", 0, 0))?;
        let clip = self.number_or(&args[3], "`clip`", DEFAULT_CLIP)?;
        let weight_decay = self.number_or(&args[4], "`weight_decay`", DEFAULT_WEIGHT_DECAY)?;
        for (value, arg, what) in [(clip, &args[3], "`clip`"), (weight_decay, &args[4], "`weight_decay`")] {
            if !(value >= 0.0 && value.is_finite()) {
                let message = format!("{what} must be a number of at least 0");
                self.error(Diagnostic::new("tv::argument", message).at(arg.1, "this value"));
                return None;
            }
        }
        let lora = self.lora(w, config, &args[5..8])?;
        Some(TrainArgs {
            steps,
            lr,
            batch,
            accumulate,
            context,
            warmup,
            clip,
            weight_decay,
            seed,
            lora,
        })
    }

    /// `lora = R`, `lora_alpha`, `modules`: adapters of rank R on the
    /// layers' matrices that `modules` matches; none for R = 0.
    fn lora(&mut self, w: NodeId, config: &LmConfig, args: &[(Value, Span)]) -> Option<Option<Lora>> {
        let rank = self.setting_or(&args[0], count("`lora`", 0, 0))?;
        let modules = self.string_arg(&args[2], "`modules`")?;
        if rank == 0 {
            let alpha_given = !self.is_known_nan(&args[1].0);
            if alpha_given || modules != lm_string_default("modules") {
                let span = if alpha_given { args[1].1 } else { args[2].1 };
                let diag = Diagnostic::new("tv::argument", "LoRA settings without `lora = R`")
                    .at(span, "applies to LoRA only")
                    .help("give `lora = 8` (the adapters' rank) to train low-rank adapters; without it every weight trains");
                self.error(diag);
                return None;
            }
            return Some(None);
        }
        let alpha = self.number_or(&args[1], "`lora_alpha`", rank as f64)?;
        if !(alpha > 0.0 && alpha.is_finite()) {
            let diag =
                Diagnostic::new("tv::argument", "`lora_alpha` must be a positive number").at(args[1].1, "this value");
            self.error(diag);
            return None;
        }
        let specs = self.graph.specs(w).clone();
        let held = |name: &str| specs.find(name).is_some();
        if crate::eval::lm::lora::targets(config, &modules, &held).is_empty() {
            let diag = Diagnostic::new("tv::argument", format!("`modules = {modules:?}` matches no layer matrix"))
                .at(args[2].1, "matches nothing to adapt")
                .help("LoRA adapts the 2-D weights inside the layers (`*` is any run of characters), e.g. modules = \"*attn*\"");
            self.error(diag);
            return None;
        }
        Some(Some(Lora { rank, alpha, modules }))
    }

    /// The text a language model trains on, read and tokenized now (so a
    /// bad file fails the check), registered as a dataset.
    fn training_text(
        &mut self,
        w: NodeId,
        paths: &[String],
        args: &[(Value, Span)],
        config: &LmConfig,
        train: &TrainArgs,
    ) -> Option<usize> {
        let field = self.string_arg(&args[14], "the JSONL field")?;
        let windowing = crate::eval::lm::Windowing {
            context: train.context,
            stride: train.context,
            batch: train.batch,
        };
        let data = self.text_tasks_joined(w, paths, &field, windowing, (args[0].1, args[1].1), config)?;
        let crate::eval::EvalData::Text(task) = &*self.graph.datasets[data] else {
            return None;
        };
        let tokens: usize = task.documents.iter().map(Vec::len).sum();
        if tokens < train.context {
            let message = format!(
                "the text has {tokens} tokens, fewer than one window of {} (`context`)",
                train.context
            );
            let diag = Diagnostic::new("tv::dataset", message)
                .at(args[1].1, "too short to train on")
                .help("training cuts the text into windows of `context` tokens: give more text or a smaller context");
            self.error(diag);
            return None;
        }
        self.check_training_memory(config, train, args[4].1)?;
        Some(data)
    }

    /// The data of `finetune`: a path, or a non-empty list of paths (a
    /// language model trains on all of their documents).
    fn data_paths(&mut self, (value, span): &(Value, Span)) -> Option<Vec<String>> {
        let items = match value {
            Value::List(items) if !items.is_empty() => items.clone(),
            other => vec![other.clone()],
        };
        let what = "the data of `finetune` (a path, or a list of paths)";
        items
            .iter()
            .map(|item| self.string_arg(&(item.clone(), *span), what))
            .collect()
    }

    /// One dataset of the documents of every file in `paths`, in order.
    fn text_tasks_joined(
        &mut self,
        w: NodeId,
        paths: &[String],
        field: &str,
        windowing: crate::eval::lm::Windowing,
        spans: (Span, Span),
        config: &LmConfig,
    ) -> Option<usize> {
        let parts = paths
            .iter()
            .map(|path| self.text_task(w, path, field, windowing, spans, config))
            .collect::<Option<Vec<usize>>>()?;
        if let [one] = parts[..] {
            return Some(one);
        }
        // Registered once per list, like a single file's task.
        let resolved: Vec<String> = paths
            .iter()
            .map(|p| self.resolve_path(p).display().to_string())
            .collect();
        let folder = self.graph.config_folder(w)?;
        let key = ((resolved.join("\n").into(), field.to_string(), folder), windowing);
        if let Some(index) = self.text_tasks.get(&key) {
            return Some(*index);
        }
        let mut documents = Vec::new();
        for part in &parts {
            if let crate::eval::EvalData::Text(task) = &*self.graph.datasets[*part] {
                documents.extend(task.documents.iter().cloned());
            }
        }
        let name = format!("{} and {} more", resolved[0], paths.len() - 1);
        let task = crate::eval::lm::TextTask::new(name.into(), Arc::new(documents), windowing);
        self.graph.datasets.push(Arc::new(crate::eval::EvalData::Text(task)));
        self.text_tasks.insert(key, self.graph.datasets.len() - 1);
        Some(self.graph.datasets.len() - 1)
    }

    /// Refuses training whose weights, gradients, optimizer state and
    /// activations cannot fit in memory.
    fn check_training_memory(&mut self, config: &LmConfig, train: &TrainArgs, span: Span) -> Option<()> {
        let needed = crate::eval::lm::train::memory_estimate(config, config.parameters(), train) as f64;
        let what = |amount: String| {
            let (batch, context) = (train.batch, train.context);
            format!("training with a batch of {batch} windows of {context} tokens needs about {amount}")
        };
        let help = "lower `batch` (and raise `accumulate` to keep the step's size), lower `context`, or train LoRA adapters with `lora = 8`";
        self.fits_in_memory(needed, &what, span, help)
    }

    /// A number argument, or `default` when it was not given (NaN).
    fn number_or(&mut self, (value, span): &(Value, Span), what: &str, default: f64) -> Option<f64> {
        let n = self.known_value(value, *span, what)?;
        Some(if n.is_nan() { default } else { n })
    }
}

/// A whole-number setting of at least `min`, with no upper limit of its own.
fn count(what: &'static str, min: usize, default: usize) -> Setting {
    Setting {
        what,
        range: (min, NO_LIMIT),
        why: "",
        default,
    }
}

/// The defaults of the string parameters of `finetune`.
pub(super) fn lm_string_default(param: &str) -> &'static str {
    match param {
        "modules" => "*",
        _ => super::lm::DEFAULT_FIELD,
    }
}
