//! Gradients against central differences of the reference loss.

use super::*;
use crate::synth::Rng;
use candle_core::Device;

/// For every trained tensor: the derivative of the reference loss along a
/// direction (half the gradient, half random) by central differences,
/// against the gradient's product with it.
fn check_gradients(name: &str, config: &LmConfig, tensors: &Tensors) {
    let windows = random_windows(2, 12, config.vocab_size, 3);
    let args = TrainArgs {
        batch: 2,
        accumulate: 1,
        context: 12,
        ..args(1)
    };
    let trainer = Trainer::new(config, tensors, &args, &Device::Cpu).unwrap();
    let (loss, grads) = trainer.gradients(&[slices(&windows)]).unwrap();
    let reference = reference_loss(config, tensors, &slices(&windows));
    assert!(
        (loss - reference).abs() < 1e-5 * reference,
        "{name}: loss {loss} vs {reference}"
    );
    let mut rng = Rng::new(9);
    for (tensor, grad) in trainer.trained_names().iter().zip(grads) {
        let g = values(&grad.unwrap_or_else(|| panic!("{name}: no gradient for {tensor}")));
        let random: Vec<f64> = rng.normals(g.len(), 1.0).iter().map(|v| *v as f64).collect();
        let (gn, rn) = (norm(&g).max(1e-12), norm(&random));
        let direction: Vec<f64> = g.iter().zip(&random).map(|(g, r)| g / gn + r / rn).collect();
        let step = 1e-2 / norm(&direction);
        let at = |sign: f64| {
            let base = values(&tensors[tensor]);
            let moved: Vec<f64> = base.iter().zip(&direction).map(|(b, d)| b + sign * step * d).collect();
            let mut changed = tensors.clone();
            changed.insert(tensor.clone(), tensor_like(&moved, &tensors[tensor]));
            reference_loss(config, &changed, &slices(&windows))
        };
        let numeric = (at(1.0) - at(-1.0)) / (2.0 * step);
        let analytic: f64 = g.iter().zip(&direction).map(|(g, d)| g * d).sum();
        let error = (numeric - analytic).abs();
        assert!(
            error < 1e-2 * gn + 1e-4,
            "{name} {tensor}: {numeric} by differences, {analytic} by the gradient (|g| {gn})"
        );
    }
}

#[test]
fn gradients_equal_central_differences_for_a_random_llama() {
    let (config, tensors) = tiny_llama(48, 32, 2, 1);
    check_gradients("llama", &config, &tensors);
}

/// Every family's peculiarities: tied heads, biases, `Conv1D`, learned
/// positions, LayerNorm, stacked and per-head projections, partial and
/// scaled RoPE, query and key norms, post norms, soft caps, sliding
/// windows, parallel residuals.
#[test]
fn gradients_equal_central_differences_for_every_family() {
    for name in [
        "llama3", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "gpt2", "pythia", "olmo2",
    ] {
        let (config, tensors) = family(name);
        check_gradients(name, &config, &tensors);
    }
}
