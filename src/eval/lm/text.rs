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
        .map(|d| {
            tokenizer
                .encode(d.as_str(), true)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| format!("tokenizing failed: {e}"))
        })
        .collect()
}
