//! Training windows and the order they are drawn in.

use crate::synth::Rng;

/// The documents' ids as one stream, cut into consecutive windows of
/// `context` tokens; a trailing partial window is dropped (as the
/// Hugging Face `group_texts` recipe does), so every target is scored once.
pub fn windows(documents: &[Vec<u32>], context: usize) -> Result<Vec<Vec<u32>>, String> {
    if context < 2 {
        return Err(format!(
            "a window of {context} tokens has nothing to predict; it needs at least 2"
        ));
    }
    let stream: Vec<u32> = documents.iter().flatten().copied().collect();
    if stream.len() < context {
        return Err(format!(
            "the text has {} tokens, fewer than one window of {context}",
            stream.len()
        ));
    }
    Ok(stream.chunks_exact(context).map(<[u32]>::to_vec).collect())
}

/// Window indices in a seeded order: a fresh permutation of all windows
/// each epoch, so every window is seen once before any is seen twice.
pub struct Order {
    count: usize,
    rng: Rng,
    epoch: Vec<usize>,
}

impl Order {
    pub fn new(count: usize, seed: u64) -> Order {
        Order {
            count,
            rng: Rng::new(seed),
            epoch: Vec::new(),
        }
    }

    /// A permutation of `0..count` by Fisher-Yates, drawn without modulo
    /// bias (the high half of a 128-bit product), kept reversed so that
    /// `pop` yields it front first.
    fn shuffle(&mut self) {
        let mut order: Vec<usize> = (0..self.count).collect();
        for i in (1..order.len()).rev() {
            let j = ((self.rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
            order.swap(i, j);
        }
        order.reverse();
        self.epoch = order;
    }
}

impl Iterator for Order {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.count == 0 {
            return None;
        }
        if self.epoch.is_empty() {
            self.shuffle();
        }
        self.epoch.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cut_the_joined_stream_and_drop_the_tail() {
        let docs = vec![vec![1, 2, 3], vec![], vec![4, 5, 6, 7, 8]];
        assert_eq!(windows(&docs, 3).unwrap(), vec![vec![1, 2, 3], vec![4, 5, 6]]);
        assert_eq!(windows(&docs, 8).unwrap().len(), 1);
        assert!(windows(&docs, 9).unwrap_err().contains("has 8 tokens"));
        assert!(windows(&docs, 1).is_err());
        assert!(windows(&[], 2).is_err());
    }

    #[test]
    fn each_epoch_is_a_permutation_and_the_seed_fixes_it() {
        let drawn: Vec<usize> = Order::new(10, 7).take(30).collect();
        for epoch in drawn.chunks(10) {
            let mut sorted = epoch.to_vec();
            sorted.sort();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(drawn[..10], drawn[10..20]);
        assert_eq!(drawn, Order::new(10, 7).take(30).collect::<Vec<_>>());
        assert_ne!(drawn, Order::new(10, 8).take(30).collect::<Vec<_>>());
        assert_eq!(Order::new(0, 1).next(), None);
    }
}
