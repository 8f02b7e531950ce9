//! Opening checkpoints: a single `.safetensors` file, or a Hugging Face folder
//! with one `model.safetensors` or shards listed in `model.safetensors.index.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

use super::header::{self, StoredTensor};
use super::index;
use super::{IoError, TensorInfo};

/// Weights file of an unsharded Hugging Face folder.
pub(super) const SINGLE_FILE_NAME: &str = "model.safetensors";
/// Index file of a sharded Hugging Face folder.
pub(super) const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

/// A checkpoint opened by reading headers only: tensor data is memory-mapped
/// and touched only by `bytes`.
pub struct Checkpoint {
    path: PathBuf,
    folder: Option<PathBuf>,
    shards: Vec<Shard>,
    /// Sorted by name; `locations[i]` says where `tensors[i]` is stored.
    tensors: Vec<TensorInfo>,
    locations: Vec<Location>,
    bytes_read: AtomicU64,
}

/// One mapped safetensors file.
struct Shard {
    path: PathBuf,
    map: Mmap,
}

/// Where a tensor's bytes are: which shard, and which bytes of it.
#[derive(Clone)]
struct Location {
    shard: usize,
    range: Range<usize>,
}

impl Checkpoint {
    /// Open `path`: a `.safetensors` file, a folder holding `model.safetensors`
    /// or a sharded `model.safetensors.index.json`, or such an index file itself.
    /// Validates every header fully (so a truncated download fails here, before
    /// any data is read) and checks the index against the shards' headers.
    pub fn open(path: &Path) -> Result<Checkpoint, IoError> {
        let canonical = fs::canonicalize(path).unwrap_or_default();
        let staged = super::staging::staging_component(path).or_else(|| super::staging::staging_component(&canonical));
        if let Some(staged) = staged {
            let path = path.to_path_buf();
            return Err(IoError::Unfinished { path, staged });
        }
        let meta = fs::metadata(path).map_err(|source| match source.kind() {
            ErrorKind::NotFound => IoError::NotFound {
                path: path.to_path_buf(),
            },
            _ => IoError::Read {
                path: path.to_path_buf(),
                source,
            },
        })?;
        if meta.is_dir() {
            open_folder(path)
        } else if path.to_string_lossy().ends_with(".index.json") {
            let folder = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            open_sharded(path.to_path_buf(), folder, path)
        } else {
            open_single(path.to_path_buf(), None, path)
        }
    }

    /// The path this checkpoint was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Hugging Face folder whose config.json and tokenizer files travel
    /// with these weights (None for a bare .safetensors file).
    pub fn folder(&self) -> Option<&Path> {
        self.folder.as_deref()
    }

    /// The safetensors files the tensors are stored in.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.shards.iter().map(|s| s.path.as_path())
    }

    /// All tensors, sorted by name.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Position of the tensor called `name` in `tensors()`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.tensors.binary_search_by(|t| t.name.as_str().cmp(name)).ok()
    }

    /// Raw little-endian bytes of tensor `i` as stored, straight from the
    /// memory map (not necessarily aligned). Counts them in `bytes_read`.
    /// Panics if `i` is not below `tensors().len()`.
    pub fn bytes(&self, i: usize) -> &[u8] {
        let location = &self.locations[i];
        let map = &self.shards[location.shard].map;
        let bytes = &map[location.range.clone()];
        self.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        bytes
    }

    /// Total bytes handed out by `bytes` so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}

/// Summarised: the maps themselves are not worth printing.
impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("files", &self.shards.len())
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

fn open_folder(folder: &Path) -> Result<Checkpoint, IoError> {
    let single = folder.join(SINGLE_FILE_NAME);
    if single.is_file() {
        return open_single(folder.to_path_buf(), Some(folder.to_path_buf()), &single);
    }
    let index = folder.join(INDEX_FILE_NAME);
    if index.is_file() {
        return open_sharded(folder.to_path_buf(), folder.to_path_buf(), &index);
    }
    Err(IoError::NotACheckpoint {
        path: folder.to_path_buf(),
        reason: format!("the folder holds neither {SINGLE_FILE_NAME} nor {INDEX_FILE_NAME}"),
    })
}

fn open_single(path: PathBuf, folder: Option<PathBuf>, file: &Path) -> Result<Checkpoint, IoError> {
    let (shard, stored) = map_shard(file)?;
    let entries = stored.into_iter().map(|s| {
        (
            s.info,
            Location {
                shard: 0,
                range: s.range,
            },
        )
    });
    Ok(assemble(path, folder, vec![shard], entries.collect()))
}

/// Open every shard the index names, then check the index and the shard
/// headers agree: each indexed tensor is where the index says, and no tensor
/// is stored twice. Tensors a shard holds beyond its index entries are kept,
/// as transformers loads them too.
fn open_sharded(path: PathBuf, folder: PathBuf, index: &Path) -> Result<Checkpoint, IoError> {
    let weight_map = index::read_weight_map(index)?;
    let mut shard_names: Vec<&String> = weight_map.values().collect();
    shard_names.sort();
    shard_names.dedup();
    let mut shards = Vec::with_capacity(shard_names.len());
    let mut found: BTreeMap<String, (TensorInfo, Location)> = BTreeMap::new();
    for name in shard_names {
        let shard_path = folder.join(name);
        if !shard_path.is_file() {
            return Err(IoError::MissingShard {
                index: index.to_path_buf(),
                shard: shard_path,
            });
        }
        let (shard, stored) = map_shard(&shard_path)?;
        add_shard_tensors(&mut found, &shards, &shard, shards.len(), stored)?;
        shards.push(shard);
    }
    for (tensor, shard_name) in &weight_map {
        let in_named_shard = found
            .get(tensor)
            .is_some_and(|(_, loc)| shards[loc.shard].path == folder.join(shard_name));
        if !in_named_shard {
            return Err(IoError::TensorNotInShard {
                index: index.to_path_buf(),
                shard: folder.join(shard_name),
                name: tensor.clone(),
            });
        }
    }
    Ok(assemble(path, Some(folder), shards, found.into_values().collect()))
}

/// Record the tensors of shard number `shard_number`, refusing a name an
/// earlier shard already holds.
fn add_shard_tensors(
    found: &mut BTreeMap<String, (TensorInfo, Location)>,
    earlier: &[Shard],
    shard: &Shard,
    shard_number: usize,
    stored: Vec<StoredTensor>,
) -> Result<(), IoError> {
    for tensor in stored {
        if let Some((_, first)) = found.get(&tensor.info.name) {
            return Err(IoError::DuplicateTensor {
                name: tensor.info.name,
                first: earlier[first.shard].path.clone(),
                second: shard.path.clone(),
            });
        }
        let location = Location {
            shard: shard_number,
            range: tensor.range,
        };
        found.insert(tensor.info.name.clone(), (tensor.info, location));
    }
    Ok(())
}

/// Memory-map one safetensors file and validate its header.
fn map_shard(path: &Path) -> Result<(Shard, Vec<StoredTensor>), IoError> {
    let read_error = |source| IoError::Read {
        path: path.to_path_buf(),
        source,
    };
    super::bounded::check_regular(path).map_err(read_error)?;
    let file = File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    if len == 0 {
        // Checked before mapping, which fails for empty files on some systems.
        return Err(IoError::NotACheckpoint {
            path: path.to_path_buf(),
            reason: "not a safetensors file (it is empty)".into(),
        });
    }
    // SAFETY: the map is read-only. Its contents could change if another
    // process modified the file while it is open; tv never writes in place
    // (the Writer renames a new file over the old one), so our own saves,
    // even to the path being read, leave mapped data untouched.
    let map = unsafe { Mmap::map(&file) }.map_err(read_error)?;
    let stored = header::parse(path, &map)?;
    let shard = Shard {
        path: path.to_path_buf(),
        map,
    };
    Ok((shard, stored))
}

fn assemble(
    path: PathBuf,
    folder: Option<PathBuf>,
    shards: Vec<Shard>,
    mut entries: Vec<(TensorInfo, Location)>,
) -> Checkpoint {
    entries.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let (tensors, locations) = entries.into_iter().unzip();
    Checkpoint {
        path,
        folder,
        shards,
        tensors,
        locations,
        bytes_read: AtomicU64::new(0),
    }
}
