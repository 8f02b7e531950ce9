//! Training the built-in MLP: fresh weights (`init`) and fine-tuning
//! (`finetune`) with AdamW. Deterministic for a seed and a thread count.

use super::data::Dataset;
use super::mlp::{Mlp, MlpConfig};
use crate::synth::Rng;
use candle_core::{Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use std::collections::HashMap;

/// Named tensors in memory: name, shape, values.
pub type Weights = Vec<(String, Vec<usize>, Vec<f32>)>;

/// PyTorch's default initialisation of `Linear` layers: weights and biases
/// uniform in `[-1/sqrt(in), 1/sqrt(in)]`, drawn layer by layer, weight
/// before bias, from one seeded generator.
pub fn init_weights(config: &MlpConfig, seed: u64) -> Weights {
    let mut rng = Rng::new(seed);
    config
        .tensors()
        .into_iter()
        .map(|(name, shape)| {
            let fan_in = config.layers[layer_of(&name)] as f64;
            let bound = 1.0 / fan_in.sqrt();
            let count: usize = shape.iter().product();
            let values = (0..count)
                .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                .collect();
            (name, shape, values)
        })
        .collect()
}

/// `layers.{i}.weight` -> i.
fn layer_of(name: &str) -> usize {
    name.split('.').nth(1).and_then(|i| i.parse().ok()).unwrap_or(0)
}

/// The arguments of `finetune` that shape training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinetuneArgs {
    pub steps: usize,
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
}

/// A fine-tuned copy of `weights`: `steps` AdamW steps (PyTorch's defaults
/// but the learning rate: betas 0.9/0.999, eps 1e-8, weight decay 0.01) on
/// mean cross-entropy over minibatches of `batch` rows, drawn without
/// replacement from a seeded shuffle, reshuffled every epoch (whose last
/// batch is short when `batch` does not divide the rows). `tick` is called
/// after every step.
pub fn finetune(
    config: &MlpConfig,
    weights: &Weights,
    data: &Dataset,
    args: FinetuneArgs,
    tick: &dyn Fn(),
) -> candle_core::Result<Weights> {
    let device = Device::Cpu;
    let vars: Vec<(String, Var)> = weights
        .iter()
        .map(|(name, shape, values)| {
            Ok((
                name.clone(),
                Var::from_tensor(&Tensor::from_vec(values.clone(), shape.clone(), &device)?)?,
            ))
        })
        .collect::<candle_core::Result<_>>()?;
    let params = ParamsAdamW {
        lr: args.lr,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(vars.iter().map(|(_, v)| v.clone()).collect(), params)?;
    let mut order = Batches::new(data.len(), args.seed);
    for _ in 0..args.steps {
        let tensors: HashMap<String, Tensor> = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        let model = Mlp::new(config, &tensors)?;
        let rows = order.next(args.batch.max(1));
        let (x, y) = gather(data, &rows, &device)?;
        let loss = candle_nn::loss::cross_entropy(&model.forward(&x)?, &y)?;
        optimizer.backward_step(&loss)?;
        tick();
    }
    vars.iter()
        .map(|(name, var)| {
            let tensor = var.as_tensor();
            Ok((
                name.clone(),
                tensor.dims().to_vec(),
                tensor.flatten_all()?.to_vec1::<f32>()?,
            ))
        })
        .collect()
}

/// Rows `rows` of `data` as inputs and labels.
fn gather(data: &Dataset, rows: &[usize], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let mut features = Vec::with_capacity(rows.len() * data.width);
    for row in rows {
        features.extend_from_slice(&data.features[row * data.width..(row + 1) * data.width]);
    }
    let x = Tensor::from_vec(features, (rows.len(), data.width), device)?;
    let y = Tensor::from_vec(
        rows.iter().map(|r| data.labels[*r]).collect::<Vec<u32>>(),
        rows.len(),
        device,
    )?;
    Ok((x, y))
}

/// Minibatches drawn without replacement from a seeded shuffle, epoch by
/// epoch: a batch never spans two epochs, so an epoch's last batch is short
/// when `size` does not divide the rows (as PyTorch's `DataLoader`).
struct Batches {
    rng: Rng,
    order: Vec<usize>,
    next: usize,
}

impl Batches {
    fn new(len: usize, seed: u64) -> Batches {
        Batches {
            rng: Rng::new(seed),
            order: (0..len).collect(),
            next: len,
        }
    }

    fn next(&mut self, size: usize) -> Vec<usize> {
        self.reshuffle_if_done();
        let end = self.order.len().min(self.next + size);
        let rows = self.order[self.next..end].to_vec();
        self.next = end;
        rows
    }

    /// Fisher-Yates, once every row has been used.
    fn reshuffle_if_done(&mut self) {
        if self.next < self.order.len() {
            return;
        }
        for i in (1..self.order.len()).rev() {
            let j = (self.rng.next_u64() % (i as u64 + 1)) as usize;
            self.order.swap(i, j);
        }
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every epoch uses each row exactly once, in batches of `size` but a
    /// short last one, and reshuffles.
    #[test]
    fn batches_cover_each_epoch_once() {
        for (len, size) in [(5, 3), (6, 3), (7, 7), (4, 10), (9, 1)] {
            let mut batches = Batches::new(len, 11);
            let mut epochs = Vec::new();
            for _ in 0..4 {
                let mut epoch = Vec::new();
                while epoch.len() < len {
                    let rows = batches.next(size);
                    assert_eq!(rows.len(), size.min(len - epoch.len()), "{len} rows, batch {size}");
                    epoch.extend(rows);
                }
                let mut sorted = epoch.clone();
                sorted.sort();
                assert_eq!(sorted, (0..len).collect::<Vec<_>>(), "{len} rows, batch {size}");
                epochs.push(epoch);
            }
            if len > 3 {
                assert!(epochs.windows(2).any(|w| w[0] != w[1]), "never reshuffled");
            }
        }
    }
}
