//! The pieces every family's decoder layer is made of: norms, attention
//! with rotary embeddings, and MLPs. They follow transformers' eager
//! implementations in f32.

use super::config::{Activation, QkNorm};
use super::dense::Dense;
use candle_core::{Result, Tensor, D};

/// RMSNorm (weight only; Gemma's `1 + w` is added when built) or LayerNorm.
pub struct Norm {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub eps: f32,
}

impl Norm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(bias) => candle_nn::ops::layer_norm(x, &self.weight, bias, self.eps),
            None => candle_nn::ops::rms_norm(x, &self.weight, self.eps),
        }
    }
}

fn maybe_norm(norm: &Option<Norm>, x: Tensor) -> Result<Tensor> {
    match norm {
        Some(norm) => norm.forward(&x),
        None => Ok(x),
    }
}

/// Cosine and sine tables, `[len, rotary / 2]` or `[batch, len, rotary / 2]`.
pub struct Rotary {
    pub cos: Tensor,
    pub sin: Tensor,
}

/// What one forward pass gives every layer.
pub struct Inputs<'a> {
    /// For global layers, and for sliding ones (the same unless Gemma 3).
    pub rotary: Option<(&'a Rotary, &'a Rotary)>,
    /// `[len, len]` additive masks by window, for devices other than the
    /// CPU (whose attention skips what they hide).
    pub masks: &'a std::collections::HashMap<Option<usize>, Tensor>,
}

pub struct Attention {
    pub q: Dense,
    pub k: Dense,
    pub v: Dense,
    pub o: Dense,
    pub q_norm: Option<Norm>,
    pub k_norm: Option<Norm>,
    pub qk_norm: QkNorm,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub scale: f64,
    pub softcap: Option<f64>,
    /// How many past positions a token sees (itself included), or `None`
    /// for all of them.
    pub window: Option<usize>,
}

impl Attention {
    pub fn forward(&self, x: &Tensor, inputs: &Inputs) -> Result<Tensor> {
        let (batch, len, _) = x.dims3()?;
        let (heads, kv_heads, dim) = (self.heads, self.kv_heads, self.head_dim);
        let q = self.project(&self.q, &self.q_norm, x, heads)?;
        let k = self.project(&self.k, &self.k_norm, x, kv_heads)?;
        let v = split_heads(self.v.forward(x)?, (batch, len, kv_heads, dim))?;
        let (q, k) = match inputs.rotary {
            Some((global, local)) => {
                let rotary = if self.window.is_some() { local } else { global };
                (rotate(&q, rotary)?, rotate(&k, rotary)?)
            }
            None => (q, k),
        };
        let out = if x.device().is_cpu() {
            let shape = super::attend::Shape {
                kv_heads,
                dim,
                scale: self.scale as f32,
                softcap: self.softcap.map(|c| c as f32),
                window: self.window,
            };
            super::attend::attend(&q, &k, &v, &shape)?
        } else {
            let mask = inputs.masks.get(&self.window);
            let mask = mask.ok_or_else(|| candle_core::Error::Msg("no attention mask for the device".into()))?;
            self.attend_on_device(q, k, v, mask)?
        };
        self.o.forward(&out)
    }

    /// Attention by general tensor operations (for devices other than the
    /// CPU): the scores of all pairs, masked. Keys and values are not copied
    /// per query head: the query heads that share a key-value head are
    /// stacked along the sequence axis, so one matmul serves the group.
    fn attend_on_device(&self, q: Tensor, k: Tensor, v: Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, heads, len, dim) = q.dims4()?;
        let kv_heads = self.kv_heads;
        let group = heads / kv_heads;
        // Scaling the queries costs less than scaling the `len x len` scores.
        let q = (q * self.scale)?.reshape((batch, kv_heads, group * len, dim))?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(cap) = self.softcap {
            scores = ((scores / cap)?.tanh()? * cap)?;
        }
        let scores = scores
            .reshape((batch, kv_heads, group, len, len))?
            .broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores.reshape((batch, kv_heads, group * len, len))?)?;
        let out = weights.matmul(&v)?.reshape((batch, heads, len, dim))?;
        out.transpose(1, 2)?.reshape((batch, len, heads * dim))
    }

    /// Queries or keys `[batch, heads, len, dim]`, normalised as the family
    /// does before RoPE.
    fn project(&self, linear: &Dense, norm: &Option<Norm>, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, len, _) = x.dims3()?;
        let y = linear.forward(x)?;
        let shape = (batch, len, heads, self.head_dim);
        match self.qk_norm {
            QkNorm::None => split_heads(y, shape),
            QkNorm::Whole => split_heads(maybe_norm(norm, y)?, shape),
            QkNorm::PerHead => {
                let y = maybe_norm(norm, y.reshape(shape)?)?;
                y.transpose(1, 2)?.contiguous()
            }
        }
    }
}

fn split_heads(t: Tensor, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
    t.reshape(shape)?.transpose(1, 2)?.contiguous()
}

/// RoPE in the "rotate half" layout over the first `rotary` dimensions of
/// each head; the rest pass through.
fn rotate(x: &Tensor, rotary: &Rotary) -> Result<Tensor> {
    let dim = x.dim(D::Minus1)?;
    let rotated = rotary.cos.dim(D::Minus1)? * 2;
    if rotated == dim {
        return candle_nn::rotary_emb::rope(x, &rotary.cos, &rotary.sin);
    }
    let head = candle_nn::rotary_emb::rope(&x.narrow(3, 0, rotated)?.contiguous()?, &rotary.cos, &rotary.sin)?;
    Tensor::cat(&[head, x.narrow(3, rotated, dim - rotated)?], 3)?.contiguous()
}

pub enum Mlp {
    /// `down(act(gate(x)) * up(x))`.
    Gated {
        gate: Dense,
        up: Dense,
        down: Dense,
        activation: Activation,
    },
    /// `down(act(up(x)))`.
    Plain {
        up: Dense,
        down: Dense,
        activation: Activation,
    },
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::Gated {
                gate,
                up,
                down,
                activation,
            } => {
                let (g, u) = (gate.forward(x)?, up.forward(x)?);
                let middle = match activation {
                    Activation::Silu if x.device().is_cpu() => super::simd::swiglu(&g, &u)?,
                    _ => (activate(&g, *activation)? * u)?,
                };
                down.forward(&middle)
            }
            Mlp::Plain { up, down, activation } => down.forward(&activate(&up.forward(x)?, *activation)?),
        }
    }
}

fn activate(x: &Tensor, activation: Activation) -> Result<Tensor> {
    match activation {
        Activation::Silu => candle_nn::ops::silu(x),
        Activation::GeluTanh => x.gelu(),
        Activation::Gelu => x.gelu_erf(),
    }
}

/// A decoder layer: attention and MLP, each with the norms its family puts
/// before and after it, in sequence or (GPT-NeoX) in parallel.
pub struct Layer {
    pub attention_norm: Option<Norm>,
    pub attention_post_norm: Option<Norm>,
    pub mlp_norm: Option<Norm>,
    pub mlp_post_norm: Option<Norm>,
    pub attention: Attention,
    pub mlp: Mlp,
    pub parallel: bool,
}

impl Layer {
    pub fn forward(&self, x: &Tensor, inputs: &Inputs) -> Result<Tensor> {
        let h = maybe_norm(&self.attention_norm, x.clone())?;
        let a = maybe_norm(&self.attention_post_norm, self.attention.forward(&h, inputs)?)?;
        if self.parallel {
            let m = self.mlp.forward(&maybe_norm(&self.mlp_norm, x.clone())?)?;
            return (m + a)? + x;
        }
        let x = (x + a)?;
        let m = self.mlp.forward(&maybe_norm(&self.mlp_norm, x.clone())?)?;
        x + maybe_norm(&self.mlp_post_norm, m)?
    }
}
