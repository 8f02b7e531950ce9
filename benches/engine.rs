//! Engine benchmarks on inputs shaped like real task vectors (a base and
//! independent fine-tunes of it, task vectors about 1% of the weights' norm
//! and nearly orthogonal; grids through 0). Every ratio is measured within
//! one run (the machine is shared and noisy, so only same-run ratios mean
//! anything):
//!
//! - P1: a merge of four checkpoints with negative coefficients, f32 and
//!   bf16, over an existing output, against the I/O floor (`cat` of the
//!   inputs to /dev/null plus `cp` of one output-sized file); with the
//!   merge's peak anonymous memory against the streaming bound;
//! - P2: a 1000-point against a 1-point sweep of cosine and norm, and the
//!   passes each makes (`--stats`);
//! - P3: a 100-point analogy sweep against the numpy script a researcher
//!   would write (`benches/analogy_numpy.py`);
//! - P4: a 10-million-point two-variable sweep of cosine on small
//!   checkpoints, report written to a file: wall time and peak memory.
//!
//! `cargo bench --bench engine` (needs `pip install numpy safetensors` for
//! P3). `TV_BENCH_MB` sets the checkpoint size (default 512);
//! `TV_BENCH_DIR` keeps the checkpoints in a folder and reuses them.
//! Results go to stdout and to BENCHMARKS.md.

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use support::{best_of, make_family, run_tv, sampled_run, stat};
use tv::io::Dtype;

fn main() {
    let mb: usize = std::env::var("TV_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    // `TV_BENCH_DIR` keeps the checkpoints (and reuses them) between runs.
    let temporary = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let kept = std::env::var_os("TV_BENCH_DIR").map(std::path::PathBuf::from);
    let root = kept.as_deref().unwrap_or(temporary.path());
    let (f32_dir, bf16_dir, small_dir) = (root.join("f32"), root.join("bf16"), root.join("small"));
    for dir in [&f32_dir, &bf16_dir, &small_dir] {
        std::fs::create_dir_all(dir).expect("benchmark directory");
    }
    eprintln!("writing synthetic checkpoints of {mb} MiB in {}", root.display());
    let family = make_family(&f32_dir, mb, Dtype::F32);
    make_family(&bf16_dir, mb, Dtype::BF16);
    support::make_small(&small_dir);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut report = String::new();
    let _ = writeln!(
        report,
        "Checkpoints: a base and four independent fine-tunes of it, each {mb} MiB in f32 ({} tensors of 4096x4096 plus small ones; half that in bf16), task vectors 1% of the weights' norm with mutual cosines about 1e-4; {threads} threads.\n",
        family.big_tensors
    );
    let _ = writeln!(report, "## P1. Merge of four checkpoints against the I/O floor\n");
    let _ = writeln!(report, "`save base + 0.8 * (lm_j - base) + 0.6 * (lm_k - base) - 0.4 * (task_j - base)`, saved over the output of the previous run.\n");
    let _ = writeln!(report, "| inputs | I/O floor: `cat` 4 inputs + `cp` 1 output (s) | `tv run merge.tv` (s) | floor / tv |\n| --- | --- | --- | --- |");
    let mut ratios = Vec::new();
    for (dir, name) in [(&f32_dir, "f32"), (&bf16_dir, "bf16")] {
        support::warm_page_cache(dir);
        let (floor, tv) = merge(dir);
        let _ = writeln!(report, "| {name} | {floor:.3} | {tv:.3} | **{:.2}** |", floor / tv);
        ratios.push(floor / tv);
    }
    let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let _ = writeln!(report, "\nWorst floor / tv = **{worst:.2}** (target >= 0.8).\n");
    memory(&f32_dir, threads, &mut report);
    support::warm_page_cache(&f32_dir);
    sweeps(&f32_dir, &mut report);
    analogy(&f32_dir, &mut report);
    many_points(&small_dir, &mut report);
    println!("{report}");
    support::write_benchmarks_md(&report);
}

const MERGE_TV: &str = "let base = load(\"base.safetensors\")\nlet a = load(\"lm_j.safetensors\")\nlet b = load(\"lm_k.safetensors\")\nlet c = load(\"task_j.safetensors\")\nsave base + 0.8 * (a - base) + 0.6 * (b - base) - 0.4 * (c - base) to \"merged.safetensors\"\n";

/// The merge and its floor, best of three each, interleaved.
fn merge(dir: &Path) -> (f64, f64) {
    let program = dir.join("merge.tv");
    std::fs::write(&program, MERGE_TV).expect("write program");
    let inputs: Vec<String> = ["base", "lm_j", "lm_k", "task_j"]
        .iter()
        .map(|n| dir.join(format!("{n}.safetensors")).display().to_string())
        .collect();
    let copy = dir.join("copy.safetensors");
    let floor_command = format!(
        "cat {} > /dev/null && cp {} {}",
        inputs.join(" "),
        inputs[0],
        copy.display()
    );
    // One run first, so every timed run replaces an existing output. The
    // floor's copy goes to a fresh file (on ext4, truncating an existing
    // one makes its close wait for writeback), and every timing starts
    // with no writeback pending.
    run_tv(&program, &[]);
    let (mut floor, mut tv) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        let _ = std::fs::remove_file(&copy);
        support::shell("sync");
        floor = floor.min(best_of(1, || support::shell(&floor_command)));
        support::shell("sync");
        tv = tv.min(best_of(1, || drop(run_tv(&program, &[]))));
    }
    (floor, tv)
}

fn memory(dir: &Path, threads: usize, report: &mut String) {
    let (_, peak, _) = sampled_run(&dir.join("merge.tv"), &[]);
    let largest = 4096 * 4096 * 4;
    let bound = 4 * largest * threads + (64 << 20);
    let _ = writeln!(report, "Peak anonymous memory of the f32 merge (RssAnon, sampled every millisecond; page cache excluded): {:.1} MiB against the streaming bound 4 x largest tensor ({} MiB) x {threads} threads + 64 MiB = {:.0} MiB, **{:.2}** of it (target <= 1).\n",
        peak as f64 / 1048576.0,
        largest >> 20,
        bound as f64 / 1048576.0,
        peak as f64 / bound as f64
    );
}

fn sweeps(dir: &Path, report: &mut String) {
    let sweep = |points: &str| {
        format!(
            "let base = load(\"base.safetensors\")\nlet tau_j = load(\"lm_j.safetensors\") - base\nlet tau_k = load(\"lm_k.safetensors\") - base\nsweep a in {points} {{\n  let theta = base + a / 1000 * tau_j + (1 - a / 1000) * tau_k\n  eval c = cosine(theta - base, tau_j)\n  eval n = norm(theta)\n}}\n"
        )
    };
    let one = dir.join("sweep1.tv");
    let many = dir.join("sweep1000.tv");
    std::fs::write(&one, sweep("[0]")).expect("write program");
    std::fs::write(&many, sweep("0..1000")).expect("write program");
    let (mut t1, mut t1000) = (f64::INFINITY, f64::INFINITY);
    let (mut stats1, mut stats1000) = (String::new(), String::new());
    for _ in 0..3 {
        t1 = t1.min(best_of(1, || stats1 = run_tv(&one, &["--stats"])));
        t1000 = t1000.min(best_of(1, || stats1000 = run_tv(&many, &["--stats"])));
    }
    let passes = |s: &str| stat(s, "passes over data");
    let measures = |s: &str| stat(s, "measurements");
    let _ = writeln!(report, "## P2. Sweep of cosine and norm: 1000 points against 1 point\n");
    let _ = writeln!(report, "`theta = base + a/1000 * tau_j + (1 - a/1000) * tau_k`, `cosine(theta - base, tau_j)` and `norm(theta)`, a in 0..1000 (and the point a = 0 alone).\n");
    let _ = writeln!(
        report,
        "| points | seconds | passes over data | measurements |\n| --- | --- | --- | --- |\n| 1 | {t1:.3} | {} | {} |\n| 1000 | {t1000:.3} | {} | {} |\n",
        passes(&stats1),
        measures(&stats1),
        passes(&stats1000),
        measures(&stats1000)
    );
    let _ = writeln!(
        report,
        "1000-point / 1-point = **{:.2}** (target <= 1.2, one pass).\n",
        t1000 / t1
    );
}

fn analogy(dir: &Path, report: &mut String) {
    let program = dir.join("analogy.tv");
    std::fs::write(&program, support::ANALOGY_TV).expect("write program");
    let tv_csv = dir.join("tv.csv");
    let tv_csv_arg = tv_csv.display().to_string();
    let tv = best_of(3, || drop(run_tv(&program, &["-o", &tv_csv_arg, "--overwrite"])));
    let _ = writeln!(report, "## P3. 100-point analogy sweep against numpy\n");
    if !support::python_has_numpy() {
        let _ = writeln!(
            report,
            "numpy baseline not measured: `pip install numpy safetensors` first. tv took {tv:.3} s.\n"
        );
        return;
    }
    let np_csv = dir.join("numpy.csv");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/analogy_numpy.py");
    let numpy = best_of(1, || {
        support::shell(&format!("python3 {script} {} {}", dir.display(), np_csv.display()));
    });
    let agreement = support::max_relative_difference(&tv_csv, &np_csv);
    let _ = writeln!(report, "| | seconds |\n| --- | --- |\n| numpy script (tensors loaded once, recomputed per point) | {numpy:.3} |\n| `tv run analogy.tv` | {tv:.3} |\n");
    let _ = writeln!(report, "numpy / tv = **{:.1}x** (target >= 100x). Largest relative difference between the two reports: {agreement:.1e} (numpy sums in f32 where tv sums in f64).\n", numpy / tv);
}

fn many_points(dir: &Path, report: &mut String) {
    let program = dir.join("grid.tv");
    let text = "let base = load(\"base.safetensors\")\nlet tj = load(\"lm_j.safetensors\") - base\nlet tk = load(\"lm_k.safetensors\") - base\nlet target = load(\"target.safetensors\") - base\nsweep a1 in 0..=2 step 0.0005, a2 in -1..=1 step 0.0008 {\n    eval c = cosine(a1 * tj + a2 * tk, target)\n}\n";
    std::fs::write(&program, text).expect("write program");
    let out = dir.join("grid.csv").display().to_string();
    let (seconds, _, rss) = sampled_run(&program, &["-o", &out, "--overwrite"]);
    let rows = std::fs::read_to_string(&out).map_or(0, |t| t.lines().count() - 1);
    let _ = writeln!(report, "## P4. A 10-million-point sweep\n");
    let _ = writeln!(report, "`sweep a1 in 0..=2 step 0.0005, a2 in -1..=1 step 0.0008 {{ eval c = cosine(a1 * tj + a2 * tk, target) }}` on checkpoints of 1 MiB, report to a file ({rows} rows).\n");
    let _ = writeln!(
        report,
        "Wall time **{seconds:.1} s** (target <= 30 s); peak RSS **{:.0} MiB** (target <= 1024 MiB).\n",
        rss as f64 / 1048576.0
    );
}
