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
pub const PLACEHOLDER: &str = "{model}";

/// Lines of standard error quoted when a command fails.
const STDERR_TAIL_LINES: usize = 12;

impl CommandSpec {
    /// The command line for weights saved in `folder`.
    pub fn line(&self, folder: &Path) -> String {
        self.template
            .replace(PLACEHOLDER, &shell_word(&folder.to_string_lossy()))
    }

    /// Runs the command on weights saved in `folder` and reads its result.
    pub fn run(&self, folder: &Path) -> Result<f64, String> {
        let output = Command::new("sh")
            .arg("-c")
            .arg(self.line(folder))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start `sh` in {}: {e}", self.dir.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let status = match output.status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(format!("{status}{}", stderr_tail(&output.stderr)));
        }
        last_number(&stdout)
            .ok_or_else(|| format!("printed no number on standard output{}", stderr_tail(&output.stderr)))
    }
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

/// `text` as one shell word: as it is when it needs no quoting (so a
/// command may also put `"{model}"` in quotes itself), else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::{last_number, shell_word};

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
