//! The `tv` command: parses arguments, calls the library, renders errors.

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tv::diag::{Diagnostic, Sources};
use tv::lower::SaveDtype;

const EXAMPLES: &str = "\
Examples:
  tv run experiments/analogy.tv                 print the report as CSV
  tv run experiments/analogy.tv -o report.csv   write it to a file
  tv check experiments/analogy.tv               find every error, read no tensor data
  tv plan experiments/analogy.tv                what a run will do: passes, bytes, Gram path
  tv inspect experiments/checkpoints/base       list a checkpoint's tensors

Exit status: 0 on success, 1 when the program or its inputs have errors
(each is reported with its place in the source), 2 for bad command-line usage.";

/// A declarative language for experiments in the weight space of neural networks.
#[derive(Parser)]
#[command(name = "tv", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a program, run it, and report its measurements as CSV.
    Run {
        /// The `.tv` file.
        file: PathBuf,
        /// Write the CSV report here (atomically) instead of to stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        settings: SettingFlags,
        /// Print what the run did (passes, bytes read and written, time) to stderr.
        #[arg(long)]
        stats: bool,
    },
    /// Show what a run would do: sweep points, passes over the data, bytes read and written,
    /// which evals take the Gram path, estimated peak memory. Reads no tensor data.
    Plan {
        /// The `.tv` file.
        file: PathBuf,
        #[command(flatten)]
        settings: SettingFlags,
    },
    /// Report every error in a program without reading tensor data.
    Check {
        /// The `.tv` file.
        file: PathBuf,
    },
    /// List a checkpoint's tensors with their dtypes and shapes, and totals per dtype.
    Inspect {
        /// A `.safetensors` file or a Hugging Face folder.
        checkpoint: PathBuf,
    },
}

/// Flags that override the program's `set` statements.
#[derive(clap::Args)]
struct SettingFlags {
    /// Worker threads (default: one per core). The report is the same for any count.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: Option<u32>,
    /// Device to compute on: cpu, cuda or cuda:N.
    #[arg(long, value_parser = parse_device)]
    device: Option<String>,
    /// Dtype of saved float tensors: f32, f16 or bf16.
    #[arg(long, value_parser = parse_dtype)]
    dtype: Option<SaveDtype>,
    /// Seed for random operations.
    #[arg(long)]
    seed: Option<u64>,
    /// Largest shard of a saved Hugging Face folder, e.g. 5GB, 500MB, 2GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_shard_size: Option<u64>,
    /// Keep init/finetune results here instead of .tv-cache/ beside the experiment.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Train without the cache (results are discarded after the run).
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Let the program run the external commands of its `command(...)` measurements.
    #[arg(long)]
    allow_commands: bool,
}

fn parse_device(text: &str) -> Result<String, String> {
    if tv::lower::valid_device(text) {
        Ok(text.to_string())
    } else {
        Err("expected cpu, cuda or cuda:N".into())
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    tv::lower::parse_size(text).ok_or_else(|| "expected a size such as 5GB, 500MB, 2GiB or a number of bytes".into())
}

fn parse_dtype(text: &str) -> Result<SaveDtype, String> {
    SaveDtype::parse(text).ok_or_else(|| "expected f32, f16 or bf16".into())
}

impl SettingFlags {
    fn overrides(&self) -> tv::Overrides {
        tv::Overrides {
            device: self.device.clone(),
            dtype: self.dtype,
            seed: self.seed,
            threads: self.threads.map(|t| t as usize),
            max_shard_bytes: self.max_shard_size,
            cache: self.cache.clone(),
            no_cache: self.no_cache,
            allow_commands: self.allow_commands,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut sources = Sources::default();
    let result = match &cli.command {
        Command::Run {
            file,
            output,
            settings,
            stats,
        } => run(&mut sources, file, output.as_deref(), settings, *stats),
        Command::Plan { file, settings } => plan(&mut sources, file, settings),
        Command::Check { file } => {
            // Checking runs nothing, so it need not be allowed to.
            let overrides = tv::Overrides {
                allow_commands: true,
                ..tv::Overrides::default()
            };
            tv::check(&mut sources, file, &overrides).map(|_| ())
        }
        Command::Inspect { checkpoint } => inspect(checkpoint),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(diags) => {
            report(&diags, &sources);
            ExitCode::from(1)
        }
    }
}

fn run(
    sources: &mut Sources,
    file: &Path,
    output: Option<&Path>,
    settings: &SettingFlags,
    stats: bool,
) -> Result<(), Vec<Diagnostic>> {
    let report_error = |e: std::io::Error| vec![Diagnostic::new("tv::report", format!("cannot write the report: {e}"))];
    // Prepared first: an unwritable report fails the run before any save.
    let staged = output
        .map(tv::report::StagedFile::new)
        .transpose()
        .map_err(report_error)?;
    let sampler = stats.then(tv::report::memory::PeakSampler::start);
    let result = tv::run(sources, file, &settings.overrides(), true)?;
    let peak = sampler.and_then(|s| s.stop());
    let written = match staged {
        Some(staged) => staged.commit(result.csv.as_bytes()),
        None => std::io::stdout().write_all(result.csv.as_bytes()),
    };
    written.map_err(report_error)?;
    if stats {
        eprintln!(
            "{}",
            tv::report::text::stats_text(&result.stats, (result.trained, result.cache_hits), peak)
        );
    }
    Ok(())
}

fn plan(sources: &mut Sources, file: &Path, settings: &SettingFlags) -> Result<(), Vec<Diagnostic>> {
    let plan = tv::check(sources, file, &settings.overrides())?;
    let threads = plan.settings.threads.unwrap_or_else(rayon::current_num_threads);
    let summary = tv::exec::summarize(&plan, threads);
    print!("{}", tv::report::text::plan_text(&file.display().to_string(), &summary));
    Ok(())
}

fn inspect(path: &Path) -> Result<(), Vec<Diagnostic>> {
    match tv::io::Checkpoint::open(path) {
        Ok(checkpoint) => {
            print!("{}", tv::io::describe(&checkpoint));
            Ok(())
        }
        Err(e) => {
            let diag = Diagnostic::new("tv::checkpoint", e.to_string());
            Err(vec![match e.help() {
                Some(help) => diag.help(help),
                None => diag,
            }])
        }
    }
}

/// Colour on a terminal; plain, fixed-width text otherwise.
fn report(diags: &[Diagnostic], sources: &Sources) {
    let text = if std::io::stderr().is_terminal() {
        tv::diag::render_all(diags, sources)
    } else {
        tv::diag::render_plain(diags, sources, 100)
    };
    eprintln!("{text}");
    let count = diags.len();
    eprintln!("tv: {count} error{}", if count == 1 { "" } else { "s" });
}
