//! Decoder-only causal language models (Llama, Mistral, Qwen, Gemma,
//! Phi-3, GPT-2, GPT-NeoX, OLMo 2): their configs, a forward pass of our
//! own over shared parts, evaluation text and perplexity.

pub mod arch;
mod attend;
pub mod config;
pub mod dense;
pub mod keys;
pub mod model;
#[cfg(target_arch = "x86_64")]
mod packed;
pub mod parts;
pub mod rope;
pub mod score;
pub(crate) mod simd;
pub mod text;
pub mod train;

pub use config::{Family, LmConfig};
pub use dense::Kernels;
pub use model::CausalLm;
pub use score::{token_losses, window_losses, Window, Windowing};

use std::sync::Arc;

/// Token ids to score and how to cut them: what `perplexity` and `loss`
/// evaluate a language model on.
#[derive(Clone, Debug)]
pub struct TextTask {
    /// The file, for messages.
    pub path: std::path::PathBuf,
    pub documents: Arc<Vec<Vec<u32>>>,
    pub windowing: Windowing,
    pub windows: Vec<Window>,
}

impl TextTask {
    pub fn new(path: std::path::PathBuf, documents: Arc<Vec<Vec<u32>>>, windowing: Windowing) -> TextTask {
        let windows = score::all_windows(&documents, windowing);
        TextTask {
            path,
            documents,
            windowing,
            windows,
        }
    }

    /// Tokens that get a loss.
    pub fn scored_tokens(&self) -> usize {
        score::scored_tokens(&self.windows)
    }
}
