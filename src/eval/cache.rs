//! The training cache: each `init` and `finetune` result is a Hugging Face
//! folder named by a hash of everything that determines it — the input
//! weights' content, the data's content, the config and the arguments — so
//! a rerun trains nothing and any change trains again.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where results live: a folder kept between runs, or (with `--no-cache`,
/// and for `tv check`) a temporary one removed at the end.
pub struct Cache {
    dir: PathBuf,
    _temporary: Option<tempfile::TempDir>,
    pub trained: usize,
    pub hits: usize,
}

impl Cache {
    pub fn at(dir: PathBuf) -> Cache {
        Cache {
            dir,
            _temporary: None,
            trained: 0,
            hits: 0,
        }
    }

    pub fn temporary() -> std::io::Result<Cache> {
        let temporary = tempfile::Builder::new().prefix("tv-cache-").tempdir()?;
        Ok(Cache {
            dir: temporary.path().to_path_buf(),
            _temporary: Some(temporary),
            trained: 0,
            hits: 0,
        })
    }

    /// The folder for `key`, made by `make` unless it is there already.
    /// `make` must create the folder atomically (as `io::Writer` does).
    pub fn entry<E>(&mut self, kind: &str, key: &Key, make: impl FnOnce(&Path) -> Result<(), E>) -> Result<PathBuf, E> {
        let folder = self.dir.join(format!("{kind}-{}", key.hex()));
        if folder.join("model.safetensors").is_file() {
            self.hits += 1;
            return Ok(folder);
        }
        make(&folder)?;
        self.trained += 1;
        Ok(folder)
    }
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

    fn hex(&self) -> String {
        let digest = self.0.clone().finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
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
        let mut cache = Cache::temporary().unwrap();
        let key = Key::new("k");
        let make = |folder: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(folder)?;
            std::fs::write(folder.join("model.safetensors"), b"x")
        };
        let first = cache.entry("init", &key, make).unwrap();
        let second = cache
            .entry("init", &key, |_| -> std::io::Result<()> { panic!("made twice") })
            .unwrap();
        assert_eq!(first, second);
        assert_eq!((cache.trained, cache.hits), (1, 1));
    }
}
