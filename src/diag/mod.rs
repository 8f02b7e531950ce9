//! User errors as plain data. Every stage returns `Diagnostic`s; only
//! `render` turns them into miette reports, at the edge of the program.

mod render;
pub mod suggest;
mod warning;

pub use render::{render_all, render_plain, to_report};
pub use suggest::closest;
pub use warning::warn;

use std::path::PathBuf;
use std::sync::Arc;

/// Which source file a span points into (an index into `Sources`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range of one source file.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span { file, start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.file, self.start.min(other.start), self.end.max(other.end))
    }
}

/// One problem with the user's program, its inputs or its run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// Short stable identifier, e.g. `tv::unknown_name`.
    pub code: &'static str,
    pub message: String,
    /// Where it is, and what to write under the underline.
    pub label: Option<(Span, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            label: None,
            help: None,
        }
    }

    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.label = Some((span, label.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn span(&self) -> Option<Span> {
        self.label.as_ref().map(|(span, _)| *span)
    }
}

/// A set of errors; the pipeline's error type.
pub type Diagnostics = Vec<Diagnostic>;

/// The source files of a run, so spans can be shown.
#[derive(Default, Debug)]
pub struct Sources {
    files: Vec<SourceFile>,
}

#[derive(Debug)]
pub struct SourceFile {
    /// The name shown to the user (the path as given, or `std/NAME`).
    pub name: String,
    /// Where it lives on disk, as written (relative paths stay relative);
    /// `None` for the bundled stdlib.
    pub path: Option<PathBuf>,
    /// The canonical path: one file reached by two spellings is one file.
    canonical: Option<PathBuf>,
    pub text: Arc<String>,
}

impl Sources {
    pub fn add(&mut self, name: String, path: Option<PathBuf>, text: String) -> FileId {
        let canonical = path.as_ref().and_then(|p| std::fs::canonicalize(p).ok());
        self.files.push(SourceFile {
            name,
            path,
            canonical,
            text: Arc::new(text),
        });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The file already loaded from `path`, if any.
    pub fn find_path(&self, path: &std::path::Path) -> Option<FileId> {
        let canonical = std::fs::canonicalize(path).ok()?;
        let found = self
            .files
            .iter()
            .position(|f| f.canonical.as_deref() == Some(canonical.as_path()));
        found.map(|i| FileId(i as u32))
    }

    /// The files read from disk (the program and what it `use`s), as written.
    pub fn paths(&self) -> impl Iterator<Item = &std::path::Path> {
        self.files.iter().filter_map(|f| f.path.as_deref())
    }

    /// The files read from disk with their text, the program first.
    pub fn texts(&self) -> impl Iterator<Item = (&str, &str)> {
        let read = self.files.iter().filter(|f| f.path.is_some());
        read.map(|f| (f.name.as_str(), f.text.as_str()))
    }

    pub fn find_name(&self, name: &str) -> Option<FileId> {
        let found = self.files.iter().position(|f| f.name == name);
        found.map(|i| FileId(i as u32))
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, file: FileId, offset: usize) -> (usize, usize) {
        let text = &self.get(file).text;
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// Sorts by position and drops repeats of the same error at the same place,
/// keeping the first (a sweep body, or a function body checked at its
/// definition and again at each call, would report it many times).
pub fn dedup(mut diags: Diagnostics) -> Diagnostics {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.message.clone(), d.label.clone())));
    diags.sort_by_key(|d| d.span().map(|s| (s.file, s.start, s.end)));
    diags
}
