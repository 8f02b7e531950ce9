//! The training cache: each `init` and `finetune` result is a Hugging Face
//! folder named by a hash of everything that determines it — the input
//! weights' content, the data's content, the config and the arguments — so
//! a rerun trains nothing and any change trains again.
//!
//! An entry is trusted only if it proves itself: beside its files it holds
//! `tv-entry.json`, the full key and a SHA-256 of every file, written last.
//! A missing, corrupt or mismatching entry (flipped bytes, a truncated or
//! swapped file, an edited config, a crash before the checksums) is named
//! in a warning and trained again, never used.

use crate::io::IoError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where results live: a folder kept between runs, or (with `--no-cache`,
/// and for `tv check`) a temporary one removed at the end.
pub struct Cache {
    dir: PathBuf,
    _temporary: Option<tempfile::TempDir>,
    trained: AtomicUsize,
    hits: AtomicUsize,
}

impl Cache {
    pub fn at(dir: PathBuf) -> Cache {
        Cache {
            dir,
            _temporary: None,
            trained: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
        }
    }

    pub fn temporary() -> std::io::Result<Cache> {
        let temporary = tempfile::Builder::new().prefix("tv-cache-").tempdir()?;
        // Removed by the interrupt handler too: an interrupted run must not
        // leave trained models behind in the temporary folder.
        crate::io::staging::lock().add(temporary.path());
        Ok(Cache {
            dir: temporary.path().to_path_buf(),
            _temporary: Some(temporary),
            trained: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
        })
    }

    /// The folder for `key`, made by `make` unless a verified entry is
    /// there already. `make` must create the folder atomically (as
    /// `io::Writer` does); its checksums are added once it is complete.
    pub fn entry(
        &self,
        kind: &str,
        key: &Key,
        make: impl FnOnce(&Path) -> Result<(), IoError>,
    ) -> Result<PathBuf, IoError> {
        let folder = self.folder(kind, key);
        // Shards of one run share the cache and may want the same entry at
        // once: one makes it while the others wait, then find it made.
        let _lock = EntryLock::take(&self.dir, kind, key).map_err(|source| IoError::Write {
            path: self.dir.clone(),
            source,
        })?;
        match verify(&folder, key) {
            Ok(()) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(folder);
            }
            Err(Problem::Absent) => {}
            Err(Problem::Invalid(reason)) => {
                crate::diag::warn(format!(
                    "training cache entry {}: {reason}; training it again",
                    folder.display()
                ));
                crate::io::staging::remove_path(&folder);
            }
        }
        make(&folder)?;
        seal(&folder, key).map_err(|source| IoError::Write {
            path: folder.join(CHECKSUMS),
            source,
        })?;
        self.trained.fetch_add(1, Ordering::Relaxed);
        Ok(folder)
    }

    /// Fails unless results can be stored: checked before any training, so
    /// an unwritable cache costs no training time.
    pub fn check_writable(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        tempfile::Builder::new().prefix(".tv-probe-").tempfile_in(&self.dir)?;
        Ok(())
    }

    /// Entries made by this run.
    pub fn trained(&self) -> usize {
        self.trained.load(Ordering::Relaxed)
    }

    /// Entries found made and verified.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Whether a verified entry for `key` is there (for `tv plan`).
    pub fn holds(&self, kind: &str, key: &Key) -> bool {
        verify(&self.folder(kind, key), key).is_ok()
    }

    fn folder(&self, kind: &str, key: &Key) -> PathBuf {
        self.dir.join(format!("{kind}-{}", key.hex()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(temporary) = &self._temporary {
            crate::io::staging::lock().forget(temporary.path());
        }
    }
}

/// An exclusive lock on one entry, held while it is checked and made;
/// released when dropped (or when the process dies).
struct EntryLock {
    _file: std::fs::File,
}

impl EntryLock {
    fn take(dir: &Path, kind: &str, key: &Key) -> std::io::Result<EntryLock> {
        use std::os::fd::AsRawFd;
        let locks = dir.join(".locks");
        std::fs::create_dir_all(&locks)?;
        let path = locks.join(format!("{kind}-{}", key.hex()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // Safety: flock only reads the descriptor, which `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(EntryLock { _file: file });
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// The checksum file of an entry.
const CHECKSUMS: &str = "tv-entry.json";

enum Problem {
    /// No entry: train it.
    Absent,
    /// An entry that cannot be trusted, and why.
    Invalid(String),
}

/// Whether the entry at `folder` is complete and unchanged.
fn verify(folder: &Path, key: &Key) -> Result<(), Problem> {
    if std::fs::symlink_metadata(folder).is_err() {
        return Err(Problem::Absent);
    }
    let invalid = |reason: &str| Problem::Invalid(reason.to_string());
    let text = std::fs::read(folder.join(CHECKSUMS)).map_err(|_| invalid("its checksums are missing"))?;
    let recorded: serde_json::Value =
        serde_json::from_slice(&text).map_err(|_| invalid("its checksums are unreadable"))?;
    if recorded.get("key").and_then(|k| k.as_str()) != Some(key.full_hex().as_str()) {
        return Err(invalid("it was made from other inputs"));
    }
    let actual = checksums(folder).map_err(|e| Problem::Invalid(format!("it cannot be read ({e})")))?;
    match recorded.get("files") == Some(&actual) {
        true => Ok(()),
        false => Err(invalid(
            "its files differ from their checksums (changed, truncated or replaced)",
        )),
    }
}

/// Writes the checksums of a finished entry.
fn seal(folder: &Path, key: &Key) -> std::io::Result<()> {
    let record = serde_json::json!({ "key": key.full_hex(), "files": checksums(folder)? });
    let staged = folder.join(format!(".{CHECKSUMS}.tmp"));
    std::fs::write(&staged, record.to_string())?;
    std::fs::rename(&staged, folder.join(CHECKSUMS))
}

/// SHA-256 of every file in `folder` but the checksum file, by name.
fn checksums(folder: &Path) -> std::io::Result<serde_json::Value> {
    let mut files = serde_json::Map::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == CHECKSUMS {
            continue;
        }
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(entry.path())?, &mut hasher)?;
        let digest = hasher.finalize();
        files.insert(
            name,
            digest.iter().map(|b| format!("{b:02x}")).collect::<String>().into(),
        );
    }
    Ok(serde_json::Value::Object(files))
}

/// A hash of a cache entry's inputs.
pub struct Key(Sha256);

impl Key {
    /// Starts a key for results of `kind` (each kind has its own version,
    /// bumped whenever what it computes changes).
    pub fn new(kind: &str) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(kind.as_bytes());
        hasher.update([0]);
        Key(hasher)
    }

    /// Adds a field; lengths are included so fields cannot run together.
    pub fn add(&mut self, bytes: &[u8]) -> &mut Key {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// The key's SHA-256, for keys built from other keys.
    pub fn digest(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }

    fn hex(&self) -> String {
        self.full_hex()[..32].to_string()
    }

    fn full_hex(&self) -> String {
        let digest = self.0.clone().finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_any_field_and_its_boundaries() {
        let hex = |fields: &[&[u8]]| {
            let mut key = Key::new("test");
            for f in fields {
                key.add(f);
            }
            key.hex()
        };
        assert_eq!(hex(&[b"ab", b"c"]), hex(&[b"ab", b"c"]));
        assert_ne!(hex(&[b"ab", b"c"]), hex(&[b"a", b"bc"]));
        assert_ne!(hex(&[b"ab"]), hex(&[b"ac"]));
    }

    #[test]
    fn an_existing_entry_is_a_hit() {
        let cache = Cache::temporary().unwrap();
        let key = Key::new("k");
        let make = |folder: &Path| -> Result<(), IoError> {
            std::fs::create_dir_all(folder)
                .and_then(|_| std::fs::write(folder.join("model.safetensors"), b"x"))
                .map_err(|source| IoError::Write {
                    path: folder.to_path_buf(),
                    source,
                })
        };
        let first = cache.entry("init", &key, make).unwrap();
        let second = cache
            .entry("init", &key, |_| -> Result<(), IoError> { panic!("made twice") })
            .unwrap();
        assert_eq!(first, second);
        assert_eq!((cache.trained(), cache.hits()), (1, 1));
    }

    #[test]
    fn a_changed_or_unsealed_entry_is_made_again() {
        let cache = Cache::temporary().unwrap();
        let key = Key::new("k");
        let make = |folder: &Path| -> Result<(), IoError> {
            std::fs::create_dir_all(folder)
                .and_then(|_| std::fs::write(folder.join("model.safetensors"), b"weights"))
                .map_err(|source| IoError::Write {
                    path: folder.to_path_buf(),
                    source,
                })
        };
        let folder = cache.entry("init", &key, make).unwrap();
        std::fs::write(folder.join("model.safetensors"), b"weighTs").unwrap();
        cache.entry("init", &key, make).unwrap();
        std::fs::remove_file(folder.join(CHECKSUMS)).unwrap();
        cache.entry("init", &key, make).unwrap();
        assert_eq!((cache.trained(), cache.hits()), (3, 0));
        assert_eq!(std::fs::read(folder.join("model.safetensors")).unwrap(), b"weights");
    }
}
