//! The HTML report of `tv run --html`: one self-contained file (no
//! network, no external script) holding the run record, every figure
//! inline, the report as a sortable table, and the program's source.

use base64::Engine;
use std::fmt::Write;
use std::path::Path;

/// What every page says it is: how a rerun knows the file is tv's.
const STAMP: &str = "<meta name=\"generator\" content=\"tv\">";

/// Rows beyond this are left to the CSV, so the page stays light.
pub const MAX_ROWS: usize = 5000;

/// A figure as written, shown inline.
pub struct Figure<'a> {
    pub name: String,
    pub svg: bool,
    pub bytes: &'a [u8],
    /// CSS pixels.
    pub width: u32,
}

/// An input checkpoint of the run.
pub struct Input {
    pub path: String,
    pub bytes: u64,
    pub tensors: usize,
}

pub struct Page<'a> {
    /// The program's name as given on the command line.
    pub title: String,
    /// Each source file (the program, then the files it uses), with its text.
    pub sources: Vec<(String, &'a str)>,
    /// The run record: what made the report.
    pub record: Vec<(&'static str, String)>,
    pub inputs: Vec<Input>,
    pub figures: Vec<Figure<'a>>,
    pub csv: &'a str,
}

pub fn render(page: &Page) -> String {
    let mut out = String::new();
    let title = escape(&page.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{STAMP}\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>tv report: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    record(&mut out, page);
    figures(&mut out, &page.figures);
    table(&mut out, page.csv);
    sources(&mut out, &page.sources);
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

fn record(out: &mut String, page: &Page) {
    out.push_str("<section id=\"record\">\n<h2>Run</h2>\n<table class=\"record\">\n");
    for (key, value) in &page.record {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            escape(key),
            escape(value)
        );
    }
    out.push_str("</table>\n");
    if !page.inputs.is_empty() {
        out.push_str("<h3>Input checkpoints</h3>\n<table class=\"record\" id=\"inputs\">\n");
        out.push_str("<thead><tr><th>path</th><th>bytes</th><th>tensors</th></tr></thead>\n<tbody>\n");
        for input in &page.inputs {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&input.path),
                input.bytes,
                input.tensors
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</section>\n");
}

fn figures(out: &mut String, figures: &[Figure]) {
    if figures.is_empty() {
        return;
    }
    out.push_str("<section id=\"figures\">\n<h2>Figures</h2>\n");
    for figure in figures {
        let mime = if figure.svg { "image/svg+xml" } else { "image/png" };
        let data = base64::engine::general_purpose::STANDARD.encode(figure.bytes);
        let name = escape(&figure.name);
        let _ = writeln!(
            out,
            "<figure><img src=\"data:{mime};base64,{data}\" width=\"{}\" alt=\"{name}\"><figcaption>{name}</figcaption></figure>",
            figure.width
        );
    }
    out.push_str("</section>\n");
}

fn table(out: &mut String, csv_text: &str) {
    out.push_str("<section id=\"report\">\n<h2>Report</h2>\n");
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    };
    if header.is_empty() {
        out.push_str("<p>The program measures nothing: there is no table.</p>\n</section>\n");
        return;
    }
    out.push_str("<p class=\"hint\">Click a column's name to sort by it.</p>\n<table class=\"sortable\">\n<thead><tr>");
    for name in &header {
        let _ = write!(out, "<th scope=\"col\" aria-sort=\"none\">{}</th>", escape(name));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let mut total = 0;
    for record in reader.records().flatten() {
        total += 1;
        if total > MAX_ROWS {
            continue;
        }
        out.push_str("<tr>");
        for cell in record.iter() {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if total > MAX_ROWS {
        let _ = writeln!(
            out,
            "<p class=\"hint\">The first {MAX_ROWS} of {total} rows; the CSV holds them all.</p>"
        );
    }
    out.push_str("</section>\n");
}

fn sources(out: &mut String, sources: &[(String, &str)]) {
    out.push_str("<section id=\"program\">\n<h2>Program</h2>\n");
    for (name, text) in sources {
        let _ = writeln!(
            out,
            "<h3>{}</h3>\n<pre><code>{}</code></pre>",
            escape(name),
            escape(text)
        );
    }
    out.push_str("</section>\n");
}

fn escape(text: &str) -> String {
    crate::plot::svg::escape(text)
}

/// Whether `path` holds an HTML report tv wrote.
pub fn is_earlier_page(path: &Path) -> bool {
    let Ok(start) = crate::io::manifest::read_bounded(path, 1024) else {
        return false;
    };
    let text = String::from_utf8_lossy(&start);
    text.starts_with("<!DOCTYPE html>") && text.contains(STAMP)
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: left; }
table.sortable td { font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; user-select: none; }
th[aria-sort=ascending]::after { content: ' \\25B2'; } th[aria-sort=descending]::after { content: ' \\25BC'; }
td.num { text-align: right; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
pre { background: #f7f7f7; padding: 1rem; overflow-x: auto; }
.hint { color: #666; font-size: 0.85rem; }
";

/// Sorting without any library: numbers as numbers, empty cells last.
const SCRIPT: &str = "
(function () {
  function key(cell) {
    var text = cell.textContent.trim();
    if (text === '' || text === 'NaN') return null;
    if (text === 'inf') return Infinity;
    if (text === '-inf') return -Infinity;
    var n = Number(text);
    return isNaN(n) ? text : n;
  }
  // Numbers before text; empty cells and NaN last whatever the direction.
  function compare(a, b) {
    if (a === null || b === null) return a === null ? (b === null ? 0 : 1) : -1;
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === 'number' ? -1 : 1;
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th, column) {
      th.addEventListener('click', function () {
        var ascending = th.getAttribute('aria-sort') !== 'ascending';
        heads.forEach(function (h) { h.setAttribute('aria-sort', 'none'); });
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var a = key(r.cells[column]), b = key(s.cells[column]);
          if (a === null || b === null) return compare(a, b);
          return ascending ? compare(a, b) : compare(b, a);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
";
