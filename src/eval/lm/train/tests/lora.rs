//! LoRA: the start is the model, the delta has the rank asked for.

use super::*;
use candle_core::Device;

/// The rank of a matrix by Gaussian elimination with full pivoting in
/// f64, pivots under `tolerance` times the largest entry counted as zero.
fn rank(rows: usize, cols: usize, mut m: Vec<f64>, tolerance: f64) -> usize {
    let largest = m.iter().fold(0f64, |a, v| a.max(v.abs()));
    let mut rank = 0;
    let mut live: Vec<usize> = (0..rows).collect();
    while !live.is_empty() {
        let (mut best, mut at) = (0f64, (0, 0));
        for (k, r) in live.iter().enumerate() {
            for c in 0..cols {
                if m[r * cols + c].abs() > best {
                    (best, at) = (m[r * cols + c].abs(), (k, c));
                }
            }
        }
        if best <= tolerance * largest {
            break;
        }
        let pivot = live.swap_remove(at.0);
        for r in &live {
            let factor = m[r * cols + at.1] / m[pivot * cols + at.1];
            for c in 0..cols {
                m[r * cols + c] -= factor * m[pivot * cols + c];
            }
        }
        rank += 1;
    }
    rank
}

/// With `B = 0` the first loss is the model's own; after training, each
/// adapted weight moved by a delta of rank `R` (in the stored layout for
/// GPT-2's `Conv1D`), and every other tensor is unchanged to the bit.
#[test]
fn lora_starts_at_the_model_and_moves_weights_by_low_rank_deltas() {
    for (name, modules) in [("llama3", "*q_proj*"), ("llama3", "*proj.weight"), ("gpt2", "*")] {
        let (config, tensors) = family(name);
        let mut trainer = Trainer::new(&config, &tensors, &lora_args(2, modules), &Device::Cpu).unwrap();
        let windows = random_windows(24, 8, config.vocab_size, 5);
        let batches: Vec<Vec<&[u32]>> = windows.chunks(2).map(slices).collect();
        let first = trainer.step(&batches[..2]).unwrap();
        let base =
            (reference_loss(&config, &tensors, &batches[0]) + reference_loss(&config, &tensors, &batches[1])) / 2.0;
        assert!((first - base).abs() < 1e-5 * base, "{name}: {first} vs {base}");
        for pair in batches[2..].chunks(2) {
            trainer.step(pair).unwrap();
        }
        let trained = trainer.weights().unwrap();
        let mut adapted = 0;
        for (tensor, before) in &tensors {
            let after = &trained[tensor];
            let (old, new) = (values(before), values(after));
            let is_target = crate::graph::spec_glob_match(modules, tensor)
                && before.rank() == 2
                && (tensor.contains(".h.") || tensor.contains("layers"));
            if !is_target {
                assert_eq!(old, new, "{name}: {tensor} changed");
                continue;
            }
            adapted += 1;
            let delta: Vec<f64> = new.iter().zip(&old).map(|(a, b)| a - b).collect();
            let (rows, cols) = before.dims2().unwrap();
            assert_eq!(rank(rows, cols, delta, 1e-3), 2, "{name}: {tensor}");
        }
        assert!(adapted > 0, "{name}: nothing adapted by {modules}");
    }
}
