//! Linear layers `y = x W^T + b` of a materialised model. On CPUs with
//! AVX-512 the weight is packed once, when the model is built, into panels
//! of 32 output columns (for each input index, the 32 weights side by
//! side) and multiplied by a kernel of our own that uses the 512-bit
//! registers the `gemm` crate does not reach on stable Rust; elsewhere
//! (other CPUs, CUDA) candle's matrix product does the work.

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
    pub fn new(linear: Linear) -> Result<Dense> {
        #[cfg(target_arch = "x86_64")]
        if packs_weights() && linear.weight().device().is_cpu() {
            let weight = f32_values(linear.weight())?;
            let bias = linear.bias().map(f32_values).transpose()?;
            let (rows, cols) = linear.weight().dims2()?;
            let packed = super::packed::Packed::new(&weight, rows, cols, bias);
            return Ok(Dense {
                inner: Inner::Packed(packed),
            });
        }
        Ok(Dense {
            inner: Inner::Candle(linear),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.inner {
            Inner::Candle(linear) => linear.forward(x),
            #[cfg(target_arch = "x86_64")]
            Inner::Packed(packed) => {
                let rows = x.elem_count() / packed.inputs();
                let out = super::simd::with_values(x, |values| packed.multiply(values, rows))?;
                let mut shape = x.dims().to_vec();
                *shape.last_mut().expect("a linear layer's input has dimensions") = packed.outputs();
                Tensor::from_vec(out, shape, &Device::Cpu)
            }
        }
    }
}

fn f32_values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()
}
