//! Peak anonymous memory of this process, sampled while a run works (Linux
//! keeps a high-water mark only for the whole resident set, which counts
//! the memory-mapped checkpoints too).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl PeakSampler {
    /// Starts sampling `RssAnon` every few milliseconds.
    pub fn start() -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_anon().unwrap_or(0));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(rss_anon().unwrap_or(0))
        });
        PeakSampler { stop, thread }
    }

    /// The peak seen, in bytes; `None` where /proc is not available.
    pub fn stop(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.thread.join().unwrap_or(0);
        (peak > 0).then_some(peak)
    }
}

fn rss_anon() -> Option<u64> {
    proc_bytes("/proc/self/status", "RssAnon:")
}

/// Memory the system can still give, in bytes (`MemAvailable`); `None`
/// where /proc is not available.
pub fn available() -> Option<u64> {
    proc_bytes("/proc/meminfo", "MemAvailable:")
}

/// The size on the line of `file` that starts with `key`, given in kB.
fn proc_bytes(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
