//! Evaluation text: a plain text file is one document; a JSONL file (`.jsonl`)
//! holds one document per line, in the string field the measurement names.
//! Documents are scored independently: no window spans two of them.

use std::path::Path;
use tokenizers::Tokenizer;

/// The documents of `path`.
pub fn read_documents(path: &Path, field: &str) -> Result<Vec<String>, String> {
    let text = crate::io::bounded::read_text(path, crate::io::bounded::DATA_LIMIT).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{} is not UTF-8 text", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        return jsonl_documents(path, &text, field);
    }
    Ok(vec![text])
}

fn jsonl_documents(path: &Path, text: &str, field: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{} is not a JSON record: {e}", at()))?;
        match record.get(field) {
            Some(serde_json::Value::String(s)) => out.push(s.clone()),
            Some(other) => return Err(format!("{}: field \"{field}\" is {other}, not a string", at())),
            None => return Err(format!("{} has no field \"{field}\"", at())),
        }
    }
    Ok(out)
}

/// A model folder's `tokenizer.json`, without the truncation and padding it
/// may have been saved with: transformers turns both off unless asked, and
/// scoring must see every token of the text and no padding.
pub fn load_tokenizer(folder: &Path) -> Result<Tokenizer, String> {
    let path = folder.join("tokenizer.json");
    if !path.is_file() {
        return Err(format!("{} has no tokenizer.json", folder.display()));
    }
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    tokenizer
        .with_truncation(None)
        .map_err(|e| format!("cannot turn off the truncation of {}: {e}", path.display()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// Token ids of each document, with the special tokens the tokenizer adds
/// (a beginning-of-sequence token for Llama-style tokenizers), as
/// transformers' tokenizers do by default.
pub fn tokenize(tokenizer: &Tokenizer, documents: &[String]) -> Result<Vec<Vec<u32>>, String> {
    documents
        .iter()
        .map(|d| tokenize_document(tokenizer, d, PIECE))
        .collect()
}

/// Documents longer than this are tokenized a piece at a time: a
/// tokenizer's working memory is some hundred bytes per byte of text.
const PIECE: usize = 1 << 20;
/// Text on each side of a cut that is tokenized to prove the cut neutral.
const CUT_CONTEXT: usize = 512;

/// One document's ids. A long one is cut after line breaks that are
/// followed by a non-blank character, every `piece` bytes or so, when the
/// tokenizer gives the same ids with and without each cut (checked on the
/// text around it: a tokenizer that marks the start of its input, such as
/// SentencePiece's leading `▁`, fails the check); the pieces are then
/// tokenized alone and joined between the special tokens the tokenizer adds
/// once. Otherwise the document is tokenized whole.
fn tokenize_document(tokenizer: &Tokenizer, text: &str, piece: usize) -> Result<Vec<u32>, String> {
    let cuts = cut_points(text, piece);
    let neutral = |&cut: &usize| -> Result<bool, String> { neutral_cut(tokenizer, text, cut) };
    if cuts.is_empty() || !all(cuts.iter().map(neutral))? {
        return encode(tokenizer, text, true);
    }
    let (before, after) = specials(tokenizer)?;
    let mut ids = before;
    let bounds: Vec<usize> = std::iter::once(0).chain(cuts).chain([text.len()]).collect();
    for pair in bounds.windows(2) {
        ids.extend(encode(tokenizer, &text[pair[0]..pair[1]], false)?);
    }
    ids.extend(after);
    Ok(ids)
}

fn all(checks: impl Iterator<Item = Result<bool, String>>) -> Result<bool, String> {
    for check in checks {
        if !check? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn encode(tokenizer: &Tokenizer, text: &str, special: bool) -> Result<Vec<u32>, String> {
    tokenizer
        .encode_fast(text, special)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| format!("tokenizing failed: {e}"))
}

/// Byte offsets just after a `\n` that a non-blank character follows,
/// about `piece` bytes apart.
fn cut_points(text: &str, piece: usize) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut cuts = Vec::new();
    let mut from = piece;
    while from < bytes.len() {
        let found = bytes[from..]
            .windows(2)
            .position(|w| w[0] == b'\n' && !w[1].is_ascii_whitespace())
            .map(|i| from + i + 1);
        let Some(cut) = found else { break };
        cuts.push(cut);
        from = cut + piece;
    }
    cuts
}

/// Whether the text around `cut` gives the same ids whole as in two halves.
fn neutral_cut(tokenizer: &Tokenizer, text: &str, cut: usize) -> Result<bool, String> {
    let start = floor_char(text, cut.saturating_sub(CUT_CONTEXT));
    let end = floor_char(text, (cut + CUT_CONTEXT).min(text.len()));
    let whole = encode(tokenizer, &text[start..end], false)?;
    let mut halves = encode(tokenizer, &text[start..cut], false)?;
    halves.extend(encode(tokenizer, &text[cut..end], false)?);
    Ok(whole == halves)
}

/// The special tokens added before and after a single text.
fn specials(tokenizer: &Tokenizer) -> Result<(Vec<u32>, Vec<u32>), String> {
    let plain = encode(tokenizer, "a", false)?;
    let full = encode(tokenizer, "a", true)?;
    let at = full
        .windows(plain.len().max(1))
        .position(|w| w == plain.as_slice())
        .ok_or("the tokenizer's special tokens cannot be told apart from the text")?;
    Ok((full[..at].to_vec(), full[at + plain.len()..].to_vec()))
}

fn floor_char(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokenizers of the test models: Llama-style (SentencePiece) and
    /// Qwen2-style (byte-level BPE).
    fn tokenizers() -> Vec<Tokenizer> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm");
        ["llama-tied", "qwen2-tied"]
            .iter()
            .map(|m| load_tokenizer(&root.join(m)).expect("fixture tokenizer"))
            .collect()
    }

    /// Lines of words, blank lines, indents and punctuation, as prose has.
    fn prose(lines: usize) -> String {
        let words = [
            "the",
            "Time",
            "vector,",
            "2012",
            "news.",
            "été",
            "  indented",
            "",
            "end!\n",
        ];
        (0..lines)
            .map(|i| {
                (0..1 + i % 7)
                    .map(|j| words[(i * 3 + j) % words.len()])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn pieces_give_the_ids_of_the_whole_text() {
        let text = prose(3000);
        for tokenizer in tokenizers() {
            let whole = encode(&tokenizer, &text, true).unwrap();
            for piece in [997, 4096, 1 << 20] {
                assert_eq!(
                    tokenize_document(&tokenizer, &text, piece).unwrap(),
                    whole,
                    "piece {piece}"
                );
            }
        }
    }

    #[test]
    fn cuts_follow_line_breaks_before_text() {
        let text = "aaaa\n\nbbbb\n cccc\ndddd\neeee";
        assert_eq!(cut_points(text, 3), vec![6, 17, 22]);
        assert!(cut_points("no line breaks at all", 3).is_empty());
    }
}
