//! Typed access to a Hugging Face `config.json`, with messages naming the
//! key, and a record of which keys were read: a family reads or declares
//! inert every key it knows, and any other key is refused.

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashSet;

/// Keys every `PreTrainedConfig` may carry that cannot change the logits
/// of a forward pass over given token ids: names, token ids, dtypes,
/// generation, dropout and training settings.
const INERT: &[&str] = &[
    "_name_or_path",
    "_model_name_or_path",
    "architectures",
    "model_type",
    "auto_map",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "sep_token_id",
    "unk_token_id",
    "decoder_start_token_id",
    "dtype",
    "torch_dtype",
    "transformers_version",
    "use_cache",
    "cache_implementation",
    "initializer_range",
    "attention_dropout",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "id2label",
    "label2id",
    "problem_type",
    "task_specific_params",
    "tokenizer_class",
    "pretraining_tp",
];

pub struct Keys<'a> {
    json: &'a Map<String, Value>,
    read: RefCell<HashSet<String>>,
}

impl<'a> Keys<'a> {
    pub fn new(json: &'a Map<String, Value>) -> Keys<'a> {
        let keys = Keys {
            json,
            read: RefCell::new(HashSet::new()),
        };
        keys.inert(INERT);
        keys
    }

    /// Marks keys as known not to change the forward pass.
    pub fn inert(&self, keys: &[&str]) {
        self.read.borrow_mut().extend(keys.iter().map(|k| k.to_string()));
    }

    /// The first key (in file order) that no one read or declared inert.
    pub fn unread(&self) -> Option<String> {
        let read = self.read.borrow();
        self.json.keys().find(|k| !read.contains(k.as_str())).cloned()
    }

    /// The value of `key`, `None` when absent or `null`.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.read.borrow_mut().insert(key.to_string());
        self.json.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Whether `key` is present with the value `null`.
    pub fn has_null(&self, key: &str) -> bool {
        self.read.borrow_mut().insert(key.to_string());
        self.json.get(key).is_some_and(Value::is_null)
    }

    pub fn count(&self, key: &str, default: Option<usize>) -> Result<usize, String> {
        match (self.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("the config has no `{key}`")),
            (Some(v), _) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| format!("`{key}` must be a positive whole number, not {v}")),
        }
    }

    pub fn number(&self, key: &str, default: Option<f64>) -> Result<f64, String> {
        match (self.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("the config has no `{key}`")),
            (Some(v), _) => positive(v).ok_or_else(|| format!("`{key}` must be a positive number, not {v}")),
        }
    }

    /// A positive number, or `None` when absent or `null`.
    pub fn optional_number(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => positive(v)
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a positive number or null, not {v}")),
        }
    }

    pub fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("`{key}` must be true or false, not {v}")),
        }
    }

    pub fn string(&self, key: &str, default: &str) -> Result<String, String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("`{key}` must be a string, not {v}")),
        }
    }

    /// Keys that tv supports with one value only.
    pub fn require_value(&self, key: &str, supported: impl Into<Value>) -> Result<(), String> {
        let supported = supported.into();
        match self.get(key) {
            Some(v) if *v != supported => Err(format!("`{key}` is {v}; only {supported} is supported")),
            _ => Ok(()),
        }
    }
}

fn positive(v: &Value) -> Option<f64> {
    v.as_f64().filter(|n| *n > 0.0 && n.is_finite())
}
