//! Model measurements: each model is materialised in memory, straight from
//! the memory-mapped leaves, scored on all its datasets, and dropped before
//! the next is built.

use super::materialize::materialize;
use crate::eval::mlp::{evaluate, Mlp, Scores};
use crate::graph::{Graph, Measure, MeasureId, ModelKind, ModelMeasure, NodeId, ScalarId};
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// Scores every model measurement in `measures`.
pub(super) fn measure(
    graph: &Graph,
    measures: &[MeasureId],
    coef: &dyn Fn(ScalarId) -> f64,
    device: &Device,
) -> Result<Vec<(MeasureId, f64)>, String> {
    let mut models: Vec<(MeasureId, ModelMeasure)> = measures
        .iter()
        .filter_map(|m| match graph.measure(*m) {
            Measure::Model(model) => Some((*m, model)),
            Measure::Dot(..) => None,
        })
        .collect();
    models.sort_by_key(|(_, model)| (model.node, model.config));
    let mut out = Vec::new();
    for group in models.chunk_by(|(_, x), (_, y)| (x.node, x.config) == (y.node, y.config)) {
        let (_, first) = group[0];
        let mlp = build(graph, first.node, first.config, coef, device)?;
        let mut scores: HashMap<usize, Scores> = HashMap::new();
        for (m, model) in group {
            let score = match scores.get(&model.data) {
                Some(score) => *score,
                None => {
                    let score = evaluate(&mlp, &graph.datasets[model.data], device).map_err(|e| e.to_string())?;
                    scores.insert(model.data, score);
                    score
                }
            };
            let value = match model.kind {
                ModelKind::Accuracy => score.accuracy,
                ModelKind::Loss => score.loss,
            };
            out.push((*m, value));
        }
    }
    Ok(out)
}

fn build(
    graph: &Graph,
    node: NodeId,
    config: usize,
    coef: &dyn Fn(ScalarId) -> f64,
    device: &Device,
) -> Result<Mlp, String> {
    let mut tensors = HashMap::new();
    for (info, bytes) in materialize(graph, node, coef).map_err(|e| e.to_string())? {
        if !info.is_float() {
            continue;
        }
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let tensor = Tensor::from_vec(values, info.shape.clone(), device).map_err(|e| e.to_string())?;
        tensors.insert(info.name, tensor);
    }
    Mlp::new(&graph.configs[config], &tensors).map_err(|e| e.to_string())
}
