//! Turns `Diagnostic`s into miette reports: the one place that knows miette.

use super::{Diagnostic, Sources};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};
use std::fmt;

/// A diagnostic joined with the text it points into.
#[derive(Debug)]
struct Report {
    diag: Diagnostic,
    source: Option<NamedSource<String>>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let help = self.diag.help.as_ref()?;
        Some(Box::new(help))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (span, text) = self.diag.label.as_ref()?;
        self.source.as_ref()?;
        let labeled = LabeledSpan::new(Some(text.clone()), span.start, span.end - span.start);
        Some(Box::new(std::iter::once(labeled)))
    }
}

/// A miette report for one diagnostic, with its source attached.
pub fn to_report(diag: &Diagnostic, sources: &Sources) -> miette::Report {
    let mut diag = diag.clone();
    let source = diag.label.as_mut().map(|(span, _)| {
        let file = sources.get(span.file);
        match excerpt(&file.text, span) {
            Some((name_suffix, text)) => NamedSource::new(format!("{}{name_suffix}", file.name), text),
            None => NamedSource::new(file.name.clone(), file.text.to_string()),
        }
    });
    miette::Report::new(Report { diag, source })
}

/// Lines longer than this are shown as an excerpt around the span: miette
/// cannot draw columns past 65535, and nobody can read them.
const LONG_LINE: usize = 400;
/// Characters kept on each side of the span in an excerpt.
const CONTEXT: usize = 120;

/// For a span on a very long line: a name suffix saying where the excerpt
/// lies, the excerpt, and the span moved into it (shortened if it is long).
fn excerpt(text: &str, span: &mut super::Span) -> Option<(String, String)> {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    if line_end - line_start <= LONG_LINE {
        return None;
    }
    let end = span.end.clamp(start, (start + CONTEXT).min(line_end));
    let from = floor_char(text, start.saturating_sub(CONTEXT).max(line_start));
    let to = floor_char(text, (end + CONTEXT).min(line_end));
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let marker = "...";
    let excerpt = format!("{marker}{}{marker}", &text[from..to]);
    span.start = start - from + marker.len();
    span.end = end - from + marker.len();
    Some((
        format!(" (line {line}, column {column}; an excerpt of the line)"),
        excerpt,
    ))
}

/// The largest char boundary at or before `at`.
fn floor_char(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Renders with the terminal's default miette handler (colour when the
/// terminal has it).
pub fn render_all(diags: &[Diagnostic], sources: &Sources) -> String {
    diags
        .iter()
        .map(|d| format!("{:?}", to_report(d, sources)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders without colour at a fixed width: stable text for golden tests
/// and for output that is not a terminal.
pub fn render_plain(diags: &[Diagnostic], sources: &Sources, width: usize) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(width)
        .with_links(false);
    let mut out = String::new();
    for diag in diags {
        let report = to_report(diag, sources);
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, report.as_ref());
    }
    out
}
