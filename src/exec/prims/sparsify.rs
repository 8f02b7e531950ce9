//! Sparsification: which elements of a task vector survive. Counts and
//! edge cases follow mergekit 0.1.5 (`mergekit/sparsify.py`), so a merge
//! agrees with it element for element, but for equal magnitudes at a cut:
//! those rank here as a stable sort ranks them (mergekit's argsort is not
//! stable), so results are deterministic. (Tensors are assumed
//! to hold fewer than 2^32 elements.)

use super::rng::Uniforms;
use crate::graph::Stream;
use rayon::prelude::*;

/// Below this L1 norm (before or after masking) mergekit does not rescale.
const RESCALE_EPS: f64 = 1e-7;

/// The magnitude of each element as f32, which is what mergekit ranks.
fn magnitudes(x: &[f64]) -> Vec<f32> {
    x.par_iter().map(|v| (*v as f32).abs()).collect()
}

/// A key per element, unique and ordered by magnitude, then by index the
/// way a stable sort in that direction ranks ties: earlier elements first
/// when `descending` ranks the largest first. Magnitudes are non-negative,
/// so their bit patterns order like their values (NaN above infinity).
fn keys(magnitudes: &[f32], descending: bool) -> Vec<u64> {
    let last = magnitudes.len().saturating_sub(1);
    magnitudes
        .par_iter()
        .enumerate()
        .map(|(i, m)| {
            let tie = if descending { last - i } else { i };
            ((m.to_bits() as u64) << 32) | tie as u64
        })
        .collect()
}

/// Whether each element's rank by ascending magnitude lies in `lo..hi`.
fn rank_window(x: &[f64], lo: usize, hi: usize, descending: bool) -> Vec<bool> {
    let n = x.len();
    let hi = hi.min(n);
    if lo >= hi {
        return vec![false; n];
    }
    let original = keys(&magnitudes(x), descending);
    let mut sorted = original.clone();
    let kth = |sorted: &mut Vec<u64>, rank: usize| *sorted.select_nth_unstable(rank).1;
    let low = kth(&mut sorted, lo);
    let high = (hi < n).then(|| kth(&mut sorted, hi));
    original
        .par_iter()
        .map(|k| *k >= low && high.is_none_or(|h| *k < h))
        .collect()
}

/// `x` where `keep`, else 0; rescaled (when asked) so its L1 norm is that
/// of `x`, unless either norm is below mergekit's 1e-7.
fn masked(x: &[f64], keep: &[bool], rescale: bool) -> Vec<f32> {
    let mut scale = 1.0;
    if rescale {
        let before: f64 = x.iter().map(|v| v.abs()).sum();
        let after: f64 = x.iter().zip(keep).filter(|(_, k)| **k).map(|(v, _)| v.abs()).sum();
        // Written as mergekit tests it, so a NaN norm rescales (to NaN).
        if !(before < RESCALE_EPS || after < RESCALE_EPS) {
            scale = before / after;
        }
    }
    x.par_iter()
        .zip(keep)
        .map(|(v, k)| if *k { (v * scale) as f32 } else { 0.0 })
        .collect()
}

fn unchanged(x: &[f64]) -> Vec<f32> {
    x.iter().map(|v| *v as f32).collect()
}

/// `floor(fraction * n)`, as Python's `int(fraction * n)` computes it.
fn count(fraction: f64, n: usize) -> usize {
    (fraction * n as f64).max(0.0) as usize
}

/// Keeps the `max(1, floor(density * n))` largest magnitudes.
pub fn trim(x: &[f64], density: f64, rescale: bool) -> Vec<f32> {
    let n = x.len();
    if density >= 1.0 {
        return unchanged(x);
    }
    if density <= 0.0 || n == 0 {
        return vec![0.0; n];
    }
    let k = count(density, n).max(1);
    masked(x, &rank_window(x, n - k, n, true), rescale)
}

/// Drops the `floor(gamma * n)` largest magnitudes and keeps the
/// `floor(density * n)` below them; where both do not fit, the smallest
/// `floor(density * n)`.
pub fn trim_outliers(x: &[f64], density: f64, gamma: f64, rescale: bool) -> Vec<f32> {
    let n = x.len();
    if density >= 1.0 {
        return unchanged(x);
    }
    let target = count(density, n);
    let top = count(gamma, n);
    let bottom = n.saturating_sub(target + top);
    masked(x, &rank_window(x, bottom, bottom + target, false), rescale)
}

/// Keeps each element with probability `density`.
pub fn drop(x: &[f64], density: f64, stream: Stream, name: &str, rescale: bool) -> Vec<f32> {
    if density >= 1.0 {
        return unchanged(x);
    }
    let uniforms = Uniforms::new(stream, name);
    let keep: Vec<bool> = (0..x.len()).into_par_iter().map(|i| uniforms.at(i) < density).collect();
    masked(x, &keep, rescale)
}

/// DELLA's magnitude-ranked drop: along axis 1 (the only axis of a
/// vector), element of rank `r` (1 = smallest of `m`) is kept with
/// probability `density - epsilon + 2 epsilon (r - 1) / (m - 1)`. A lone
/// element (m = 1) gets `density`.
pub fn drop_ranked(
    x: &[f64],
    shape: &[usize],
    (density, epsilon): (f64, f64),
    stream: Stream,
    name: &str,
    rescale: bool,
) -> Vec<f32> {
    if density >= 1.0 {
        return unchanged(x);
    }
    if density <= 0.0 {
        return vec![0.0; x.len()];
    }
    let magnitude = magnitudes(x);
    let (outer, length, inner) = lanes(shape, x.len());
    let uniforms = Uniforms::new(stream, name);
    let mut keep = vec![false; x.len()];
    let lane_of = |lane: usize| (lane / inner) * length * inner + lane % inner;
    let decided: Vec<(usize, bool)> = (0..outer * inner)
        .into_par_iter()
        .flat_map_iter(|lane| {
            let first = lane_of(lane);
            let mut order: Vec<usize> = (0..length).map(|j| first + j * inner).collect();
            order.sort_by(|a, b| magnitude[*a].total_cmp(&magnitude[*b]).then(a.cmp(b)));
            order.into_iter().enumerate().map(move |(rank, i)| {
                let spread = if length > 1 {
                    rank as f64 / (length - 1) as f64
                } else {
                    0.5
                };
                let p = density - epsilon + spread * 2.0 * epsilon;
                (i, uniforms.at(i) < p)
            })
        })
        .collect();
    for (i, k) in decided {
        keep[i] = k;
    }
    masked(x, &keep, rescale)
}

/// A tensor as lanes along axis 1: (size of axis 0, size of axis 1, product
/// of the rest). A vector is one lane.
fn lanes(shape: &[usize], numel: usize) -> (usize, usize, usize) {
    match shape {
        [_, length, rest @ ..] => (shape[0], *length, rest.iter().product()),
        _ => (1, numel, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_keeps_the_largest_with_ties_to_the_lower_index() {
        let x = [0.5, -3.0, 1.0, -1.0, 2.0];
        // density 0.5 of 5: floor(2.5) = 2 kept: -3 and 2.
        assert_eq!(trim(&x, 0.5, false), vec![0.0, -3.0, 0.0, 0.0, 2.0]);
        // 3 kept: the tie between 1.0 and -1.0 goes to index 2.
        assert_eq!(trim(&x, 0.6, false), vec![0.0, -3.0, 1.0, 0.0, 2.0]);
        // At least one survives; none at density 0; all at density 1.
        assert_eq!(trim(&x, 0.01, false), vec![0.0, -3.0, 0.0, 0.0, 0.0]);
        assert_eq!(trim(&x, 0.0, false), vec![0.0; 5]);
        assert_eq!(trim(&x, 1.0, false), vec![0.5, -3.0, 1.0, -1.0, 2.0]);
    }

    #[test]
    fn rescaling_restores_the_l1_norm() {
        let x = [0.5, -3.0, 1.0, -1.0, 2.0];
        let kept = trim(&x, 0.5, true);
        // L1 before 7.5, after 5: kept values grow by 1.5.
        assert_eq!(kept, vec![0.0, -4.5, 0.0, 0.0, 3.0]);
    }

    #[test]
    fn outliers_and_the_smallest_go() {
        let x: Vec<f64> = (1..=10).map(|v| v as f64).collect();
        // gamma 0.2 drops 10 and 9; density 0.5 keeps the 5 below: 4..=8.
        let kept = trim_outliers(&x, 0.5, 0.2, false);
        let want: Vec<f32> = (1..=10)
            .map(|v| if (4..=8).contains(&v) { v as f32 } else { 0.0 })
            .collect();
        assert_eq!(kept, want);
        // density 0.9 + gamma 0.2 do not fit: the smallest 9 stay.
        let kept = trim_outliers(&x, 0.9, 0.2, false);
        assert_eq!(kept[8], 9.0);
        assert_eq!(kept[9], 0.0);
    }

    #[test]
    fn drop_keeps_about_density_and_is_reproducible() {
        let x: Vec<f64> = (0..100_000).map(|i| 1.0 + (i % 7) as f64).collect();
        let stream = Stream { seed: 3, index: 0 };
        let kept = drop(&x, 0.3, stream, "w", false);
        let fraction = kept.iter().filter(|v| **v != 0.0).count() as f64 / x.len() as f64;
        assert!((fraction - 0.3).abs() < 0.003, "{fraction}");
        assert_eq!(kept, drop(&x, 0.3, stream, "w", false));
    }

    #[test]
    fn ranked_drop_favours_large_magnitudes() {
        // 2 rows of 1000; within each row, keep rates run from 0.2 to 0.8.
        let x: Vec<f64> = (0..2000)
            .map(|i| ((i % 1000) as f64 + 1.0) * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let stream = Stream { seed: 1, index: 0 };
        let kept = drop_ranked(&x, &[2, 1000], (0.5, 0.3), stream, "w", false);
        // Ranks 0..200 of each row keep at about 0.26, ranks 800..1000 at 0.74.
        let rate = |ranks: std::ops::Range<usize>| {
            let n = 2.0 * ranks.len() as f64;
            let kept_in_row = |i: usize| (kept[i] != 0.0) as usize + (kept[i + 1000] != 0.0) as usize;
            ranks.map(kept_in_row).sum::<usize>() as f64 / n
        };
        let (small, large) = (rate(0..200), rate(800..1000));
        assert!(small < 0.35 && large > 0.65, "{small} {large}");
    }
}
