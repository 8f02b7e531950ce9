//! Limits that keep pathological input from exhausting the stack: every
//! stage walks the syntax tree recursively, so its depth is bounded before
//! the tree is built. Real experiments stay far below these.

use crate::diag::{Diagnostic, FileId, Span};

/// Brackets (`(`, `[`, `{`) open at once.
pub const MAX_NESTING: usize = 64;
/// Depth of an expression tree (operators, calls, lists, parentheses).
pub const MAX_DEPTH: usize = 200;

/// Finds the first bracket nested deeper than `MAX_NESTING`, outside
/// strings and comments.
pub fn check_nesting(file: FileId, text: &str) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '#' => {
                chars.by_ref().find(|(_, c)| *c == '\n');
            }
            '"' => skip_string(&mut chars),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep(
                        Span::new(file, at, at + 1),
                        "brackets nested more than 64 deep",
                    ));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn skip_string(chars: &mut std::str::CharIndices) {
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' | '\n' => return,
            _ => {}
        }
    }
}

pub fn too_deep(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new("tv::too_deep", format!("expression too deep: {what}"))
        .at(span, "too deep")
        .help("split the expression with `let`, or add a list of weights with sum([...])")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_outside_strings_and_comments() {
        let deep = "(".repeat(MAX_NESTING + 1);
        assert!(check_nesting(FileId(0), &deep).is_err());
        assert!(check_nesting(FileId(0), &"(".repeat(MAX_NESTING)).is_ok());
        let quoted = format!("\"{deep}\"");
        assert!(check_nesting(FileId(0), &quoted).is_ok());
        let commented = format!("# {deep}\n");
        assert!(check_nesting(FileId(0), &commented).is_ok());
    }
}
