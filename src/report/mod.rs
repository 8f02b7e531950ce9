//! The report: one CSV table of sweep variables and measurements.

pub mod block;
pub mod html;
pub mod memory;
mod number;
pub mod progress;
pub mod record;
pub mod spool;
pub mod table;
pub mod text;

pub use number::format_number;
pub use spool::Spool;
pub use table::{RowKeyPart, Table};

use crate::io::commit::Sealed;
use crate::io::staging::{self, CreatedDirs, StagedPath};
use std::path::{Path, PathBuf};

/// The report file of `-o`, staged before the run: a target that cannot be
/// written fails the run before any work, and the file becomes one of the
/// run's outputs, committed with its saves.
pub struct StagedFile {
    staged: StagedPath,
    file: std::fs::File,
    target: PathBuf,
    created: CreatedDirs,
}

impl StagedFile {
    pub fn new(target: &Path) -> std::io::Result<StagedFile> {
        if target.is_dir() {
            let message = format!("{} is a directory", target.display());
            return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, message));
        }
        let created = CreatedDirs::create(&staging::parent_of(target))?;
        staging::remove_stale(target);
        let (staged, file) = StagedPath::file(target)?;
        Ok(StagedFile {
            staged,
            file,
            target: target.to_path_buf(),
            created,
        })
    }

    /// A spool that writes straight into the staged file, so a large
    /// report is written once.
    pub fn spool(&self) -> std::io::Result<Spool> {
        Ok(Spool::into_file(self.file.try_clone()?))
    }

    /// Makes sure the report written through `spool` is on disk (so a full
    /// disk fails here) and seals the file for the run's commit.
    pub fn seal(self, report: &Spool) -> std::io::Result<Sealed> {
        self.file.sync_all()?;
        let kind = crate::io::manifest::OutputKind::Report(report.header());
        Ok(Sealed::new(self.staged, self.target, self.created, kind))
    }
}

/// Stages a whole file of `bytes` for `target`, as one of the run's
/// outputs (a figure, the HTML report).
pub fn stage_bytes(target: &Path, bytes: &[u8]) -> std::io::Result<Sealed> {
    use std::io::Write;
    let created = CreatedDirs::create(&staging::parent_of(target))?;
    staging::remove_stale(target);
    let (staged, mut file) = StagedPath::file(target)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let kind = crate::io::manifest::OutputKind::Document;
    Ok(Sealed::new(staged, target.to_path_buf(), created, kind))
}
