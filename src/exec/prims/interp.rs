//! Interpolations whose coefficients depend on each tensor: slerp
//! (Shoemake 1985) and Model Stock (Jang et al. 2024), with mergekit
//! 0.1.5's thresholds. Computed in f64.

use rayon::prelude::*;

/// Below this, a norm is taken as 1 (mergekit's `eps`).
const NORM_EPS: f64 = 1e-8;
/// Beyond this |cos|, the tensors are treated as collinear and
/// interpolated linearly.
const DOT_THRESHOLD: f64 = 0.9995;

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Each tensor on the great circle from `a` (t = 0) to `b` (t = 1), its
/// angle measured between the tensors as flattened vectors.
pub fn slerp(a: &[f64], b: &[f64], t: f64) -> Vec<f32> {
    let (ca, cb) = slerp_coefficients(a, b, t);
    a.par_iter().zip(b).map(|(x, y)| (ca * x + cb * y) as f32).collect()
}

fn slerp_coefficients(a: &[f64], b: &[f64], t: f64) -> (f64, f64) {
    let unit = |n: f64| if n > NORM_EPS { n } else { 1.0 };
    let (na, nb) = (unit(norm(a)), unit(norm(b)));
    let dot = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x / na) * (y / nb))
        .sum::<f64>()
        .clamp(-1.0, 1.0);
    if a.is_empty() || dot.abs() > DOT_THRESHOLD {
        return (1.0 - t, t);
    }
    let theta = dot.acos();
    let sin = theta.sin();
    (((1.0 - t) * theta).sin() / sin, (t * theta).sin() / sin)
}

/// Model Stock's ratio `t = k cos / (1 + (k - 1) cos)`, with `cos` the mean
/// cosine between the `k` offsets from the base, per tensor or (when
/// `filter_wise`) per group of `row` elements along the last axis; 0 where
/// the denominator vanishes. Returned filled in, one value per element.
pub fn stock_ratio(offsets: &[&[f64]], row: usize, filter_wise: bool) -> Vec<f32> {
    let numel = offsets.first().map_or(0, |o| o.len());
    let group = if filter_wise { row.max(1) } else { numel.max(1) };
    let k = offsets.len() as f64;
    let mut out = vec![0.0f32; numel];
    out.par_chunks_mut(group).enumerate().for_each(|(g, chunk)| {
        let span = g * group..g * group + chunk.len();
        let parts: Vec<&[f64]> = offsets.iter().map(|o| &o[span.clone()]).collect();
        let cos = mean_cosine(&parts);
        let denominator = 1.0 + (k - 1.0) * cos;
        let t = if denominator.abs() < 1e-6 {
            0.0
        } else {
            k * cos / denominator
        };
        chunk.fill(t as f32);
    });
    out
}

/// Mean pairwise cosine, each clamped to [-1, 1], norms' product at least
/// 1e-6.
fn mean_cosine(offsets: &[&[f64]]) -> f64 {
    let norms: Vec<f64> = offsets.iter().map(|o| norm(o)).collect();
    let mut total = 0.0;
    let mut pairs = 0;
    for i in 0..offsets.len() {
        for j in i + 1..offsets.len() {
            let dot: f64 = offsets[i].iter().zip(offsets[j]).map(|(x, y)| x * y).sum();
            total += (dot / (norms[i] * norms[j]).max(1e-6)).clamp(-1.0, 1.0);
            pairs += 1;
        }
    }
    total / pairs.max(1) as f64
}

/// `(1 - t) * a + t * b`, element by element.
pub fn mix(a: &[f64], b: &[f64], t: &[f64]) -> Vec<f32> {
    a.par_iter()
        .zip(b)
        .zip(t)
        .map(|((x, y), t)| (t * y + (1.0 - t) * x) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slerp_of_orthogonal_vectors_follows_the_circle() {
        let (a, b) = ([2.0, 0.0], [0.0, 2.0]);
        let half = slerp(&a, &b, 0.5);
        let r = std::f64::consts::SQRT_2;
        assert!(
            (half[0] as f64 - r).abs() < 1e-6 && (half[1] as f64 - r).abs() < 1e-6,
            "{half:?}"
        );
        assert_eq!(slerp(&a, &b, 0.0), vec![2.0, 0.0]);
    }

    #[test]
    fn nearly_parallel_vectors_interpolate_linearly() {
        let (a, b) = ([1.0, 0.0], [2.0, 0.001]);
        assert_eq!(slerp(&a, &b, 0.25), vec![1.25, 0.00025]);
    }

    #[test]
    fn stock_ratio_of_two_offsets() {
        // cos = 0.6 between (3, 4) and (5, 0): t = 2 * 0.6 / 1.6 = 0.75.
        let (a, b) = ([3.0, 4.0], [5.0, 0.0]);
        assert_eq!(stock_ratio(&[&a, &b], 2, false), vec![0.75, 0.75]);
        // Filter-wise rows of one: each cos is 1 or 0 -> t 1 or 0.
        assert_eq!(stock_ratio(&[&a, &b], 1, true), vec![1.0, 0.0]);
    }
}
