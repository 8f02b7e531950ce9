//! Scoring text with a causal LM: documents cut into windows as
//! transformers' perplexity guide does, windows batched, and the negative
//! log-likelihood of every token summed in f64.

use super::model::{target_log_probs, CausalLm};
use candle_core::{Device, Result, Tensor};

/// How text is cut and batched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Windowing {
    /// Tokens per window.
    pub context: usize,
    /// How far each window starts after the previous one (at most `context`).
    pub stride: usize,
    /// Windows per forward pass.
    pub batch: usize,
}

/// Tokens `begin..end` of document `doc` go through the model; those from
/// `first_scored` on are scored, each predicted from the tokens before it
/// in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub doc: usize,
    pub begin: usize,
    pub end: usize,
    pub first_scored: usize,
}

/// The windows of a document of `len` tokens, as transformers' "Perplexity
/// of fixed-length models" guide cuts them: a window of `context` tokens
/// every `stride` tokens, each scoring the tokens the previous one did not
/// reach, from within the window. No token is scored twice. With
/// `stride == context` the windows are disjoint and the first token of each
/// has nothing before it in its window, so it goes unscored; with a smaller
/// stride every token but the document's first is scored.
pub fn windows(doc: usize, len: usize, shape: Windowing) -> Vec<Window> {
    let mut out = Vec::new();
    let mut scored_up_to = 0;
    let mut begin = 0;
    while begin < len {
        let end = (begin + shape.context).min(len);
        let first_scored = scored_up_to.max(begin + 1);
        if first_scored < end {
            out.push(Window {
                doc,
                begin,
                end,
                first_scored,
            });
        }
        scored_up_to = end;
        if end == len {
            break;
        }
        begin += shape.stride;
    }
    out
}

/// The number of tokens `windows` scores.
pub fn scored_tokens(windows: &[Window]) -> usize {
    windows.iter().map(|w| w.end - w.first_scored).sum()
}

/// The windows of every document, in order.
pub fn all_windows(documents: &[Vec<u32>], shape: Windowing) -> Vec<Window> {
    let per_document = documents.iter().enumerate();
    per_document
        .flat_map(|(d, tokens)| windows(d, tokens.len(), shape))
        .collect()
}

/// The negative log-likelihood of every scored token, in window order.
/// `tick` is called after each batch with the number of windows done.
pub fn token_losses(
    model: &CausalLm,
    documents: &[Vec<u32>],
    shape: Windowing,
    device: &Device,
    tick: &dyn Fn(usize),
) -> Result<Vec<f64>> {
    window_losses(
        model,
        documents,
        &all_windows(documents, shape),
        shape.batch,
        device,
        tick,
    )
}

/// `token_losses` over windows already cut, `batch` at a time.
pub fn window_losses(
    model: &CausalLm,
    documents: &[Vec<u32>],
    windows: &[Window],
    batch: usize,
    device: &Device,
    tick: &dyn Fn(usize),
) -> Result<Vec<f64>> {
    let mut losses = Vec::with_capacity(scored_tokens(windows));
    for chunk in windows.chunks(batch.max(1)) {
        losses.extend(batch_losses(model, documents, chunk, device)?);
        tick(chunk.len());
    }
    Ok(losses)
}

/// One forward pass over a batch of windows, right-padded to the longest:
/// under a causal mask the padding is never seen by the real tokens.
fn batch_losses(model: &CausalLm, documents: &[Vec<u32>], batch: &[Window], device: &Device) -> Result<Vec<f64>> {
    let longest = batch.iter().map(|w| w.end - w.begin).max().unwrap_or(0);
    let mut ids = vec![0u32; batch.len() * longest];
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (b, w) in batch.iter().enumerate() {
        let tokens = &documents[w.doc][w.begin..w.end];
        ids[b * longest..b * longest + tokens.len()].copy_from_slice(tokens);
        for (offset, token) in tokens.iter().enumerate().skip(w.first_scored - w.begin) {
            // The logits at the previous position predict this token.
            rows.push((b * longest + offset - 1) as u32);
            targets.push(*token);
        }
    }
    let ids = Tensor::from_vec(ids, (batch.len(), longest), device)?;
    let lengths: Vec<usize> = batch.iter().map(|w| w.end - w.begin).collect();
    let hidden = model.hidden(&ids, &lengths)?;
    let hidden = hidden.reshape((batch.len() * longest, ()))?;
    let rows = Tensor::from_vec(rows, targets.len(), device)?;
    let picked = hidden.index_select(&rows, 0)?;
    let log_probs = target_log_probs(model, &picked, &targets)?;
    Ok(log_probs.into_iter().map(|l| -l).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(context: usize, stride: usize) -> Windowing {
        Windowing {
            context,
            stride,
            batch: 1,
        }
    }

    /// Overlapping windows score every token but the first once; disjoint
    /// ones skip each window's first token. Windows hold at most `context`.
    #[test]
    fn windows_score_each_token_at_most_once() {
        for len in [0, 1, 2, 5, 63, 64, 65, 200] {
            for (context, stride) in [(64, 64), (64, 24), (10, 1), (7, 7), (7, 3)] {
                let ws = windows(0, len, shape(context, stride));
                let mut scored: Vec<usize> = ws.iter().flat_map(|w| w.first_scored..w.end).collect();
                scored.sort();
                let expected: Vec<usize> = (1..len).filter(|t| stride < context || t % context != 0).collect();
                assert_eq!(scored, expected, "len {len}, {context}/{stride}");
                for w in &ws {
                    assert!(w.end - w.begin <= context && w.begin < w.first_scored);
                }
            }
        }
    }

    #[test]
    fn overlapping_windows_give_later_tokens_more_context() {
        let ws = windows(0, 10, shape(6, 2));
        let spans: Vec<(usize, usize, usize)> = ws.iter().map(|w| (w.begin, w.end, w.first_scored)).collect();
        assert_eq!(spans, vec![(0, 6, 1), (2, 8, 6), (4, 10, 8)]);
    }
}
