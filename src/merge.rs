//! `tv merge PART... -o REPORT`: the report of a sharded run, rebuilt from
//! its parts as the unsharded run writes it.
//!
//! Every part holds all the report's rows; a shard leaves empty the cells
//! of the evaluations other shards made (see `crate::shard`). Each cell of
//! the merged report is the text the parts filled it with: they must
//! agree where several did (the weight-space measurements every shard
//! makes). The parts' run records say which shard each is, and must show
//! the same program, inputs and settings.

use crate::diag::{Diagnostic, Diagnostics};
use crate::io::commit::Outputs;
use crate::report::record::{self, Origin, RunRecord};
use crate::report::{self, Spool};
use std::path::{Path, PathBuf};

/// What `merge` did, for its summary.
pub struct Merged {
    pub parts: usize,
    pub rows: u64,
    /// The program's figures, drawn from the merged report.
    pub figures: Vec<PathBuf>,
    /// Why the figures were not drawn, if they were not.
    pub note: Option<String>,
}

/// Merges the parts of a sharded run into `output` (and its record), or
/// writes nothing.
pub fn merge(parts: &[PathBuf], output: &Path, overwrite: bool) -> Result<Merged, Diagnostics> {
    let records = read_records(parts)?;
    check_shards(parts, &records)?;
    check_targets(parts, output)?;
    let staged = report::StagedFile::new(output).map_err(|e| write_error(output, e))?;
    let mut spool = staged.spool().map_err(|e| write_error(output, e))?;
    let rows = merge_rows(parts, &mut spool)?;
    let mut outputs = Outputs::default();
    outputs.allow_overwrite(overwrite);
    let (figures, note) = draw_figures(&records[0].origin, &spool, &mut outputs)?;
    outputs.push(staged.seal(&spool).map_err(|e| write_error(output, e))?);
    let record_path = record::path_for(output);
    let text = merged_record(&records, spool.digest()).to_json();
    let sealed = report::stage_bytes(&record_path, text.as_bytes()).map_err(|e| write_error(&record_path, e))?;
    outputs.push(sealed);
    outputs.commit(|| Ok(())).map_err(|e| {
        let target = e.target.unwrap_or_else(|| output.to_path_buf());
        let message = format!("cannot write {}: {}", target.display(), e.source);
        let help = "nothing was written; --overwrite replaces a file that is not an earlier report";
        vec![Diagnostic::new("tv::merge", message).help(help)]
    })?;
    Ok(Merged {
        parts: parts.len(),
        rows,
        figures,
        note,
    })
}

/// Draws the figures the program declares, which no shard could draw (each
/// had a part of the report), when the program the parts were made by is
/// still where they say, unchanged. Returns them, or why they were not.
fn draw_figures(
    origin: &Origin,
    report: &Spool,
    outputs: &mut Outputs,
) -> Result<(Vec<PathBuf>, Option<String>), Diagnostics> {
    let program = PathBuf::from(&origin.program.path);
    let not_drawn = |why: String| {
        Ok((
            Vec::new(),
            Some(format!("{why}; draw them from the merged report with tv plot")),
        ))
    };
    let text = match std::fs::read(&program) {
        Ok(text) => text,
        Err(e) => return not_drawn(format!("the program {} cannot be read ({e})", program.display())),
    };
    if record::sha256_hex(&text) != origin.program.sha256 {
        return not_drawn(format!(
            "the program {} has changed since the shards ran",
            program.display()
        ));
    }
    // Only checked, to find its figures: nothing runs.
    let overrides = crate::Overrides {
        allow_commands: true,
        ..crate::Overrides::default()
    };
    let Ok(plan) = crate::check(&mut crate::diag::Sources::default(), &program, &overrides) else {
        return not_drawn(format!(
            "the program {} no longer checks (its inputs changed?)",
            program.display()
        ));
    };
    let drawn = crate::figures::draw_all(&plan, report, outputs)?;
    Ok((drawn.into_iter().map(|d| d.path).collect(), None))
}

fn read_records(parts: &[PathBuf]) -> Result<Vec<RunRecord>, Diagnostics> {
    if parts.is_empty() {
        return Err(vec![Diagnostic::new("tv::merge", "no parts to merge")
            .help("give the parts the shards wrote: tv merge part-*.csv -o report.csv")]);
    }
    let mut diags = Vec::new();
    let mut records = Vec::new();
    for part in parts {
        match read_record(part) {
            Ok(record) => records.push(record),
            Err(diag) => diags.push(diag),
        }
    }
    match diags.is_empty() {
        true => Ok(records),
        false => Err(diags),
    }
}

fn read_record(part: &Path) -> Result<RunRecord, Diagnostic> {
    let path = record::path_for(part);
    let help = "a part is the report a `tv run --shard I/N -o PART` wrote, with its record PART.json beside it";
    match std::fs::metadata(part) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            let message = format!("the part {} is not a file", part.display());
            return Err(Diagnostic::new("tv::merge", message).help(help));
        }
        Err(e) => {
            let message = format!("cannot read the part {}: {e}", part.display());
            return Err(Diagnostic::new("tv::merge", message).help(help));
        }
    }
    let bytes = crate::io::manifest::read_bounded(&path, 64 << 20).map_err(|e| {
        Diagnostic::new(
            "tv::merge",
            format!("cannot read {}, the record of {}: {e}", path.display(), part.display()),
        )
        .help(help)
    })?;
    let record: RunRecord = serde_json::from_slice(&bytes).map_err(|e| {
        Diagnostic::new(
            "tv::merge",
            format!("{} is not a run record tv wrote: {e}", path.display()),
        )
        .help(help)
    })?;
    let Some(shard) = &record.origin.shard else {
        let message = format!("{} is the report of a whole run, not a shard's part", part.display());
        return Err(Diagnostic::new("tv::merge", message).help(help));
    };
    if shard.count == 0 || shard.index >= shard.count || shard.count > crate::shard::MAX_SHARDS {
        let message = format!(
            "{} says it is shard {}/{}, which no run is",
            path.display(),
            shard.index,
            shard.count
        );
        return Err(Diagnostic::new("tv::merge", message).help(help));
    }
    let Some(expected) = &record.report else {
        let message = format!(
            "{} holds no digest of its report, so the part cannot be checked",
            path.display()
        );
        return Err(Diagnostic::new("tv::merge", message).help(help));
    };
    check_digest(part, expected)?;
    Ok(record)
}

/// The part must be the bytes its run wrote.
fn check_digest(part: &Path, expected: &record::ReportDigest) -> Result<(), Diagnostic> {
    let found = record::file_digest(part)
        .map_err(|e| Diagnostic::new("tv::merge", format!("cannot read the part {}: {e}", part.display())))?;
    if &found == expected {
        return Ok(());
    }
    let message = format!(
        "{} is not the report its run wrote ({} rows, SHA-256 {}): it was changed or cut short since",
        part.display(),
        expected.rows,
        &expected.sha256[..12.min(expected.sha256.len())]
    );
    Err(Diagnostic::new("tv::merge", message).help("run that shard again"))
}

/// Every shard once, all of one run.
fn check_shards(parts: &[PathBuf], records: &[RunRecord]) -> Result<(), Diagnostics> {
    let shard = |r: &RunRecord| r.origin.shard.clone().expect("checked when read");
    let count = shard(&records[0]).count;
    let mut owner: Vec<Option<&Path>> = vec![None; count];
    let mut diags = Vec::new();
    for (part, record) in parts.iter().zip(records) {
        let s = shard(record);
        if s.count != count {
            let message = format!(
                "{} is shard {}/{}, but {} is one of {count}",
                part.display(),
                s.index,
                s.count,
                parts[0].display()
            );
            diags.push(Diagnostic::new("tv::merge", message).help("merge the parts of one sharded run"));
            continue;
        }
        if record.origin.program.sha256 != records[0].origin.program.sha256 {
            let message = format!(
                "{} and {} were made by different programs ({} and {})",
                parts[0].display(),
                part.display(),
                records[0].origin.program.path,
                record.origin.program.path
            );
            diags.push(Diagnostic::new("tv::merge", message).help("merge the parts of one sharded run"));
        } else if let Some(difference) = difference(&records[0].origin, &record.origin) {
            let message = format!(
                "{} is not of the same run as {}: {difference}",
                part.display(),
                parts[0].display()
            );
            diags.push(Diagnostic::new("tv::merge", message).help("merge the parts of one sharded run"));
        }
        match owner[s.index] {
            Some(first) => {
                let message = format!(
                    "shard {}/{count} is given twice: {} and {}",
                    s.index,
                    first.display(),
                    part.display()
                );
                diags.push(Diagnostic::new("tv::merge", message).help("give each shard's part once"));
            }
            None => owner[s.index] = Some(part),
        }
    }
    let units: usize = records.iter().map(|r| shard(r).units).sum();
    let in_all = shard(&records[0]).units_in_all;
    if diags.is_empty() && records.iter().any(|r| shard(r).units_in_all != in_all) {
        diags.push(Diagnostic::new(
            "tv::merge",
            "the parts' records disagree on how the work was divided",
        ));
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| owner[*i].is_none())
        .map(|i| format!("{i}/{count}"))
        .collect();
    if diags.is_empty() && !missing.is_empty() {
        let message = format!(
            "the parts of shard{} {} are missing",
            plural(missing.len()),
            missing.join(", ")
        );
        let help = "run the missing shards (tv run ... --shard I/N -o PART), then merge all the parts";
        diags.push(Diagnostic::new("tv::merge", message).help(help));
    }
    if diags.is_empty() && units != in_all {
        let message = format!("the parts made {units} units of model evaluations, but the run has {in_all}");
        diags.push(Diagnostic::new("tv::merge", message).help("merge the parts of one sharded run, each once"));
    }
    match diags.is_empty() {
        true => Ok(()),
        false => Err(diags),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// How two parts' origins differ, their shards aside.
fn difference(a: &Origin, b: &Origin) -> Option<String> {
    let strip = |o: &Origin| Origin {
        shard: None,
        ..o.clone()
    };
    crate::journal::difference(&strip(a), &strip(b))
}

/// The merged report may not replace a part or a part's record.
fn check_targets(parts: &[PathBuf], output: &Path) -> Result<(), Diagnostics> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let record = record::path_for(output);
    for part in parts {
        if same(part, output) || same(&record::path_for(part), output) || same(part, &record) {
            let message = format!(
                "the merged report {} would replace the part {}",
                output.display(),
                part.display()
            );
            return Err(vec![
                Diagnostic::new("tv::merge", message).help("write the merged report to another file")
            ]);
        }
    }
    Ok(())
}

/// Writes the merged rows; returns how many.
fn merge_rows(parts: &[PathBuf], out: &mut Spool) -> Result<u64, Diagnostics> {
    let mut readers = Vec::new();
    for part in parts {
        let file = std::fs::File::open(part).map_err(|e| read_error(part, &e.to_string()))?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(file);
        readers.push(reader.into_records());
    }
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(1 << 16)
        .from_writer(out);
    let mut line = 0u64;
    loop {
        let mut records = Vec::with_capacity(parts.len());
        for (reader, part) in readers.iter_mut().zip(parts) {
            let record = reader
                .next()
                .transpose()
                .map_err(|e| read_error(part, &e.to_string()))?;
            records.push(record);
        }
        if records.iter().all(Option::is_none) {
            break;
        }
        let cells = merge_line(parts, &records, line)?;
        writer
            .write_record(&cells)
            .map_err(|e| write_error(Path::new("the report"), std::io::Error::other(e)))?;
        line += 1;
    }
    writer.flush().map_err(|e| write_error(Path::new("the report"), e))?;
    Ok(line.saturating_sub(1))
}

/// One line of the merged report: each cell as the parts that filled it
/// wrote it.
fn merge_line(parts: &[PathBuf], records: &[Option<csv::StringRecord>], line: u64) -> Result<Vec<String>, Diagnostics> {
    let first = records.iter().position(Option::is_none);
    if let Some(short) = first {
        let message = format!("{} ends at line {line}, before the other parts", parts[short].display());
        return Err(vec![
            Diagnostic::new("tv::merge", message).help("a part cut short cannot be merged: run its shard again")
        ]);
    }
    let records: Vec<&csv::StringRecord> = records.iter().flatten().collect();
    let width = records[0].len();
    if let Some(k) = records.iter().position(|r| r.len() != width) {
        let message = format!(
            "line {} of {} has another number of cells than the other parts'",
            line + 1,
            parts[k].display()
        );
        return Err(vec![Diagnostic::new("tv::merge", message)]);
    }
    let mut cells = Vec::with_capacity(width);
    for column in 0..width {
        let mut filled = records
            .iter()
            .enumerate()
            .map(|(k, r)| (k, &r[column]))
            .filter(|(_, c)| !c.is_empty());
        let Some((k, cell)) = filled.next() else {
            cells.push(String::new());
            continue;
        };
        if let Some((other, different)) = filled.find(|(_, c)| *c != cell) {
            let message = format!(
                "the parts disagree at line {}, column {}: {} has \"{cell}\", {} has \"{different}\"",
                line + 1,
                column + 1,
                parts[k].display(),
                parts[other].display()
            );
            let help = "the parts must come from one program, inputs and settings; a shard rerun with other inputs cannot be merged";
            return Err(vec![Diagnostic::new("tv::merge", message).help(help)]);
        }
        cells.push(cell.to_string());
    }
    Ok(cells)
}

/// The record of the merged report: the run's origin without a shard, and
/// the parts' times and training summed.
fn merged_record(records: &[RunRecord], digest: record::ReportDigest) -> RunRecord {
    let first = &records[0];
    let earliest = records.iter().map(|r| r.started_utc.clone()).min().unwrap_or_default();
    let latest = records.iter().map(|r| r.finished_utc.clone()).max().unwrap_or_default();
    RunRecord {
        written_by: "tv".into(),
        origin: Origin {
            shard: None,
            ..first.origin.clone()
        },
        threads: first.threads,
        command_line: vec![format!("--shard 0..{} (merged)", records.len())],
        started_utc: earliest,
        finished_utc: latest,
        seconds: records.iter().map(|r| r.seconds).sum(),
        training: record::Training {
            trained: records.iter().map(|r| r.training.trained).sum(),
            from_cache: records.iter().map(|r| r.training.from_cache).sum(),
        },
        report: Some(digest),
    }
}

fn read_error(part: &Path, reason: &str) -> Diagnostics {
    vec![Diagnostic::new(
        "tv::merge",
        format!("cannot read the part {}: {reason}", part.display()),
    )]
}

fn write_error(path: &Path, e: std::io::Error) -> Diagnostics {
    let message = format!("cannot write {}: {e}", path.display());
    vec![Diagnostic::new("tv::merge", message).help("nothing was written")]
}
