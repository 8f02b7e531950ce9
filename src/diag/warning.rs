//! Warnings: problems that do not stop a run but that the user must hear
//! of (a non-finite input, a cache entry that had to be retrained). They go
//! to stderr at once, never into the report, and each distinct message is
//! said once per process.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Prints `tv: warning: MESSAGE` to stderr, once per distinct message. A
/// closed stderr is ignored: a warning never fails a run.
pub fn warn(message: impl Into<String>) {
    let message = message.into();
    let first = {
        let mut said = SAID.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        said.get_or_insert_with(HashSet::new).insert(message.clone())
    };
    if first {
        let _ = writeln!(std::io::stderr(), "tv: warning: {message}");
    }
}
