//! Engine benchmarks, every ratio measured within one run (the machine is
//! shared and noisy, so only same-run ratios mean anything):
//!
//! 1. a fused 4-input merge against the I/O floor (`cat` of the inputs to
//!    /dev/null plus `cp` of one output-sized file);
//! 2. a 1000-point against a 1-point linear sweep of cosine and norm;
//! 3. a 100-point analogy sweep against the numpy script a researcher would
//!    write (`benches/analogy_numpy.py`);
//! 4. the merge's peak anonymous memory against the streaming bound.
//!
//! `cargo bench --bench engine` (needs `pip install numpy safetensors` for
//! 3). `TV_BENCH_MB` sets the checkpoint size (default 512);
//! `TV_BENCH_DIR` keeps the checkpoints in a folder and reuses them. Results go to
//! stdout and to BENCHMARKS.md.

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use support::{best_of, make_family, peak_rss_anon, run_tv, Family};

fn main() {
    let mb: usize = std::env::var("TV_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    // `TV_BENCH_DIR` keeps the checkpoints (and reuses them) between runs.
    let temporary = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let kept = std::env::var_os("TV_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temporary.path());
    std::fs::create_dir_all(dir).expect("benchmark directory");
    eprintln!("writing five synthetic checkpoints of {mb} MiB in {}", dir.display());
    let family = make_family(dir, mb);
    support::warm_page_cache(dir);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut report = String::new();
    let _ = writeln!(
        report,
        "Checkpoints: five of {mb} MiB each ({} tensors of 4096x4096 f32 plus small ones); {threads} threads.\n",
        family.big_tensors
    );
    merge(dir, &family, threads, &mut report);
    sweeps(dir, &mut report);
    analogy(dir, &mut report);
    println!("{report}");
    support::write_benchmarks_md(&report);
}

fn merge(dir: &Path, family: &Family, threads: usize, report: &mut String) {
    let program = dir.join("merge.tv");
    let text = "let a = load(\"base.safetensors\")\nlet b = load(\"lm_j.safetensors\")\nlet c = load(\"lm_k.safetensors\")\nlet d = load(\"task_j.safetensors\")\nsave 0.25 * a + 0.25 * b + 0.25 * c + 0.25 * d to \"merged.safetensors\"\n";
    std::fs::write(&program, text).expect("write program");
    let inputs: Vec<String> = ["base", "lm_j", "lm_k", "task_j"]
        .iter()
        .map(|n| dir.join(format!("{n}.safetensors")).display().to_string())
        .collect();
    let floor = best_of(3, || {
        support::shell(&format!(
            "cat {} > /dev/null && cp {} {}",
            inputs.join(" "),
            inputs[0],
            dir.join("copy.safetensors").display()
        ));
    });
    let tv = best_of(3, || run_tv(&program, &[]));
    let _ = writeln!(report, "## 1. Fused 4-input merge against the I/O floor\n");
    let _ = writeln!(report, "| | seconds |\n| --- | --- |\n| I/O floor: `cat` 4 inputs + `cp` 1 output | {floor:.3} |\n| `tv run merge.tv` | {tv:.3} |\n");
    let _ = writeln!(report, "Floor / tv = **{:.2}** (target >= 0.7).\n", floor / tv);

    let peak = peak_rss_anon(&program);
    let largest = 4096 * 4096 * 4;
    let bound = 4 * largest * threads + (64 << 20);
    let _ = writeln!(report, "## 4. Peak anonymous memory of the merge\n");
    let _ = writeln!(
        report,
        "Peak RssAnon {:.1} MiB against the bound 4 x largest tensor ({} MiB) x {threads} threads + 64 MiB = {:.0} MiB: **{:.2}** of the bound (target <= 1).\n",
        peak as f64 / 1048576.0,
        largest >> 20,
        bound as f64 / 1048576.0,
        peak as f64 / bound as f64
    );
    let _ = family;
}

fn sweeps(dir: &Path, report: &mut String) {
    let sweep = |points: &str| {
        format!(
            "let base = load(\"base.safetensors\")\nlet tau_j = load(\"lm_j.safetensors\") - base\nlet tau_k = load(\"lm_k.safetensors\") - base\nsweep a in {points} {{\n  let theta = base + a / 1000 * tau_j + (1 - a / 1000) * tau_k\n  eval c = cosine(theta - base, tau_k)\n  eval n = norm(theta)\n}}\n"
        )
    };
    let one = dir.join("sweep1.tv");
    let many = dir.join("sweep1000.tv");
    std::fs::write(&one, sweep("[500]")).expect("write program");
    std::fs::write(&many, sweep("0..1000")).expect("write program");
    let t1 = best_of(3, || run_tv(&one, &[]));
    let t1000 = best_of(3, || run_tv(&many, &[]));
    let _ = writeln!(report, "## 2. Linear sweep: 1000 points against 1 point\n");
    let _ = writeln!(
        report,
        "| points | seconds |\n| --- | --- |\n| 1 | {t1:.3} |\n| 1000 | {t1000:.3} |\n"
    );
    let _ = writeln!(
        report,
        "1000-point / 1-point = **{:.2}** (target <= 1.5).\n",
        t1000 / t1
    );
}

fn analogy(dir: &Path, report: &mut String) {
    let program = dir.join("analogy.tv");
    std::fs::write(&program, support::ANALOGY_TV).expect("write program");
    let tv_csv = dir.join("tv.csv");
    let tv = best_of(2, || run_tv(&program, &["-o", &tv_csv.display().to_string()]));
    let _ = writeln!(report, "## 3. 100-point analogy sweep against numpy\n");
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
    let _ = writeln!(report, "numpy / tv = **{:.1}x** (target >= 50x). Largest relative difference between the two reports: {agreement:.1e}.\n", numpy / tv);
}
