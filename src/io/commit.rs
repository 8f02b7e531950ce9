//! The commit of a run: every output (saves and the report) is staged and
//! complete before any of them is moved into place, and if any move or the
//! report itself fails, the outputs already moved are taken out again and
//! what they replaced is put back. A run leaves all its outputs or none.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::manifest::{self, OutputKind};
use super::staging::{self, CreatedDirs, Registry, StagedPath};

/// One finished output waiting for the commit.
pub struct Sealed {
    staged: StagedPath,
    target: PathBuf,
    created: CreatedDirs,
    kind: OutputKind,
}

impl Sealed {
    pub fn new(staged: StagedPath, target: PathBuf, created: CreatedDirs, kind: OutputKind) -> Sealed {
        Sealed {
            staged,
            target,
            created,
            kind,
        }
    }

    pub fn target(&self) -> &Path {
        &self.target
    }
}

/// The outputs of a run, not yet in place. Dropping them removes them.
#[derive(Default)]
pub struct Outputs {
    sealed: Vec<Sealed>,
    /// `--overwrite`: a target may be replaced whatever it holds.
    overwrite: bool,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let targets: Vec<&Path> = self.sealed.iter().map(Sealed::target).collect();
        f.debug_struct("Outputs").field("targets", &targets).finish()
    }
}

/// Why the commit failed: the output that could not be placed, or the report.
#[derive(Debug)]
pub struct CommitError {
    /// `None` when `publish` failed.
    pub target: Option<PathBuf>,
    pub source: io::Error,
}

/// An output moved into place, with what it replaced (moved aside).
struct Placed {
    target: PathBuf,
    previous: Option<PathBuf>,
}

impl Outputs {
    pub fn push(&mut self, sealed: Sealed) {
        self.sealed.push(sealed);
    }

    /// Lets the commit replace targets that are not tv's earlier outputs.
    pub fn allow_overwrite(&mut self, overwrite: bool) {
        self.overwrite = overwrite;
    }

    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty()
    }

    /// Moves every output into place, then calls `publish` (which writes
    /// the report where it cannot be staged, such as stdout). Any failure
    /// undoes the moves. Interruptions wait until this returns.
    pub fn commit(self, publish: impl FnOnce() -> io::Result<()>) -> Result<(), CommitError> {
        let overwrite = self.overwrite;
        let parts: Vec<_> = self.sealed.into_iter().map(Sealed::into_parts).collect();
        let mut registry = staging::lock();
        let (placed, mut failure) = place_all(&mut registry, &parts, overwrite);
        if failure.is_none() {
            if let Err(source) = publish() {
                failure = Some((parts.len(), CommitError { target: None, source }));
            }
        }
        match failure {
            None => {
                finish(&mut registry, placed, &parts);
                Ok(())
            }
            Some((unplaced_from, error)) => {
                undo(&mut registry, placed, &parts, unplaced_from);
                Err(error)
            }
        }
    }
}

/// Places each output in turn; stops at the first that cannot be placed,
/// returning its index and why.
fn place_all(registry: &mut Registry, parts: &[Parts], overwrite: bool) -> (Vec<Placed>, Option<(usize, CommitError)>) {
    let mut placed = Vec::new();
    for (k, (staged, target, _, kind)) in parts.iter().enumerate() {
        let result = match overwrite || is_replaceable(target, kind) {
            true => place(registry, staged, target),
            false => Err(io::Error::new(io::ErrorKind::AlreadyExists, APPEARED)),
        };
        match result {
            Ok(p) => placed.push(p),
            Err(source) => {
                let target = Some(target.clone());
                return (placed, Some((k, CommitError { target, source })));
            }
        }
    }
    (placed, None)
}

const APPEARED: &str = "something that is not an earlier output of tv appeared there while the run went on";

/// Whether the target is free, or holds tv's earlier output of this kind:
/// checked again at the commit, since the run may have taken hours.
fn is_replaceable(target: &Path, kind: &OutputKind) -> bool {
    fs::symlink_metadata(target).is_err() || manifest::is_earlier_output(target, kind)
}

type Parts = (PathBuf, PathBuf, Vec<PathBuf>, OutputKind);

impl Sealed {
    fn into_parts(self) -> Parts {
        (
            self.staged.into_path(),
            self.target,
            self.created.into_dirs(),
            self.kind,
        )
    }
}

/// Moves an existing target aside (under a staged `.old` name), then the
/// staged output into its place.
fn place(registry: &mut Registry, staged: &Path, target: &Path) -> io::Result<Placed> {
    let previous = match fs::symlink_metadata(target) {
        Ok(_) => Some(move_aside(registry, target)?),
        Err(_) => None,
    };
    if let Err(e) = fs::rename(staged, target) {
        if let Some(old) = &previous {
            restore(registry, old, target);
        }
        return Err(e);
    }
    registry.forget(staged);
    Ok(Placed {
        target: target.to_path_buf(),
        previous,
    })
}

fn move_aside(registry: &mut Registry, target: &Path) -> io::Result<PathBuf> {
    let name = format!("{}{}.old", staging::prefix(target), unique_suffix());
    let aside = staging::parent_of(target).join(name);
    registry.add(&aside);
    fs::rename(target, &aside).inspect_err(|_| registry.forget(&aside))?;
    Ok(aside)
}

/// Puts an earlier output back; if even that fails it stays under its
/// `.old` name (unregistered, so nothing deletes it) rather than being lost.
fn restore(registry: &mut Registry, old: &Path, target: &Path) {
    let _ = fs::rename(old, target);
    registry.forget(old);
}

/// Success: the earlier outputs go, the created folders stay.
fn finish(registry: &mut Registry, placed: Vec<Placed>, parts: &[Parts]) {
    for p in placed {
        if let Some(old) = p.previous {
            staging::remove_path(&old);
            registry.forget(&old);
        }
    }
    for (_, _, created, _) in parts {
        registry.forget_created_dirs(created);
    }
}

/// Failure: outputs placed so far are removed and what they replaced is
/// restored; the staged ones not yet placed are removed; so are the folders
/// created for them, when empty.
fn undo(registry: &mut Registry, placed: Vec<Placed>, parts: &[Parts], unplaced_from: usize) {
    for p in placed.into_iter().rev() {
        staging::remove_path(&p.target);
        if let Some(old) = &p.previous {
            restore(registry, old, &p.target);
        }
    }
    for (staged, _, _, _) in parts.iter().skip(unplaced_from) {
        staging::remove_path(staged);
        registry.forget(staged);
    }
    for (_, _, created, _) in parts.iter().rev() {
        staging::remove_empty_dirs(created);
        registry.forget_created_dirs(created);
    }
}

/// Distinguishes names made in the same process and nanosecond.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
