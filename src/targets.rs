//! Where a run may write. Checked with the rest of the program, before
//! anything runs: no output may be, contain or lie inside anything the run
//! reads (checkpoints, the program and the files it uses, texts, the
//! training cache) or another output; and an existing target is replaced
//! only when it is tv's own earlier output, or when the user says so with
//! `--overwrite`.

use crate::diag::{Diagnostic, Diagnostics, Sources, Span};
use crate::io::manifest;
use crate::lower::Plan;
use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Outputs other than the plan's saves, and how far replacing may go.
#[derive(Clone, Debug, Default)]
pub struct Request<'a> {
    /// `-o FILE`.
    pub report: Option<&'a Path>,
    /// `--html FILE`.
    pub html: Option<&'a Path>,
    /// The training cache, when the run trains.
    pub cache: Option<&'a Path>,
    /// `--overwrite`: existing targets may be replaced whatever they hold.
    pub overwrite: bool,
}

/// A path the run reads.
struct Input {
    resolved: PathBuf,
    /// Device and inode, when it exists: one file reached by another path
    /// (a bind mount, a second mount of the same disk) is still the same.
    identity: Option<(u64, u64)>,
    what: String,
}

/// A path the run writes.
struct Output {
    written: PathBuf,
    resolved: PathBuf,
    span: Option<Span>,
    kind: Kind,
}

#[derive(Copy, Clone, PartialEq)]
enum Kind {
    File,
    Folder,
    Report,
    /// A figure or the HTML report.
    Document,
    /// The run record beside the `-o` report.
    Record,
}

/// Every problem with the run's outputs.
pub fn check(plan: &Plan, sources: &Sources, request: &Request) -> Diagnostics {
    let inputs = inputs(plan, sources, request.cache);
    let outputs = outputs(plan, request);
    let mut first_at: HashMap<&Path, usize> = HashMap::new();
    for (k, output) in outputs.iter().enumerate().rev() {
        if names_nothing(output).is_none() && bad_shape(output).is_none() {
            first_at.insert(&output.resolved, k);
        }
    }
    let mut diags = PerStatement::default();
    for (k, output) in outputs.iter().enumerate() {
        if let Some(d) = names_nothing(output).or_else(|| bad_shape(output)) {
            diags.push(output, d);
            continue;
        }
        let clash = input_clash(output, &inputs)
            .or_else(|| identity_clash(output, &inputs))
            .or_else(|| output_clash(k, &outputs, &first_at));
        if let Some(d) = clash.or_else(|| existing(output, plan, request.overwrite)) {
            diags.push(output, d);
        }
    }
    diags.finish()
}

/// One diagnostic per `save` statement: a save in a sweep has a target per
/// point, and a thousand errors would bury the first.
#[derive(Default)]
struct PerStatement {
    diags: Vec<Diagnostic>,
    more: HashMap<Option<Span>, usize>,
}

impl PerStatement {
    fn push(&mut self, output: &Output, diag: Diagnostic) {
        let count = self.more.entry(output.span).or_insert(0);
        if *count == 0 {
            self.diags.push(diag);
        }
        *count += 1;
    }

    fn finish(mut self) -> Diagnostics {
        for diag in &mut self.diags {
            let count = self.more.get(&diag.span()).copied().unwrap_or(1);
            if count > 1 && diag.span().is_some() {
                let note = format!(" (and {} more targets of this statement)", count - 1);
                diag.message.push_str(&note);
            }
        }
        self.diags
    }
}

/// The closest relation first: "is" an input before "contains" one.
fn input_clash(output: &Output, inputs: &[Input]) -> Option<Diagnostic> {
    let exact = inputs.iter().find(|input| input.resolved == output.resolved);
    exact
        .into_iter()
        .chain(inputs)
        .find_map(|input| clash(output, &input.resolved, &input.what))
}

/// The output is, contains or lies inside an input reached by another
/// path: compared by device and inode along both paths' ancestors.
fn identity_clash(output: &Output, inputs: &[Input]) -> Option<Diagnostic> {
    let mine: Vec<(u64, u64)> = output.resolved.ancestors().filter_map(identity).collect();
    let own = identity(&output.resolved);
    inputs.iter().find_map(|input| {
        let theirs = input.identity?;
        let same = own == Some(theirs);
        let contains = own.is_some_and(|o| input.resolved.ancestors().skip(1).filter_map(identity).any(|a| a == o));
        let inside = mine.iter().skip(usize::from(own.is_some())).any(|a| *a == theirs);
        let relation = match (same, contains, inside) {
            (true, _, _) => "is",
            (_, true, _) => "contains",
            (_, _, true) => "lies inside",
            _ => return None,
        };
        let message = format!(
            "the output {} {relation} {} (by another path)",
            shown(output),
            input.what
        );
        Some(diagnostic(output, message).help(CLASH_HELP))
    })
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A target that `..` reaches through a folder that does not exist yet
/// (the check could not follow the links the run would), that bears a
/// staged name, or whose text ends like a folder where a file goes.
fn bad_shape(output: &Output) -> Option<Diagnostic> {
    let problem = if let Some(missing) = detour(&output.written) {
        format!(
            "goes through {}, which does not exist, and back out with `..`",
            missing.display()
        )
    } else if let Some(name) = crate::io::staging::staging_component(&output.written) {
        format!("has a name tv uses for unfinished outputs ({name})")
    } else if output.kind != Kind::Folder && output.written.as_os_str().to_string_lossy().ends_with('/') {
        "ends with `/`, so it names a folder, not a file".to_string()
    } else {
        return None;
    };
    let message = format!("the output {} {problem}", shown(output));
    Some(diagnostic(output, message).help("write the output path without it"))
}

/// The first folder of `path` that does not exist, if a `..` follows it.
pub fn detour(path: &Path) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    let mut missing: Option<PathBuf> = None;
    for component in path.components() {
        if component == Component::ParentDir && missing.is_some() {
            return missing;
        }
        prefix.push(component);
        if missing.is_none() && fs::symlink_metadata(&prefix).is_err() {
            missing = Some(prefix.clone());
        }
    }
    None
}

const CLASH_HELP: &str =
    "tv never writes over what a run reads or another output of the same run; choose another output path";

/// Output `k` is an earlier output, or lies inside another one (each pair
/// is reported once, at the inner or later output). Looked up by path, so
/// a sweep of many saves costs no quadratic comparison.
fn output_clash(k: usize, outputs: &[Output], first_at: &HashMap<&Path, usize>) -> Option<Diagnostic> {
    let output = &outputs[k];
    let found = output.resolved.ancestors().find_map(|a| match first_at.get(a) {
        Some(&j) if j != k => Some(j),
        _ => None,
    })?;
    let other = &outputs[found];
    clash(output, &other.resolved, &format!("another output, {}", shown(other)))
}

fn inputs(plan: &Plan, sources: &Sources, cache: Option<&Path>) -> Vec<Input> {
    let mut inputs = Vec::new();
    let mut add = |path: &Path, what: String| {
        inputs.push(Input {
            resolved: resolve(path),
            identity: identity(path),
            what,
        })
    };
    for leaf in plan.graph.leaves() {
        let what = format!("the input checkpoint {}", leaf.path().display());
        add(leaf.path(), what.clone());
        if let Some(folder) = leaf.folder() {
            add(folder, what.clone());
        }
        for file in leaf.files() {
            add(file, what.clone());
        }
    }
    for path in sources.paths() {
        add(path, format!("the program file {}", path.display()));
    }
    for data in &plan.graph.datasets {
        if let crate::eval::EvalData::Text(task) = data.as_ref() {
            add(&task.path, format!("the text {}", task.path.display()));
        }
    }
    for path in &plan.read_files {
        add(path, format!("the file {}, which the program reads", path.display()));
    }
    if let Some(cache) = cache {
        add(cache, format!("the training cache {}", cache.display()));
    }
    inputs
}

fn outputs(plan: &Plan, request: &Request) -> Vec<Output> {
    let mut outputs: Vec<Output> = plan
        .saves
        .iter()
        .map(|job| {
            let single = job.path.extension().is_some_and(|e| e == "safetensors");
            Output {
                written: job.path.clone(),
                resolved: resolve(&job.path),
                span: Some(job.span),
                kind: if single { Kind::File } else { Kind::Folder },
            }
        })
        .collect();
    outputs.extend(plan.figures.iter().map(|figure| Output {
        written: figure.path.clone(),
        resolved: resolve(&figure.path),
        span: Some(figure.span),
        kind: Kind::Document,
    }));
    let record = request.report.map(crate::report::record::path_for);
    let flags = [
        (request.report, Kind::Report),
        (request.html, Kind::Document),
        (record.as_deref(), Kind::Record),
    ];
    for (path, kind) in flags {
        if let Some(path) = path {
            outputs.push(Output {
                written: path.to_path_buf(),
                resolved: resolve(path),
                span: None,
                kind,
            });
        }
    }
    outputs
}

/// `save x to "."`, `".."` or `"/"`: no name of its own to stage beside.
fn names_nothing(output: &Output) -> Option<Diagnostic> {
    let last = output.written.components().next_back();
    let text = output.written.as_os_str().to_string_lossy();
    let dotted = text.ends_with("/.") || text.ends_with("/./");
    if matches!(last, Some(Component::Normal(_))) && !dotted {
        return None;
    }
    let message = match output.kind {
        Kind::Report | Kind::Document | Kind::Record => format!("the {} names a folder, not a file", shown(output)),
        _ => format!(
            "{} names an existing folder, not a new output: a save replaces its target whole, so it would replace that folder and everything in it",
            shown(output)
        ),
    };
    let help = match output.kind {
        Kind::Report => "name a file for the report, e.g. -o report.csv",
        Kind::Document | Kind::Record => "name a file, e.g. \"fig/ppl.svg\" or --html report.html",
        _ => "save to a new name inside it, e.g. \"out/model\" (a folder) or \"out/model.safetensors\" (one file)",
    };
    Some(diagnostic(output, message).help(help))
}

/// The diagnostic if `output` is, contains or lies inside `other`.
fn clash(output: &Output, other: &Path, what: &str) -> Option<Diagnostic> {
    let target = &output.resolved;
    let relation = if target == other {
        "is"
    } else if other.starts_with(target) {
        "contains"
    } else if target.starts_with(other) {
        "lies inside"
    } else {
        return None;
    };
    let message = format!("the output {} {relation} {what}", shown(output));
    Some(diagnostic(output, message).help(CLASH_HELP))
}

/// An existing target: replaced only when it is tv's earlier output of the
/// same kind, or with `--overwrite`.
fn existing(output: &Output, plan: &Plan, overwrite: bool) -> Option<Diagnostic> {
    let meta = fs::symlink_metadata(&output.written).ok()?;
    let kind = meta.file_type();
    let problem = if kind.is_symlink() {
        symlink_problem(&output.written, overwrite)
    } else if kind.is_dir() {
        match output.kind {
            Kind::Folder => folder_problem(&output.written, overwrite),
            _ => Some("is an existing folder, where a file would go".to_string()),
        }
    } else if !kind.is_file() {
        Some("is a special file (a device, pipe or socket), not a place for an output".to_string())
    } else {
        match output.kind {
            Kind::Folder => Some(
                "is an existing file, where a folder would go (name a .safetensors file to save a single file)".into(),
            ),
            _ if overwrite => None,
            Kind::File => (!manifest::is_stamped_file(&output.written))
                .then(|| "exists and is not a checkpoint saved by tv".to_string()),
            Kind::Report => report_problem(&output.written, plan),
            Kind::Document => (!manifest::is_stamped_document(&output.written))
                .then(|| "exists and is not a figure or HTML report drawn by tv".to_string()),
            Kind::Record => (!manifest::is_stamped_document(&output.written))
                .then(|| "exists and is not a run record written by tv".to_string()),
        }
    };
    let problem = problem?;
    let mut diag = diagnostic(output, format!("the output {} {problem}", shown(output)));
    if !problem.contains("special file") && !problem.contains("where a") {
        diag = diag.help("choose a new path, or pass --overwrite to replace it");
    }
    Some(diag)
}

fn symlink_problem(path: &Path, overwrite: bool) -> Option<String> {
    let pointee = fs::metadata(path).ok();
    let plain = pointee.is_none_or(|m| m.is_file() || m.is_dir());
    if !plain {
        return Some("is a link to a special file, not a place for an output".into());
    }
    (!overwrite).then(|| "is a symbolic link; saving would replace the link".into())
}

fn folder_problem(dir: &Path, overwrite: bool) -> Option<String> {
    if overwrite {
        return None;
    }
    let foreign = match manifest::foreign_entries(dir) {
        Ok(foreign) if foreign.is_empty() => return None,
        Ok(foreign) => foreign,
        Err(e) => return Some(format!("cannot be listed ({e})")),
    };
    let shown: Vec<String> = foreign.iter().take(8).cloned().collect();
    let more = match foreign.len() > shown.len() {
        true => format!(" and {} more", foreign.len() - shown.len()),
        false => String::new(),
    };
    Some(format!(
        "is an existing folder that tv did not save; it holds {}{more}",
        shown.join(", ")
    ))
}

/// A report file may be replaced when it is empty or an earlier report of
/// this program (its first line is the same header).
fn report_problem(path: &Path, plan: &Plan) -> Option<String> {
    let text = read_start(path, 1 << 16)?;
    if text.is_empty() {
        return None;
    }
    let first = text.split('\n').next().unwrap_or_default().trim_end_matches('\r');
    if plan.table.header_line().as_deref() == Some(first) && text.contains('\n') {
        return None;
    }
    Some("exists and is not an earlier report of this program (its first line differs)".into())
}

fn read_start(path: &Path, limit: u64) -> Option<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let file = fs::File::open(path).ok()?;
    file.take(limit).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn diagnostic(output: &Output, message: String) -> Diagnostic {
    let diag = Diagnostic::new("tv::output", message);
    match output.span {
        Some(span) => diag.at(span, "saving here"),
        None => diag,
    }
}

fn shown(output: &Output) -> String {
    match output.kind {
        Kind::Report => format!("report file \"{}\" (-o)", output.written.display()),
        Kind::Document if output.span.is_none() => format!("HTML report \"{}\" (--html)", output.written.display()),
        Kind::Record => format!("run record \"{}\" (beside the -o report)", output.written.display()),
        _ => format!("\"{}\"", output.written.display()),
    }
}

/// The canonical form of `path`, for paths that may not exist yet: the
/// longest existing ancestor is canonicalised (following symlinks), the
/// rest is appended with `.` and `..` applied.
pub fn resolve(path: &Path) -> PathBuf {
    if let Ok(canonical) = fs::canonicalize(path) {
        return canonical;
    }
    let absolute = match path.is_absolute() {
        true => path.to_path_buf(),
        false => std::env::current_dir().unwrap_or_default().join(path),
    };
    let mut parts = absolute.components().collect::<Vec<_>>();
    let mut rest = Vec::new();
    while let Some(last) = parts.pop() {
        rest.push(last);
        let prefix: PathBuf = parts.iter().collect();
        if let Ok(base) = fs::canonicalize(&prefix) {
            return rest.iter().rev().fold(base, |mut acc, c| {
                match c {
                    Component::ParentDir => {
                        acc.pop();
                    }
                    Component::Normal(name) => acc.push(name),
                    _ => {}
                }
                acc
            });
        }
    }
    absolute
}
