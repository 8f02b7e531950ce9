//! Causal language models of the Llama family: their configs, a forward
//! pass of our own, evaluation text and perplexity.

pub mod config;
pub mod model;
pub mod score;
pub mod text;

pub use config::{Family, LmConfig};
pub use model::CausalLm;
pub use score::{token_losses, Window, Windowing};

use std::sync::Arc;

/// Token ids to score and how to cut them: what `perplexity` and `loss`
/// evaluate a language model on.
#[derive(Clone, Debug)]
pub struct TextTask {
    /// The file, for messages.
    pub path: std::path::PathBuf,
    pub documents: Arc<Vec<Vec<u32>>>,
    pub windowing: Windowing,
}

impl TextTask {
    /// Tokens that get a loss.
    pub fn scored_tokens(&self) -> usize {
        let windows: Vec<Window> = self
            .documents
            .iter()
            .enumerate()
            .flat_map(|(d, tokens)| score::windows(d, tokens.len(), self.windowing))
            .collect();
        score::scored_tokens(&windows)
    }

    pub fn window_count(&self) -> usize {
        self.documents
            .iter()
            .enumerate()
            .map(|(d, tokens)| score::windows(d, tokens.len(), self.windowing).len())
            .sum()
    }
}
