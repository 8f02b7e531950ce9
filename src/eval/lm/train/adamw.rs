//! The optimizer as PyTorch and transformers run it: a linear schedule
//! with warmup, clipping by the global gradient norm, and AdamW. The
//! updates are tensor operations in f32, so they run on the model's device.

use candle_core::{Result, Tensor, Var};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// transformers' `get_linear_schedule_with_warmup`: the factor of the
/// learning rate at step `step` (0-based), rising from 0 over `warmup`
/// steps, then falling linearly to 0 at `steps`.
pub fn schedule(step: usize, steps: usize, warmup: usize) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    let left = steps as f64 - step as f64;
    (left / (steps.saturating_sub(warmup)).max(1) as f64).max(0.0)
}

/// `torch.nn.utils.clip_grad_norm_`: every gradient times
/// `min(1, clip / (norm + 1e-6))`, `norm` the L2 norm of all of them
/// together (summed in f64); returns that norm.
pub fn clip(grads: &mut [Option<Tensor>], clip: f64) -> Result<f64> {
    let mut squares = 0f64;
    for g in grads.iter().flatten() {
        squares += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = squares.sqrt();
    let factor = (clip / (norm + 1e-6)).min(1.0);
    for g in grads.iter_mut().flatten() {
        *g = (&*g * factor)?;
    }
    Ok(norm)
}

/// AdamW's two moments for each parameter.
pub struct AdamW {
    moments: Vec<(Tensor, Tensor)>,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(params: &[Var], weight_decay: f64) -> Result<AdamW> {
        let zeros = |p: &Var| p.as_tensor().zeros_like();
        let moments = params
            .iter()
            .map(|p| Ok((zeros(p)?, zeros(p)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW { moments, weight_decay })
    }

    /// One update at step `step` (0-based) with learning rate `lr`. A
    /// parameter without a gradient is left alone, as PyTorch leaves one
    /// whose `.grad` is `None` (no decay either).
    pub fn update(&mut self, params: &[Var], grads: &[Option<Tensor>], lr: f64, step: usize) -> Result<()> {
        let t = step as i32 + 1;
        let (bc1, bc2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for ((p, g), (m, v)) in params.iter().zip(grads).zip(&mut self.moments) {
            let Some(g) = g else { continue };
            *m = ((&*m * BETA1)? + (g * (1.0 - BETA1))?)?;
            *v = ((&*v * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let denom = ((v.sqrt()? / bc2.sqrt())? + EPS)?;
            let decayed = (p.as_detached_tensor() * (1.0 - lr * self.weight_decay))?;
            let next = (decayed - (m.div(&denom)? * (lr / bc1))?)?;
            p.set(&next)?;
        }
        Ok(())
    }
}
