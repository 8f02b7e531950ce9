//! The training loss of a micro-batch, as a tensor to differentiate.

use crate::eval::lm::CausalLm;
use candle_core::{Device, Result, Tensor, D};

/// The mean cross-entropy of every window's positions `0..context - 1`
/// predicting its tokens `1..context`: what transformers' `labels = ids`
/// gives. The whole window goes through the model (RoPE scalings that
/// depend on the length see the same length as in transformers), but the
/// last position's logits, which predict nothing, are never made.
pub fn mean_loss(model: &CausalLm, windows: &[&[u32]], device: &Device) -> Result<Tensor> {
    let (batch, context) = (windows.len(), windows[0].len());
    let ids: Vec<u32> = windows.iter().flat_map(|w| w.iter().copied()).collect();
    let targets: Vec<u32> = windows.iter().flat_map(|w| w[1..].iter().copied()).collect();
    let ids = Tensor::from_vec(ids, (batch, context), device)?;
    let hidden = model.hidden(&ids, &vec![context; batch])?;
    let rows = batch * (context - 1);
    let hidden = hidden.narrow(1, 0, context - 1)?.reshape((rows, ()))?;
    let mut logits = model.logits(&hidden)?;
    if let Some(cap) = model.config().final_softcap {
        logits = ((logits / cap)?.tanh()? * cap)?;
    }
    let targets = Tensor::from_vec(targets, (rows, 1), device)?;
    (log_sum_exp(&logits)? - logits.gather(&targets, 1)?)?.mean_all()
}

/// `log sum exp` of each row, `[n, 1]`, stable: the row's maximum is taken
/// out first. The maximum cancels from the value, so its gradient (which
/// would only cancel too) is not traced.
fn log_sum_exp(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let sum = logits.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?;
    sum.log()? + max
}
