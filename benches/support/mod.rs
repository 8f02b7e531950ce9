//! Helpers for the engine benchmarks: synthetic checkpoints, timing, and
//! memory sampling.

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tv::io::{Dtype, SaveOptions, TensorInfo, Writer};
use tv::synth::Rng;

/// The 100-point analogy sweep (5 x 20 points): theta_j + a1*tau_j + a2*(tau_k - tau_j).
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

pub struct Family {
    pub big_tensors: usize,
}

/// Five checkpoints of about `mb` MiB: a base, two time-shifted models, a
/// task model and the target task model, each a small change of the base.
pub fn make_family(dir: &Path, mb: usize) -> Family {
    let big_tensors = (mb / 64).max(1);
    let mut infos: Vec<TensorInfo> = (0..big_tensors)
        .map(|i| TensorInfo::new(format!("layers.{i}.weight"), Dtype::F32, vec![4096, 4096]))
        .collect();
    infos.extend((0..big_tensors).map(|i| TensorInfo::new(format!("layers.{i}.bias"), Dtype::F32, vec![4096])));
    infos.push(TensorInfo::new("position_ids", Dtype::I64, vec![4096]));
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    // Each model is the base plus small changes with their own seeds.
    let models: [(&str, &[(u64, f32)]); 5] = [
        ("base", &[]),
        ("lm_j", &[(1, 0.01)]),
        ("lm_k", &[(2, 0.01)]),
        ("task_j", &[(1, 0.01), (3, 0.01)]),
        ("target", &[(2, 0.01), (3, 0.01), (4, 0.001)]),
    ];
    for (name, changes) in models {
        let path = dir.join(format!("{name}.safetensors"));
        let size: usize = infos.iter().map(TensorInfo::byte_len).sum();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() as usize > size) {
            continue;
        }
        let writer = Writer::create(&path, &infos, &SaveOptions::default()).expect("create checkpoint");
        for (i, info) in infos.iter().enumerate() {
            writer
                .write(i, &tensor_bytes(info, i as u64, changes))
                .expect("write tensor");
        }
        writer.finish().expect("finish checkpoint");
    }
    Family { big_tensors }
}

fn tensor_bytes(info: &TensorInfo, index: u64, changes: &[(u64, f32)]) -> Vec<u8> {
    let n = info.numel();
    if info.dtype == Dtype::I64 {
        return (0..n as i64).flat_map(|v| v.to_le_bytes()).collect();
    }
    let mut values = uniform(1000 + index, n, 0.04);
    for (seed, scale) in changes {
        for (v, d) in values.iter_mut().zip(uniform(seed * 7919 + index, n, *scale)) {
            *v += d;
        }
    }
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Uniform in [-scale, scale).
fn uniform(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.uniform() as f32 * 2.0 - 1.0) * scale).collect()
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

pub fn run_tv(program: &Path, extra: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_tv"))
        .arg("run")
        .arg(program)
        .args(extra)
        .output()
        .expect("run tv");
    assert!(
        output.status.success(),
        "tv failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `tv run program` and samples its RssAnon every millisecond; returns
/// the peak in bytes.
pub fn peak_rss_anon(program: &Path) -> usize {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tv"))
        .arg("run")
        .arg(program)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run tv");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().expect("wait for tv").is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            peak = peak.max(rss_anon_kib(&status) * 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    peak
}

fn rss_anon_kib(status: &str) -> usize {
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap_or("");
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
