//! `tv slurm`: a sharded run as Slurm jobs. One job array runs the shards
//! (`tv run --shard $SLURM_ARRAY_TASK_ID/N --resume`, so a requeued task
//! continues from its journal), and a merge job that Slurm starts only
//! when every array task succeeded (`afterok`) writes the report.
//!
//! Everything the jobs read and write must be on storage every node sees:
//! the tv binary, the program and the files it uses, its checkpoints and
//! datasets, the training cache, and the folder of scripts, parts and logs.

use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::Overrides;
use std::path::{Path, PathBuf};

/// What `tv slurm` is asked for.
pub struct Request {
    pub program: PathBuf,
    pub shards: usize,
    /// The merged report.
    pub report: PathBuf,
    /// Where scripts, parts and logs go (default: `REPORT.slurm/`).
    pub folder: Option<PathBuf>,
    /// `#SBATCH` options of the shards' array, as `(name, value)`.
    pub options: Vec<(String, String)>,
    /// `#SBATCH` options given whole (`--sbatch=--constraint=a100`).
    pub extra: Vec<String>,
    pub job_name: Option<String>,
    /// The settings every shard runs with.
    pub overrides: Overrides,
    pub submit: bool,
}

/// Checks the program, writes the scripts and, with `submit`, submits
/// them; returns what to tell the user.
pub fn slurm(sources: &mut Sources, request: &Request) -> Result<String, Diagnostics> {
    if request.shards == 0 || request.shards > crate::shard::MAX_SHARDS {
        let message = format!("--shards must be between 1 and {}", crate::shard::MAX_SHARDS);
        return Err(vec![Diagnostic::new("tv::slurm", message)]);
    }
    let paths = Paths::new(request)?;
    check_directives(request, &paths)?;
    let mut overrides = request.overrides.clone();
    overrides.report = Some(request.report.clone());
    // Checked as the shards will be, before anything is written or submitted.
    crate::check(sources, &request.program, &overrides)?;
    let tv = std::env::current_exe().map_err(|e| slurm_error(format!("cannot find the tv binary: {e}")))?;
    let shards = shards_script(request, &paths, &tv);
    let merge = merge_script(request, &paths, &tv);
    for dir in [&paths.folder, &paths.parts, &paths.logs] {
        std::fs::create_dir_all(dir).map_err(|e| slurm_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    write_script(&paths.shards_script, &shards)?;
    write_script(&paths.merge_script, &merge)?;
    let mut text = format!(
        "wrote {} ({} array tasks) and {}\n",
        paths.shards_script.display(),
        request.shards,
        paths.merge_script.display()
    );
    if request.submit {
        let array = sbatch(&[], &paths.shards_script)?;
        let dependency = format!("--dependency=afterok:{array}");
        let merge = sbatch(&[&dependency, "--kill-on-invalid-dep=yes"], &paths.merge_script)?;
        text.push_str(&format!(
            "submitted shards as job {array} and the merge as job {merge}\n"
        ));
        text.push_str(&format!("shards={array}\nmerge={merge}\n"));
    } else {
        text.push_str(&format!(
            "submit with: jobs=$(sbatch --parsable {}) && sbatch --dependency=afterok:$jobs --kill-on-invalid-dep=yes {}\n",
            quote(&paths.shards_script),
            quote(&paths.merge_script)
        ));
    }
    Ok(text)
}

/// Refuses what an `#SBATCH` line cannot carry, even quoted: a control
/// character or a backslash, in an option's value or in a path the
/// directives name.
fn check_directives(request: &Request, paths: &Paths) -> Result<(), Diagnostics> {
    let unfit = |text: &str| text.chars().any(|c| c.is_control() || c == '\\');
    let given = request.options.iter().map(|(_, v)| v).chain(&request.extra);
    if let Some(bad) = given.into_iter().find(|v| unfit(v)) {
        let message = format!("a Slurm option holds a control character or a backslash: {bad:?}");
        let help = "each option goes on one #SBATCH line, whose quotes cannot carry these";
        return Err(vec![Diagnostic::new("tv::slurm", message).help(help)]);
    }
    if let Some(bad) = [&paths.cwd, &paths.report, &paths.folder]
        .into_iter()
        .find(|p| unfit(&p.to_string_lossy()))
    {
        let message = format!("{bad:?} holds a control character or a backslash, which #SBATCH lines cannot carry");
        let help = "run from, and write to, folders without these in their path";
        return Err(vec![Diagnostic::new("tv::slurm", message).help(help)]);
    }
    Ok(())
}

/// The absolute paths the scripts use (jobs start in another directory).
struct Paths {
    cwd: PathBuf,
    program: PathBuf,
    report: PathBuf,
    folder: PathBuf,
    parts: PathBuf,
    logs: PathBuf,
    shards_script: PathBuf,
    merge_script: PathBuf,
}

impl Paths {
    fn new(request: &Request) -> Result<Paths, Diagnostics> {
        let cwd =
            std::env::current_dir().map_err(|e| slurm_error(format!("cannot read the current directory: {e}")))?;
        let absolute = |p: &Path| cwd.join(p);
        let report = absolute(&request.report);
        let folder = match &request.folder {
            Some(folder) => absolute(folder),
            None => {
                let mut name = report.as_os_str().to_os_string();
                name.push(".slurm");
                PathBuf::from(name)
            }
        };
        Ok(Paths {
            program: absolute(&request.program),
            parts: folder.join("parts"),
            logs: folder.join("logs"),
            shards_script: folder.join("shards.sbatch"),
            merge_script: folder.join("merge.sbatch"),
            cwd,
            report,
            folder,
        })
    }

    fn part(&self, index: &str) -> PathBuf {
        self.parts.join(format!("part-{index}.csv"))
    }
}

fn shards_script(request: &Request, paths: &Paths, tv: &Path) -> String {
    let name = job_name(request, paths);
    let mut lines = header(&format!("{name}-shards"), paths);
    lines.push(format!("#SBATCH --array=0-{}", request.shards - 1));
    lines.push(format!("#SBATCH --output={}", log_path(&paths.logs, "shard-%a.log")));
    for (option, value) in &request.options {
        lines.push(format!("#SBATCH --{option}={}", directive_value(value)));
    }
    lines.extend(request.extra.iter().map(|e| format!("#SBATCH {e}")));
    let mut command = vec![
        quote(tv),
        "run".into(),
        quote(&paths.program),
        "--shard".into(),
        format!("\"${{SLURM_ARRAY_TASK_ID}}/{}\"", request.shards),
        "-o".into(),
        format!("{}/part-\"${{SLURM_ARRAY_TASK_ID}}\".csv", quote(&paths.parts)),
        "--resume".into(),
    ];
    let mut overrides = request.overrides.clone();
    // The jobs start in this folder too, but the scripts say where everything is.
    overrides.cache = overrides.cache.map(|c| paths.cwd.join(c));
    for flag in crate::figures::flags(&overrides) {
        // `--name value`: the value may hold spaces, so it is one word.
        match flag.split_once(' ') {
            Some((name, value)) => command.extend([name.to_string(), quote_str(value)]),
            None => command.push(flag),
        }
    }
    lines.push(String::new());
    lines.push("set -euo pipefail".into());
    lines.push("# A requeued task continues from the journal its interrupted run left.".into());
    lines.push(format!("exec {}", command.join(" ")));
    lines.join("\n") + "\n"
}

fn merge_script(request: &Request, paths: &Paths, tv: &Path) -> String {
    let name = job_name(request, paths);
    let mut lines = header(&format!("{name}-merge"), paths);
    lines.push(format!("#SBATCH --output={}", log_path(&paths.logs, "merge.log")));
    for (option, value) in request
        .options
        .iter()
        .filter(|(o, _)| o == "partition" || o == "account")
    {
        lines.push(format!("#SBATCH --{option}={}", directive_value(value)));
    }
    lines.push("#SBATCH --ntasks=1".into());
    lines.push(String::new());
    lines.push("set -euo pipefail".into());
    let parts: Vec<String> = (0..request.shards)
        .map(|i| quote(&paths.part(&i.to_string())))
        .collect();
    let mut command = vec![quote(tv), "merge".into()];
    command.extend(parts);
    command.extend(["-o".into(), quote(&paths.report)]);
    if request.overrides.overwrite {
        command.push("--overwrite".into());
    }
    lines.push(format!("exec {}", command.join(" ")));
    lines.join("\n") + "\n"
}

fn header(name: &str, paths: &Paths) -> Vec<String> {
    vec![
        "#!/bin/bash".into(),
        "# Written by tv slurm: every path below must be on storage all nodes see.".into(),
        format!("#SBATCH --job-name={name}"),
        format!("#SBATCH --chdir={}", directive_value(&paths.cwd.display().to_string())),
    ]
}

/// A value on an `#SBATCH` line: sbatch reads double quotes, with `\"`
/// for a quote inside.
fn directive_value(text: &str) -> String {
    match is_plain(text) {
        true => text.to_string(),
        false => format!("\"{}\"", text.replace('"', "\\\"")),
    }
}

/// Text that needs no quoting, in a shell or on an `#SBATCH` line.
fn is_plain(text: &str) -> bool {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-:=+@%,".contains(c);
    !text.is_empty() && text.chars().all(safe)
}

/// A log file's path for `--output`, where Slurm expands `%` patterns: the
/// folder's own `%` are doubled, `name` keeps its patterns.
fn log_path(folder: &Path, name: &str) -> String {
    let folder = folder.display().to_string().replace('%', "%%");
    directive_value(&format!("{folder}/{name}"))
}

fn job_name(request: &Request, paths: &Paths) -> String {
    let stem = || paths.program.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = request.job_name.clone().or_else(stem).unwrap_or_else(|| "tv".into());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A path as one shell word.
fn quote(path: &Path) -> String {
    quote_str(&path.display().to_string())
}

fn quote_str(text: &str) -> String {
    match is_plain(text) {
        true => text.to_string(),
        false => format!("'{}'", text.replace('\'', "'\\''")),
    }
}

fn write_script(path: &Path, text: &str) -> Result<(), Diagnostics> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| slurm_error(format!("cannot write {}: {e}", path.display())))
}

/// Submits `script`; returns the job id.
fn sbatch(options: &[&str], script: &Path) -> Result<String, Diagnostics> {
    let output = std::process::Command::new("sbatch")
        .arg("--parsable")
        .args(options)
        .arg(script)
        .output()
        .map_err(|e| {
            let message = format!("cannot run sbatch: {e}");
            let help = "submit from a machine with Slurm's commands (a login node), or submit the scripts by hand";
            vec![Diagnostic::new("tv::slurm", message).help(help)]
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    if !output.status.success() || id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        let message = format!(
            "sbatch refused {}: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return Err(vec![Diagnostic::new("tv::slurm", message)]);
    }
    Ok(id)
}

fn slurm_error(message: String) -> Diagnostics {
    vec![Diagnostic::new("tv::slurm", message)]
}

#[cfg(test)]
mod tests {
    use super::quote_str;

    #[test]
    fn words_with_shell_characters_are_quoted() {
        assert_eq!(quote_str("/data/run.tv"), "/data/run.tv");
        assert_eq!(quote_str("my run's.tv"), "'my run'\\''s.tv'");
        assert_eq!(quote_str("$HOME"), "'$HOME'");
        assert_eq!(quote_str(""), "''");
    }
}
