//! The HTML report opened in a real browser: headless Chromium loads the
//! file from disk, logs no console message, shows every row of the report
//! and every figure, and sorts the table when a column's name is clicked.
//!
//! Needs `chromium` (Debian's package; `.ci/run` installs it). Without it
//! the test fails, unless TV_NO_BROWSER=1 says to skip it (and it says so).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn browser() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TV_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    let names = ["chromium", "chromium-browser", "google-chrome"];
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Runs the browser headless on `page` with `extra` flags; returns
/// (stdout, stderr).
fn chromium(browser: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let profile = format!("--user-data-dir={}", dir.path().display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            &profile,
        ])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the browser starts");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("the browser did not finish within three minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (out.join().unwrap(), err.join().unwrap())
}

/// Console messages the browser logged for the page.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// A grid of weight-space measurements over a small checkpoint, two figures.
fn make_report(dir: &Path) -> String {
    let values: Vec<f32> = (1..=6).map(|v| v as f32).collect();
    let raw = common::Raw {
        name: "w".into(),
        dtype: safetensors::Dtype::F32,
        shape: vec![6],
        bytes: common::encode(safetensors::Dtype::F32, &values),
    };
    common::write_file(&dir.join("base.safetensors"), &[raw]);
    let program = "let b = load(\"base.safetensors\")\n\
        sweep a in [3, 0.5, 2, 1], c in [1, 2, 3] {\n    eval n = norm(a * b + c * b)\n}\n\
        plot heatmap(n, x = a, y = c, title = \"norm <of> & sum\") to \"fig/n.svg\"\n\
        plot lines(n, x = a, by = c, best = \"min\") to \"fig/n.png\"\n";
    std::fs::write(dir.join("exp.tv"), program).unwrap();
    let output = common::tv_command(dir, &["run", "exp.tv", "-o", "r.csv", "--html", "r.html"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(dir.join("r.csv")).unwrap()
}

/// Appended to a copy of the page: records what a reader would see.
const PROBE: &str = "<script>
window.addEventListener('load', function () {
  var figures = Array.prototype.map.call(document.querySelectorAll('#figures img'), function (img) {
    return img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().height > 100;
  });
  var table = document.querySelector('#report table');
  var rows = table.tBodies[0].rows.length;
  var first = function () { return table.tBodies[0].rows[0].cells[0].textContent; };
  table.tHead.rows[0].cells[0].click();
  var ascending = first();
  table.tHead.rows[0].cells[0].click();
  var descending = first();
  var probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({figures: figures, rows: rows, ascending: ascending, descending: descending});
  document.body.appendChild(probe);
});
</script>";

#[test]
fn the_html_report_renders_in_a_real_browser() {
    let Some(browser) = browser() else {
        if std::env::var_os("TV_NO_BROWSER").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED: no chromium, and TV_NO_BROWSER=1");
            return;
        }
        panic!("this test needs chromium (apt-get install chromium); TV_NO_BROWSER=1 skips it");
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = make_report(dir.path());
    let data_rows = csv.lines().count() - 1;
    let page = dir.path().join("r.html");

    let (_, stderr) = chromium(&browser, &page, &["--dump-dom"]);
    assert!(
        console_lines(&stderr).is_empty(),
        "console messages: {:?}",
        console_lines(&stderr)
    );

    let html = std::fs::read_to_string(&page).unwrap();
    let probed = dir.path().join("probed.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}\n</body>"))).unwrap();
    let (dom, stderr) = chromium(&browser, &probed, &["--dump-dom"]);
    assert!(
        console_lines(&stderr).is_empty(),
        "console messages: {:?}",
        console_lines(&stderr)
    );
    let start = dom.find("<pre id=\"probe\">").expect("the probe ran") + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end].replace("&quot;", "\"");
    let probe: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(probe["rows"], data_rows, "every row of the report is in the table");
    assert_eq!(
        probe["figures"],
        serde_json::json!([true, true]),
        "both figures are loaded and shown"
    );
    // Column `a` holds 3, 0.5, 2, 1: sorted as numbers, not as text.
    assert_eq!(probe["ascending"], "0.5");
    assert_eq!(probe["descending"], "3");

    let shot = dir.path().join("shot.png");
    let flag = format!("--screenshot={}", shot.display());
    chromium(&browser, &page, &[&flag, "--window-size=1200,2600"]);
    let bytes = std::fs::read(&shot).expect("a screenshot");
    let decoder = png::Decoder::new(&bytes[..]);
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let pixels = &pixels[..info.buffer_size()];
    let (mut inked, mut coloured, mut total) = (0usize, 0usize, 0usize);
    for px in pixels.chunks(channels) {
        let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
        total += 1;
        inked += usize::from(r + g + b < 3 * 230);
        coloured += usize::from(r.max(g).max(b) - r.min(g).min(b) > 80);
    }
    assert!(
        inked * 100 > total * 3,
        "the page is not blank ({inked} of {total} pixels inked)"
    );
    // Only the figures are in colour: the rest of the page is grey text.
    assert!(
        coloured * 100 > total,
        "the figures are drawn ({coloured} of {total} pixels coloured)"
    );
}
