//! Adapts pest's errors into diagnostics that name what was expected in
//! words a user knows, at the furthest point the parser reached.

use super::parser::Rule;
use crate::diag::{Diagnostic, FileId, Span};
use pest::error::{ErrorVariant, InputLocation};

pub(super) fn from_pest(file: FileId, text: &str, error: pest::error::Error<Rule>) -> Diagnostic {
    let rules_at = location(&error);
    let (furthest, closers) = match error.parse_attempts() {
        Some(attempts) => {
            let tokens = attempts.expected_tokens().into_iter().map(|t| t.to_string());
            (attempts.max_position, tokens.filter_map(|t| closer_name(&t)).collect())
        }
        None => (rules_at, Vec::new()),
    };
    if let Some(diag) = string_error(file, text, furthest).or_else(|| number_error(file, text, furthest)) {
        return diag;
    }
    // A missing `=`, `)` or `}` shows only at the furthest point the parser
    // reached; everything else is best described by the rules pest tried.
    let (at, expected) = if closers.is_empty() {
        let rules = match &error.variant {
            ErrorVariant::ParsingError { positives, .. } => positives.iter().filter_map(|r| rule_name(*r)).collect(),
            ErrorVariant::CustomError { .. } => Vec::new(),
        };
        (rules_at, rules)
    } else {
        (furthest, closers)
    };
    let mut expected = join(expected);
    if expected == "something else" && at_line_start(text, at) {
        // Nothing pest could name fits where a statement begins.
        expected = "a statement".to_string();
    }
    let (found, len) = found_at(text, at);
    let span = underline(file, text, at, len);
    let message = format!("syntax error: expected {expected}, found {found}");
    let diag = Diagnostic::new("tv::syntax", message).at(span, format!("expected {expected}"));
    match hint(text, at, &expected) {
        Some(help) => diag.help(help),
        None => diag,
    }
}

/// Errors inside a string literal: a bad escape, a lone brace, or a string
/// that runs to the end of the line.
fn string_error(file: FileId, text: &str, at: usize) -> Option<Diagnostic> {
    let line_start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let opened = open_string_start(&text[line_start..at.min(text.len())])? + line_start;
    let before = &text[opened..at];
    let rest = text.get(at..).unwrap_or("");
    // An odd run of backslashes ends in an escape; an even one is `\\`s.
    let trailing = before.chars().rev().take_while(|c| *c == '\\').count();
    let (message, span, help) = if trailing % 2 == 1 && !rest.is_empty() && !rest.starts_with('\n') {
        let escape: String = text[at - 1..].chars().take(2).collect();
        let span = Span::new(file, at - 1, at - 1 + escape.len());
        (
            format!("unknown escape `{escape}` in a string"),
            span,
            "strings know the escapes \\\", \\\\ and \\n",
        )
    } else if rest.is_empty() || rest.starts_with('\n') {
        let span = Span::new(file, opened, at);
        (
            "unterminated string".to_string(),
            span,
            "close the string with `\"` on the line where it starts",
        )
    } else {
        let brace = before.rfind('{').map_or(at, |i| opened + i);
        let span = Span::new(file, brace, brace + 1);
        let help = "`{name}` inserts the value of a name; write `{{` and `}}` for literal braces";
        ("unmatched brace in a string".to_string(), span, help)
    };
    let diag = Diagnostic::new("tv::syntax", format!("syntax error: {message}")).at(span, "here");
    Some(diag.help(help))
}

/// Where the string that is still open at the end of `line` starts, if one is.
fn open_string_start(line: &str) -> Option<usize> {
    let mut open = None;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match (c, open) {
            ('#', None) => return None,
            ('"', None) => open = Some(i),
            ('"', Some(_)) => open = None,
            ('\\', Some(_)) => {
                chars.next();
            }
            _ => {}
        }
    }
    open
}

/// `1.` or `2.e3`: a decimal point with no digits after it.
fn number_error(file: FileId, text: &str, at: usize) -> Option<Diagnostic> {
    let before = text.get(..at)?;
    let digits_then_point = before.strip_suffix('.')?.ends_with(|c: char| c.is_ascii_digit());
    let followed_by_digit = text[at..].starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if !digits_then_point || followed_by_digit {
        return None;
    }
    let diag = Diagnostic::new("tv::syntax", "syntax error: a number ends with `.`")
        .at(Span::new(file, at - 1, at), "digits needed after the point")
        .help("write decimals with digits on both sides of the point: `1.0`, `0.5`");
    Some(diag)
}

fn location(error: &pest::error::Error<Rule>) -> usize {
    match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
}

/// Whether only blanks stand before `at` on its line.
fn at_line_start(text: &str, at: usize) -> bool {
    let before = text.get(..at).unwrap_or("");
    before.rsplit('\n').next().is_none_or(|line| line.trim().is_empty())
}

/// Distinct names in a stable order, as "a, b or c".
fn join(mut names: Vec<&str>) -> String {
    names.sort();
    names.dedup();
    match names.as_slice() {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Tokens that close or continue a construct, which are what a user most
/// often leaves out.
fn closer_name(token: &str) -> Option<&'static str> {
    Some(match token {
        "=" => "`=`",
        ")" => "`)`",
        "]" => "`]`",
        "}" => "`}`",
        "in" => "`in`",
        "to" => "`to`",
        _ => return None,
    })
}

fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "a statement",
        Rule::stmt | Rule::use_stmt | Rule::let_stmt | Rule::fn_stmt | Rule::set_stmt => "a statement",
        Rule::sweep_stmt | Rule::eval_stmt | Rule::save_stmt | Rule::plot_stmt => "a statement",
        Rule::kw_use | Rule::kw_let | Rule::kw_fn | Rule::kw_set | Rule::kw_sweep => "a statement",
        Rule::kw_eval | Rule::kw_save | Rule::kw_plot => "a statement",
        Rule::plot_spec => "a plot such as heatmap(ppl, x = a, y = b)",
        Rule::expr | Rule::primary | Rule::call | Rule::list | Rule::number | Rule::neg => "an expression",
        Rule::string => "a string",
        Rule::ident => "a name",
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::infix => "an operator",
        Rule::range_incl | Rule::range_excl => "`..=` or `..`",
        Rule::block => "`{`",
        Rule::kw_in => "`in`",
        Rule::kw_to => "`to`",
        Rule::kw_step => "`step`",
        Rule::interp => "`{name}`",
        _ => return None,
    })
}

/// What stands at `at`: a quoted token, or "end of file". Returns its byte
/// length too.
fn found_at(text: &str, at: usize) -> (String, usize) {
    let rest = text.get(at..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    let word: String = if first.is_alphanumeric() || first == '_' {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect()
    } else if first == '\\' {
        rest.chars().take(2).collect()
    } else {
        first.to_string()
    };
    let shown = match word.as_str() {
        "\n" => "end of line".to_string(),
        w => format!("`{w}`"),
    };
    (shown, word.len())
}

/// The span to underline: the found token, or at the end of the file the
/// last character before it, so the underline shows.
fn underline(file: FileId, text: &str, at: usize, len: usize) -> Span {
    if len > 0 {
        return Span::new(file, at, at + len);
    }
    let trimmed = text[..at.min(text.len())].trim_end();
    let last = trimmed.char_indices().last().map_or(0, |(i, _)| i);
    let end = trimmed.len().max(last);
    Span::new(file, last, end.max(last + usize::from(!trimmed.is_empty())))
}

/// A hint for the common mistakes whose cause is easy to name.
fn hint(text: &str, at: usize, expected: &str) -> Option<String> {
    let rest = text.get(at..).unwrap_or("");
    if rest.is_empty() {
        return Some("the file ends in the middle of a statement".into());
    }
    if rest.starts_with("==") {
        return Some("tv has no comparisons; `=` only binds names".into());
    }
    if rest.starts_with(|c: char| !c.is_ascii() && c.is_alphabetic()) {
        return Some("names use ASCII letters, digits and `_`".into());
    }
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    const KEYWORDS: [&str; 11] = [
        "use", "let", "fn", "set", "sweep", "in", "step", "eval", "save", "plot", "to",
    ];
    if expected.contains("a name") && KEYWORDS.contains(&word.as_str()) {
        return Some(format!("`{word}` is a keyword and cannot be used as a name"));
    }
    if expected.contains("a statement") && !KEYWORDS.contains(&word.as_str()) {
        return Some("every statement starts with a keyword: use, let, fn, set, sweep, eval, save or plot".into());
    }
    None
}
