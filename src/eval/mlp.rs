//! The built-in MLP classifier.
//!
//! A folder's `config.json` describes it:
//!
//! ```json
//! {"architecture": "mlp", "layers": [64, 128, 10], "activation": "relu"}
//! ```
//!
//! `layers` are the widths from input to output (here one hidden layer of
//! 128); `activation` is `relu`, `tanh` or `gelu`, applied after every layer
//! but the last. Layer `i` maps width `layers[i]` to `layers[i + 1]` with the
//! tensors `layers.{i}.weight` (shape `[out, in]`, as PyTorch's `Linear`
//! stores it) and `layers.{i}.bias` (`[out]`). The outputs are class logits.

use super::data::Dataset;
use candle_core::{DType, Device, Module, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Tanh,
    Gelu,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    pub architecture: String,
    pub layers: Vec<usize>,
    pub activation: Activation,
}

impl MlpConfig {
    /// Checks a parsed `config.json`.
    pub fn from_json(json: serde_json::Value) -> Result<MlpConfig, String> {
        let config: MlpConfig = serde_json::from_value(json).map_err(|e| format!("not an MLP config: {e}"))?;
        if config.architecture != "mlp" {
            return Err(format!("architecture {:?} is not \"mlp\"", config.architecture));
        }
        if config.layers.len() < 2 || config.layers.contains(&0) {
            return Err("`layers` needs at least two widths, none zero".into());
        }
        Ok(config)
    }

    pub fn classes(&self) -> usize {
        self.layers[self.layers.len() - 1]
    }

    /// The tensors the weights must hold: names and shapes.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (i, pair) in self.layers.windows(2).enumerate() {
            out.push((format!("layers.{i}.weight"), vec![pair[1], pair[0]]));
            out.push((format!("layers.{i}.bias"), vec![pair[1]]));
        }
        out
    }
}

/// An MLP built from materialised tensors.
pub struct Mlp {
    layers: Vec<candle_nn::Linear>,
    activation: Activation,
}

impl Mlp {
    pub fn new(config: &MlpConfig, tensors: &HashMap<String, Tensor>) -> candle_core::Result<Mlp> {
        let get = |name: &str| {
            tensors
                .get(name)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor `{name}`")))
        };
        let layers = (0..config.layers.len() - 1)
            .map(|i| {
                Ok(candle_nn::Linear::new(
                    get(&format!("layers.{i}.weight"))?,
                    Some(get(&format!("layers.{i}.bias"))?),
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Mlp {
            layers,
            activation: config.activation,
        })
    }

    /// Logits for a `[rows, inputs]` batch.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i + 1 < self.layers.len() {
                x = match self.activation {
                    Activation::Relu => x.relu()?,
                    Activation::Tanh => x.tanh()?,
                    Activation::Gelu => x.gelu_erf()?,
                };
            }
        }
        Ok(x)
    }
}

/// Accuracy and mean cross-entropy of a model on a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub accuracy: f64,
    pub loss: f64,
}

/// Rows per forward pass.
const BATCH: usize = 1024;

/// Scores `mlp` on `data`: logits from candle in batches, then the softmax
/// and both averages in f64.
pub fn evaluate(mlp: &Mlp, data: &Dataset, device: &Device) -> candle_core::Result<Scores> {
    let (mut correct, mut loss) = (0usize, 0.0f64);
    for start in (0..data.len()).step_by(BATCH) {
        let rows = BATCH.min(data.len() - start);
        let x = batch(data, start, rows, device)?;
        let logits = mlp.forward(&x)?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        for (row, label) in logits.iter().zip(&data.labels[start..start + rows]) {
            let (predicted, row_loss) = score_row(row, *label as usize);
            correct += usize::from(predicted == *label as usize);
            loss += row_loss;
        }
    }
    let n = data.len() as f64;
    Ok(Scores {
        accuracy: correct as f64 / n,
        loss: loss / n,
    })
}

/// Rows `start..start + rows` as a `[rows, width]` tensor.
pub fn batch(data: &Dataset, start: usize, rows: usize, device: &Device) -> candle_core::Result<Tensor> {
    let values = data.features[start * data.width..(start + rows) * data.width].to_vec();
    Tensor::from_vec(values, (rows, data.width), device)
}

/// The predicted class (the first largest logit) and the cross-entropy of
/// the true class, `logsumexp(z) - z[label]`.
fn score_row(logits: &[f64], label: usize) -> (usize, f64) {
    let (mut best, mut max) = (0, f64::NEG_INFINITY);
    for (i, z) in logits.iter().enumerate() {
        if *z > max {
            (best, max) = (i, *z);
        }
    }
    let sum: f64 = logits.iter().map(|z| (z - max).exp()).sum();
    let true_logit = logits.get(label).copied().unwrap_or(f64::NEG_INFINITY);
    (best, max + sum.ln() - true_logit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_rows_like_softmax_cross_entropy() {
        let (predicted, loss) = score_row(&[1.0, 3.0, 2.0], 2);
        assert_eq!(predicted, 1);
        let expected = -((2.0f64).exp() / (1.0f64.exp() + 3.0f64.exp() + 2.0f64.exp())).ln();
        assert!((loss - expected).abs() < 1e-12);
    }

    #[test]
    fn config_lists_pytorch_shaped_tensors() {
        let config = MlpConfig {
            architecture: "mlp".into(),
            layers: vec![4, 3, 2],
            activation: Activation::Relu,
        };
        let names: Vec<_> = config.tensors();
        assert_eq!(names[0], ("layers.0.weight".to_string(), vec![3, 4]));
        assert_eq!(names[3], ("layers.1.bias".to_string(), vec![2]));
    }
}
