//! Causal attention on the CPU: scores of the keys each query may see
//! (causal, within its window), soft cap, softmax and the weighted sum of
//! values, for every head of every window in parallel. Queries, keys and
//! values are read in place from the projections' token-major rows, and
//! rotated (RoPE) as they are read. Queries go four at a time, so that
//! every key or value loaded serves four of them; nothing `len x len` is
//! materialised and keys no query of a block may see cost nothing. The
//! arithmetic is written over 16-lane arrays and compiled for AVX-512,
//! AVX2 and plain x86-64, chosen at run time; each lane is computed alike
//! in all three, so results do not depend on the CPU.

use super::simd;
use rayon::prelude::*;

pub struct Shape {
    pub kv_heads: usize,
    pub dim: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    pub window: Option<usize>,
}

/// Rows of one projection's heads: token `t` (counted over the whole
/// batch) has head `h` at `values[t * stride + offset + h * dim..][..dim]`.
pub struct View<'a> {
    pub values: &'a [f32],
    pub stride: usize,
    pub offset: usize,
}

impl View<'_> {
    fn head(&self, token: usize, head: usize, dim: usize) -> &[f32] {
        &self.values[token * self.stride + self.offset + head * dim..][..dim]
    }
}

/// RoPE's cosines and sines, `[len, half]`, or `[batch, len, half]` when
/// `per_row`; the first `2 * half` dimensions of a head are rotated.
pub struct Tables<'a> {
    pub cos: &'a [f32],
    pub sin: &'a [f32],
    pub half: usize,
    pub per_row: bool,
}

impl Tables<'_> {
    /// `out = x` rotated for position `t` of row `b` ("rotate half").
    #[inline(always)]
    fn rotate(&self, (b, len, t): (usize, usize, usize), x: &[f32], out: &mut [f32]) {
        let half = self.half;
        let at = if self.per_row { (b * len + t) * half } else { t * half };
        let (cos, sin) = (&self.cos[at..][..half], &self.sin[at..][..half]);
        for d in 0..half {
            out[d] = x[d] * cos[d] - x[d + half] * sin[d];
            out[d + half] = x[d + half] * cos[d] + x[d] * sin[d];
        }
        out[2 * half..].copy_from_slice(&x[2 * half..]);
    }
}

/// The inputs of one attention: `batch` windows of `len` tokens, `heads`
/// query heads.
pub struct Problem<'a> {
    pub q: View<'a>,
    pub k: View<'a>,
    pub v: View<'a>,
    pub rope: Option<Tables<'a>>,
    pub batch: usize,
    pub heads: usize,
    pub len: usize,
    pub shape: &'a Shape,
}

/// The result, `[batch, len, heads * dim]`.
pub fn attend(problem: &Problem) -> Vec<f32> {
    let Problem { batch, heads, len, .. } = *problem;
    let dim = problem.shape.dim;
    let row = heads * dim;
    let group = heads / problem.shape.kv_heads;
    // Safety: every head of every window writes its columns of every row.
    unsafe {
        simd::written_by(batch * len * row, |target| {
            (0..batch * heads).into_par_iter().for_each(|task| {
                let (b, h) = (task / heads, task % heads);
                let head = Head {
                    problem,
                    b,
                    h,
                    kv: h / group,
                };
                // Safety: this task writes head `h`'s columns of window `b`.
                run_head(&head, target.0.add(b * len * row + h * dim), row);
            })
        })
    }
}

struct Head<'a> {
    problem: &'a Problem<'a>,
    b: usize,
    h: usize,
    kv: usize,
}

simd::widest! {
    /// One head of one window: every query's attention, into rows
    /// `stride` apart from `out`.
    fn run_head(head: &Head, out: *mut f32, stride: usize) {
        head.run(out, stride)
    }
}

/// Keys scored together: four vectors of 16.
const KEYS: usize = 64;
const LANES: usize = 16;
/// Queries attended together.
const QUERIES: usize = 4;

impl Head<'_> {
    fn token(&self, t: usize) -> usize {
        self.b * self.problem.len + t
    }

    /// The first key query `i` sees.
    fn first(&self, i: usize) -> usize {
        self.problem.shape.window.map_or(0, |w| (i + 1).saturating_sub(w))
    }

    /// Head `head` of token `t` of `view`, rotated if the model rotates.
    #[inline(always)]
    fn read(&self, view: &View, head: usize, t: usize, out: &mut [f32]) {
        let dim = self.problem.shape.dim;
        let x = view.head(self.token(t), head, dim);
        match &self.problem.rope {
            Some(rope) => rope.rotate((self.b, self.problem.len, t), x, out),
            None => out.copy_from_slice(x),
        }
    }

    #[inline(always)]
    fn run(&self, out: *mut f32, stride: usize) {
        let (dim, len) = (self.problem.shape.dim, self.problem.len);
        let padded = len.div_ceil(KEYS) * KEYS;
        let keys = self.transposed_keys(padded);
        let mut scores = vec![0f32; QUERIES * padded];
        let mut queries = vec![0f32; QUERIES * dim];
        for start in (0..len).step_by(QUERIES) {
            let last = (start + QUERIES).min(len) - 1;
            for (n, query) in queries.chunks_exact_mut(dim).enumerate() {
                match start + n <= last {
                    true => self.read(&self.problem.q, self.h, start + n, query),
                    false => query.fill(0.0),
                }
                query.iter_mut().for_each(|q| *q *= self.problem.shape.scale);
            }
            let seen = self.first(start)..last + 1;
            self.score(&queries, &keys, padded, &seen, &mut scores);
            for n in 0..=last - start {
                self.softmax(&mut scores[n * padded..][..padded], start + n, &seen);
            }
            // Safety: rows `start..=last` of this head lie within the output.
            let out = unsafe { out.add(start * stride) };
            self.weighted_values(&scores, padded, &seen, last + 1 - start, (out, stride));
        }
    }

    /// Keys `[dim][padded]`, rotated, zero beyond `len`.
    fn transposed_keys(&self, padded: usize) -> Vec<f32> {
        let dim = self.problem.shape.dim;
        let mut keys = vec![0f32; dim * padded];
        let mut key = vec![0f32; dim];
        for j in 0..self.problem.len {
            self.read(&self.problem.k, self.kv, j, &mut key);
            for (d, x) in key.iter().enumerate() {
                keys[d * padded + j] = *x;
            }
        }
        keys
    }

    /// Scores of the block's queries against the keys of `seen`, 64 keys at
    /// a time, a key dimension per step (so the sums stay in registers).
    #[inline(always)]
    fn score(&self, queries: &[f32], keys: &[f32], padded: usize, seen: &std::ops::Range<usize>, scores: &mut [f32]) {
        let dim = self.problem.shape.dim;
        for block in (seen.start / KEYS * KEYS..seen.end).step_by(KEYS) {
            let mut sums = [[[0f32; LANES]; KEYS / LANES]; QUERIES];
            for d in 0..dim {
                let keys = &keys[d * padded + block..][..KEYS];
                for (n, sums) in sums.iter_mut().enumerate() {
                    let q = queries[n * dim + d];
                    for (sums, keys) in sums.iter_mut().zip(keys.chunks_exact(LANES)) {
                        for l in 0..LANES {
                            sums[l] += q * keys[l];
                        }
                    }
                }
            }
            for (n, sums) in sums.iter().enumerate() {
                scores[n * padded + block..][..KEYS].copy_from_slice(sums.as_flattened());
            }
        }
    }

    /// Query `i`'s scores over `seen` into weights that sum to one, zero for
    /// the keys it may not see.
    #[inline(always)]
    fn softmax(&self, scores: &mut [f32], i: usize, seen: &std::ops::Range<usize>) {
        let first = self.first(i);
        scores[seen.start..first].fill(0.0);
        scores[i + 1..seen.end].fill(0.0);
        let row = &mut scores[first..=i];
        if let Some(cap) = self.problem.shape.softcap {
            for s in row.iter_mut() {
                *s = (*s / cap).tanh() * cap;
            }
        }
        let max = simd::max(row);
        for s in row.iter_mut() {
            *s = simd::exp(*s - max);
        }
        let inverse = 1.0 / simd::sum(row);
        for s in row.iter_mut() {
            *s *= inverse;
        }
    }

    /// `out_n = sum_j p_nj v_j` for the block's `count` queries, up to 64
    /// dimensions at a time (the rest of a head one at a time).
    #[inline(always)]
    fn weighted_values(
        &self,
        weights: &[f32],
        padded: usize,
        seen: &std::ops::Range<usize>,
        count: usize,
        out: (*mut f32, usize),
    ) {
        let dim = self.problem.shape.dim;
        let mut start = 0;
        while dim - start >= LANES {
            start += match (dim - start) / LANES {
                1 => self.value_columns::<1>(weights, padded, seen, count, start, out),
                2 => self.value_columns::<2>(weights, padded, seen, count, start, out),
                3 => self.value_columns::<3>(weights, padded, seen, count, start, out),
                _ => self.value_columns::<4>(weights, padded, seen, count, start, out),
            };
        }
        for d in start..dim {
            for n in 0..count {
                let p = &weights[n * padded..];
                let total: f32 = seen.clone().map(|j| p[j] * self.value(j)[d]).sum();
                // Safety: row `n` of the block, column `d` of this head.
                unsafe { *out.0.add(n * out.1 + d) = total };
            }
        }
    }

    /// Columns `start..start + 16 C` of the block's outputs; returns `16 C`.
    #[inline(always)]
    fn value_columns<const C: usize>(
        &self,
        weights: &[f32],
        padded: usize,
        seen: &std::ops::Range<usize>,
        count: usize,
        start: usize,
        out: (*mut f32, usize),
    ) -> usize {
        let mut sums = [[[0f32; LANES]; C]; QUERIES];
        for j in seen.clone() {
            let values = &self.value(j)[start..][..C * LANES];
            for (n, sums) in sums.iter_mut().enumerate() {
                let p = weights[n * padded + j];
                for (sums, values) in sums.iter_mut().zip(values.chunks_exact(LANES)) {
                    for l in 0..LANES {
                        sums[l] += p * values[l];
                    }
                }
            }
        }
        for (n, sums) in sums.iter().enumerate().take(count) {
            // Safety: row `n` of the block, columns of this head.
            let out = unsafe { std::slice::from_raw_parts_mut(out.0.add(n * out.1 + start), C * LANES) };
            out.copy_from_slice(sums.as_flattened());
        }
        C * LANES
    }

    fn value(&self, j: usize) -> &[f32] {
        self.problem.v.head(self.token(j), self.kv, self.problem.shape.dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x` rotated in f64 as transformers does ("rotate half").
    fn rotated(x: &[f32], cos: &[f32], sin: &[f32]) -> Vec<f64> {
        let half = cos.len();
        let mut out: Vec<f64> = x.iter().map(|v| *v as f64).collect();
        for d in 0..half {
            let (a, b) = (x[d] as f64, x[d + half] as f64);
            out[d] = a * cos[d] as f64 - b * sin[d] as f64;
            out[d + half] = b * cos[d] as f64 + a * sin[d] as f64;
        }
        out
    }

    /// Against a plain f64 computation: queries, keys and values fused in
    /// one row per token, grouped heads, a window, a soft cap, a head size
    /// that is not a multiple of 16, partial rotation with tables per
    /// position or per window, and lengths that are not a multiple of 4.
    #[test]
    fn attention_equals_a_plain_computation() {
        let (batch, heads, kv_heads, len, dim) = (2, 4, 2, 70, 20);
        let stride = (heads + 2 * kv_heads) * dim;
        let mut rng = crate::synth::Rng::new(3);
        let fused = rng.normals(batch * len * stride, 1.0);
        let half = 6;
        let angles = rng.normals(batch * len * half, 1.0);
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let view = |offset: usize| View {
            values: &fused,
            stride,
            offset,
        };
        for (softcap, window, rope) in [
            (None, None, None),
            (Some(2.0), Some(9), Some(false)),
            (None, Some(30), Some(true)),
        ] {
            let shape = Shape {
                kv_heads,
                dim,
                scale: 0.3,
                softcap,
                window,
            };
            let problem = Problem {
                q: view(0),
                k: view(heads * dim),
                v: view((heads + kv_heads) * dim),
                rope: rope.map(|per_row| Tables {
                    cos: &cos,
                    sin: &sin,
                    half,
                    per_row,
                }),
                batch,
                heads,
                len,
                shape: &shape,
            };
            let out = attend(&problem);
            let head = |b: usize, t: usize, offset: usize| -> Vec<f64> {
                let x = &fused[(b * len + t) * stride + offset..][..dim];
                let at = if rope == Some(true) {
                    (b * len + t) * half
                } else {
                    t * half
                };
                match rope {
                    Some(_) => rotated(x, &cos[at..][..half], &sin[at..][..half]),
                    None => x.iter().map(|v| *v as f64).collect(),
                }
            };
            for (b, h, i) in (0..batch).flat_map(|b| (0..heads).flat_map(move |h| (0..len).map(move |i| (b, h, i)))) {
                let kv = h / (heads / kv_heads);
                let query = head(b, i, h * dim);
                let first = window.map_or(0, |w: usize| (i + 1).saturating_sub(w));
                let scores: Vec<f64> = (first..=i)
                    .map(|j| {
                        let key = head(b, j, (heads + kv) * dim);
                        let s = query.iter().zip(&key).map(|(a, b)| a * b).sum::<f64>() * 0.3;
                        softcap.map_or(s, |c: f32| (s / c as f64).tanh() * c as f64)
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for d in 0..dim {
                    let value = |j: usize| fused[(b * len + j) * stride + (heads + kv_heads + kv) * dim + d] as f64;
                    let exact: f64 = (first..=i).zip(&weights).map(|(j, w)| w * value(j)).sum::<f64>() / total;
                    let got = out[(b * len + i) * heads * dim + h * dim + d] as f64;
                    assert!(
                        (got - exact).abs() < 1e-5,
                        "({b},{h},{i},{d}) {softcap:?} {window:?} {rope:?}: {got} vs {exact}"
                    );
                }
            }
        }
    }
}
