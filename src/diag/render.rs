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
    let source = diag.span().map(|span| {
        let file = sources.get(span.file);
        NamedSource::new(file.name.clone(), file.text.to_string())
    });
    miette::Report::new(Report {
        diag: diag.clone(),
        source,
    })
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
