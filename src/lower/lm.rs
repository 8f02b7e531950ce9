//! `perplexity` and `loss` for language models: text read and tokenized
//! while lowering (so `tv check` reports bad files and settings), windows
//! fixed, and a `TextTask` registered for the executor.

use super::{Lowerer, Value};
use crate::diag::{Diagnostic, Span};
use crate::eval::lm::{text, LmConfig, TextTask, Windowing};
use crate::eval::EvalData;
use crate::graph::{ModelKind, NodeId};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The parameters of `loss` and `perplexity` after `w` and `data`.
pub(super) const TEXT_PARAMS: [&str; 4] = ["context", "stride", "batch", "field"];

/// The JSONL field read unless `field` says otherwise.
pub(super) const DEFAULT_FIELD: &str = "text";

/// The longest default context: attention takes memory quadratic in it.
const DEFAULT_CONTEXT_LIMIT: usize = 1024;
const DEFAULT_BATCH: usize = 4;
const MAX_BATCH: usize = 4096;

/// The upper end of a range with no limit of its own.
pub(super) const NO_LIMIT: usize = 1_000_000_000_000;

/// A whole-number text setting: its name, range (and why), and default.
pub(super) struct Setting {
    pub what: &'static str,
    pub range: (usize, usize),
    pub why: &'static str,
    pub default: usize,
}

/// Tokenized documents, shared by every measurement of the same text with
/// the same tokenizer.
pub(super) type Documents = Arc<Vec<Vec<u32>>>;

/// A text file read with a tokenizer: (data path, JSONL field, model folder).
pub(super) type TextKey = (PathBuf, String, PathBuf);

/// A text task: its text, and how it is cut and batched.
pub(super) type TaskKey = (TextKey, Windowing);

impl Lowerer<'_> {
    /// The measurement kind and `TextTask` of `perplexity`/`loss` on a
    /// language model.
    pub(super) fn text_measure(
        &mut self,
        w: NodeId,
        function: &str,
        path: &str,
        args: &[(Value, Span)],
        config: &LmConfig,
    ) -> Option<(ModelKind, usize)> {
        let kind = match function {
            "perplexity" => ModelKind::Perplexity,
            "loss" => ModelKind::Loss,
            _ => {
                let diag = Diagnostic::new("tv::model_kind", format!("`{function}` needs a classifier"))
                    .at(args[0].1, "a language model")
                    .help("language models are measured with perplexity(w, text) and loss(w, text)");
                self.error(diag);
                return None;
            }
        };
        let windowing = self.windowing(&args[2..5], config)?;
        let field = self.string_arg(&args[5], "the JSONL field")?;
        let index = self.text_task(w, path, &field, windowing, (args[0].1, args[1].1), config)?;
        let data = self.graph.datasets[index].clone();
        let EvalData::Text(task) = &*data else {
            return None;
        };
        self.check_memory(config, task, args[4].1)?;
        if task.scored_tokens() == 0 {
            let diag = Diagnostic::new("tv::dataset", "the text has nothing to score")
                .at(args[1].1, "fewer than two tokens in every document")
                .help("a token is scored from the tokens before it, so a document needs at least two");
            self.error(diag);
            return None;
        }
        Some((kind, index))
    }

    /// The text at `path` read with `w`'s tokenizer and cut as `windowing`
    /// says, registered once as a dataset: its index. Problems are shown at
    /// the model's span (its tokenizer) or the data's.
    pub(super) fn text_task(
        &mut self,
        w: NodeId,
        path: &str,
        field: &str,
        windowing: Windowing,
        (model_span, span): (Span, Span),
        config: &LmConfig,
    ) -> Option<usize> {
        let folder = self.graph.config_folder(w)?;
        let resolved = self.resolve_path(path);
        let tokenizer = self.tokenizer(&folder, model_span)?;
        let text = (resolved.clone(), field.to_string(), folder);
        let documents = self.documents(text.clone(), &tokenizer, span, config)?;
        let key = (text, windowing);
        if let Some(index) = self.text_tasks.get(&key) {
            return Some(*index);
        }
        let task = TextTask::new(resolved, documents, windowing);
        let index = self.graph.datasets.len();
        self.graph.datasets.push(Arc::new(EvalData::Text(task)));
        self.text_tasks.insert(key, index);
        Some(index)
    }

    /// `context`, `stride` and `batch`; unset ones (NaN) take defaults.
    fn windowing(&mut self, args: &[(Value, Span)], config: &LmConfig) -> Option<Windowing> {
        let context = self.setting_or(&args[0], context_setting(config, DEFAULT_CONTEXT_LIMIT))?;
        let stride = Setting {
            what: "`stride`",
            range: (1, context),
            why: " (the context), so that no token goes unscored",
            default: context,
        };
        let stride = self.setting_or(&args[1], stride)?;
        let batch = Setting {
            what: "`batch`",
            range: (1, MAX_BATCH),
            why: "",
            default: DEFAULT_BATCH,
        };
        let batch = self.setting_or(&args[2], batch)?;
        Some(Windowing { context, stride, batch })
    }

    /// Refuses text settings whose forward pass cannot fit in memory, which
    /// would otherwise abort the run when it allocates.
    fn check_memory(&mut self, config: &LmConfig, task: &TextTask, span: Span) -> Option<()> {
        // The largest batch the text really makes.
        let windowing = Windowing {
            context: task.windows.iter().map(|w| w.end - w.begin).max().unwrap_or(0),
            batch: task.windowing.batch.min(task.windows.len()),
            ..task.windowing
        };
        let needed = config.activation_bytes(windowing);
        let what = |amount: String| {
            let (batch, context) = (windowing.batch, windowing.context);
            format!("a batch of {batch} windows of {context} tokens needs about {amount} for the forward pass")
        };
        let help = "lower `batch` or `context`: attention takes memory in proportion to batch x context squared";
        self.fits_in_memory(needed, &what, span, help)
    }

    /// Refuses work that needs more than the available memory (`what`
    /// says what needs the amount it is given), which would otherwise
    /// abort the run when it allocates.
    pub(super) fn fits_in_memory(
        &mut self,
        needed: f64,
        what: &dyn Fn(String) -> String,
        span: Span,
        help: &str,
    ) -> Option<()> {
        let Some(available) = crate::report::memory::available().map(|a| a as f64) else {
            return Some(());
        };
        if needed <= available {
            return Some(());
        }
        let gib = |bytes: f64| format!("{:.1} GiB", bytes / (1u64 << 30) as f64);
        let message = format!("{}; {} is available", what(gib(needed)), gib(available));
        let diag = Diagnostic::new("tv::memory", message).at(span, "this batch").help(help);
        self.error(diag);
        None
    }

    /// A whole number in its range, or the default when not given.
    pub(super) fn setting_or(&mut self, arg: &(Value, Span), setting: Setting) -> Option<usize> {
        let value = self.known_value(&arg.0, arg.1, setting.what)?;
        if value.is_nan() {
            return Some(setting.default);
        }
        let (min, max) = setting.range;
        if value.fract() != 0.0 || value < min as f64 || value > max as f64 {
            let (what, why) = (setting.what, setting.why);
            let message = match max {
                NO_LIMIT => format!("{what} must be a whole number of at least {min}{why}"),
                _ => format!("{what} must be a whole number from {min} to {max}{why}"),
            };
            self.error(Diagnostic::new("tv::argument", message).at(arg.1, "this value"));
            return None;
        }
        Some(value as usize)
    }

    /// The token ids of a text, read and tokenized once.
    fn documents(
        &mut self,
        key: TextKey,
        tokenizer: &tokenizers::Tokenizer,
        span: Span,
        config: &LmConfig,
    ) -> Option<Documents> {
        if let Some(known) = self.texts.get(&key) {
            return known.clone().map_err(|d| self.error(d.at(span, "this text"))).ok();
        }
        let (path, field, folder) = &key;
        let read = text::read_documents(path, field)
            .and_then(|documents| text::tokenize(tokenizer, &documents))
            .and_then(|ids| check_vocabulary(ids, config, folder))
            .map(Arc::new)
            .map_err(|e| Diagnostic::new("tv::dataset", e).help(TEXT_FORMAT));
        self.texts.insert(key, read.clone());
        read.map_err(|d| self.error(d.at(span, "this text"))).ok()
    }

    /// The tokenizer of the model folder, read once.
    fn tokenizer(&mut self, folder: &Path, span: Span) -> Option<Arc<tokenizers::Tokenizer>> {
        let loaded = self
            .tokenizers
            .entry(folder.to_path_buf())
            .or_insert_with(|| text::load_tokenizer(folder).map(Arc::new))
            .clone();
        let error = |e| {
            Diagnostic::new("tv::tokenizer", e)
                .at(span, "this model")
                .help("a language model's folder needs its tokenizer.json, as transformers saves it")
        };
        loaded.map_err(|e| self.error(error(e))).ok()
    }
}

/// `context`, up to the model's limit (and why it is the limit).
pub(super) fn context_setting(config: &LmConfig, default: usize) -> Setting {
    let limit = config.context_limit();
    let why = match limit == config.max_positions {
        true => " (the model's max_position_embeddings)",
        false => " (max_position_embeddings times the dynamic RoPE factor)",
    };
    Setting {
        what: "`context`",
        range: (2, limit),
        why,
        default: limit.min(default),
    }
}

/// Token ids must index the embedding.
fn check_vocabulary(ids: Vec<Vec<u32>>, config: &LmConfig, folder: &Path) -> Result<Vec<Vec<u32>>, String> {
    match ids.iter().flatten().max() {
        Some(max) if *max as usize >= config.vocab_size => Err(format!(
            "the tokenizer of {} gives token id {max}, beyond the model's vocab_size {}",
            folder.display(),
            config.vocab_size
        )),
        _ => Ok(ids),
    }
}

const TEXT_FORMAT: &str = "a language model reads a plain text file (one document) or a .jsonl file \
     (one JSON record per line; `field = \"text\"` names the string to score)";
