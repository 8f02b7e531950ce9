//! Writes the digit task files for task-arithmetic experiments:
//! `cargo run --example make_digit_tasks [OUT_DIR]` (default
//! `experiments/data/tasks`). Reads `experiments/data/digits.csv` and writes
//! `{task}_{train,val,test}.csv` for every task in `tv::digits::TASKS`.
//! Deterministic: the same bytes every time.

use std::path::{Path, PathBuf};

fn main() -> std::process::ExitCode {
    let out_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "experiments/data/tasks".into());
    let digits = Path::new("experiments/data/digits.csv");
    match tv::digits::write_tasks(digits, &out_dir) {
        Ok(paths) => {
            for path in &paths {
                println!("wrote {}", path.display());
            }
            println!("{} files in {}", paths.len(), out_dir.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: making digit tasks from {} in {}: {e}",
                digits.display(),
                out_dir.display()
            );
            std::process::ExitCode::FAILURE
        }
    }
}
