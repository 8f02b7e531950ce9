//! The non-linear primitives on one whole tensor: inputs in f64, the
//! result rounded to f32 once, as mergekit (computing in f32) stores it.

mod consensus;
mod interp;
mod rng;
mod sparsify;

use crate::graph::Prim;

/// `prim` applied to tensor `name` (of `shape`) of each input.
pub fn apply(prim: &Prim, inputs: &[&[f64]], shape: &[usize], name: &str) -> Vec<f32> {
    let numel = shape.iter().product();
    let first = inputs[0];
    match prim {
        Prim::Trim { density, rescale } => sparsify::trim(first, density.get(), *rescale),
        Prim::TrimOutliers {
            density,
            gamma,
            rescale,
        } => sparsify::trim_outliers(first, density.get(), gamma.get(), *rescale),
        Prim::Drop {
            density,
            stream,
            rescale,
        } => sparsify::drop(first, density.get(), *stream, name, *rescale),
        Prim::DropRanked {
            density,
            epsilon,
            stream,
            rescale,
        } => sparsify::drop_ranked(first, shape, (density.get(), epsilon.get()), *stream, name, *rescale),
        Prim::Elect => consensus::elect(inputs, numel),
        Prim::DisjointMean { weights, normalize } => {
            let weights: Vec<f64> = weights.iter().map(|w| w.get()).collect();
            consensus::disjoint_mean(inputs, &weights, *normalize, numel)
        }
        Prim::Slerp { t } => interp::slerp(first, inputs[1], t.get()),
        Prim::StockRatio { filter_wise } => {
            let row = shape.last().copied().unwrap_or(1);
            interp::stock_ratio(inputs, row, *filter_wise)
        }
        Prim::Mix => interp::mix(first, inputs[1], inputs[2]),
    }
}
