//! `cargo fuzz run check`: the parser and checker must not panic on any
//! input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut sources = tv::diag::Sources::default();
    if let Err(diags) = tv::check_text(&mut sources, "fuzz.tv", &text) {
        let _ = tv::diag::render_plain(&diags, &sources, 80);
    }
});
