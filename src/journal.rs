//! The journal of a run with `-o REPORT`: every model evaluation and
//! command result, appended and synced to disk as it is made, in
//! `REPORT.tv-journal`. An interrupted run (killed, out of memory, out of
//! its Slurm time) leaves it behind; `tv run ... --resume` checks that it
//! belongs to the same program, inputs and settings, takes the results
//! it holds instead of computing them again, and writes the same report
//! an uninterrupted run writes. It is removed when the run's outputs are
//! committed.
//!
//! Weight-space measurements are not journaled: they are streamed passes
//! over the checkpoints, redone in minutes where the evaluations took
//! hours. Trained models are in the training cache already.
//!
//! The file: a first line naming the format, a second holding the run's
//! origin as one line of JSON, then one line per result:
//! `MEASURE KIND BITS`, the value's f64 bits in hex so it comes back
//! exactly. A line cut short by a kill has no newline and is dropped.

use crate::diag::{Diagnostic, Diagnostics};
use crate::graph::{Graph, Measure, MeasureId};
use crate::report::record::Origin;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const MAGIC: &str = "tv journal 1";

/// Measurement ids depend on how sweeps were lowered: `--elaborate-sweeps`
/// numbers them otherwise, so the journal says which it was.
fn magic(elaborated: bool) -> String {
    match elaborated {
        true => format!("{MAGIC} elaborated"),
        false => MAGIC.to_string(),
    }
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    /// Results found in the journal of an interrupted run.
    done: HashMap<MeasureId, f64>,
    /// Results written by this run.
    appended: AtomicUsize,
}

/// Where the journal of `-o REPORT` goes.
pub fn path_for(report: &Path) -> PathBuf {
    let mut name = report.as_os_str().to_os_string();
    name.push(".tv-journal");
    PathBuf::from(name)
}

/// How a run treats a journal left at its place.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    /// `--resume`: continue it.
    pub resume: bool,
    /// `--overwrite`: discard it.
    pub overwrite: bool,
    /// `--elaborate-sweeps`, which numbers the measurements otherwise.
    pub elaborated: bool,
}

impl Journal {
    /// Opens the journal of `report`: continues an interrupted run's with
    /// `--resume` (after checking it is this run's), else starts one.
    pub fn open(report: &Path, origin: &Origin, graph: &Graph, start: Start) -> Result<Journal, Diagnostics> {
        let path = path_for(report);
        let origin_line = serde_json::to_string(origin).unwrap_or_default();
        let found = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(error(&path, &e.to_string())),
        };
        if let Some(bytes) = &found {
            if !written_by_tv(bytes) && !start.overwrite {
                let message = format!("{} is there and is not a journal tv wrote", path.display());
                let help = "tv keeps the journal of a run with -o REPORT at REPORT.tv-journal: move that file away, or give --overwrite to replace it";
                return Err(vec![Diagnostic::new("tv::journal", message).help(help)]);
            }
        }
        let done = match found {
            Some(bytes) if start.resume => read(&path, &bytes, origin, graph, start.elaborated)?,
            // One that kept no result (a run stopped before its first) is no loss.
            Some(bytes) if !start.overwrite && results(&bytes) > 0 => return Err(left_behind(&path, &bytes)),
            _ => HashMap::new(),
        };
        let mut text = format!("{}\n{origin_line}\n", magic(start.elaborated));
        let mut entries: Vec<_> = done.iter().collect();
        entries.sort_by_key(|(m, _)| **m);
        for (m, value) in entries {
            text.push_str(&line(graph, *m, *value));
        }
        // Rewritten whole (without a line a kill cut short), then appended to.
        let file = write_new(&path, &text).map_err(|e| error(&path, &e.to_string()))?;
        Ok(Journal {
            path,
            file: Mutex::new(file),
            done,
            appended: AtomicUsize::new(0),
        })
    }

    /// A result the interrupted run made already.
    pub fn done(&self, m: MeasureId) -> Option<f64> {
        self.done.get(&m).copied()
    }

    /// Appends results and syncs them to disk before returning.
    pub fn append(&self, graph: &Graph, results: &[(MeasureId, f64)]) -> Result<(), Diagnostic> {
        let text: String = results.iter().map(|(m, v)| line(graph, *m, *v)).collect();
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let written = file.write_all(text.as_bytes()).and_then(|_| file.sync_data());
        written.map_err(|e| Diagnostic::new("tv::journal", format!("cannot write {}: {e}", self.path.display())))?;
        self.appended.fetch_add(results.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Results kept for a `--resume`, in all.
    pub fn kept(&self) -> usize {
        self.done.len() + self.appended.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After the run's outputs are committed (or when it failed having
    /// kept nothing worth resuming): the journal goes.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn line(graph: &Graph, m: MeasureId, value: f64) -> String {
    format!("{} {} {:016x}\n", m.0, kind(graph, m), value.to_bits())
}

/// What a measurement is, so a journal line cannot feed another kind.
fn kind(graph: &Graph, m: MeasureId) -> String {
    match graph.measure(m) {
        Measure::Dot(..) => "dot".into(),
        Measure::Model(model) => format!("{:?}", model.kind).to_lowercase(),
        Measure::Command { .. } => "command".into(),
    }
}

/// Replaces the journal by `text` in one rename (a kill meanwhile leaves
/// the older one whole), and opens it for appending.
fn write_new(path: &Path, text: &str) -> std::io::Result<std::fs::File> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staged = tempfile::NamedTempFile::new_in(dir)?;
    staged.write_all(text.as_bytes())?;
    staged.as_file().sync_data()?;
    staged.persist(path).map_err(|e| e.error)?;
    std::fs::OpenOptions::new().append(true).open(path)
}

/// The results of an interrupted run's journal, once it is known to be
/// this run's.
fn read(
    path: &Path,
    bytes: &[u8],
    origin: &Origin,
    graph: &Graph,
    elaborated: bool,
) -> Result<HashMap<MeasureId, f64>, Diagnostics> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(str::trim_end);
    match lines.next() {
        Some(first) if first == magic(elaborated) => {}
        Some(first) if first == magic(!elaborated) => {
            let with = if elaborated { "without" } else { "with" };
            let message = format!("the journal {} was made {with} --elaborate-sweeps", path.display());
            let help = "resume with the same --elaborate-sweeps setting as the interrupted run";
            return Err(vec![Diagnostic::new("tv::journal", message).help(help)]);
        }
        _ => return Err(error(path, "it is not a journal tv wrote")),
    }
    let theirs: Option<Origin> = lines.next().and_then(|l| serde_json::from_str(l).ok());
    let Some(theirs) = theirs else {
        return Err(error(path, "its record of the run is unreadable"));
    };
    if let Some(difference) = difference(&theirs, origin) {
        let message = format!("the journal {} is of another run: {difference}", path.display());
        let help = "a journal resumes only the run that wrote it; delete it, or give --overwrite to start afresh";
        return Err(vec![Diagnostic::new("tv::journal", message).help(help)]);
    }
    let mut done = HashMap::new();
    for (number, entry) in lines.enumerate() {
        let damaged = || error(path, &format!("line {} is damaged", number + 3));
        let (m, value) = parse(graph, entry).ok_or_else(damaged)?;
        if done.insert(m, value).is_some() {
            return Err(damaged());
        }
    }
    Ok(done)
}

fn parse(graph: &Graph, entry: &str) -> Option<(MeasureId, f64)> {
    let mut fields = entry.split(' ');
    let id = fields.next()?;
    let recorded = fields.next()?;
    let bits = fields.next()?;
    // Exactly as written: `parse` alone would take a sign or leading zeros.
    let digits = |t: &str, hex: bool| {
        !t.is_empty()
            && t.bytes()
                .all(|b| if hex { b.is_ascii_hexdigit() } else { b.is_ascii_digit() })
    };
    let canonical = digits(id, false) && (id == "0" || !id.starts_with('0'));
    if !canonical || bits.len() != 16 || !digits(bits, true) {
        return None;
    }
    let id: u32 = id.parse().ok()?;
    let bits = u64::from_str_radix(bits, 16).ok()?;
    let m = MeasureId(id);
    let fits = (id as usize) < graph.measure_count() && kind(graph, m) == recorded && fields.next().is_none();
    fits.then(|| (m, f64::from_bits(bits)))
}

/// What differs between two runs' origins, in words; `None` if nothing.
pub fn difference(a: &Origin, b: &Origin) -> Option<String> {
    if a.program.sha256 != b.program.sha256 {
        return Some(format!("the program {} has changed", b.program.path));
    }
    if a.uses != b.uses {
        return Some("the files the program uses have changed".into());
    }
    if let Some(file) = b.data.iter().find(|f| !a.data.contains(f)) {
        return Some(format!("the file {} it reads differs", file.path));
    }
    if a.data.len() != b.data.len() {
        return Some("the program reads other configs, datasets or texts".into());
    }
    if a.inputs.len() != b.inputs.len() {
        return Some("the program loads other checkpoints".into());
    }
    for (x, y) in a.inputs.iter().zip(&b.inputs) {
        let content = x.content_sha256.is_some() && y.content_sha256.is_some() && x.content_sha256 != y.content_sha256;
        if x.path != y.path || x.header_sha256 != y.header_sha256 || x.bytes != y.bytes || content {
            return Some(format!("the input {} differs", y.path));
        }
    }
    if a.settings != b.settings {
        return Some("the settings differ (device, seed, dtype or shard size)".into());
    }
    if a.tool != b.tool {
        let build = |t: &crate::report::record::Tool| format!("tv {} ({})", t.version, t.features.join(", "));
        return Some(format!(
            "one was made by {}, the other by {}",
            build(&a.tool),
            build(&b.tool)
        ));
    }
    let shard = |o: &Origin| o.shard.as_ref().map(|s| (s.index, s.count));
    if shard(a) != shard(b) {
        return Some("it is of another shard".into());
    }
    None
}

/// Whether a journal's text is one tv wrote: the format's line, then a
/// run's origin.
fn written_by_tv(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let origin = lines.next().and_then(|l| serde_json::from_str::<Origin>(l).ok());
    (first == magic(false) || first == magic(true)) && origin.is_some()
}

/// Complete result lines in a journal's text (its two header lines aside).
fn results(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count().saturating_sub(2)
}

fn left_behind(path: &Path, bytes: &[u8]) -> Diagnostics {
    let message = format!(
        "an interrupted run left its journal at {} ({} results)",
        path.display(),
        results(bytes)
    );
    let help = "continue that run with --resume, or give --overwrite to start afresh";
    vec![Diagnostic::new("tv::journal", message).help(help)]
}

fn error(path: &Path, reason: &str) -> Diagnostics {
    let message = format!("cannot use the journal {}: {reason}", path.display());
    vec![Diagnostic::new("tv::journal", message)]
}
