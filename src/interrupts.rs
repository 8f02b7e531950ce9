//! SIGINT, SIGTERM and SIGHUP during a run: remove every staged output and
//! every folder created for one, then exit with 128 + the signal number, as
//! a shell reports a process killed by it. A commit in progress completes
//! first (it holds the staging registry), so the outputs are all in place
//! or none.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Starts the thread that waits for the signals; without it they kill the
/// process at once and leave its staging behind.
pub fn install() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        // Nothing to clean up later that a later run will not: stale
        // staging is removed by the next save to the same target.
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            // Held until the process ends: nothing can be staged, nor a
            // commit begun, after the clean-up.
            let mut registry = tv::io::staging::lock();
            registry.remove_all();
            restore_cursor();
            std::process::exit(128 + signal);
        }
    });
}

/// Progress bars hide the cursor while they draw; an exit in the middle of
/// one must give it back.
fn restore_cursor() {
    use std::io::{IsTerminal, Write};
    let mut stderr = std::io::stderr();
    if stderr.is_terminal() {
        let _ = stderr.write_all(b"\x1b[?25h\n");
    }
}
