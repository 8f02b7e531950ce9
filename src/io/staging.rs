//! Staged outputs: everything a run writes is first written under a name
//! that says "unfinished tv output", beside its target, and moved into place
//! only when the whole run has succeeded.
//!
//! The name is `.TARGET.tv-PID-RANDOM.tmp` (`.old` for an earlier output
//! moved aside during the commit). It is recognisable, so `load` refuses it,
//! and it names the process that made it, so a later run removes what a
//! killed run (SIGKILL, power loss) left behind without touching the staging
//! of a run still going. Every staged path is also kept in a registry, so an
//! interrupted run (SIGINT, SIGTERM) removes its own before it exits.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const MARK: &str = ".tv-";

/// Paths this process has staged and not yet committed or removed, and
/// folders it created for its outputs (removed again if still empty).
#[derive(Default)]
pub struct Registry {
    staged: Vec<PathBuf>,
    created_dirs: Vec<PathBuf>,
    /// Folders of failed saves that still held another save's staging when
    /// their save was dropped; removed once that staging goes too.
    orphaned_dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    staged: Vec::new(),
    created_dirs: Vec::new(),
    orphaned_dirs: Vec::new(),
});

/// The registry, locked: while it is held, an interrupted run waits before
/// it cleans up (so a commit in progress completes first).
pub fn lock() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    pub fn add(&mut self, path: &Path) {
        self.staged.push(path.to_path_buf());
    }

    pub fn forget(&mut self, path: &Path) {
        self.staged.retain(|p| p != path);
    }

    /// Folders created for outputs, deepest first.
    pub fn add_created_dirs(&mut self, dirs: &[PathBuf]) {
        self.created_dirs.extend_from_slice(dirs);
    }

    pub fn forget_created_dirs(&mut self, dirs: &[PathBuf]) {
        self.created_dirs.retain(|d| !dirs.contains(d));
    }

    /// Removes the orphaned folders that are empty now, deepest first.
    fn tidy_orphans(&mut self) {
        self.orphaned_dirs
            .sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        self.orphaned_dirs
            .retain(|dir| fs::remove_dir(dir).is_err() && dir.exists());
    }

    /// Removes every staged path and every created folder left empty: what
    /// an interrupted run must not leave behind.
    pub fn remove_all(&mut self) {
        for path in std::mem::take(&mut self.staged) {
            remove_path(&path);
        }
        let mut dirs = std::mem::take(&mut self.created_dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        remove_empty_dirs(&dirs);
    }
}

/// The prefix of this process's staged names for `target`.
pub fn prefix(target: &Path) -> String {
    format!(".{}{MARK}{}-", file_name(target), std::process::id())
}

/// Whether `name` (a file or folder name) is tv's staging, not an output.
pub fn is_staging_name(name: &str) -> bool {
    owner(name).is_some()
}

/// The process that staged `name`, if it is a staged name.
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let rest = rest.strip_suffix(".tmp").or_else(|| rest.strip_suffix(".old"))?;
    let (_, tail) = rest.rsplit_once(MARK)?;
    let (pid, random) = tail.split_once('-')?;
    (!random.is_empty() && !pid.is_empty()).then_some(())?;
    pid.parse().ok()
}

/// The first component of `path` that is a staged name, if any.
pub fn staging_component(path: &Path) -> Option<String> {
    path.components()
        .filter_map(|c| c.as_os_str().to_str())
        .find(|name| is_staging_name(name))
        .map(str::to_string)
}

/// Removes what killed runs left beside `target`: staged names for it whose
/// process no longer exists. Best effort; returns how many went.
pub fn remove_stale(target: &Path) -> usize {
    let parent = parent_of(target);
    let Ok(entries) = fs::read_dir(&parent) else { return 0 };
    let ours = format!(".{}{MARK}", file_name(target));
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with(&ours) && owner(&name).is_some_and(|pid| !process_exists(pid));
        if stale {
            remove_path(&entry.path());
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` still runs: a zombie (killed, not yet reaped by
/// its parent) writes nothing more, so it counts as gone.
fn process_exists(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which ends with the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// The folder a target lives in (`.` for a bare relative name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes a file or a whole folder; a symlink itself, never what it points to.
pub fn remove_path(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // A writer may still be adding files; a second try catches them.
            if fs::remove_dir_all(path).is_err() {
                let _ = fs::remove_dir_all(path);
            }
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// A staged file or folder. Dropped unfinished, it is removed (a failed run
/// leaves nothing); `into_path` hands it over to a commit.
pub struct StagedPath {
    path: PathBuf,
    armed: bool,
}

impl StagedPath {
    /// A new, empty staged file for `target`, beside it.
    pub fn file(target: &Path) -> std::io::Result<(StagedPath, fs::File)> {
        let mut registry = lock();
        let temp = create_staged(target, 0o644, |b, dir| b.tempfile_in(dir))?;
        let (file, path) = temp.keep().map_err(|e| e.error)?;
        registry.add(&path);
        Ok((StagedPath { path, armed: true }, file))
    }

    /// A new, empty staged folder for `target`, beside it.
    pub fn folder(target: &Path) -> std::io::Result<StagedPath> {
        let mut registry = lock();
        let path = create_staged(target, 0o755, |b, dir| b.tempdir_in(dir))?.keep();
        registry.add(&path);
        Ok(StagedPath { path, armed: true })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Disarms the cleanup on drop; the path stays registered, so an
    /// interrupted commit still removes it.
    pub fn into_path(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.path)
    }
}

impl Drop for StagedPath {
    fn drop(&mut self) {
        if self.armed {
            let mut registry = lock();
            remove_path(&self.path);
            registry.forget(&self.path);
            registry.tidy_orphans();
        }
    }
}

/// A unique staged name for `target` beside it, created by `make` (a file
/// or a folder) with `mode`.
fn create_staged<T>(
    target: &Path,
    mode: u32,
    make: impl FnOnce(&tempfile::Builder, PathBuf) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::unix::fs::PermissionsExt;
    let prefix = prefix(target);
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(mode));
    make(&builder, parent_of(target))
}

/// Folders a save created for itself, removed again (when still empty) if
/// the save is dropped uncommitted: a failed run leaves no trace.
pub struct CreatedDirs {
    /// Deepest first, the order to remove them in.
    dirs: Vec<PathBuf>,
    armed: bool,
}

impl CreatedDirs {
    /// Creates `dir` and any missing parents, remembering which were new.
    pub fn create(dir: &Path) -> std::io::Result<CreatedDirs> {
        let mut registry = lock();
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && fs::symlink_metadata(a).is_err())
            .map(Path::to_path_buf)
            .collect();
        registry.add_created_dirs(&missing);
        if let Err(e) = fs::create_dir_all(dir) {
            remove_empty_dirs(&missing);
            registry.forget_created_dirs(&missing);
            return Err(e);
        }
        Ok(CreatedDirs {
            dirs: missing,
            armed: true,
        })
    }

    /// Disarms the cleanup on drop; the folders stay registered.
    pub fn into_dirs(mut self) -> Vec<PathBuf> {
        self.armed = false;
        std::mem::take(&mut self.dirs)
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        if self.armed {
            let mut registry = lock();
            remove_empty_dirs(&self.dirs);
            registry.forget_created_dirs(&self.dirs);
            // Still there: another failed save's staging is inside, and
            // goes after this.
            let left = self.dirs.iter().filter(|d| d.exists()).cloned();
            registry.orphaned_dirs.extend(left);
        }
    }
}

/// Only empty folders go; anything else stays as it is.
pub fn remove_empty_dirs(dirs: &[PathBuf]) {
    for dir in dirs {
        let _ = fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names_are_recognised_with_their_owner() {
        let prefix = prefix(Path::new("out/model.safetensors"));
        let name = format!("{prefix}a1B2c3.tmp");
        assert_eq!(owner(&name), Some(std::process::id()));
        assert!(is_staging_name(".model.tv-12-x.old"));
        for plain in [
            "model.safetensors",
            ".model.tv-x.tmp",
            ".model.tv-12-.tmp",
            "a.tv-12-x.tmp",
            ".tv-cache",
        ] {
            assert!(!is_staging_name(plain), "{plain}");
        }
        let path = Path::new("a").join(&name).join("model.safetensors");
        assert_eq!(staging_component(&path), Some(name));
    }
}
