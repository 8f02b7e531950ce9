//! One optimizer step after another on a model built, each step, from the
//! trained tensors by the same code that evaluates it: with
//! `Kernels::Differentiable` every operation of the forward pass has a
//! backward, and fusions (stacked projections, transposed `Conv1D`s, a
//! tied head) are tensor operations on the trained tensors, so gradients
//! reach them through the fusions.

use super::adamw::{self, AdamW};
use super::lora::{self, Adapter};
use super::{loss, TrainArgs};
use crate::eval::lm::{CausalLm, Kernels, LmConfig};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;

fn text(e: candle_core::Error) -> String {
    e.to_string()
}

pub struct Trainer {
    config: LmConfig,
    args: TrainArgs,
    device: Device,
    /// Every tensor of the checkpoint, floats in f32; in full fine-tuning
    /// the trained ones are the variables themselves.
    tensors: HashMap<String, Tensor>,
    /// What the optimizer changes: the model's weights, or the adapters'
    /// `A` and `B` in turn; and their names.
    vars: Vec<Var>,
    names: Vec<String>,
    adapters: Vec<Adapter>,
    adam: AdamW,
    /// The index of the next step.
    pub step: usize,
}

impl Trainer {
    /// `weights`: the checkpoint's tensors by name (any float dtype;
    /// converted to f32), as `CausalLm::new` takes them.
    pub fn new(
        config: &LmConfig,
        weights: &HashMap<String, Tensor>,
        args: &TrainArgs,
        device: &Device,
    ) -> Result<Trainer, String> {
        super::check(config, args)?;
        check_shapes(config, weights)?;
        let mut tensors = HashMap::new();
        for (name, t) in weights {
            let t = match t.dtype().is_float() {
                true => t.to_dtype(DType::F32),
                false => Ok(t.clone()),
            };
            tensors.insert(name.clone(), t.and_then(|t| t.to_device(device)).map_err(text)?);
        }
        let (vars, adapters) = match &args.lora {
            None => (make_vars(config, &mut tensors)?, Vec::new()),
            Some(l) => {
                let adapters = lora::adapters(config, &tensors, l, args.seed, device)?;
                let vars = adapters.iter().flat_map(|a| {
                    let (name_a, name_b) = (format!("{}.lora_A", a.name), format!("{}.lora_B", a.name));
                    [(name_a, a.a.clone()), (name_b, a.b.clone())]
                });
                (vars.collect(), adapters)
            }
        };
        let (names, vars): (Vec<String>, Vec<Var>) = vars.into_iter().unzip();
        let adam = AdamW::new(&vars, args.weight_decay).map_err(text)?;
        Ok(Trainer {
            config: config.clone(),
            args: args.clone(),
            device: device.clone(),
            tensors,
            vars,
            names,
            adapters,
            adam,
            step: 0,
        })
    }

    /// Replaces the initial LoRA `A` matrices (for parity with PEFT): name
    /// `"<tensor name>.lora_A"` to `[R, in]`; only before the first step.
    pub fn set_adapters(&mut self, a: &HashMap<String, Tensor>) -> Result<(), String> {
        if self.adapters.is_empty() || self.step > 0 {
            return Err("adapters can be set only for LoRA, before the first step".into());
        }
        if let Some(extra) = a
            .keys()
            .find(|k| !self.adapters.iter().any(|x| **k == format!("{}.lora_A", x.name)))
        {
            return Err(format!("`{extra}` names no adapted weight"));
        }
        for adapter in &self.adapters {
            let key = format!("{}.lora_A", adapter.name);
            let given = a.get(&key).ok_or_else(|| format!("`{key}` is missing"))?;
            if given.dims() != adapter.a.dims() {
                return Err(format!("`{key}` is {:?}, not {:?}", given.dims(), adapter.a.dims()));
            }
            let given = given.to_dtype(DType::F32).and_then(|t| t.to_device(&self.device));
            adapter.a.set(&given.map_err(text)?).map_err(text)?;
        }
        Ok(())
    }

    /// One optimizer step, at step index `self.step`, on `micro_batches`
    /// (each a batch of windows of `context` tokens): their gradients
    /// averaged, clipped, and AdamW's update. Returns the step's loss, the
    /// mean of the micro-batches' mean losses.
    pub fn step(&mut self, micro_batches: &[Vec<&[u32]>]) -> Result<f64, String> {
        let (loss, mut grads) = self.gradients(micro_batches)?;
        if self.args.clip > 0.0 {
            adamw::clip(&mut grads, self.args.clip).map_err(text)?;
        }
        let lr = self.args.lr * adamw::schedule(self.step, self.args.steps, self.args.warmup);
        self.adam.update(&self.vars, &grads, lr, self.step).map_err(text)?;
        self.step += 1;
        Ok(loss)
    }

    /// The step's loss and each trained tensor's gradient: the mean of the
    /// micro-batches' (`None` where no path leads to the tensor). Each
    /// micro-batch's loss is divided by their count before its backward
    /// pass, as transformers' `Trainer` does.
    pub(super) fn gradients(&self, micro_batches: &[Vec<&[u32]>]) -> Result<(f64, Vec<Option<Tensor>>), String> {
        self.check_batches(micro_batches)?;
        let model = CausalLm::with_kernels(&self.config, &self.effective()?, Kernels::Differentiable).map_err(text)?;
        let count = micro_batches.len() as f64;
        let mut grads: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let mut total = 0.0;
        for windows in micro_batches {
            let loss = loss::mean_loss(&model, windows, &self.device).map_err(text)?;
            total += loss.to_scalar::<f32>().map_err(text)? as f64;
            let store = (loss / count).and_then(|l| l.backward()).map_err(text)?;
            for (sum, var) in grads.iter_mut().zip(&self.vars) {
                let Some(g) = store.get(var.as_tensor()) else { continue };
                *sum = Some(match sum.take() {
                    Some(s) => (s + g).map_err(text)?,
                    None => g.clone(),
                });
            }
        }
        Ok((total / count, grads))
    }

    /// The names of the trained tensors, in the order of `gradients`: the
    /// checkpoint's, or `"<name>.lora_A"` and `"<name>.lora_B"`.
    pub fn trained_names(&self) -> &[String] {
        &self.names
    }

    /// The trained tensors' current values, in the order of `gradients`.
    #[cfg(test)]
    pub(super) fn trained_values(&self) -> Vec<Tensor> {
        self.vars.iter().map(|v| v.as_detached_tensor()).collect()
    }

    /// The trained weights: every tensor of the input (floats in f32), the
    /// adapters merged in.
    pub fn weights(&self) -> Result<HashMap<String, Tensor>, String> {
        let mut out = self.effective()?;
        for t in out.values_mut() {
            // A variable changes in place at the next step; the rest never change.
            *t = match t.is_variable() {
                true => t.detach().copy().map_err(text)?,
                false => t.detach(),
            };
        }
        Ok(out)
    }

    /// The tensors the model runs: with LoRA, `W + scale B A` in place of
    /// each adapted `W`.
    fn effective(&self) -> Result<HashMap<String, Tensor>, String> {
        let mut out = self.tensors.clone();
        let scale = self.args.lora.as_ref().map_or(1.0, |l| l.alpha / l.rank as f64);
        for adapter in &self.adapters {
            let merged = adapter.delta(scale).and_then(|d| self.tensors[&adapter.name].add(&d));
            out.insert(adapter.name.clone(), merged.map_err(text)?);
        }
        Ok(out)
    }

    fn check_batches(&self, micro_batches: &[Vec<&[u32]>]) -> Result<(), String> {
        let (context, vocab) = (self.args.context, self.config.vocab_size);
        if micro_batches.is_empty() || micro_batches.iter().any(Vec::is_empty) {
            return Err("a step needs at least one micro-batch of at least one window".into());
        }
        for window in micro_batches.iter().flatten() {
            if window.len() != context {
                return Err(format!("a window has {} tokens, not {context}", window.len()));
            }
            if let Some(bad) = window.iter().find(|t| **t as usize >= vocab) {
                return Err(format!("token id {bad} is outside the model's vocabulary of {vocab}"));
            }
        }
        Ok(())
    }
}

/// The model's tensors (and a tied model's saved head) become variables,
/// in place in `tensors`.
fn make_vars(config: &LmConfig, tensors: &mut HashMap<String, Tensor>) -> Result<Vec<(String, Var)>, String> {
    let mut names: Vec<String> = config.tensors().into_iter().map(|(n, _)| n).collect();
    names.extend(config.optional_tensors().into_iter().map(|(n, _)| n));
    let mut vars = Vec::new();
    for name in names {
        let held = config.held_name(&name, |n| tensors.contains_key(n)).to_string();
        let Some(t) = tensors.get(&held) else { continue };
        let var = Var::from_tensor(&t.detach()).map_err(text)?;
        tensors.insert(held.clone(), var.as_tensor().clone());
        vars.push((held, var));
    }
    Ok(vars)
}

/// Every tensor the config names is there with its shape, and is a float.
fn check_shapes(config: &LmConfig, weights: &HashMap<String, Tensor>) -> Result<(), String> {
    let mut expected = config.tensors();
    expected.extend(
        config
            .optional_tensors()
            .into_iter()
            .filter(|(n, _)| weights.contains_key(n)),
    );
    for (name, shape) in expected {
        let held = config.held_name(&name, |n| weights.contains_key(n));
        let t = weights.get(held).ok_or_else(|| format!("tensor `{name}` is missing"))?;
        if t.dims() != shape.as_slice() {
            return Err(format!("tensor `{held}` is {:?}, the config says {shape:?}", t.dims()));
        }
        if !t.dtype().is_float() {
            return Err(format!("tensor `{held}` is {:?}, not a float", t.dtype()));
        }
    }
    Ok(())
}
