//! `set KEY = VALUE`: run settings that command-line flags may override.

use super::env::Env;
use super::{Lowerer, Value};
use crate::diag::{closest, Diagnostic};
use crate::syntax::ast::{Expr, Ident};

/// The dtype tensors are saved in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F16,
    Bf16,
}

impl SaveDtype {
    pub fn parse(text: &str) -> Option<SaveDtype> {
        match text {
            "f32" => Some(SaveDtype::F32),
            "f16" => Some(SaveDtype::F16),
            "bf16" => Some(SaveDtype::Bf16),
            _ => None,
        }
    }

    pub fn dtype(self) -> crate::io::Dtype {
        match self {
            SaveDtype::F32 => crate::io::Dtype::F32,
            SaveDtype::F16 => crate::io::Dtype::F16,
            SaveDtype::Bf16 => crate::io::Dtype::BF16,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Where the program set the device, for diagnostics.
    pub device_span: Option<crate::diag::Span>,
    /// `None`: every tensor keeps the dtype of its left-most checkpoint.
    pub dtype: Option<SaveDtype>,
    pub seed: u64,
    /// `None`: one worker per core.
    pub threads: Option<usize>,
    /// Largest shard of a folder save, in bytes (`set max_shard_size`).
    pub max_shard_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: "cpu".to_string(),
            device_span: None,
            dtype: None,
            seed: 0,
            threads: None,
            max_shard_bytes: crate::io::SaveOptions::default().max_shard_bytes,
        }
    }
}

const KEYS: &[&str] = &["device", "dtype", "seed", "threads", "max_shard_size"];

/// A size in bytes as Hugging Face writes it: `"5GB"`, `"500MB"`,
/// `"2GiB"`, `"4096"`; decimal units are powers of 1000, binary ones of 1024.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        "TIB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (number * scale).round();
    (1.0..1e18).contains(&bytes).then_some(bytes as u64)
}

/// Whether `device` names a device this build can use.
pub fn valid_device(device: &str) -> bool {
    device == "cpu"
        || device == "cuda"
        || device
            .strip_prefix("cuda:")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Lowerer<'_> {
    pub(super) fn set_stmt(&mut self, env: &mut Env, key: &Ident, expr: &Expr) {
        let value = self.expr(env, expr);
        if value.is_error() {
            return;
        }
        let problem = match key.node.as_str() {
            "device" => {
                self.settings.device_span = Some(expr.span);
                self.set_device(&value)
            }
            "dtype" => self.set_dtype(&value),
            // A `--seed` on the command line wins over the program's.
            "seed" => self.set_count(&value, 0.0).map(|n| {
                if self.training.seed.is_none() {
                    self.settings.seed = n as u64;
                }
            }),
            "threads" => match self.set_count(&value, 1.0) {
                Ok(n) if n <= 4096.0 => {
                    self.settings.threads = Some(n as usize);
                    Ok(())
                }
                _ => Err("a whole number of threads from 1 to 4096".to_string()),
            },
            "max_shard_size" => self.set_shard_size(&value),
            other => {
                let diag = Diagnostic::new("tv::unknown_setting", format!("unknown setting `{other}`"))
                    .at(key.span, "not a setting");
                let help = match closest(other, KEYS.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`? The settings are {}", KEYS.join(", ")),
                    None => format!("the settings are {}", KEYS.join(", ")),
                };
                self.error(diag.help(help));
                return;
            }
        };
        if let Err(help) = problem {
            let diag = Diagnostic::new("tv::bad_setting", format!("bad value for `{}`", key.node))
                .at(expr.span, "this value")
                .help(help);
            self.error(diag);
        }
    }

    fn set_device(&mut self, value: &Value) -> Result<(), String> {
        match value {
            Value::Str(s) if valid_device(s) => {
                self.settings.device = s.clone();
                Ok(())
            }
            _ => Err("the device is \"cpu\", \"cuda\" or \"cuda:N\"".into()),
        }
    }

    fn set_shard_size(&mut self, value: &Value) -> Result<(), String> {
        let bytes = match value {
            Value::Str(s) => parse_size(s),
            Value::Num(n) => self.graph.scalars.known(*n).and_then(|n| parse_size(&n.to_string())),
            _ => None,
        };
        let bytes = bytes.ok_or("a size such as \"5GB\", \"500MB\" or \"2GiB\", or a number of bytes")?;
        self.settings.max_shard_bytes = bytes;
        Ok(())
    }

    fn set_dtype(&mut self, value: &Value) -> Result<(), String> {
        match value {
            Value::Str(s) if SaveDtype::parse(s).is_some() => {
                self.settings.dtype = SaveDtype::parse(s);
                Ok(())
            }
            _ => Err("the dtype is \"f32\", \"f16\" or \"bf16\"".into()),
        }
    }

    /// A whole number of at least `min`.
    fn set_count(&self, value: &Value, min: f64) -> Result<f64, String> {
        let known = match value {
            Value::Num(n) => self.graph.scalars.known(*n),
            _ => None,
        };
        match known {
            Some(n) if n >= min && n.fract() == 0.0 && n < 1e15 => Ok(n),
            _ => Err(format!("a whole number of at least {min}")),
        }
    }
}
