//! The run's figures and HTML report: drawn from the finished report's
//! CSV and staged with the other outputs, so they are committed with them
//! or not at all.

use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::io::commit::Outputs;
use crate::lower::{FigureJob, Plan};
use crate::plot::{self, Format, Frame, RenderError};
use crate::report::html::{self, Page};
use crate::report::record::{self, Origin, RunRecord};
use crate::report::{self, Spool};
use crate::{Overrides, RunOutput};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A figure as written to its target.
#[derive(Debug)]
pub struct Drawn {
    pub path: PathBuf,
    pub format: Format,
    pub bytes: Vec<u8>,
    /// The width it is meant to be shown at (a PNG has twice the pixels).
    pub width: u32,
}

/// Draws every figure of the plan from the report and stages it.
pub fn draw_all(plan: &Plan, report: &Spool, outputs: &mut Outputs) -> Result<Vec<Drawn>, Diagnostics> {
    if plan.figures.is_empty() {
        return Ok(Vec::new());
    }
    let frame = Frame::from_csv(&report.text()).map_err(|e| {
        vec![Diagnostic::new(
            "tv::plot",
            format!("cannot read the report back to draw it: {e}"),
        )]
    })?;
    let mut drawn = Vec::new();
    for figure in &plan.figures {
        let bytes = plot::render(&figure.spec, &frame, figure.format).map_err(|e| vec![render_error(figure, e)])?;
        let sealed = report::stage_bytes(&figure.path, &bytes).map_err(|e| write_error(&figure.path, e))?;
        outputs.push(sealed);
        drawn.push(Drawn {
            path: figure.path.clone(),
            format: figure.format,
            bytes,
            width: figure.spec.width,
        });
    }
    Ok(drawn)
}

fn render_error(figure: &FigureJob, e: RenderError) -> Diagnostic {
    let shown = figure.path.display();
    match e {
        RenderError::Data(e) => Diagnostic::new("tv::plot", format!("cannot draw {shown}: {}", e.message))
            .at(figure.span, "this figure")
            .help(format!("{}; {}", e.help, crate::NOTHING_SAVED)),
        RenderError::Draw(e) => {
            Diagnostic::new("tv::plot", format!("cannot draw {shown}: {e}")).at(figure.span, "this figure")
        }
    }
}

pub fn write_error(path: &Path, e: std::io::Error) -> Diagnostics {
    let message = format!("cannot write {}: {e}", path.display());
    vec![Diagnostic::new("tv::output", message).help(crate::NOTHING_SAVED)]
}

/// What the HTML report says about how the run was made.
pub struct RunFacts<'a> {
    pub origin: &'a Origin,
    pub overrides: &'a Overrides,
    pub started: SystemTime,
}

/// The HTML report of a finished run.
pub fn page(sources: &Sources, plan: &Plan, output: &RunOutput, record: &RunRecord) -> String {
    let csv = output.report.text();
    let figures = output
        .figures
        .iter()
        .map(|d| html::Figure {
            name: d.path.display().to_string(),
            svg: d.format == Format::Svg,
            bytes: &d.bytes,
            width: d.width,
        })
        .collect();
    let inputs = plan
        .graph
        .loaded_leaves()
        .zip(&record.origin.inputs)
        .map(|(leaf, input)| html::Input {
            path: input.path.clone(),
            bytes: input.bytes,
            tensors: leaf.tensors().len(),
        })
        .collect();
    let page = Page {
        title: record.origin.program.path.clone(),
        sources: sources.texts().map(|(name, text)| (name.to_string(), text)).collect(),
        record: record.rows(),
        inputs,
        figures,
        csv: &csv,
    };
    html::render(&page)
}

/// What made the run's outputs.
pub fn run_record(plan: &Plan, output: &RunOutput, run: &RunFacts) -> RunRecord {
    RunRecord {
        written_by: "tv".into(),
        origin: run.origin.clone(),
        threads: plan.settings.threads.unwrap_or_else(rayon::current_num_threads),
        command_line: flags(run.overrides),
        started_utc: record::utc(run.started),
        finished_utc: record::utc(SystemTime::now()),
        seconds: output.stats.seconds,
        training: record::Training {
            trained: output.trained,
            from_cache: output.cache_hits,
        },
        // The report's digest, when the record is beside it.
        report: run.overrides.report.as_ref().map(|_| output.report.digest()),
    }
}

/// What made the run, known before it starts: the program and the files it
/// uses, the checkpoints it loads (each header hashed, and with
/// `hash_inputs` all its bytes), the settings and the shard.
pub fn origin(sources: &Sources, plan: &Plan, program: &Path, hash_inputs: bool) -> Result<Origin, Diagnostics> {
    let mut texts = sources.texts().map(|(name, text)| record::Source {
        path: name.to_string(),
        sha256: record::sha256_hex(text.as_bytes()),
    });
    let program = texts.next().unwrap_or(record::Source {
        path: program.display().to_string(),
        sha256: String::new(),
    });
    let inputs = plan
        .graph
        .loaded_leaves()
        .map(|leaf| {
            let files: Vec<&Path> = leaf.files().collect();
            record::input(leaf.path(), &files, hash_inputs).map_err(|e| unrecorded("the input ", leaf.path(), e))
        })
        .collect::<Result<_, _>>()?;
    let mut read: Vec<&Path> = plan.read_files.iter().map(PathBuf::as_path).collect();
    read.sort();
    read.dedup();
    let data = read
        .into_iter()
        .map(|path| record::data_file(path).map_err(|e| unrecorded("", path, e)))
        .collect::<Result<_, _>>()?;
    let settings = &plan.settings;
    Ok(Origin {
        tool: record::Tool::this(),
        program,
        uses: texts.collect(),
        inputs,
        data,
        settings: record::Settings {
            device: settings.device.clone(),
            seed: settings.seed,
            dtype: settings.dtype.map(|d| format!("{d:?}").to_lowercase()),
            max_shard_bytes: settings.max_shard_bytes,
        },
        shard: plan.shard.clone(),
    })
}

/// A file the record must hash that cannot be read.
fn unrecorded(what: &str, path: &Path, e: std::io::Error) -> Diagnostics {
    let message = format!("cannot read {what}{} to record it: {e}", path.display());
    vec![Diagnostic::new("tv::record", message).help(crate::NOTHING_SAVED)]
}

/// The flags that changed the run, as they would be typed again.
pub(crate) fn flags(o: &Overrides) -> Vec<String> {
    let mut out = Vec::new();
    let valued = [
        ("threads", o.threads.map(|t| t.to_string())),
        ("device", o.device.clone()),
        ("dtype", o.dtype.map(|d| format!("{d:?}").to_lowercase())),
        ("seed", o.seed.map(|s| s.to_string())),
        ("max-shard-size", o.max_shard_bytes.map(|b| b.to_string())),
        ("cache", o.cache.as_ref().map(|c| c.display().to_string())),
    ];
    for (flag, value) in valued {
        if let Some(value) = value {
            out.push(format!("--{flag} {value}"));
        }
    }
    let switches = [
        (o.no_cache, "no-cache"),
        (o.allow_commands, "allow-commands"),
        (o.elaborate_sweeps, "elaborate-sweeps"),
        (o.overwrite, "overwrite"),
        (o.hash_inputs, "hash-inputs"),
    ];
    out.extend(
        switches
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, flag)| format!("--{flag}")),
    );
    out
}
