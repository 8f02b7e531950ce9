//! The `tv` command: parses arguments, calls the library, renders errors.

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tv::diag::{Diagnostic, Sources};
use tv::lower::SaveDtype;

mod interrupts;

const EXAMPLES: &str = "\
Examples:
  tv run experiments/analogy.tv                 print the report as CSV
  tv run experiments/analogy.tv -o report.csv   write it to a file
  tv run exp.tv -o report.csv --html report.html  also a self-contained HTML report
  tv plot report.csv 'lines(ppl, x = alpha, by = year)' -o ppl.svg
                                                a figure of an earlier report
  tv run exp.tv --shard 0/4 -o part-0.csv       one of four shards of the model evaluations
  tv merge part-*.csv -o report.csv             the report of all four, as one run writes it
  tv slurm exp.tv --shards 16 -o report.csv --submit
                                                the shards as a Slurm job array, then their merge
  tv run exp.tv -o report.csv --resume          continue a run that was interrupted
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
        /// Also write a self-contained HTML report: the run record, the figures,
        /// the report as a sortable table and the program.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Record each input checkpoint's full content hash in the run record
        /// (reads every input once more).
        #[arg(long)]
        hash_inputs: bool,
        #[command(flatten)]
        settings: SettingFlags,
        /// Print what the run did (passes, bytes read and written, time) to stderr.
        #[arg(long)]
        stats: bool,
        /// Replace existing save targets and report files even when they are not
        /// tv's earlier outputs (inputs of the run are never replaced).
        #[arg(long)]
        overwrite: bool,
        /// Make shard I of N (counted from 0): a deterministic 1/N of the model
        /// evaluations; `tv merge` puts the parts together.
        #[arg(long, value_name = "I/N", requires = "output", conflicts_with = "html")]
        shard: Option<tv::shard::Shard>,
        /// Continue an interrupted run from the journal it left beside the report.
        #[arg(long, requires = "output")]
        resume: bool,
    },
    /// Merge the parts of a sharded run (`tv run --shard I/N -o PART`) into the report
    /// the unsharded run writes.
    Merge {
        /// Every shard's part, each once.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        /// The merged report.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace an existing file that is not an earlier report.
        #[arg(long)]
        overwrite: bool,
    },
    /// Write Slurm batch scripts that run a program's shards as a job array and merge
    /// them in a job that waits for the array; with --submit, submit both.
    Slurm(SlurmArgs),
    /// Show what a run would do: sweep points, passes over the data, bytes read and written,
    /// which evals take the Gram path, estimated peak memory. Reads no tensor data.
    Plan {
        /// The `.tv` file.
        file: PathBuf,
        /// Also show how `tv run --shard I/N` would divide the model evaluations
        /// among N shards.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        shards: Option<u32>,
        #[command(flatten)]
        settings: SettingFlags,
    },
    /// Draw a figure of a CSV report made earlier, as the program's `plot` statement would.
    Plot {
        /// The CSV report (`tv run ... -o report.csv`, or any CSV with the columns).
        report: PathBuf,
        /// The figure, as in a `plot` statement: 'heatmap(ppl, x = test_year, y = train_year)'
        /// or 'lines(ppl, x = alpha, by = year, best = "min")'.
        figure: String,
        /// Where to write it: a .svg or .png file.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace an existing file that is not a figure drawn by tv.
        #[arg(long)]
        overwrite: bool,
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

#[derive(clap::Args)]
struct SlurmArgs {
    /// The `.tv` file.
    file: PathBuf,
    /// How many shards (array tasks).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    shards: u32,
    /// The merged report the merge job writes.
    #[arg(short, long)]
    output: PathBuf,
    /// Where the scripts, the shards' parts and the logs go (default: REPORT.slurm/).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Slurm partition of the jobs.
    #[arg(long)]
    partition: Option<String>,
    /// Slurm account to charge.
    #[arg(long)]
    account: Option<String>,
    /// GPUs each shard gets.
    #[arg(long, value_name = "G")]
    gpus_per_task: Option<u32>,
    /// CPUs each shard gets.
    #[arg(long, value_name = "C")]
    cpus_per_task: Option<u32>,
    /// Memory of each shard, as Slurm writes it (e.g. 64G).
    #[arg(long, value_name = "M")]
    mem: Option<String>,
    /// Time limit of each shard, as Slurm writes it (e.g. 4:00:00).
    #[arg(long, value_name = "T")]
    time: Option<String>,
    /// Name of the jobs (default: the program's file name).
    #[arg(long)]
    job_name: Option<String>,
    /// Any other #SBATCH option of the shards, whole: --sbatch=--constraint=a100 (repeatable).
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    sbatch: Vec<String>,
    /// Submit the array and the merge job with sbatch and print their job ids.
    #[arg(long)]
    submit: bool,
    /// Passed to every shard and to the merge.
    #[arg(long)]
    overwrite: bool,
    /// Passed to every shard: record each input's content hash.
    #[arg(long)]
    hash_inputs: bool,
    #[command(flatten)]
    settings: SettingFlags,
}

impl SlurmArgs {
    fn request(&self) -> tv::slurm::Request {
        let mut options = Vec::new();
        let named = [
            ("partition", self.partition.clone()),
            ("account", self.account.clone()),
            ("gpus-per-task", self.gpus_per_task.map(|g| g.to_string())),
            ("cpus-per-task", self.cpus_per_task.map(|c| c.to_string())),
            ("mem", self.mem.clone()),
            ("time", self.time.clone()),
        ];
        for (name, value) in named {
            if let Some(value) = value {
                options.push((name.to_string(), value));
            }
        }
        let mut overrides = self.settings.overrides();
        overrides.overwrite = self.overwrite;
        overrides.hash_inputs = self.hash_inputs;
        tv::slurm::Request {
            program: self.file.clone(),
            shards: self.shards as usize,
            report: self.output.clone(),
            folder: self.dir.clone(),
            options,
            extra: self.sbatch.clone(),
            job_name: self.job_name.clone(),
            overrides,
            submit: self.submit,
        }
    }
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
    /// Lower every sweep point by point, even sweeps that are evaluated from one Gram
    /// matrix by formulas (slower; the report is the same, to compare).
    #[arg(long)]
    elaborate_sweeps: bool,
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
            elaborate_sweeps: self.elaborate_sweeps,
            ..tv::Overrides::default()
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let mut sources = Sources::default();
    let result = match &cli.command {
        Command::Run {
            file,
            output,
            html,
            hash_inputs,
            settings,
            stats,
            overwrite,
            shard,
            resume,
        } => {
            interrupts::install();
            let mut overrides = settings.overrides();
            overrides.report = output.clone();
            overrides.html = html.clone();
            overrides.hash_inputs = *hash_inputs;
            overrides.overwrite = *overwrite;
            overrides.shard = *shard;
            overrides.resume = *resume;
            run(&mut sources, file, &overrides, *stats)
        }
        Command::Merge {
            parts,
            output,
            overwrite,
        } => {
            interrupts::install();
            tv::merge::merge(parts, output, *overwrite).map(|merged| {
                let parts = if merged.parts == 1 { "part" } else { "parts" };
                let mut text = format!(
                    "merged {} {parts}: {} rows in {}",
                    merged.parts,
                    merged.rows,
                    output.display()
                );
                for figure in &merged.figures {
                    text.push_str(&format!("\ndrew {}", figure.display()));
                }
                if let Some(note) = &merged.note {
                    text.push_str(&format!("\nfigures not drawn: {note}"));
                }
                tell(&text)
            })
        }
        Command::Slurm(args) => tv::slurm::slurm(&mut sources, &args.request()).and_then(|text| say(&text)),
        Command::Plan { file, shards, settings } => plan(&mut sources, file, *shards, settings),
        Command::Plot {
            report,
            figure,
            output,
            overwrite,
        } => {
            interrupts::install();
            tv::plot_command::plot_report(&mut sources, report, figure, output, *overwrite)
        }
        Command::Check { file } => {
            // Checking runs nothing, so it need not be allowed to.
            let overrides = tv::Overrides {
                allow_commands: true,
                ..tv::Overrides::default()
            };
            tv::check(&mut sources, file, &overrides).and_then(|plan| say(&check_summary(file, &plan)))
        }
        Command::Inspect { checkpoint } => inspect(checkpoint),
    };
    // An interrupt being handled holds the staging registry and ends the
    // process itself; an error its clean-up caused here must not win.
    drop(tv::io::staging::lock());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(diags) => {
            report(&diags, &sources);
            ExitCode::from(1)
        }
    }
}

fn run(sources: &mut Sources, file: &Path, overrides: &tv::Overrides, stats: bool) -> Result<(), Vec<Diagnostic>> {
    let sampler = stats.then(tv::report::memory::PeakSampler::start);
    let mut result = tv::run_staged(sources, file, overrides, true)?;
    let peak = sampler.and_then(|s| s.stop());
    let to_stdout = overrides.report.is_none();
    result.commit(|report| match to_stdout {
        true => {
            let mut stdout = std::io::stdout().lock();
            report.copy_to(&mut stdout)?;
            stdout.flush()
        }
        false => Ok(()),
    })?;
    if stats {
        let text = tv::report::text::stats_text(&result.stats, (result.trained, result.cache_hits), peak);
        tell(&text);
    }
    Ok(())
}

/// The line `tv check` prints when the program is fine.
fn check_summary(file: &Path, plan: &tv::lower::Plan) -> String {
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let columns = plan.table.header_line().map_or(0, |h| h.split(',').count());
    let mut parts = vec![count(plan.graph.loaded_count(), "checkpoint")];
    if !plan.graph.trainings().is_empty() {
        parts.push(count(plan.graph.trainings().len(), "training job"));
    }
    if plan.table.sweep_points() > 0 {
        parts.push(count(plan.table.sweep_points(), "sweep point"));
    }
    parts.push(count(columns, "report column"));
    parts.push(count(plan.saves.len(), "save"));
    if !plan.figures.is_empty() {
        parts.push(count(plan.figures.len(), "figure"));
    }
    format!("{}: no errors ({})\n", file.display(), parts.join(", "))
}

/// Prints to stdout; a closed stdout is an error, not a panic.
fn say(text: &str) -> Result<(), Vec<Diagnostic>> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush());
    written.map_err(|e| {
        vec![Diagnostic::new(
            "tv::output",
            format!("cannot write to standard output: {e}"),
        )]
    })
}

/// Prints to stderr; a closed stderr is ignored (there is nowhere left to say it).
fn tell(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn plan(
    sources: &mut Sources,
    file: &Path,
    shards: Option<u32>,
    settings: &SettingFlags,
) -> Result<(), Vec<Diagnostic>> {
    let plan = tv::check_with_cache(sources, file, &settings.overrides())?;
    let threads = plan.settings.threads.unwrap_or_else(rayon::current_num_threads);
    let summary = tv::exec::summarize(&plan, threads);
    let mut text = tv::report::text::plan_text(&file.display().to_string(), &summary);
    if let Some(count) = shards {
        text.push_str(&tv::report::text::shards_text(&summary, count as usize));
    }
    say(&text)
}

fn inspect(path: &Path) -> Result<(), Vec<Diagnostic>> {
    match tv::io::Checkpoint::open(path) {
        Ok(checkpoint) => {
            let folder = if path.is_dir() {
                path
            } else {
                path.parent().unwrap_or(path)
            };
            let model = tv::eval::architecture::describe(folder, checkpoint.tensors());
            say(&format!(
                "{}{}",
                model.map(|m| m + "\n").unwrap_or_default(),
                tv::io::describe(&checkpoint)
            ))
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

/// A forward pass allocates and frees buffers of megabytes many times per
/// batch. glibc maps each such buffer afresh and returns it on free, so
/// every allocation pays page faults and zeroing by the kernel; raising
/// the mapping threshold to its maximum (32 MiB) and keeping freed memory
/// lets later buffers reuse the same pages.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: mallopt only tunes the allocator, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Colour on a terminal; plain, fixed-width text otherwise.
fn report(diags: &[Diagnostic], sources: &Sources) {
    let text = if std::io::stderr().is_terminal() {
        tv::diag::render_all(diags, sources)
    } else {
        tv::diag::render_plain(diags, sources, 100)
    };
    let count = diags.len();
    tell(&format!(
        "{text}\ntv: {count} error{}",
        if count == 1 { "" } else { "s" }
    ));
}
