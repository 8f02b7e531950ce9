//! tv: a declarative language for experiments in the weight space of neural
//! networks.
//!
//! The pipeline: parse -> check and lower (one walk: names, types,
//! arguments and checkpoint headers, building the lazy graph) -> execute
//! (streamed, tensor by tensor) -> report (CSV).

pub mod diag;
pub mod digits;
pub mod eval;
pub mod exec;
mod figures;
pub mod graph;
pub mod io;
pub mod journal;
pub mod lower;
pub mod merge;
pub mod plot;
pub mod plot_command;
pub mod report;
pub mod shard;
pub mod slurm;
pub mod stdlib;
pub mod syntax;
pub mod synth;
pub mod targets;

use diag::{Diagnostic, Diagnostics, Sources};
use eval::cache::Cache;
use exec::{ExecOptions, Stats};
use lower::{Plan, SaveDtype};
use std::path::Path;

/// Command-line values that take precedence over the program's `set`s.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub device: Option<String>,
    pub dtype: Option<SaveDtype>,
    pub seed: Option<u64>,
    pub threads: Option<usize>,
    /// `--max-shard-size`, in bytes.
    pub max_shard_bytes: Option<u64>,
    /// Where `init`/`finetune` results are kept (default: `.tv-cache/`
    /// beside the experiment).
    pub cache: Option<std::path::PathBuf>,
    /// Train in a temporary cache, discarded after the run.
    pub no_cache: bool,
    /// `--allow-commands`: let `command(...)` run programs.
    pub allow_commands: bool,
    /// `-o FILE`: where the report goes (checked like a save target).
    pub report: Option<std::path::PathBuf>,
    /// `--html FILE`: a self-contained HTML report of the run.
    pub html: Option<std::path::PathBuf>,
    /// `--hash-inputs`: the run record holds each input's content hash.
    pub hash_inputs: bool,
    /// `--overwrite`: existing save targets and report files may be
    /// replaced whatever they hold (never the run's own inputs).
    pub overwrite: bool,
    /// Elaborate every sweep point by point (slower; for comparisons).
    pub elaborate_sweeps: bool,
    /// `--shard I/N`: make this shard's part of the model evaluations.
    pub shard: Option<shard::Shard>,
    /// `--resume`: continue the interrupted run whose journal is beside the report.
    pub resume: bool,
}

/// Reads, checks and lowers the program at `path` without reading any
/// tensor data (and without training).
pub fn check(sources: &mut Sources, path: &Path, overrides: &Overrides) -> Result<Plan, Diagnostics> {
    read_and_check(sources, path, overrides, false).map(|(plan, _)| plan)
}

/// Checks the program at `path` and gives it the cache a run would use
/// (without creating it), so `tv plan` can tell which training jobs are
/// cached.
pub fn check_with_cache(sources: &mut Sources, path: &Path, overrides: &Overrides) -> Result<Plan, Diagnostics> {
    let mut plan = check(sources, path, overrides)?;
    if plan.trains {
        let root = sources.find_path(path);
        plan.cache = root.and_then(|root| cache_dir(sources, root, overrides)).map(Cache::at);
    }
    Ok(plan)
}

fn read_and_check(
    sources: &mut Sources,
    path: &Path,
    overrides: &Overrides,
    train: bool,
) -> Result<(Plan, Option<StagedReport>), Diagnostics> {
    let text = io::bounded::read_text(path, io::bounded::PROGRAM_LIMIT).map_err(|e| {
        let (code, reason) = match e.kind() {
            std::io::ErrorKind::InvalidData => ("tv::not_text", "it is not UTF-8 text".to_string()),
            std::io::ErrorKind::NotFound => ("tv::missing_file", e.to_string()),
            _ => ("tv::unreadable_file", e.to_string()),
        };
        let message = format!("cannot read {}: {reason}", path.display());
        vec![Diagnostic::new(code, message).help("tv runs `.tv` programs: UTF-8 text files")]
    })?;
    let root = sources.add(path.display().to_string(), Some(path.to_path_buf()), text);
    // The whole program is checked before anything trains, so a typo at the
    // end of a file costs no training time.
    let mut checked = plan(sources, root, overrides)?;
    if let Some(part) = overrides.shard {
        shard::restrict(&mut checked, part);
    }
    if !train {
        return Ok((checked, None));
    }
    // Staged once the targets are known to be safe, and before any work: a
    // report that cannot be written fails the run at once.
    let report = overrides.report.as_deref().map(StagedReport::new).transpose()?;
    if checked.trains {
        if let Some(dir) = cache_dir(sources, root, overrides) {
            check_cache(&dir)?;
        }
        checked.cache = Some(cache(sources, root, overrides)?);
    }
    Ok((checked, report))
}

/// A cache that cannot store results fails the run before any training.
fn check_cache(dir: &Path) -> Result<(), Diagnostics> {
    Cache::at(dir.to_path_buf()).check_writable().map_err(|e| {
        let message = format!("cannot write the training cache {}: {e}", dir.display());
        let help = "trained models are kept there; choose another folder with --cache DIR, or train without it with --no-cache";
        vec![Diagnostic::new("tv::cache", message).help(help)]
    })
}

/// Checks program text as if it were the file at `path` (which need not
/// exist): its relative paths resolve against that file's folder.
pub fn check_text_at(sources: &mut Sources, path: &Path, text: &str) -> Result<Plan, Diagnostics> {
    let root = sources.add(path.display().to_string(), Some(path.to_path_buf()), text.to_string());
    let overrides = Overrides {
        allow_commands: true,
        ..Overrides::default()
    };
    plan(sources, root, &overrides)
}

/// Checks program text that has no file (relative paths resolve against
/// the current directory).
pub fn check_text(sources: &mut Sources, name: &str, text: &str) -> Result<Plan, Diagnostics> {
    let root = sources.add(name.to_string(), None, text.to_string());
    plan(sources, root, &Overrides::default())
}

fn plan(sources: &mut Sources, root: diag::FileId, overrides: &Overrides) -> Result<Plan, Diagnostics> {
    let training = lower::Training {
        seed: overrides.seed,
        allow_commands: overrides.allow_commands,
        elaborate_sweeps: overrides.elaborate_sweeps,
    };
    let (mut plan, mut diags) = lower::lower(sources, root, training);
    apply(&mut plan.settings, overrides);
    let cache = plan.trains.then(|| cache_dir(sources, root, overrides)).flatten();
    let request = targets::Request {
        report: overrides.report.as_deref(),
        html: overrides.html.as_deref(),
        cache: cache.as_deref(),
        overwrite: overrides.overwrite,
    };
    diags.extend(targets::check(&plan, sources, &request));
    if plan.settings.device != "cpu" && !cfg!(feature = "cuda") {
        let message = format!("device \"{}\" is not available", plan.settings.device);
        let help = "this build of tv computes on the CPU only; use `set device = \"cpu\"` or `--device cpu`";
        let mut diag = Diagnostic::new("tv::device", message).help(help);
        match (&overrides.device, plan.settings.device_span) {
            (Some(_), _) => diag.message.push_str(" (from --device)"),
            (None, Some(span)) => diag = diag.at(span, "set here"),
            (None, None) => {}
        }
        diags.push(diag);
    }
    if diags.is_empty() {
        Ok(plan)
    } else {
        Err(diags)
    }
}

/// The training cache of a run: `--cache DIR`, else `.tv-cache/` beside
/// the experiment; a temporary one with `--no-cache`.
fn cache(sources: &Sources, root: diag::FileId, overrides: &Overrides) -> Result<Cache, Diagnostics> {
    if overrides.no_cache {
        return temporary_cache();
    }
    let dir = cache_dir(sources, root, overrides).unwrap_or_default();
    Ok(Cache::at(dir))
}

fn temporary_cache() -> Result<Cache, Diagnostics> {
    Cache::temporary().map_err(|e| {
        let message = format!("cannot make a temporary training cache: {e}");
        vec![Diagnostic::new("tv::cache", message)]
    })
}

/// Where a run keeps trained models; `None` with `--no-cache`.
fn cache_dir(sources: &Sources, root: diag::FileId, overrides: &Overrides) -> Option<std::path::PathBuf> {
    if overrides.no_cache {
        return None;
    }
    let beside = || {
        let root_path = sources.get(root).path.as_deref();
        let dir = root_path.and_then(Path::parent).unwrap_or(Path::new(""));
        dir.join(".tv-cache")
    };
    Some(overrides.cache.clone().unwrap_or_else(beside))
}

fn apply(settings: &mut lower::Settings, overrides: &Overrides) {
    if let Some(device) = &overrides.device {
        settings.device = device.clone();
    }
    if overrides.dtype.is_some() {
        settings.dtype = overrides.dtype;
    }
    if let Some(seed) = overrides.seed {
        settings.seed = seed;
    }
    if overrides.threads.is_some() {
        settings.threads = overrides.threads;
    }
    if let Some(bytes) = overrides.max_shard_bytes {
        settings.max_shard_bytes = bytes;
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// The report, written as it was produced (see `csv` for its text).
    pub report: report::Spool,
    pub stats: Stats,
    /// Models `init`/`finetune` made during the run, and those found in the cache.
    pub trained: usize,
    pub cache_hits: usize,
    /// Saves not yet in place (empty once committed): see `commit`.
    pub outputs: io::commit::Outputs,
    /// The figures drawn, as written.
    pub figures: Vec<figures::Drawn>,
    /// The run's journal of model evaluations, removed once it commits.
    pub journal: Option<std::sync::Arc<journal::Journal>>,
}

impl RunOutput {
    /// The report's CSV text, whole.
    pub fn csv(&self) -> String {
        self.report.text()
    }

    /// Moves the saves into place and calls `publish` to deliver the
    /// report; if either fails, no save remains (earlier outputs at the
    /// targets are restored).
    pub fn commit(&mut self, publish: impl FnOnce(&report::Spool) -> std::io::Result<()>) -> Result<(), Diagnostics> {
        let outputs = std::mem::take(&mut self.outputs);
        let report = &self.report;
        let committed = outputs.commit(|| publish(report));
        if let (Ok(()), Some(journal)) = (&committed, &self.journal) {
            journal.remove();
        }
        committed.map_err(|e| {
            let diag = match e.target {
                Some(target) => Diagnostic::new("tv::save", format!("cannot save {}: {}", target.display(), e.source)),
                None => Diagnostic::new("tv::report", format!("cannot write the report: {}", e.source)),
            };
            vec![diag.help(NOTHING_SAVED)]
        })
    }
}

/// Checks and runs the program at `path`, and puts its saves in place.
pub fn run(
    sources: &mut Sources,
    path: &Path,
    overrides: &Overrides,
    progress: bool,
) -> Result<RunOutput, Diagnostics> {
    let mut output = run_staged(sources, path, overrides, progress)?;
    output.commit(|_| Ok(()))?;
    Ok(output)
}

/// Checks and runs the program at `path`, leaving its saves staged for
/// `RunOutput::commit` (dropped uncommitted, they leave nothing).
pub fn run_staged(
    sources: &mut Sources,
    path: &Path,
    overrides: &Overrides,
    progress: bool,
) -> Result<RunOutput, Diagnostics> {
    let (mut plan, report) = read_and_check(sources, path, overrides, true)?;
    // The origin hashes every file the program reads: only for runs with
    // an output that records it (the report's record and journal, the
    // HTML page, a saved folder).
    let recorded = overrides.report.is_some() || overrides.html.is_some() || !plan.saves.is_empty();
    let origin = match recorded {
        true => Some(figures::origin(sources, &plan, path, overrides.hash_inputs)?),
        false => None,
    };
    plan.folder_record = origin.as_ref().map(report::record::Origin::folder_json);
    let journal = match &origin {
        Some(origin) => open_journal(&plan, origin, overrides)?,
        None => None,
    };
    // The `-o` report is written straight into its staged file, row by row.
    let spool = match &report {
        Some(report) => report.spool()?,
        None => report::Spool::default(),
    };
    let started = std::time::SystemTime::now();
    let target = overrides.report.as_deref();
    let mut output = execute_into(&plan, progress, spool, target, journal.clone()).map_err(|d| kept(d, &journal))?;
    output.outputs.allow_overwrite(overrides.overwrite);
    let with_record = overrides.html.is_some() || overrides.report.is_some();
    if let (true, Some(origin)) = (with_record, &origin) {
        let run = figures::RunFacts {
            origin,
            overrides,
            started,
        };
        let record = figures::run_record(&plan, &output, &run);
        let mut documents = Vec::new();
        if let Some(html) = &overrides.html {
            documents.push((html.clone(), figures::page(sources, &plan, &output, &record)));
        }
        if let Some(report) = &overrides.report {
            documents.push((report::record::path_for(report), record.to_json()));
        }
        for (target, text) in documents {
            let sealed = report::stage_bytes(&target, text.as_bytes()).map_err(|e| figures::write_error(&target, e))?;
            output.outputs.push(sealed);
        }
    }
    if let Some(report) = report {
        let sealed = report.seal(&output.report)?;
        output.outputs.push(sealed);
    }
    Ok(output)
}

/// The journal of a run with `-o REPORT` that evaluates models (see
/// `journal`); `--resume` continues an interrupted one.
fn open_journal(
    plan: &Plan,
    origin: &report::record::Origin,
    overrides: &Overrides,
) -> Result<Option<std::sync::Arc<journal::Journal>>, Diagnostics> {
    let Some(report) = &overrides.report else {
        return Ok(None);
    };
    let evaluates = exec::needed_measures(plan)
        .iter()
        .any(|m| !matches!(plan.graph.measure(*m), graph::Measure::Dot(..)));
    let start = journal::Start {
        resume: overrides.resume,
        overwrite: overrides.overwrite,
        elaborated: overrides.elaborate_sweeps,
    };
    match evaluates {
        true => Ok(Some(std::sync::Arc::new(journal::Journal::open(
            report,
            origin,
            &plan.graph,
            start,
        )?))),
        false => Ok(None),
    }
}

/// A failed run's diagnostics, saying where the evaluations it made are
/// kept; a journal that kept nothing is removed.
fn kept(mut diags: Diagnostics, journal: &Option<std::sync::Arc<journal::Journal>>) -> Diagnostics {
    let Some(journal) = journal else { return diags };
    match journal.kept() {
        0 => journal.remove(),
        n => {
            let note = format!(
                "{n} finished evaluation{} kept in {}: rerun with --resume to continue from them",
                if n == 1 { " is" } else { "s are" },
                journal.path().display()
            );
            if let Some(first) = diags.first_mut() {
                first.help = Some(match first.help.take() {
                    Some(help) => format!("{help}\n{note}"),
                    None => note,
                });
            }
        }
    }
    diags
}

/// The `-o` file, staged beside its target.
struct StagedReport {
    file: report::StagedFile,
    path: std::path::PathBuf,
}

impl StagedReport {
    fn new(path: &Path) -> Result<StagedReport, Diagnostics> {
        let file = report::StagedFile::new(path).map_err(|e| report_error(path, e))?;
        let path = path.to_path_buf();
        Ok(StagedReport { file, path })
    }

    /// A spool that writes into the staged file.
    fn spool(&self) -> Result<report::Spool, Diagnostics> {
        self.file.spool().map_err(|e| report_error(&self.path, e))
    }

    fn seal(self, report: &report::Spool) -> Result<io::commit::Sealed, Diagnostics> {
        self.file.seal(report).map_err(|e| report_error(&self.path, e))
    }
}

fn report_error(path: &Path, e: std::io::Error) -> Diagnostics {
    let message = format!("cannot write the report {}: {e}", path.display());
    vec![Diagnostic::new("tv::report", message).help(NOTHING_SAVED)]
}

pub(crate) const NOTHING_SAVED: &str = "nothing was saved: the run's outputs are written all together or not at all";

/// Executes a checked plan, renders its report and puts its saves in place.
pub fn execute(plan: &Plan, progress: bool) -> Result<RunOutput, Diagnostics> {
    let mut output = execute_staged(plan, progress)?;
    output.commit(|_| Ok(()))?;
    Ok(output)
}

/// Executes a checked plan and renders its report; the saves stay staged.
pub fn execute_staged(plan: &Plan, progress: bool) -> Result<RunOutput, Diagnostics> {
    execute_into(plan, progress, report::Spool::default(), None, None)
}

/// Executes a checked plan and writes its report into `spool` (the staged
/// file of `-o PATH`, if given); the saves stay staged.
fn execute_into(
    plan: &Plan,
    progress: bool,
    mut spool: report::Spool,
    path: Option<&Path>,
    journal: Option<std::sync::Arc<journal::Journal>>,
) -> Result<RunOutput, Diagnostics> {
    let backend = exec::Backend::for_device(&plan.settings.device).map_err(|e| {
        let message = format!("device \"{}\" is not available: {e}", plan.settings.device);
        vec![Diagnostic::new("tv::device", message)]
    })?;
    let options = ExecOptions {
        threads: plan.settings.threads,
        progress,
        backend,
        journal: journal.clone(),
    };
    let temporary = match (&plan.cache, plan.trains) {
        (None, true) => Some(temporary_cache()?),
        _ => None,
    };
    let cache = plan.cache.as_ref().or(temporary.as_ref());
    let outcome = exec::execute(plan, &options, cache)?;
    let measured = |m: graph::MeasureId| outcome.measured.get(m.0 as usize).copied().flatten();
    let value = |s: graph::ScalarId| plan.graph.scalars.value(s, &measured);
    warn_divisions_by_zero(plan, &value);
    write_report(plan, &outcome, &mut spool).map_err(|e| match path {
        Some(path) => report_error(path, std::io::Error::other(e)),
        None => vec![Diagnostic::new("tv::report", format!("cannot write the report: {e}"))],
    })?;
    let mut outputs = outcome.outputs;
    let drawn = figures::draw_all(plan, &spool, &mut outputs)?;
    Ok(RunOutput {
        report: spool,
        stats: outcome.stats,
        trained: cache.map_or(0, Cache::trained),
        cache_hits: cache.map_or(0, Cache::hits),
        outputs,
        figures: drawn,
        journal,
    })
}

/// Writes the CSV of an executed plan to `out`, row by row.
pub fn write_report(plan: &Plan, outcome: &exec::Outcome, out: &mut dyn std::io::Write) -> Result<(), csv::Error> {
    let measured = |m: graph::MeasureId| outcome.measured.get(m.0 as usize).copied().flatten();
    let value = |s: graph::ScalarId| plan.graph.scalars.value(s, &measured);
    let values = exec::points::Values {
        graph: &plan.graph,
        measured: &outcome.measured,
        forms: &outcome.forms,
        at_points: &outcome.at_points,
    };
    let mut blocks = |block: &report::block::SweepBlock,
                      columns: &report::table::Columns,
                      emit: &mut dyn FnMut(&[String]) -> Result<(), csv::Error>| {
        exec::points::write_rows(block, columns, &values, emit)
    };
    plan.table.write_csv(out, &value, &mut blocks)
}

/// One warning per place where a measured divisor came out zero.
fn warn_divisions_by_zero(plan: &Plan, value: &dyn Fn(graph::ScalarId) -> Option<f64>) {
    for (divisor, place) in &plan.graph.divisions {
        if value(*divisor) == Some(0.0) {
            exec::nonfinite::warn_division(place);
        }
    }
}
