//! tv: a declarative language for experiments in the weight space of neural
//! networks.
//!
//! The pipeline: parse -> check and lower (one walk: names, types,
//! arguments and checkpoint headers, building the lazy graph) -> execute
//! (streamed, tensor by tensor) -> report (CSV).

pub mod diag;
pub mod exec;
pub mod graph;
pub mod io;
pub mod lower;
pub mod report;
pub mod stdlib;
pub mod syntax;
pub mod synth;

use diag::{Diagnostic, Diagnostics, Sources};
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
}

/// Reads, checks and lowers the program at `path` without reading any
/// tensor data.
pub fn check(sources: &mut Sources, path: &Path, overrides: &Overrides) -> Result<Plan, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let (code, reason) = match e.kind() {
            std::io::ErrorKind::InvalidData => ("tv::not_text", "it is not UTF-8 text".to_string()),
            _ => ("tv::missing_file", e.to_string()),
        };
        let message = format!("cannot read {}: {reason}", path.display());
        vec![Diagnostic::new(code, message).help("tv runs `.tv` programs: UTF-8 text files")]
    })?;
    let root = sources.add(path.display().to_string(), Some(path.to_path_buf()), text);
    plan(sources, root, overrides)
}

/// Checks program text that has no file (relative paths resolve against
/// the current directory).
pub fn check_text(sources: &mut Sources, name: &str, text: &str) -> Result<Plan, Diagnostics> {
    let root = sources.add(name.to_string(), None, text.to_string());
    plan(sources, root, &Overrides::default())
}

fn plan(sources: &mut Sources, root: diag::FileId, overrides: &Overrides) -> Result<Plan, Diagnostics> {
    let (mut plan, mut diags) = lower::lower(sources, root);
    apply(&mut plan.settings, overrides);
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
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub csv: String,
    pub stats: Stats,
}

/// Checks and runs the program at `path`.
pub fn run(
    sources: &mut Sources,
    path: &Path,
    overrides: &Overrides,
    progress: bool,
) -> Result<RunOutput, Diagnostics> {
    let plan = check(sources, path, overrides)?;
    execute(&plan, progress)
}

/// Executes a checked plan and renders its report.
pub fn execute(plan: &Plan, progress: bool) -> Result<RunOutput, Diagnostics> {
    let backend = exec::Backend::for_device(&plan.settings.device).map_err(|e| {
        let message = format!("device \"{}\" is not available: {e}", plan.settings.device);
        vec![Diagnostic::new("tv::device", message)]
    })?;
    let options = ExecOptions {
        threads: plan.settings.threads,
        progress,
        backend,
    };
    let outcome = exec::execute(plan, &options)?;
    let measured = |m: graph::MeasureId| outcome.measured.get(m.0 as usize).copied().flatten();
    let value = |s: graph::ScalarId| plan.graph.scalars.value(s, &measured);
    let csv = plan
        .table
        .to_csv(&value)
        .map_err(|e| vec![Diagnostic::new("tv::report", format!("cannot write the report: {e}"))])?;
    Ok(RunOutput {
        csv,
        stats: outcome.stats,
    })
}
