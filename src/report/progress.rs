//! Progress bars: drawn on a terminal, never when stderr is piped.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

fn bar(len: u64, template: &str, message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(message.to_string());
    bar
}

/// Bytes of a pass over the data, with throughput and time left.
pub fn bytes(len: u64, message: &str) -> ProgressBar {
    bar(
        len,
        "{spinner} {msg} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec}, eta {eta}",
        message,
    )
}

/// Windows of text scored by a language model.
pub fn windows(len: u64, message: &str) -> ProgressBar {
    bar(len, "{spinner} {msg} {bar:30} {pos}/{len} windows, eta {eta}", message)
}

/// Steps of a computation such as training.
pub fn steps(len: u64, message: &str) -> ProgressBar {
    bar(len, "{spinner} {msg} {bar:30} {pos}/{len} steps, eta {eta}", message)
}
