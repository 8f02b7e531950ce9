//! Human-readable text for `tv plan` and `tv run --stats`.

use crate::exec::{Stats, Summary};
use crate::io::human_bytes;
use std::fmt::Write;

pub fn plan_text(file: &str, s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan for {file}");
    let _ = match s.formula_points {
        0 => writeln!(out, "  sweep points       {}", s.sweep_points),
        n => writeln!(
            out,
            "  sweep points       {} ({n} evaluated by formulas over Gram matrices)",
            s.sweep_points
        ),
    };
    let _ = writeln!(out, "  passes over data   {}", s.passes);
    let trained = match s.trainings.len() {
        0 => String::new(),
        n => format!(" and {n} trained model(s)"),
    };
    let _ = writeln!(
        out,
        "  bytes read         {} from {} checkpoint(s){trained}",
        human_bytes(s.bytes_read),
        s.checkpoints
    );
    let _ = writeln!(
        out,
        "  bytes written      {} in {} save(s)",
        human_bytes(s.bytes_written),
        s.saves
    );
    if !s.figures.is_empty() {
        let _ = writeln!(out, "  figures            {}", s.figures.join(", "));
    }
    let _ = writeln!(
        out,
        "  measurements       {} from Gram matrices ({} entries), {} direct",
        s.gram_measures, s.gram_entries, s.direct_measures
    );
    let _ = writeln!(
        out,
        "  peak memory        about {} (page cache not counted)",
        human_bytes(s.peak_memory)
    );
    let _ = writeln!(out, "  graph nodes        {}", s.graph_nodes);
    if !s.units.is_empty() {
        let _ = writeln!(
            out,
            "  model evaluations  {} unit(s) a sharded run divides, about {:.3} TFLOP",
            s.units.len(),
            (s.units.iter().sum::<f64>() + 0.0) / 1e12
        );
    }
    write_trainings(&mut out, s);
    if !s.evals.is_empty() {
        let _ = writeln!(out, "  evals");
        let width = s.evals.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, path) in &s.evals {
            let _ = writeln!(out, "    {name:width$}  {}", describe_path(path));
        }
    }
    out
}

/// How `--shard I/N` would divide the units of `s`: one line per shard.
pub fn shards_text(s: &Summary, count: usize) -> String {
    let owners = crate::shard::assign(&s.units, count);
    let mut out = format!("  shards             {count}\n");
    for shard in 0..count {
        let mine: Vec<f64> = owners
            .iter()
            .zip(&s.units)
            .filter(|(o, _)| **o == shard)
            .map(|(_, f)| *f)
            .collect();
        let saves = if shard == 0 && s.saves > 0 {
            ", and the saves"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    {shard}/{count}  {} unit(s), about {:.3} TFLOP{saves}",
            mine.len(),
            (mine.iter().sum::<f64>() + 0.0) / 1e12
        );
    }
    out
}

/// One line per training job: its cache status, its size and what it is.
fn write_trainings(out: &mut String, s: &Summary) {
    use crate::exec::plan_training::CacheStatus;
    if s.trainings.is_empty() {
        return;
    }
    let _ = writeln!(out, "  training jobs      {}", s.trainings.len());
    for job in &s.trainings {
        let status = match job.status {
            CacheStatus::Hit => "cached   ",
            CacheStatus::Miss => "to train ",
            CacheStatus::Skipped => "skipped  ",
            CacheStatus::Unknown => "unknown  ",
        };
        let cost = match job.description.starts_with("init(") {
            true => "fresh weights".to_string(),
            false => format!("{} {}, about {:.3} TFLOP", job.examples, job.unit, job.flops / 1e12),
        };
        let _ = writeln!(out, "    {status} {cost}: {}", job.description);
    }
}

fn describe_path(path: &str) -> &'static str {
    match path {
        "gram" => "Gram path: every point from one Gram matrix",
        "direct" => "direct: measured over the tensors",
        "mixed" => "partly Gram, partly direct",
        "model" => "model evaluation: the model materialised per point",
        _ => "no tensor data needed",
    }
}

pub fn stats_text(s: &Stats, training: (usize, usize), peak_memory: Option<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "passes over data   {}", s.passes);
    let _ = writeln!(out, "tensors computed   {}", s.tensors_computed);
    let _ = writeln!(
        out,
        "bytes read         {} ({} B)",
        human_bytes(s.bytes_read),
        s.bytes_read
    );
    let _ = writeln!(
        out,
        "bytes written      {} ({} B)",
        human_bytes(s.bytes_written),
        s.bytes_written
    );
    let _ = writeln!(
        out,
        "measurements       {} from Gram matrices, {} direct, {} re-measured directly",
        s.gram_measures, s.direct_measures, s.remeasured
    );
    if s.model_measures > 0 || s.resumed_measures > 0 {
        let _ = match s.resumed_measures {
            0 => writeln!(out, "model evaluations  {}", s.model_measures),
            resumed => writeln!(
                out,
                "model evaluations  {} made, {resumed} from the interrupted run's journal",
                s.model_measures
            ),
        };
    }
    if training != (0, 0) {
        let _ = writeln!(
            out,
            "training           {} trained, {} from the cache",
            training.0, training.1
        );
    }
    if let Some(peak) = peak_memory {
        let _ = writeln!(out, "peak memory        {} anonymous (sampled)", human_bytes(peak));
    }
    let _ = write!(out, "time               {:.3} s", s.seconds);
    if s.training_seconds > 0.0 {
        let _ = write!(out, " ({:.3} s training)", s.training_seconds);
    }
    out
}
