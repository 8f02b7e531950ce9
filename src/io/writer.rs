//! Streaming checkpoint writer: headers are laid out up front, so each
//! tensor can be written at its final offset from any thread, in any order,
//! and a whole model never has to sit in memory.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::checkpoint::INDEX_FILE_NAME;
use super::commit::{Outputs, Sealed};
use super::layout::{self, Layout, Slot};
use super::manifest::{self, OutputKind};
use super::staging::{self, CreatedDirs, StagedPath};
use super::{IoError, TensorInfo};

/// Files that make a Hugging Face folder loadable besides its weights.
const COMPANION_FILES: [&str; 10] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "added_tokens.json",
];

/// The run record inside a saved folder.
pub const RECORD_FILE_NAME: &str = "tv_run.json";

/// How to save.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Largest shard of a folder save, in tensor bytes (a bigger tensor gets a shard alone).
    pub max_shard_bytes: u64,
    /// A Hugging Face folder whose config and tokenizer files a folder save copies.
    pub copy_from: Option<PathBuf>,
    /// The `config.json` of a folder save, written in place of a copied one.
    pub config_json: Option<Vec<u8>>,
    /// The run record a folder save carries, as `tv_run.json`.
    pub record: Option<String>,
}

impl Default for SaveOptions {
    /// 5 GB shards, as transformers writes by default; nothing copied.
    fn default() -> Self {
        SaveOptions {
            max_shard_bytes: 5_000_000_000,
            copy_from: None,
            config_json: None,
            record: None,
        }
    }
}

/// Writes a checkpoint whose tensor list is known in advance. Everything goes
/// into a staged file or folder beside the target (see `staging`), moved into
/// place by the run's commit; dropping an unfinished Writer deletes it.
pub struct Writer {
    target: PathBuf,
    staging: StagedPath,
    folder: bool,
    files: Vec<File>,
    file_paths: Vec<PathBuf>,
    slots: Vec<Slot>,
    names: Vec<String>,
    /// Bytes written so far, per tensor.
    written: Vec<AtomicU64>,
    /// Last, so it is dropped after the staging inside it.
    created: CreatedDirs,
}

impl Writer {
    /// Plan and start a save of `tensors` to `path`: a single file if `path`
    /// ends in `.safetensors`, else a Hugging Face folder (sharded by
    /// `options.max_shard_bytes`, with companion files copied from
    /// `options.copy_from`). Headers are written now; data by `write`.
    pub fn create(path: &Path, tensors: &[TensorInfo], options: &SaveOptions) -> Result<Writer, IoError> {
        layout::validate(tensors)?;
        let parent = parent_dir(path)?;
        let single = path.extension().is_some_and(|e| e == "safetensors");
        check_target_kind(path, single)?;
        let created = CreatedDirs::create(&parent).map_err(|e| write_error(&parent, e))?;
        staging::remove_stale(path);
        let shards = match single {
            true => vec![(0..tensors.len()).collect()],
            false => layout::assign_shards(tensors, options.max_shard_bytes),
        };
        let names = layout::shard_names(shards.len());
        let plan = layout::plan(tensors, &shards, &names);
        let (staging, file_paths) = match single {
            true => stage_file(path)?,
            false => stage_folder(path, &plan)?,
        };
        let files = write_headers(&file_paths, &plan)?;
        if !single {
            let dir = staging.path();
            if shards.len() > 1 {
                let index = dir.join(INDEX_FILE_NAME);
                let text = layout::index_json(tensors, &shards, &names);
                fs::write(&index, text).map_err(|e| write_error(&index, e))?;
            }
            copy_companions(options.copy_from.as_deref(), dir)?;
            if let Some(config) = &options.config_json {
                let path = dir.join("config.json");
                fs::write(&path, config).map_err(|e| write_error(&path, e))?;
            }
            if let Some(record) = &options.record {
                let path = dir.join(RECORD_FILE_NAME);
                fs::write(&path, record).map_err(|e| write_error(&path, e))?;
            }
        }
        Ok(Writer {
            target: path.to_path_buf(),
            staging,
            folder: !single,
            files,
            file_paths,
            slots: plan.slots,
            names: tensors.iter().map(|t| t.name.clone()).collect(),
            written: tensors.iter().map(|_| AtomicU64::new(0)).collect(),
            created,
        })
    }

    /// Write tensor `i` (its index in the list given to `create`). Each
    /// tensor must be written exactly once, with exactly its byte length.
    pub fn write(&self, i: usize, bytes: &[u8]) -> Result<(), IoError> {
        let len = self.slots.get(i).map_or(0, |s| s.len);
        if bytes.len() != len {
            let name = self.names.get(i).map(String::as_str).unwrap_or("?");
            let reason = format!("tensor {name:?} needs {len} bytes but was given {}", bytes.len());
            return Err(self.bad_write(reason));
        }
        self.write_part(i, 0, bytes)
    }

    /// Write `bytes` at byte `offset` of tensor `i`: a tensor may be written
    /// in parts, from several threads, as long as the parts do not overlap
    /// and together cover it exactly once.
    pub fn write_part(&self, i: usize, offset: usize, bytes: &[u8]) -> Result<(), IoError> {
        let Some(slot) = self.slots.get(i).copied() else {
            return Err(self.bad_write(format!("there is no tensor number {i}")));
        };
        let name = &self.names[i];
        if offset + bytes.len() > slot.len {
            let reason = format!("bytes {offset}..{} are outside tensor {name:?}", offset + bytes.len());
            return Err(self.bad_write(reason));
        }
        let before = self.written[i].fetch_add(bytes.len() as u64, Ordering::AcqRel);
        if before + bytes.len() as u64 > slot.len as u64 {
            return Err(self.bad_write(format!("tensor {name:?} was written twice")));
        }
        let result = self.files[slot.file].write_all_at(bytes, slot.offset + offset as u64);
        result.map_err(|e| {
            // Count it unwritten so `finish` cannot mistake the output for complete.
            self.written[i].fetch_sub(bytes.len() as u64, Ordering::AcqRel);
            write_error(&self.file_paths[slot.file], e)
        })
    }

    /// An error naming the tensors not yet written in full, if any.
    pub fn check_complete(&self) -> Result<(), IoError> {
        let missing: Vec<String> = self
            .names
            .iter()
            .zip(self.written.iter().zip(&self.slots))
            .filter(|(_, (done, slot))| done.load(Ordering::Acquire) != slot.len as u64)
            .map(|(name, _)| name.clone())
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(IoError::Incomplete {
                path: self.target.clone(),
                missing,
            }),
        }
    }

    /// Check every tensor was written and close the files: the output is
    /// complete, waiting for the run's commit. A folder gets its manifest,
    /// which marks it as tv's for later runs that save over it.
    pub fn seal(self) -> Result<Sealed, IoError> {
        self.check_complete()?;
        // No fsync: like `cp` and the usual model savers, the output is left
        // to the page cache; the rename still makes it appear only whole.
        drop(self.files);
        if self.folder {
            manifest::write(self.staging.path()).map_err(|e| write_error(&self.target, e))?;
        }
        let kind = match self.folder {
            true => OutputKind::Folder,
            false => OutputKind::File,
        };
        Ok(Sealed::new(self.staging, self.target, self.created, kind))
    }

    /// Seal and commit this output alone, replacing whatever is at the
    /// target: for callers that own it (the training cache, temporary
    /// folders); a run's saves go through the checked commit instead.
    pub fn finish(self) -> Result<(), IoError> {
        let target = self.target.clone();
        let mut outputs = Outputs::default();
        outputs.allow_overwrite(true);
        outputs.push(self.seal()?);
        outputs.commit(|| Ok(())).map_err(|e| write_error(&target, e.source))
    }

    fn bad_write(&self, reason: String) -> IoError {
        IoError::BadWrite {
            path: self.target.clone(),
            reason,
        }
    }
}

/// The folder the output goes in (`.` for a bare relative file name).
fn parent_dir(path: &Path) -> Result<PathBuf, IoError> {
    if path.file_name().is_none() {
        let error = io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file or folder");
        return Err(write_error(path, error));
    }
    Ok(match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

/// Refuse early, before any data is written, a target that `finish` could not
/// replace: a folder where a file goes, or a file where a folder goes.
fn check_target_kind(path: &Path, single: bool) -> Result<(), IoError> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    let message = match (single, meta.is_dir()) {
        (true, true) => "a folder is in the way of this file",
        (false, false) => "a file is in the way of this folder (name a .safetensors file to save a single file)",
        _ => return Ok(()),
    };
    Err(write_error(path, io::Error::new(io::ErrorKind::AlreadyExists, message)))
}

/// Staged beside the target, so the final rename stays on one filesystem.
fn stage_file(path: &Path) -> Result<(StagedPath, Vec<PathBuf>), IoError> {
    let (staged, _) = StagedPath::file(path).map_err(|e| write_error(path, e))?;
    let file_path = staged.path().to_path_buf();
    Ok((staged, vec![file_path]))
}

fn stage_folder(path: &Path, plan: &Layout) -> Result<(StagedPath, Vec<PathBuf>), IoError> {
    let staged = StagedPath::folder(path).map_err(|e| write_error(path, e))?;
    let paths = plan.files.iter().map(|f| staged.path().join(&f.name)).collect();
    Ok((staged, paths))
}

/// Create each file at its final length and write its header; tensor bytes
/// are filled in later by `write`.
fn write_headers(paths: &[PathBuf], plan: &Layout) -> Result<Vec<File>, IoError> {
    paths
        .iter()
        .zip(&plan.files)
        .map(|(path, planned)| {
            // Not truncated: `set_len` sizes the file and every byte is then
            // written. (On ext4, truncating a file to 0 makes its close
            // start writing back all its data, which stalls the run.)
            let file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| write_error(path, e))?;
            file.set_len(planned.len).map_err(|e| write_error(path, e))?;
            file.write_all_at(&planned.header, 0)
                .map_err(|e| write_error(path, e))?;
            Ok(file)
        })
        .collect()
}

/// Copy config and tokenizer files that exist in `source` into `destination`.
fn copy_companions(source: Option<&Path>, destination: &Path) -> Result<(), IoError> {
    let Some(source) = source else { return Ok(()) };
    for name in COMPANION_FILES {
        let from = source.join(name);
        if from.is_file() {
            let to = destination.join(name);
            fs::copy(&from, &to).map_err(|e| write_error(&to, e))?;
        }
    }
    Ok(())
}

fn write_error(path: &Path, source: io::Error) -> IoError {
    IoError::Write {
        path: path.to_path_buf(),
        source,
    }
}
