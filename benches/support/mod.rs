//! Helpers for the engine benchmarks: synthetic checkpoints, timing, and
//! memory sampling.

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tv::io::{Dtype, SaveOptions, TensorInfo, Writer};
use tv::synth::Rng;

/// The 100-point analogy sweep (5 x 20 points, both grids through 0):
/// theta_j + a1*tau_j + a2*(tau_k - tau_j).
pub const ANALOGY_TV: &str = "\
let base    = load(\"base.safetensors\")
let theta_j = load(\"task_j.safetensors\")
let tau_j   = load(\"lm_j.safetensors\") - base
let tau_k   = load(\"lm_k.safetensors\") - base
let target  = load(\"target.safetensors\")
sweep a1 in [-1, -0.5, 0, 0.5, 1], a2 in 0.0..2.0 step 0.1 {
    let theta = theta_j + a1 * tau_j + a2 * (tau_k - tau_j)
    eval distance = distance(theta, target)
    eval cosine = cosine(theta - base, target - base)
}
";

/// The five models of the benchmarks: a base, and independent fine-tunes
/// of it, as real task vectors are: each adds its own random change of
/// about 1% of the weights' norm, so their task vectors are nearly
/// orthogonal (cosine about 1e-4 at these sizes).
pub const MODELS: [&str; 5] = ["base", "lm_j", "lm_k", "task_j", "target"];

pub struct Family {
    pub big_tensors: usize,
}

/// The five models of about `mb` MiB (in f32; half that in bf16) in
/// `dir`, kept if already there.
pub fn make_family(dir: &Path, mb: usize, dtype: Dtype) -> Family {
    let big_tensors = (mb / 64).max(1);
    let mut infos: Vec<TensorInfo> = (0..big_tensors)
        .map(|i| TensorInfo::new(format!("layers.{i}.weight"), dtype, vec![4096, 4096]))
        .collect();
    infos.extend((0..big_tensors).map(|i| TensorInfo::new(format!("layers.{i}.bias"), dtype, vec![4096])));
    infos.push(TensorInfo::new("position_ids", Dtype::I64, vec![4096]));
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    for (seed, name) in MODELS.iter().enumerate() {
        let path = dir.join(format!("{name}.safetensors"));
        let size: usize = infos.iter().map(TensorInfo::byte_len).sum();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() as usize > size) {
            continue;
        }
        let writer = Writer::create(&path, &infos, &SaveOptions::default()).expect("create checkpoint");
        for (i, info) in infos.iter().enumerate() {
            writer
                .write(i, &tensor_bytes(info, i as u64, seed as u64))
                .expect("write tensor");
        }
        writer.finish().expect("finish checkpoint");
    }
    Family { big_tensors }
}

/// The base's tensor `index`, plus (for `seed` > 0) that model's own
/// change: normal, 1% of the base's scale.
fn tensor_bytes(info: &TensorInfo, index: u64, seed: u64) -> Vec<u8> {
    let n = info.numel();
    if info.dtype == Dtype::I64 {
        return (0..n as i64).flat_map(|v| v.to_le_bytes()).collect();
    }
    let mut values = Rng::new(1000 + index).normals(n, 0.02);
    if seed > 0 {
        let change = Rng::new(seed * 7919 + index).normals(n, 0.0002);
        values.iter_mut().zip(change).for_each(|(v, d)| *v += d);
    }
    match info.dtype {
        Dtype::BF16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// The five models at 1 MiB each (two 256 x 512 f32 tensors), for sweeps
/// whose cost is the points, not the data.
pub fn make_small(dir: &Path) {
    let infos: Vec<TensorInfo> = (0..2)
        .map(|i| TensorInfo::new(format!("layers.{i}.weight"), Dtype::F32, vec![256, 512]))
        .collect();
    for (seed, name) in MODELS.iter().enumerate() {
        let writer = Writer::create(
            &dir.join(format!("{name}.safetensors")),
            &infos,
            &SaveOptions::default(),
        )
        .expect("create checkpoint");
        for (i, info) in infos.iter().enumerate() {
            writer
                .write(i, &tensor_bytes(info, i as u64, seed as u64))
                .expect("write tensor");
        }
        writer.finish().expect("finish checkpoint");
    }
}

/// Reads every file once, so all timings start from a warm page cache.
pub fn warm_page_cache(dir: &Path) {
    shell(&format!("cat {}/*.safetensors > /dev/null", dir.display()));
}

pub fn shell(command: &str) {
    let status = Command::new("sh").arg("-c").arg(command).status().expect("run sh");
    assert!(status.success(), "failed: {command}");
}

/// The best wall time of `runs` runs, in seconds.
pub fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs `tv run program extra...`; returns its stderr (with `--stats`,
/// the counters).
pub fn run_tv(program: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tv"))
        .arg("run")
        .arg(program)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("run tv");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "tv failed: {stderr}");
    stderr
}

/// The number after `label` in `tv --stats` output.
pub fn stat(stats: &str, label: &str) -> String {
    let line = stats.lines().find(|l| l.starts_with(label)).unwrap_or("");
    line[label.len().min(line.len())..].trim().to_string()
}

/// Runs `tv run program extra...` and samples its memory every
/// millisecond; returns the wall time and the peaks of `RssAnon` (page
/// cache excluded) and of `VmRSS`, in bytes.
pub fn sampled_run(program: &Path, extra: &[&str]) -> (f64, usize, usize) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tv"))
        .arg("run")
        .arg(program)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run tv");
    let status_file = format!("/proc/{}/status", child.id());
    let (mut anon, mut rss) = (0, 0);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tv") {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            anon = anon.max(kib(&text, "RssAnon:") * 1024);
            rss = rss.max(kib(&text, "VmRSS:") * 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert!(status.success(), "tv failed");
    (started.elapsed().as_secs_f64(), anon, rss)
}

fn kib(status: &str, label: &str) -> usize {
    let line = status.lines().find(|l| l.starts_with(label)).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub fn python_has_numpy() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy, safetensors"])
        .status()
        .is_ok_and(|s| s.success())
}

/// The largest relative difference between the numbers of two CSV reports
/// with the same layout.
pub fn max_relative_difference(a: &Path, b: &Path) -> f64 {
    let numbers = |p: &Path| -> Vec<f64> {
        let text = std::fs::read_to_string(p).expect("read report");
        text.lines()
            .skip(1)
            .flat_map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let (x, y) = (numbers(a), numbers(b));
    assert_eq!(x.len(), y.len(), "the reports differ in size");
    x.iter()
        .zip(&y)
        .map(|(p, q)| (p - q).abs() / p.abs().max(q.abs()).max(1e-300))
        .fold(0.0, f64::max)
}

/// Replaces the engine's results section of BENCHMARKS.md, keeping what
/// comes before it and the sections after its end marker.
pub fn write_benchmarks_md(results: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let (marker, end) = ("<!-- results -->", "<!-- end of results -->");
    let head = old.split(marker).next().unwrap_or("").trim_end();
    let tail = old.split_once(end).map_or("", |(_, tail)| tail.trim());
    let text = format!("{head}\n\n{marker}\n\n{}\n\n{end}\n\n{tail}\n", results.trim_end());
    std::fs::write(path, text).expect("write BENCHMARKS.md");
}
