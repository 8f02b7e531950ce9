//! The run's figures and HTML report: drawn from the finished report's
//! CSV and staged with the other outputs, so they are committed with them
//! or not at all.

use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::io::commit::Outputs;
use crate::lower::{FigureJob, Plan};
use crate::plot::{self, Format, Frame, RenderError};
use crate::report::html::{self, Page};
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
            .help(format!("{}; {}", e.help, report_nothing_saved())),
        RenderError::Draw(e) => {
            Diagnostic::new("tv::plot", format!("cannot draw {shown}: {e}")).at(figure.span, "this figure")
        }
    }
}

fn report_nothing_saved() -> &'static str {
    "nothing was saved: the run's outputs are written all together or not at all"
}

pub fn write_error(path: &Path, e: std::io::Error) -> Diagnostics {
    let message = format!("cannot write {}: {e}", path.display());
    vec![Diagnostic::new("tv::output", message).help(report_nothing_saved())]
}

/// What the HTML report says about how the run was made.
pub struct RunFacts<'a> {
    pub program: &'a Path,
    pub overrides: &'a Overrides,
    pub started: SystemTime,
}

/// The HTML report of a finished run.
pub fn page(sources: &Sources, plan: &Plan, output: &RunOutput, run: &RunFacts) -> String {
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
        .leaves()
        .map(|leaf| html::Input {
            path: leaf.path().display().to_string(),
            bytes: leaf
                .files()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum(),
            tensors: leaf.tensors().len(),
        })
        .collect();
    let page = Page {
        title: run.program.display().to_string(),
        sources: sources.texts().map(|(name, text)| (name.to_string(), text)).collect(),
        record: record(sources, plan, output, run),
        inputs,
        figures,
        csv: &csv,
    };
    html::render(&page)
}

fn record(sources: &Sources, plan: &Plan, output: &RunOutput, run: &RunFacts) -> Vec<(&'static str, String)> {
    use sha2::Digest;
    let program = sources.texts().next().map_or(String::new(), |(_, text)| {
        let digest = sha2::Sha256::digest(text.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    });
    let settings = &plan.settings;
    let features = if cfg!(feature = "cuda") { "cuda" } else { "cpu only" };
    let threads = settings.threads.unwrap_or_else(rayon::current_num_threads);
    let dtype = settings
        .dtype
        .map_or("as the inputs".to_string(), |d| format!("{d:?}").to_lowercase());
    vec![
        ("tool", format!("tv {} ({features})", env!("CARGO_PKG_VERSION"))),
        ("program", run.program.display().to_string()),
        ("program sha256", program),
        ("started (UTC)", utc(run.started)),
        ("finished (UTC)", utc(SystemTime::now())),
        ("seconds", format!("{:.1}", output.stats.seconds)),
        ("device", settings.device.clone()),
        ("threads", threads.to_string()),
        ("seed", settings.seed.to_string()),
        ("saved dtype", dtype),
        ("command-line settings", flags(run.overrides)),
        (
            "models trained / from the cache",
            format!("{} / {}", output.trained, output.cache_hits),
        ),
    ]
}

/// The flags that changed the run, as they would be typed again.
fn flags(o: &Overrides) -> String {
    let mut out = Vec::new();
    let mut add = |flag: &str, value: Option<String>| match value {
        Some(v) => out.push(format!("--{flag} {v}")),
        None => out.push(format!("--{flag}")),
    };
    if let Some(t) = o.threads {
        add("threads", Some(t.to_string()));
    }
    if let Some(d) = &o.device {
        add("device", Some(d.clone()));
    }
    if let Some(d) = o.dtype {
        add("dtype", Some(format!("{d:?}").to_lowercase()));
    }
    if let Some(s) = o.seed {
        add("seed", Some(s.to_string()));
    }
    if let Some(b) = o.max_shard_bytes {
        add("max-shard-size", Some(b.to_string()));
    }
    if let Some(c) = &o.cache {
        add("cache", Some(c.display().to_string()));
    }
    let switches = [
        (o.no_cache, "no-cache"),
        (o.allow_commands, "allow-commands"),
        (o.elaborate_sweeps, "elaborate-sweeps"),
        (o.overwrite, "overwrite"),
    ];
    for (on, flag) in switches {
        if on {
            add(flag, None);
        }
    }
    match out.is_empty() {
        true => "none".to_string(),
        false => out.join(" "),
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn utc(time: SystemTime) -> String {
    let seconds = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (eras of 400
/// years, each 146,097 days, starting on March 1st).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_786), (2026, 11, 29));
        assert_eq!(civil_date(-1), (1969, 12, 31));
    }
}
