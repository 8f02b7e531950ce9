//! Errors from opening and writing checkpoints, worded for the person running tv.

use std::fmt;
use std::path::PathBuf;

/// Why a checkpoint could not be opened or written. Each variant displays as
/// one sentence; `help` may add a hint on what to do about it.
#[derive(Debug)]
pub enum IoError {
    /// Nothing exists at the path.
    NotFound { path: PathBuf },
    /// The path exists but is not a safetensors file or a Hugging Face folder.
    NotACheckpoint { path: PathBuf, reason: String },
    /// The path is (inside) the staging of a tv run that did not finish.
    Unfinished { path: PathBuf, staged: String },
    /// A safetensors header or index file is malformed.
    Corrupt { path: PathBuf, reason: String },
    /// The file is shorter than its header says (typically an interrupted download or copy).
    Truncated { path: PathBuf, needed: u64, actual: u64 },
    /// An index names a shard file that does not exist.
    MissingShard { index: PathBuf, shard: PathBuf },
    /// An index says a shard holds a tensor, but the shard's header does not list it.
    TensorNotInShard {
        index: PathBuf,
        shard: PathBuf,
        name: String,
    },
    /// The same tensor name appears in two shards.
    DuplicateTensor {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// A header uses a dtype this version of tv does not know.
    Unsupported {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    /// Reading a file failed at the operating-system level.
    Read { path: PathBuf, source: std::io::Error },
    /// Writing a file failed at the operating-system level.
    Write { path: PathBuf, source: std::io::Error },
    /// The tensor list given to `Writer::create` cannot be saved.
    BadTensorList { reason: String },
    /// A `Writer::write` call did not match the planned tensor list.
    BadWrite { path: PathBuf, reason: String },
    /// `Writer::finish` was called before every tensor was written.
    Incomplete { path: PathBuf, missing: Vec<String> },
}

impl IoError {
    /// An optional second sentence suggesting what to do.
    pub fn help(&self) -> Option<String> {
        let text = match self {
            IoError::NotFound { .. } => "check the path; tv opens a .safetensors file or a Hugging Face model folder",
            IoError::Unfinished { .. } => {
                "its run was interrupted before it finished; the next run saving to the same target removes it"
            }
            IoError::NotACheckpoint { path, .. } if path.is_dir() => {
                "a folder needs model.safetensors or model.safetensors.index.json; other formats (.bin, .pt, .gguf) must be converted to safetensors first"
            }
            IoError::NotACheckpoint { .. } => {
                "tv reads safetensors files; other formats (.bin, .pt, .gguf) must be converted to safetensors first"
            }
            IoError::Truncated { .. } => "the file was probably cut short by an interrupted download or copy; fetch it again",
            IoError::MissingShard { .. } => "download the missing shard into the same folder as the index",
            IoError::TensorNotInShard { .. } | IoError::DuplicateTensor { .. } => {
                "the index and the shards disagree; re-download the model or regenerate the index"
            }
            IoError::Unsupported { .. } => {
                "tv computes on f64, f32, f16 and bf16 tensors and carries integer and bool ones; convert FP8/FP6/FP4 (and unknown) tensors to one of those first"
            }
            IoError::Write { .. } => "check that the destination is writable and has enough free space",
            IoError::Incomplete { .. } => "this is a bug in tv: please report it",
            _ => return None,
        };
        Some(text.to_string())
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::NotFound { path } => {
                write!(f, "{} does not exist", path.display())?;
                // A bare name was looked for in the working folder: say which.
                let bare = path.parent().is_none_or(|p| p.as_os_str().is_empty());
                let folder = std::env::current_dir().ok().filter(|_| bare);
                match folder {
                    Some(folder) => write!(f, " (looked for in {})", folder.display()),
                    None => Ok(()),
                }
            }
            IoError::NotACheckpoint { path, reason } => {
                write!(f, "{} is not a checkpoint: {reason}", path.display())
            }
            IoError::Unfinished { path, staged } => {
                write!(
                    f,
                    "{} is not a checkpoint: {staged} is an unfinished output of tv",
                    path.display()
                )
            }
            IoError::Corrupt { path, reason } => {
                write!(f, "{} is corrupt: {reason}", path.display())
            }
            IoError::Truncated { path, needed, actual } => write!(
                f,
                "{} is truncated: its header needs {needed} bytes but the file has {actual}",
                path.display()
            ),
            IoError::MissingShard { index, shard } => write!(
                f,
                "{} refers to shard {}, which does not exist",
                index.display(),
                shard.display()
            ),
            IoError::TensorNotInShard { index, shard, name } => write!(
                f,
                "{} places tensor {name:?} in {}, but that shard does not hold it",
                index.display(),
                shard.display()
            ),
            IoError::DuplicateTensor { name, first, second } => write!(
                f,
                "tensor {name:?} appears in both {} and {}",
                first.display(),
                second.display()
            ),
            IoError::Unsupported { path, tensor, dtype } => write!(
                f,
                "{}: tensor {tensor:?} has dtype {dtype:?}, which tv does not support",
                path.display()
            ),
            IoError::Read { path, source } => {
                write!(f, "could not read {}: {source}", path.display())
            }
            IoError::Write { path, source } => {
                write!(f, "could not write {}: {source}", path.display())
            }
            IoError::BadTensorList { reason } => write!(f, "cannot save these tensors: {reason}"),
            IoError::BadWrite { path, reason } => {
                write!(f, "bad write to {}: {reason}", path.display())
            }
            IoError::Incomplete { path, missing } => write!(
                f,
                "{} was not saved: {} tensor(s) were never written ({})",
                path.display(),
                missing.len(),
                abbreviate(missing)
            ),
        }
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IoError::Read { source, .. } | IoError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The first few names of a possibly long list, so a message stays one line.
fn abbreviate(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    text
}
