//! The report: one CSV table of sweep variables and measurements.

pub mod memory;
mod number;
pub mod progress;
mod table;
pub mod text;

pub use number::format_number;
pub use table::{RowKeyPart, Table};

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An output file prepared before the run: a temporary beside the target,
/// so a target that cannot be written fails the run before any work, and
/// the file appears whole or not at all.
pub struct StagedFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl StagedFile {
    pub fn new(target: &Path) -> std::io::Result<StagedFile> {
        if target.is_dir() {
            let message = format!("{} is a directory", target.display());
            return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, message));
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".tv-report-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)?;
        Ok(StagedFile {
            temp,
            target: target.to_path_buf(),
        })
    }

    /// Writes `contents` and moves the file into place.
    pub fn commit(mut self, contents: &[u8]) -> std::io::Result<()> {
        self.temp.write_all(contents)?;
        self.temp.as_file().sync_all()?;
        self.temp.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }
}
