//! Causal attention on the CPU in one pass per query: scores of the keys
//! it may see (causal, within its window), soft cap, softmax and the
//! weighted sum of values, for every head of every window in parallel.
//! Nothing `len x len` is materialised and masked-out keys cost nothing.
//! The arithmetic is written over 16-lane arrays and compiled for
//! AVX-512, AVX2 and plain x86-64, chosen at run time; each lane is
//! computed alike in all three, so results do not depend on the CPU.

use super::simd;
use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

pub struct Shape {
    pub kv_heads: usize,
    pub dim: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    pub window: Option<usize>,
}

/// `q` `[batch, heads, len, dim]`, `k` and `v` `[batch, kv_heads, len, dim]`
/// (contiguous f32 on the CPU); the result `[batch, len, heads * dim]`.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, shape: &Shape) -> Result<Tensor> {
    let (batch, heads, len, dim) = q.dims4()?;
    let out = simd::with_values(q, |q| {
        simd::with_values(k, |k| {
            simd::with_values(v, |v| heads_in_parallel(q, k, v, (batch, heads, len, dim), shape))
        })
    })???;
    Tensor::from_vec(out, (batch, len, heads * dim), &Device::Cpu)
}

/// Every head of every window, each by one task.
fn heads_in_parallel(q: &[f32], k: &[f32], v: &[f32], dims: (usize, usize, usize, usize), shape: &Shape) -> Vec<f32> {
    let (batch, heads, len, dim) = dims;
    let mut out = vec![0f32; batch * len * heads * dim];
    let target = simd::Target(out.as_mut_ptr());
    (0..batch * heads).into_par_iter().for_each(|task| {
        let (b, h) = (task / heads, task % heads);
        let kv = b * shape.kv_heads + h / (heads / shape.kv_heads);
        let head = Head {
            q: &q[task * len * dim..][..len * dim],
            k: &k[kv * len * dim..][..len * dim],
            v: &v[kv * len * dim..][..len * dim],
            len,
            shape,
        };
        let target = &target;
        // Safety: each task writes its own head's columns of its own rows.
        let first = unsafe { target.0.add(b * len * heads * dim + h * dim) };
        run_head(&head, first, heads * dim);
    });
    out
}

struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    len: usize,
    shape: &'a Shape,
}

simd::widest! {
    /// One head of one window: every query's attention, into rows
    /// `stride` apart from `out`.
    fn run_head(head: &Head, out: *mut f32, stride: usize) {
        head.run(out, stride)
    }
}

/// Keys scored together: four vectors of 16, so that four independent
/// multiply-add chains keep the vector units busy.
const KEYS: usize = 64;
const LANES: usize = 16;

impl Head<'_> {
    /// Scores are computed for 64 keys at a time, a key dimension per step,
    /// over the keys stored transposed (and padded with zeros to a whole
    /// block), so each step is contiguous and the sums stay in registers.
    #[inline(always)]
    fn run(&self, out: *mut f32, stride: usize) {
        let (dim, len) = (self.shape.dim, self.len);
        let padded = len.div_ceil(KEYS) * KEYS;
        let mut keys = vec![0f32; dim * padded];
        for j in 0..len {
            for d in 0..dim {
                keys[d * padded + j] = self.k[j * dim + d];
            }
        }
        let mut scores = vec![0f32; padded];
        let mut query = vec![0f32; dim];
        for i in 0..len {
            let first = self.shape.window.map_or(0, |w| (i + 1).saturating_sub(w));
            for (q, x) in query.iter_mut().zip(&self.q[i * dim..][..dim]) {
                *q = x * self.shape.scale;
            }
            for block in (first / KEYS * KEYS..=i).step_by(KEYS) {
                let mut sums = [[0f32; LANES]; KEYS / LANES];
                for (d, q) in query.iter().enumerate() {
                    let keys = &keys[d * padded + block..][..KEYS];
                    for (sums, keys) in sums.iter_mut().zip(keys.chunks_exact(LANES)) {
                        for l in 0..LANES {
                            sums[l] += q * keys[l];
                        }
                    }
                }
                scores[block..block + KEYS].copy_from_slice(sums.as_flattened());
            }
            let row = &mut scores[first..=i];
            if let Some(cap) = self.shape.softcap {
                for s in row.iter_mut() {
                    *s = (*s / cap).tanh() * cap;
                }
            }
            let max = simd::max(row);
            for s in row.iter_mut() {
                *s = simd::exp(*s - max);
            }
            let inverse = 1.0 / simd::sum(row);
            // Safety: row `i` of this head lies within the output (see `attend`).
            let out = unsafe { std::slice::from_raw_parts_mut(out.add(i * stride), dim) };
            self.weighted_values(row, first, out, inverse);
        }
    }

    /// `out = inverse * sum_j p_j v_j`, 16 dimensions at a time with four
    /// keys in flight (a head's last dimensions beyond a multiple of 16 one
    /// key at a time).
    #[inline(always)]
    fn weighted_values(&self, weights: &[f32], first: usize, out: &mut [f32], inverse: f32) {
        let dim = self.shape.dim;
        let whole = dim / LANES * LANES;
        let rows = &self.v[first * dim..(first + weights.len()) * dim];
        for start in (0..whole).step_by(LANES) {
            let (mut s0, mut s1, mut s2, mut s3) = ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
            let quads = weights.chunks_exact(4);
            let done = weights.len() - quads.remainder().len();
            for (quad, values) in quads.zip(rows.chunks_exact(4 * dim)) {
                add_scaled(&mut s0, quad[0], &values[start..]);
                add_scaled(&mut s1, quad[1], &values[dim + start..]);
                add_scaled(&mut s2, quad[2], &values[2 * dim + start..]);
                add_scaled(&mut s3, quad[3], &values[3 * dim + start..]);
            }
            for (j, p) in weights.iter().enumerate().skip(done) {
                add_scaled(&mut s0, *p, &rows[j * dim + start..]);
            }
            for l in 0..LANES {
                out[start + l] = ((s0[l] + s1[l]) + (s2[l] + s3[l])) * inverse;
            }
        }
        for d in whole..dim {
            let total: f32 = weights.iter().enumerate().map(|(j, p)| p * rows[j * dim + d]).sum();
            out[d] = total * inverse;
        }
    }
}

/// `sums += p * values[..16]`.
#[inline(always)]
fn add_scaled(sums: &mut [f32; LANES], p: f32, values: &[f32]) {
    let values = &values[..LANES];
    for l in 0..LANES {
        sums[l] += p * values[l];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain f64 computation: grouped heads, a window, a soft cap
    /// and a head size that is not a multiple of 16.
    #[test]
    fn attention_equals_a_plain_computation() {
        let (batch, heads, kv_heads, len, dim) = (2, 4, 2, 70, 20);
        let mut rng = crate::synth::Rng::new(3);
        let mut tensor = |n: usize| {
            Tensor::from_vec(
                rng.normals(batch * n * len * dim, 1.0),
                (batch, n, len, dim),
                &Device::Cpu,
            )
        };
        let (q, k, v) = (
            tensor(heads).unwrap(),
            tensor(kv_heads).unwrap(),
            tensor(kv_heads).unwrap(),
        );
        for (softcap, window) in [(None, None), (Some(2.0), Some(9))] {
            let shape = Shape {
                kv_heads,
                dim,
                scale: 0.3,
                softcap,
                window,
            };
            let out: Vec<f32> = attend(&q, &k, &v, &shape)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let (q4, k4, v4): (Vec<f32>, Vec<f32>, Vec<f32>) = (
                q.flatten_all().unwrap().to_vec1().unwrap(),
                k.flatten_all().unwrap().to_vec1().unwrap(),
                v.flatten_all().unwrap().to_vec1().unwrap(),
            );
            for (b, h, i) in (0..batch).flat_map(|b| (0..heads).flat_map(move |h| (0..len).map(move |i| (b, h, i)))) {
                let kv = b * kv_heads + h / (heads / kv_heads);
                let query = &q4[((b * heads + h) * len + i) * dim..][..dim];
                let first = window.map_or(0, |w: usize| (i + 1).saturating_sub(w));
                let scores: Vec<f64> = (first..=i)
                    .map(|j| {
                        let key = &k4[(kv * len + j) * dim..][..dim];
                        let s = query.iter().zip(key).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * 0.3;
                        softcap.map_or(s, |c: f32| (s / c as f64).tanh() * c as f64)
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for d in 0..dim {
                    let exact: f64 = (first..=i)
                        .zip(&weights)
                        .map(|(j, w)| w * v4[(kv * len + j) * dim + d] as f64)
                        .sum::<f64>()
                        / total;
                    let got = out[(b * len + i) * heads * dim + h * dim + d] as f64;
                    assert!(
                        (got - exact).abs() < 1e-5,
                        "({b},{h},{i},{d}) {softcap:?} {window:?}: {got} vs {exact}"
                    );
                }
            }
        }
    }
}
