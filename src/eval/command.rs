//! `command(...)`: an external evaluator. The weights are saved to a
//! temporary Hugging Face folder, the command runs in a shell with
//! `{model}` replaced by that folder, and the last number it prints on
//! standard output is the measurement.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A command to run, as the program wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommandSpec {
    /// The command line, `{model}` standing for the weights' folder.
    pub template: String,
    /// Where it runs: the experiment's folder, so relative paths in it mean
    /// what they mean in the program.
    pub dir: PathBuf,
    /// Where the program asks for it.
    pub span: crate::diag::Span,
}

/// What the weights' folder is written as in a command.
/// What stands for the weights' folder in a lowered command: not text a
/// program can write (a shell word cannot hold NUL), so `{{model}}`, a
/// literal, stays `{model}`.
pub const PLACEHOLDER: &str = "\u{0}model\u{0}";

/// Lines of standard error quoted when a command fails.
const STDERR_TAIL_LINES: usize = 12;

impl CommandSpec {
    /// The command as the program wrote it, for messages.
    pub fn shown(&self) -> String {
        self.template.replace(PLACEHOLDER, "{model}")
    }

    /// The command line for weights saved in `folder`.
    pub fn line(&self, folder: &Path) -> String {
        self.template
            .replace(PLACEHOLDER, &shell_word(&folder.to_string_lossy()))
    }

    /// Runs the command on weights saved in `folder` and reads its result.
    pub fn run(&self, folder: &Path) -> Result<f64, String> {
        let mut command = Command::new("sh");
        stop_with_parent(&mut command);
        let mut child = command
            .args(["-c", STOPPABLE, "tv-command"])
            .arg(self.line(folder))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start `sh` in {}: {e}", self.dir.display()))?;
        let stdout = child.stdout.take().map(tail_of);
        let stderr = child.stderr.take().map(tail_of);
        let status = child.wait().map_err(|e| format!("cannot wait for the command: {e}"))?;
        let collect =
            |reader: Option<std::thread::JoinHandle<Vec<u8>>>| reader.and_then(|r| r.join().ok()).unwrap_or_default();
        let (stdout, stderr) = (collect(stdout), collect(stderr));
        if !status.success() {
            let status = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(format!("{status}{}", stderr_tail(&stderr)));
        }
        last_number(&String::from_utf8_lossy(&stdout))
            .ok_or_else(|| format!("printed no number on standard output{}", stderr_tail(&stderr)))
    }
}

/// Bytes of each output stream kept: the value and the error tail are at
/// the end, and an evaluator may print without bound.
const KEPT_OUTPUT: usize = 64 << 10;

/// Reads a stream to its end on a thread of its own, keeping the last
/// `KEPT_OUTPUT` bytes.
fn tail_of(mut stream: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut kept, mut buffer) = (Vec::new(), vec![0u8; 8192]);
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buffer[..n]);
            if kept.len() > 2 * KEPT_OUTPUT {
                kept.drain(..kept.len() - KEPT_OUTPUT);
            }
        }
        let start = kept.len().saturating_sub(KEPT_OUTPUT);
        kept.split_off(start)
    })
}

/// The last few lines of standard error, ready to append to a message.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "; its standard error was empty".to_string();
    }
    let tail = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
    format!("; the end of its standard error:\n{}", tail.join("\n"))
}

/// The last number in `text`: a word that parses as a decimal or
/// scientific number once punctuation around it is removed, so `acc=0.93`,
/// `(0.93)` and `0.93.` all read as 0.93. `nan` and `inf` count as numbers,
/// so a diverged evaluation reports NaN rather than an earlier number.
pub fn last_number(text: &str) -> Option<f64> {
    let separators = |c: char| c.is_whitespace() || ",;:=()[]{}<>\"'|".contains(c);
    text.rsplit(separators).find_map(|word| {
        let word = word.trim_end_matches(['.', '%']);
        let unsigned = word.trim_start_matches(['-', '+']);
        let special = ["nan", "inf", "infinity"].contains(&unsigned.to_ascii_lowercase().as_str());
        let looks_numeric = special || unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.');
        looks_numeric.then(|| word.parse::<f64>().ok()).flatten()
    })
}

/// Whether `text` is a shell word as it is.
pub fn is_plain(text: &str) -> bool {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+".contains(c);
    !text.is_empty() && text.chars().all(plain)
}

/// Where temporary folders for commands go: the system's temporary folder
/// if its path needs no quoting, else `/tmp`, so that a command may put
/// `"{model}"` in quotes itself.
pub fn temporary_root() -> PathBuf {
    let system = std::env::temp_dir();
    match is_plain(&system.to_string_lossy()) {
        true => system,
        false => PathBuf::from("/tmp"),
    }
}

/// `text` as one shell word: as it is when it needs no quoting, else
/// single-quoted.
fn shell_word(text: &str) -> String {
    if is_plain(text) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The shell that runs a command line (its `$1`): in a process group of
/// its own, which it ends whole when it is told to stop: SIGTERM, then
/// SIGKILL two seconds later for what ignored it (itself included).
const STOPPABLE: &str = "trap 'trap \"\" TERM; kill 0; sleep 2; kill -9 0' TERM; sh -c \"$1\" & wait $!";

/// A killed run's command stops with it, with every process it started
/// (its weights folder is gone, and a resumed run makes that evaluation
/// again): the shell gets SIGTERM when tv dies, however it dies.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    // Safety: prctl is async-signal-safe, as code between fork and exec must be.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::{last_number, shell_word, CommandSpec, PLACEHOLDER};

    #[test]
    fn only_the_placeholder_becomes_the_folder() {
        let spec = CommandSpec {
            template: format!("eval {PLACEHOLDER} --literal {{model}}"),
            dir: ".".into(),
            span: crate::diag::Span::default(),
        };
        assert_eq!(
            spec.line(std::path::Path::new("/tmp/m")),
            "eval /tmp/m --literal {model}"
        );
        assert_eq!(spec.shown(), "eval {model} --literal {model}");
    }

    #[test]
    fn paths_are_quoted_only_when_they_must_be() {
        assert_eq!(shell_word("/tmp/tv-model-x1/model"), "/tmp/tv-model-x1/model");
        assert_eq!(shell_word("/tmp/a b/it's"), r"'/tmp/a b/it'\''s'");
    }

    #[test]
    fn reads_the_last_number_printed() {
        assert_eq!(last_number("epoch 3\nloss 2.5\naccuracy: 0.75\n"), Some(0.75));
        assert_eq!(last_number("acc=0.93."), Some(0.93));
        assert_eq!(last_number("score (1e-3) done"), Some(1e-3));
        assert_eq!(last_number("-4 then 5%"), Some(5.0));
        assert_eq!(last_number("no numbers here"), None);
        assert!(last_number("step 100\nloss nan").is_some_and(f64::is_nan));
        assert_eq!(last_number("ppl: inf"), Some(f64::INFINITY));
        assert_eq!(last_number(""), None);
    }
}
