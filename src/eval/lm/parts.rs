//! The pieces every family's decoder layer is made of: norms, attention
//! with rotary embeddings, and MLPs. They follow transformers' eager
//! implementations in f32.

use super::config::{Activation, QkNorm};
use super::dense::{activate, Dense, Gated, Kernels};
use super::simd;
use candle_core::{Result, Tensor, D};

/// RMSNorm (weight only; Gemma's `1 + w` is added when built) or LayerNorm.
pub struct Norm {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub eps: f32,
    pub kernels: Kernels,
}

impl Norm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        use candle_nn::ops::{layer_norm, layer_norm_slow, rms_norm, rms_norm_slow};
        match (&self.bias, self.kernels) {
            (Some(bias), Kernels::Differentiable) => layer_norm_slow(x, &self.weight, bias, self.eps),
            (None, Kernels::Differentiable) => rms_norm_slow(x, &self.weight, self.eps),
            (Some(bias), _) => layer_norm(x, &self.weight, bias, self.eps),
            (None, _) => rms_norm(x, &self.weight, self.eps),
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
    /// `[len, len]` additive masks by window, for the portable kernels (the
    /// CPU's own attention skips what they hide).
    pub masks: &'a std::collections::HashMap<Option<usize>, Tensor>,
}

pub struct Attention {
    /// The query, key and value projections, their rows stacked.
    pub qkv: Dense,
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
    pub kernels: Kernels,
}

impl Attention {
    /// The attention's output, plus `residual` if given.
    pub fn forward(&self, x: &Tensor, inputs: &Inputs, residual: Option<&Tensor>) -> Result<Tensor> {
        let fused = self.qkv.forward(x)?;
        let normed = self.normed_queries_and_keys(&fused)?;
        let rotary = inputs.rotary.map(|(global, local)| match self.window {
            Some(_) => local,
            None => global,
        });
        let out = match self.kernels.native_on(x.device()) {
            true => self.attend_on_cpu(&fused, normed.as_ref(), rotary)?,
            false => {
                let mask = inputs.masks.get(&self.window);
                let mask = mask.ok_or_else(|| candle_core::Error::Msg("no attention mask for the device".into()))?;
                let (q, k, v) = self.heads_first(&fused, normed, rotary)?;
                self.attend_on_device(q, k, v, mask)?
            }
        };
        self.o.forward_plus(&out, residual)
    }

    fn widths(&self) -> (usize, usize) {
        (self.heads * self.head_dim, self.kv_heads * self.head_dim)
    }

    /// Queries and keys `[batch, len, heads * dim]` normalised as the family
    /// does before RoPE, or `None` for families without such norms.
    fn normed_queries_and_keys(&self, fused: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        if self.qk_norm == QkNorm::None {
            return Ok(None);
        }
        let (batch, len, _) = fused.dims3()?;
        let (q_width, kv_width) = self.widths();
        let norm = |norm: &Option<Norm>, start: usize, width: usize| -> Result<Tensor> {
            let part = fused.narrow(2, start, width)?.contiguous()?;
            match self.qk_norm {
                QkNorm::PerHead => {
                    let heads = part.reshape((batch, len, width / self.head_dim, self.head_dim))?;
                    maybe_norm(norm, heads)?.reshape((batch, len, width))
                }
                _ => maybe_norm(norm, part),
            }
        };
        Ok(Some((
            norm(&self.q_norm, 0, q_width)?,
            norm(&self.k_norm, q_width, kv_width)?,
        )))
    }

    /// The CPU kernel, reading the heads in place and rotating them as it
    /// reads; the result `[batch, len, heads * dim]`.
    fn attend_on_cpu(
        &self,
        fused: &Tensor,
        normed: Option<&(Tensor, Tensor)>,
        rotary: Option<&Rotary>,
    ) -> Result<Tensor> {
        use super::attend::{Problem, Shape, Tables, View};
        let (batch, len, width) = fused.dims3()?;
        let (q_width, kv_width) = self.widths();
        let fused = fused.contiguous()?;
        let all = simd::values(&fused)?;
        let normed = normed.map(|(q, k)| Ok::<_, candle_core::Error>((simd::values(q)?, simd::values(k)?)));
        let normed = normed.transpose()?;
        let view = |values, stride, offset| View { values, stride, offset };
        let (q, k) = match &normed {
            Some((q, k)) => (view(q.get(), q_width, 0), view(k.get(), kv_width, 0)),
            None => (view(all.get(), width, 0), view(all.get(), width, q_width)),
        };
        let tables = rotary.map(|r| {
            let half = r.cos.dim(D::Minus1)?;
            Ok::<_, candle_core::Error>((simd::values(&r.cos)?, simd::values(&r.sin)?, half, r.cos.rank() == 3))
        });
        let tables = tables.transpose()?;
        let shape = Shape {
            kv_heads: self.kv_heads,
            dim: self.head_dim,
            scale: self.scale as f32,
            softcap: self.softcap.map(|c| c as f32),
            window: self.window,
        };
        let problem = Problem {
            q,
            k,
            v: view(all.get(), width, q_width + kv_width),
            rope: tables.as_ref().map(|(cos, sin, half, per_row)| Tables {
                cos: cos.get(),
                sin: sin.get(),
                half: *half,
                per_row: *per_row,
            }),
            batch,
            heads: self.heads,
            len,
            shape: &shape,
        };
        Tensor::from_vec(super::attend::attend(&problem), (batch, len, q_width), fused.device())
    }

    /// Queries, keys and values `[batch, heads, len, dim]`, rotated.
    fn heads_first(
        &self,
        fused: &Tensor,
        normed: Option<(Tensor, Tensor)>,
        rotary: Option<&Rotary>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (batch, len, _) = fused.dims3()?;
        let (q_width, kv_width) = self.widths();
        let (q, k) = match normed {
            Some(qk) => qk,
            None => (fused.narrow(2, 0, q_width)?, fused.narrow(2, q_width, kv_width)?),
        };
        let v = fused.narrow(2, q_width + kv_width, kv_width)?;
        let split = |t: Tensor, heads: usize| -> Result<Tensor> {
            t.reshape((batch, len, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (
            split(q, self.heads)?,
            split(k, self.kv_heads)?,
            split(v, self.kv_heads)?,
        );
        match rotary {
            Some(rotary) => Ok((rotate(&q, rotary, self.kernels)?, rotate(&k, rotary, self.kernels)?, v)),
            None => Ok((q, k, v)),
        }
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
        let weights = softmax(&scores.reshape((batch, kv_heads, group * len, len))?, self.kernels)?;
        let out = weights.matmul(&v)?.reshape((batch, heads, len, dim))?;
        out.transpose(1, 2)?.reshape((batch, len, heads * dim))
    }
}

/// Softmax over the last dimension: candle's fused one, or (to be
/// differentiated) exponentials of the scores less their maximum, which
/// shifts every score alike and so needs no gradient.
fn softmax(x: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if kernels != Kernels::Differentiable {
        return candle_nn::ops::softmax_last_dim(x);
    }
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

/// RoPE in the "rotate half" layout over the first `rotary` dimensions of
/// each head; the rest pass through.
fn rotate(x: &Tensor, rotary: &Rotary, kernels: Kernels) -> Result<Tensor> {
    let dim = x.dim(D::Minus1)?;
    let rotated = rotary.cos.dim(D::Minus1)? * 2;
    let rope = match kernels {
        Kernels::Differentiable => rope_by_parts,
        _ => candle_nn::rotary_emb::rope,
    };
    if rotated == dim {
        return rope(x, &rotary.cos, &rotary.sin);
    }
    let head = rope(&x.narrow(3, 0, rotated)?.contiguous()?, &rotary.cos, &rotary.sin)?;
    Tensor::cat(&[head, x.narrow(3, rotated, dim - rotated)?], 3)?.contiguous()
}

/// `x cos + rotate_half(x) sin` for `x` `[batch, heads, len, 2 half]` and
/// tables `[len, half]` or `[batch, len, half]`: candle's fused RoPE
/// without its missing backward pass.
fn rope_by_parts(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let table = |t: &Tensor| -> Result<Tensor> {
        let full = Tensor::cat(&[t, t], D::Minus1)?;
        match full.rank() {
            3 => full.unsqueeze(1),
            _ => Ok(full),
        }
    };
    let (x1, x2) = (x.narrow(3, 0, half)?, x.narrow(3, half, half)?);
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
    x.broadcast_mul(&table(cos)?)? + rotated.broadcast_mul(&table(sin)?)?
}

pub enum Mlp {
    /// `down(act(gate(x)) * up(x))`.
    Gated { gate_up: Gated, down: Dense },
    /// `down(act(up(x)))`.
    Plain {
        up: Dense,
        down: Dense,
        activation: Activation,
    },
}

impl Mlp {
    /// The MLP's output, plus `residual` if given.
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let middle = match self {
            Mlp::Gated { gate_up, .. } => gate_up.forward(x)?,
            Mlp::Plain { up, activation, .. } => activate(&up.forward(x)?, *activation)?,
        };
        let (Mlp::Gated { down, .. } | Mlp::Plain { down, .. }) = self;
        down.forward_plus(&middle, residual)
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
        if self.parallel {
            let a = self.attention.forward(&h, inputs, Some(x))?;
            return self.mlp.forward(&maybe_norm(&self.mlp_norm, x.clone())?, Some(&a));
        }
        // The residual is added by the projection's kernel, unless a norm
        // comes between them.
        let x = match &self.attention_post_norm {
            Some(post) => (x + post.forward(&self.attention.forward(&h, inputs, None)?)?)?,
            None => self.attention.forward(&h, inputs, Some(x))?,
        };
        let h = maybe_norm(&self.mlp_norm, x.clone())?;
        match &self.mlp_post_norm {
            Some(post) => x.clone() + post.forward(&self.mlp.forward(&h, None)?)?,
            None => self.mlp.forward(&h, Some(&x)),
        }
    }
}
