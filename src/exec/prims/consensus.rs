//! TIES sign election and the disjoint mean (Yadav et al. 2023), as
//! mergekit computes them: the sign is elected on the weighted deltas, by
//! the sign of their sum (ties to +), and the mean divides by the total
//! weight of the deltas that agree, not by their count.

use rayon::prelude::*;

/// +1 where the inputs sum to zero or more, else -1.
fn elected(deltas: &[&[f64]], i: usize) -> f64 {
    let total: f64 = deltas.iter().map(|d| d[i]).sum();
    if total >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

pub fn elect(deltas: &[&[f64]], numel: usize) -> Vec<f32> {
    (0..numel).into_par_iter().map(|i| elected(deltas, i) as f32).collect()
}

/// Per element: the sum of the deltas whose sign is the elected one,
/// divided (when `normalize`) by the sum of their weights, or by 1 where
/// that is 0. A zero delta agrees with neither sign.
pub fn disjoint_mean(deltas: &[&[f64]], weights: &[f64], normalize: bool, numel: usize) -> Vec<f32> {
    (0..numel)
        .into_par_iter()
        .map(|i| {
            let majority = elected(deltas, i);
            let (mut total, mut divisor) = (0.0, 0.0);
            for (d, w) in deltas.iter().zip(weights) {
                if sign(d[i]) == majority {
                    total += d[i];
                    divisor += w;
                }
            }
            if normalize && divisor != 0.0 {
                total /= divisor;
            }
            total as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_majority_by_sum_wins_and_zeros_abstain() {
        let a = [1.0, -1.0, 0.0, 2.0];
        let b = [-3.0, -1.0, 0.0, 0.0];
        let c = [1.0, 3.0, 0.0, 1.0];
        let deltas: Vec<&[f64]> = vec![&a, &b, &c];
        assert_eq!(elect(&deltas, 4), vec![-1.0, 1.0, 1.0, 1.0]);
        // Weights 1, 2, 4. Element 0: only b agrees (-3 / 2). Element 1:
        // only c (3 / 4). Element 2: nobody (0). Element 3: a and c (3 / 5).
        let merged = disjoint_mean(&deltas, &[1.0, 2.0, 4.0], true, 4);
        assert_eq!(merged, vec![-1.5, 0.75, 0.0, 0.6]);
        let summed = disjoint_mean(&deltas, &[1.0, 2.0, 4.0], false, 4);
        assert_eq!(summed, vec![-3.0, 3.0, 0.0, 3.0]);
    }
}
