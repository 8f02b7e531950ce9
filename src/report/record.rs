//! The run record: what made a report (the tool, the program and the
//! files it uses, the input checkpoints, the settings, the times and the
//! training), written beside `-o REPORT` as `REPORT.json` and shown in the
//! HTML report, so an output says where it came from.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The first key of every record: how a rerun knows the file is tv's.
const STAMP: &str = "\"written_by\": \"tv\"";

/// What made an output, and nothing that changes from run to run: the
/// part of the record a saved folder carries, a resumed run re-checks and
/// `tv merge` compares between parts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Origin {
    pub tool: Tool,
    pub program: Source,
    /// The files the program `use`s (the stdlib, bundled in tv, is not listed).
    pub uses: Vec<Source>,
    /// The checkpoints the program loads (trained ones are counted under
    /// `training`).
    pub inputs: Vec<Input>,
    /// The configs, datasets and texts the program reads, hashed whole.
    #[serde(default)]
    pub data: Vec<DataFile>,
    pub settings: Settings,
    /// The shard of a sharded run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct RunRecord {
    pub written_by: String,
    #[serde(flatten)]
    pub origin: Origin,
    /// Worker threads (the results are the same for any count).
    pub threads: usize,
    /// The command-line flags that changed the run, as typed.
    pub command_line: Vec<String>,
    pub started_utc: String,
    pub finished_utc: String,
    pub seconds: f64,
    pub training: Training,
    /// The report this record is beside, so a part edited or cut short
    /// after the run is refused by `tv merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportDigest>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ReportDigest {
    /// Data rows (the header line aside).
    pub rows: u64,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DataFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub version: String,
    /// Cargo features the binary was built with.
    pub features: Vec<String>,
}

impl Tool {
    pub fn this() -> Tool {
        let features = if cfg!(feature = "cuda") {
            vec!["cuda".into()]
        } else {
            Vec::new()
        };
        Tool {
            name: "tv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            features,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Source {
    pub path: String,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Input {
    pub path: String,
    /// All its files (the shards of a folder).
    pub bytes: u64,
    /// SHA-256 of each file's safetensors header (length prefix and JSON),
    /// in file order: names, dtypes, shapes and offsets.
    pub header_sha256: String,
    /// SHA-256 of all its files' bytes, with `--hash-inputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
}

/// The settings that can change what a run computes or saves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Settings {
    pub device: String,
    pub seed: u64,
    /// The dtype of saved tensors; `null`: each keeps its inputs'.
    pub dtype: Option<String>,
    pub max_shard_bytes: u64,
}

/// Which shard of how many, and its share of the work.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShardRecord {
    pub index: usize,
    pub count: usize,
    /// Units of model evaluations this shard made, of all the program's.
    pub units: usize,
    pub units_in_all: usize,
    /// Their estimated cost (forward passes and training).
    pub estimated_tflop: f64,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Training {
    pub trained: usize,
    pub from_cache: usize,
}

impl Origin {
    /// The record a saved folder carries (`tv_run.json`): the origin alone,
    /// without the shard (a folder is the same whichever shard saves it).
    pub fn folder_json(&self) -> String {
        let origin = Origin {
            shard: None,
            ..self.clone()
        };
        let mut value = serde_json::json!({ "written_by": "tv" });
        if let (Some(map), Ok(serde_json::Value::Object(fields))) =
            (value.as_object_mut(), serde_json::to_value(&origin))
        {
            map.extend(fields);
        }
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }
}

impl RunRecord {
    /// The record as its file holds it: pretty JSON, `written_by` first.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The record as rows of the HTML report.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let origin = &self.origin;
        let features = match origin.tool.features.is_empty() {
            true => "cpu only".to_string(),
            false => origin.tool.features.join(", "),
        };
        let flags = match self.command_line.is_empty() {
            true => "none".to_string(),
            false => self.command_line.join(" "),
        };
        let mut rows = vec![
            ("tool", format!("tv {} ({features})", origin.tool.version)),
            ("program", origin.program.path.clone()),
            ("program sha256", origin.program.sha256.clone()),
            ("started (UTC)", self.started_utc.clone()),
            ("finished (UTC)", self.finished_utc.clone()),
            ("seconds", format!("{:.1}", self.seconds)),
            ("device", origin.settings.device.clone()),
            ("threads", self.threads.to_string()),
            ("seed", origin.settings.seed.to_string()),
            (
                "saved dtype",
                origin.settings.dtype.clone().unwrap_or_else(|| "as the inputs".into()),
            ),
            ("command-line settings", flags),
            (
                "models trained / from the cache",
                format!("{} / {}", self.training.trained, self.training.from_cache),
            ),
        ];
        if let Some(shard) = &origin.shard {
            let share = format!(
                "{}/{}: {} of {} units of model evaluations, about {:.3} TFLOP",
                shard.index, shard.count, shard.units, shard.units_in_all, shard.estimated_tflop
            );
            rows.push(("shard", share));
        }
        rows
    }
}

/// Where the record of `-o REPORT` goes: `REPORT.json`.
pub fn path_for(report: &Path) -> PathBuf {
    let mut name = report.as_os_str().to_os_string();
    name.push(".json");
    PathBuf::from(name)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// An input checkpoint's record: its files' sizes, their headers' hash,
/// and with `content` the hash of all their bytes.
pub fn input(path: &Path, files: &[&Path], content: bool) -> std::io::Result<Input> {
    let mut headers = Sha256::new();
    let mut whole = Sha256::new();
    let mut bytes = 0;
    for file in files {
        bytes += std::fs::metadata(file)?.len();
        headers.update(header_bytes(file)?);
        if content {
            hash_file(file, &mut whole)?;
        }
    }
    Ok(Input {
        path: path.display().to_string(),
        bytes,
        header_sha256: hex(&headers.finalize()),
        content_sha256: content.then(|| hex(&whole.finalize())),
    })
}

/// A file the program reads, hashed whole.
pub fn data_file(path: &Path) -> std::io::Result<DataFile> {
    let mut hasher = Sha256::new();
    hash_file(path, &mut hasher)?;
    Ok(DataFile {
        path: path.display().to_string(),
        bytes: std::fs::metadata(path)?.len(),
        sha256: hex(&hasher.finalize()),
    })
}

/// A report's digest as it is written: the SHA-256 of its bytes and its
/// lines.
#[derive(Clone, Debug, Default)]
pub struct Digester {
    sha: Sha256,
    lines: u64,
}

impl Digester {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
    }

    /// The digest of everything so far.
    pub fn digest(&self) -> ReportDigest {
        ReportDigest {
            // Lines, not rows: a quoted cell may hold a newline. Enough to
            // compare a part with what its run wrote.
            rows: self.lines.saturating_sub(1),
            sha256: hex(&self.sha.clone().finalize()),
        }
    }
}

impl std::io::Write for Digester {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The digest of a report file, as its spool gave it when it was written.
pub fn file_digest(path: &Path) -> std::io::Result<ReportDigest> {
    let mut digester = Digester::default();
    std::io::copy(&mut std::fs::File::open(path)?, &mut digester)?;
    Ok(digester.digest())
}

/// The length prefix and JSON header of a safetensors file.
fn header_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)?;
    let len = u64::from_le_bytes(prefix).min(100 << 20);
    let mut out = prefix.to_vec();
    file.take(len).read_to_end(&mut out)?;
    Ok(out)
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    std::io::copy(&mut std::fs::File::open(path)?, hasher).map(|_| ())
}

/// Whether `path` holds a run record tv wrote.
pub fn is_earlier_record(path: &Path) -> bool {
    let Ok(start) = crate::io::manifest::read_bounded(path, 256) else {
        return false;
    };
    let text = String::from_utf8_lossy(&start);
    text.starts_with('{') && text.contains(STAMP)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(time: SystemTime) -> String {
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
    use super::{civil_date, path_for};

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_786), (2026, 11, 29));
        assert_eq!(civil_date(-1), (1969, 12, 31));
    }

    #[test]
    fn the_record_sits_beside_the_report() {
        assert_eq!(
            path_for(std::path::Path::new("out/r.csv")),
            std::path::Path::new("out/r.csv.json")
        );
    }
}
