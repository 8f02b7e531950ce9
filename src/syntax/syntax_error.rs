//! Adapts pest's errors into diagnostics that name what was expected in
//! words a user knows.

use super::parser::Rule;
use crate::diag::{Diagnostic, FileId, Span};
use pest::error::{ErrorVariant, InputLocation};

pub(super) fn from_pest(file: FileId, text: &str, error: pest::error::Error<Rule>) -> Diagnostic {
    let at = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let expected = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => describe_expected(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let (found, len) = found_at(text, at);
    let message = format!("syntax error: expected {expected}, found {found}");
    let mut diag = Diagnostic::new("tv::syntax", message).at(Span::new(file, at, at + len), format!("expected {expected}"));
    if let Some(help) = hint(text, at, &expected) {
        diag = diag.help(help);
    }
    diag
}

/// Human names for the rules pest reports as expected, deduplicated, in a
/// stable order.
fn describe_expected(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules.iter().filter_map(|r| rule_name(*r)).collect();
    names.sort();
    names.dedup();
    match names.as_slice() {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::stmt | Rule::use_stmt | Rule::let_stmt | Rule::fn_stmt | Rule::set_stmt => "a statement",
        Rule::sweep_stmt | Rule::eval_stmt | Rule::save_stmt => "a statement",
        Rule::expr | Rule::primary | Rule::call | Rule::list | Rule::number => "an expression",
        Rule::string => "a string",
        Rule::ident => "a name",
        Rule::neg | Rule::prefix => "an expression",
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::infix => "an operator",
        Rule::range_incl | Rule::range_excl => "`..=` or `..`",
        Rule::block => "`{`",
        Rule::params | Rule::param => "a parameter",
        Rule::args | Rule::arg => "an argument",
        Rule::binding => "`NAME in DOMAIN`",
        Rule::kw_in => "`in`",
        Rule::kw_to => "`to`",
        Rule::kw_step => "`step`",
        Rule::interp => "`{name}`",
        Rule::text | Rule::escape | Rule::brace_open | Rule::brace_close | Rule::string_part => {
            "string characters"
        }
        _ => return None,
    })
}

/// What stands at `at`: a quoted token, or "end of file". Returns its byte
/// length too (at least one character, so the underline shows).
fn found_at(text: &str, at: usize) -> (String, usize) {
    let rest = text.get(at..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    let word: String = if first.is_alphanumeric() || first == '_' {
        rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect()
    } else {
        first.to_string()
    };
    let shown = match word.as_str() {
        "\n" => "end of line".to_string(),
        w => format!("`{}`", w.escape_debug()),
    };
    (shown, word.len())
}

/// A hint for the common mistakes whose cause is easy to name.
fn hint(text: &str, at: usize, expected: &str) -> Option<String> {
    let rest = text.get(at..).unwrap_or("");
    let line_before = text.get(..at).unwrap_or("").rsplit('\n').next().unwrap_or("");
    if rest.starts_with('"') || line_before.matches('"').count() % 2 == 1 {
        return Some("strings are written \"...\"; write `{{` and `}}` for literal braces".into());
    }
    if rest.starts_with("==") {
        return Some("tv has no comparisons; `=` only binds names".into());
    }
    let first_word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if ["use", "let", "fn", "set", "sweep", "in", "step", "eval", "save", "to"].contains(&first_word.as_str()) {
        return Some(format!("`{first_word}` is a keyword and cannot be used as a name"));
    }
    if expected.contains("a statement") {
        return Some("every statement starts with a keyword: use, let, fn, set, sweep, eval or save".into());
    }
    None
}
