//! Linear layers `y = x W^T + b` of a materialised model. On CPUs with
//! AVX-512 the weight is packed once, when the model is built, into panels
//! of 32 output columns (for each input index, the 32 weights side by
//! side) and multiplied by a kernel of our own that uses the 512-bit
//! registers the `gemm` crate does not reach on stable Rust, adding a
//! residual or applying a gated MLP's activation as it stores; elsewhere
//! (other CPUs, CUDA) candle's matrix product and operations do the work.

use super::config::Activation;
use candle_core::{Device, Result, Tensor};
use candle_nn::{Linear, Module};

/// Whether layers built on the CPU are packed (a second copy of the weights).
pub fn packs_weights() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::packed::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Which kernels a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// tv's own CPU kernels, where the CPU can run them.
    Native,
    /// candle's general tensor operations only: what other devices run.
    Portable,
    /// As `Portable`, but norms, softmax and RoPE are composed of candle
    /// operations that have a backward pass (candle's fused ones have
    /// none), so that the model can be trained.
    Differentiable,
}

impl Kernels {
    /// Whether tv's own kernels run on `device`.
    pub fn native_on(self, device: &Device) -> bool {
        self == Kernels::Native && device.is_cpu()
    }

    fn packs(self, linear: &Linear) -> bool {
        packs_weights() && self.native_on(linear.weight().device())
    }
}

pub struct Dense {
    inner: Inner,
}

enum Inner {
    Candle(Linear),
    #[cfg(target_arch = "x86_64")]
    Packed(super::packed::Packed),
}

impl Dense {
    /// Packs the layer when the fast kernel can run it.
    pub fn new(linear: Linear, kernels: Kernels) -> Result<Dense> {
        Dense::stacked(vec![linear], kernels)
    }

    /// One layer of several, their rows stacked (packed straight from the
    /// parts when the fast kernel runs it).
    pub fn stacked(parts: Vec<Linear>, kernels: Kernels) -> Result<Dense> {
        #[cfg(target_arch = "x86_64")]
        if kernels.packs(&parts[0]) {
            let packed = with_rows(&parts, super::packed::Packed::new)?;
            return Ok(Dense {
                inner: Inner::Packed(packed),
            });
        }
        Ok(Dense {
            inner: Inner::Candle(stack_rows(&parts)?),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_plus(x, None)
    }

    /// `x W^T + b + residual`.
    pub fn forward_plus(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        match &self.inner {
            Inner::Candle(linear) => match residual {
                Some(r) => linear.forward(x)? + r,
                None => linear.forward(x),
            },
            #[cfg(target_arch = "x86_64")]
            Inner::Packed(packed) => {
                let residual = residual.map(|r| r.contiguous()).transpose()?;
                let residual = residual.as_ref().map(super::simd::values).transpose()?;
                let residual = residual.as_ref().map(|r| r.get());
                run_packed(packed, x, |x, rows| packed.multiply(x, rows, residual))
            }
        }
    }
}

impl Dense {
    /// Each row's log-probability of its target under the soft-capped
    /// logits `x W^T + b`, if this layer reduces them itself (the packed
    /// kernel, never holding a whole row of logits); `None` otherwise.
    pub fn log_probs(&self, x: &Tensor, targets: &[u32], softcap: Option<f64>) -> Option<Result<Vec<f64>>> {
        match &self.inner {
            Inner::Candle(_) => None,
            #[cfg(target_arch = "x86_64")]
            Inner::Packed(packed) => Some(super::simd::with_values(x, |values| {
                packed.log_probs(values, targets.len(), targets, softcap.map(|c| c as f32))
            })),
        }
    }
}

/// A gated MLP's first half, `act(x G^T + b_g) * (x U^T + b_u)`: one
/// packed product whose kernel applies the activation, where it can.
pub enum Gated {
    Separate {
        gate: Dense,
        up: Dense,
        activation: Activation,
        kernels: Kernels,
    },
    #[cfg(target_arch = "x86_64")]
    Packed(super::packed::Packed),
}

impl Gated {
    /// `parts` hold the gate's `width` rows, then up's: `[gate, up]`, or one
    /// fused layer.
    pub fn new(parts: Vec<Linear>, width: usize, activation: Activation, kernels: Kernels) -> Result<Gated> {
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(gate)) = (kernels.packs(&parts[0]), packed_gate(activation)) {
            let packed = with_rows(&parts, |rows, inputs, bias| {
                super::packed::Packed::gated(rows, inputs, bias, gate)
            })?;
            return Ok(Gated::Packed(packed));
        }
        let [gate, up] = match <[Linear; 2]>::try_from(parts) {
            Ok(pair) => pair,
            Err(fused) => split_rows(&stack_rows(&fused)?, &[width; 2])?,
        };
        Ok(Gated::Separate {
            gate: Dense::new(gate, kernels)?,
            up: Dense::new(up, kernels)?,
            activation,
            kernels,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Gated::Separate {
                gate,
                up,
                activation,
                kernels,
            } => {
                let (g, u) = (gate.forward(x)?, up.forward(x)?);
                match activation {
                    Activation::Silu if kernels.native_on(x.device()) => super::simd::swiglu(&g, &u),
                    _ => activate(&g, *activation)? * u,
                }
            }
            #[cfg(target_arch = "x86_64")]
            Gated::Packed(packed) => run_packed(packed, x, |x, rows| packed.multiply(x, rows, None)),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn packed_gate(activation: Activation) -> Option<super::packed::Gate> {
    match activation {
        Activation::Silu => Some(super::packed::Gate::Silu),
        Activation::GeluTanh => Some(super::packed::Gate::GeluTanh),
        Activation::Gelu => None,
    }
}

#[cfg(target_arch = "x86_64")]
fn run_packed(
    packed: &super::packed::Packed,
    x: &Tensor,
    multiply: impl FnOnce(&[f32], usize) -> Vec<f32>,
) -> Result<Tensor> {
    let rows = x.elem_count() / packed.inputs();
    let out = super::simd::with_values(x, |values| multiply(values, rows))?;
    let mut shape = x.dims().to_vec();
    *shape.last_mut().expect("a linear layer's input has dimensions") = packed.width();
    Tensor::from_vec(out, shape, &Device::Cpu)
}

pub fn activate(x: &Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Silu => candle_nn::ops::silu(x),
        Activation::GeluTanh => x.gelu(),
        Activation::Gelu => x.gelu_erf(),
    }
}

/// `pack` of the stacked layers' weight rows (borrowed where the weights
/// are f32 already), their input count and their stacked bias.
#[cfg(target_arch = "x86_64")]
fn with_rows<T>(parts: &[Linear], pack: impl FnOnce(&[&[f32]], usize, Option<&[f32]>) -> T) -> Result<T> {
    let f32s = |t: &Tensor| t.to_dtype(candle_core::DType::F32)?.contiguous();
    let weights = parts.iter().map(|p| f32s(p.weight())).collect::<Result<Vec<_>>>()?;
    let inputs = weights[0].dim(1)?;
    let values = weights.iter().map(super::simd::values).collect::<Result<Vec<_>>>()?;
    let rows: Vec<&[f32]> = values.iter().flat_map(|v| v.get().chunks_exact(inputs)).collect();
    let bias = match stacked_bias(parts)? {
        Some(b) => Some(b.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?),
        None => None,
    };
    Ok(pack(&rows, inputs, bias.as_deref()))
}

/// Consecutive blocks of rows of a linear layer.
fn split_rows<const N: usize>(fused: &Linear, rows: &[usize; N]) -> Result<[Linear; N]> {
    let mut start = 0;
    let mut out = Vec::with_capacity(N);
    for n in rows {
        let w = fused.weight().narrow(0, start, *n)?.contiguous()?;
        let b = fused.bias().map(|b| b.narrow(0, start, *n)?.contiguous()).transpose()?;
        out.push(Linear::new(w, b));
        start += n;
    }
    out.try_into()
        .map_err(|_| candle_core::Error::Msg("split into the wrong number of parts".into()))
}

/// Linear layers one after another: their rows stacked.
fn stack_rows(parts: &[Linear]) -> Result<Linear> {
    if let [one] = parts {
        return Ok(one.clone());
    }
    let weights: Vec<&Tensor> = parts.iter().map(|p| p.weight()).collect();
    Ok(Linear::new(Tensor::cat(&weights, 0)?, stacked_bias(parts)?))
}

/// The biases of stacked layers (a missing one counts as zeros, where
/// another part has one).
fn stacked_bias(parts: &[Linear]) -> Result<Option<Tensor>> {
    if parts.iter().all(|p| p.bias().is_none()) {
        return Ok(None);
    }
    let biases = parts
        .iter()
        .map(|p| match p.bias() {
            Some(b) => Ok(b.clone()),
            None => Tensor::zeros(p.weight().dim(0)?, p.weight().dtype(), p.weight().device()),
        })
        .collect::<Result<Vec<Tensor>>>()?;
    Tensor::cat(&biases, 0).map(Some)
}
