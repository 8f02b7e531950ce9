//! Writes the small synthetic checkpoints the bundled experiments read:
//! `cargo run --example make_checkpoints [DIR]` (default
//! `experiments/checkpoints`). Deterministic: the same bytes every time.

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "experiments/checkpoints".into());
    match tv::synth::write_experiment_checkpoints(&dir) {
        Ok(()) => {
            println!("wrote {}", dir.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
