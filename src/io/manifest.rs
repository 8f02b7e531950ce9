//! How tv recognises its own earlier outputs, so that saving again replaces
//! them while anything else at a target is left alone: a saved folder holds
//! a manifest naming the files tv wrote, and a saved `.safetensors` file
//! carries a stamp in its header metadata.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// The manifest inside every folder tv saves.
pub const MANIFEST_NAME: &str = ".tv-save.json";
/// The header metadata entry of every file tv saves.
pub const STAMP_KEY: &str = "saved_by";
pub const STAMP_VALUE: &str = "tv";

/// Writes the manifest of a finished folder: every file in it.
pub fn write(dir: &Path) -> io::Result<()> {
    let mut files = entry_names(dir)?;
    files.sort();
    let text = serde_json::json!({ STAMP_KEY: STAMP_VALUE, "files": files }).to_string();
    fs::write(dir.join(MANIFEST_NAME), text)
}

/// The entries of `dir` that its manifest does not list (all of them when
/// there is no readable manifest): what saving over it would destroy.
pub fn foreign_entries(dir: &Path) -> io::Result<Vec<String>> {
    let listed = listed_files(dir);
    // tv writes plain files only: a folder or link is never its own, even
    // when a manifest names it.
    let plain = |name: &String| fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_file());
    let mut foreign: Vec<String> = entry_names(dir)?
        .into_iter()
        .filter(|name| name != MANIFEST_NAME && !(listed.contains(name) && plain(name)))
        .collect();
    foreign.sort();
    Ok(foreign)
}

fn listed_files(dir: &Path) -> Vec<String> {
    let Ok(text) = read_bounded(&dir.join(MANIFEST_NAME), 1 << 20) else {
        return Vec::new();
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    if json.get(STAMP_KEY).and_then(|v| v.as_str()) != Some(STAMP_VALUE) {
        return Vec::new();
    }
    let files = json.get("files").and_then(|f| f.as_array());
    files
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// What an output is, for telling whether an existing target is tv's own
/// earlier output of the same kind.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputKind {
    /// A Hugging Face folder.
    Folder,
    /// One `.safetensors` file.
    File,
    /// A CSV report, with its first line.
    Report(String),
    /// A figure (SVG or PNG) or an HTML report: a file whose first bytes
    /// carry tv's stamp.
    Document,
}

/// Whether `path` holds tv's earlier output of `kind`: a folder whose
/// manifest lists everything in it, a stamped file, or an empty file or a
/// report with the same first line.
pub fn is_earlier_output(path: &Path, kind: &OutputKind) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    match kind {
        OutputKind::Folder => meta.is_dir() && foreign_entries(path).is_ok_and(|f| f.is_empty()),
        OutputKind::File => meta.is_file() && is_stamped_file(path),
        OutputKind::Report(header) => meta.is_file() && report_matches(path, header),
        OutputKind::Document => meta.is_file() && is_stamped_document(path),
    }
}

/// An empty file, or one whose first line is `header`.
pub fn report_matches(path: &Path, header: &str) -> bool {
    let Ok(start) = read_bounded(path, 1 << 16) else {
        return false;
    };
    let text = String::from_utf8_lossy(&start);
    let first = text.split('\n').next().unwrap_or_default().trim_end_matches('\r');
    text.is_empty() || (first == header && text.contains('\n'))
}

/// Whether the figure or HTML report at `path` was written by tv.
pub fn is_stamped_document(path: &Path) -> bool {
    crate::plot::is_earlier_figure(path)
        || crate::report::html::is_earlier_page(path)
        || crate::report::record::is_earlier_record(path)
}

/// Whether the `.safetensors` file at `path` was written by tv.
pub fn is_stamped_file(path: &Path) -> bool {
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    let mut len = [0u8; 8];
    if file.read_exact(&mut len).is_err() {
        return false;
    }
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return false;
    }
    let mut header = vec![0u8; len as usize];
    if file.read_exact(&mut header).is_err() {
        return false;
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&header) else {
        return false;
    };
    json.get("__metadata__")
        .and_then(|m| m.get(STAMP_KEY))
        .and_then(|v| v.as_str())
        == Some(STAMP_VALUE)
}

fn entry_names(dir: &Path) -> io::Result<Vec<String>> {
    fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect()
}

/// The first `limit` bytes of the file at `path`.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs::File::open(path)?.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}
