//! Model measurements: each model is materialised once per pass in memory,
//! straight from the memory-mapped leaves, then scored on its datasets.

use super::materialize::materialize;
use crate::eval::mlp::{evaluate, Mlp, Scores};
use crate::graph::{Graph, Measure, MeasureId, ModelKind, NodeId, ScalarId};
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// Scores every model measurement in `measures`.
pub(super) fn measure(
    graph: &Graph,
    measures: &[MeasureId],
    coef: &dyn Fn(ScalarId) -> f64,
    device: &Device,
) -> Result<Vec<(MeasureId, f64)>, String> {
    let mut models: HashMap<(NodeId, usize), Mlp> = HashMap::new();
    let mut scores: HashMap<(NodeId, usize, usize), Scores> = HashMap::new();
    let mut out = Vec::new();
    for m in measures {
        let Measure::Model(model) = graph.measure(*m) else {
            continue;
        };
        let key = (model.node, model.config);
        if let std::collections::hash_map::Entry::Vacant(slot) = models.entry(key) {
            slot.insert(build(graph, model.node, model.config, coef, device)?);
        }
        let score = match scores.get(&(model.node, model.config, model.data)) {
            Some(score) => *score,
            None => {
                let data = &graph.datasets[model.data];
                let score = evaluate(&models[&key], data, device).map_err(|e| e.to_string())?;
                scores.insert((model.node, model.config, model.data), score);
                score
            }
        };
        let value = match model.kind {
            ModelKind::Accuracy => score.accuracy,
            ModelKind::Loss => score.loss,
        };
        out.push((*m, value));
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
