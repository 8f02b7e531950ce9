//! Synthetic checkpoints with known structure, for the bundled experiments,
//! the tests and the benchmarks. Deterministic: the same seed gives the same
//! bytes on every machine.
//!
//! The experiment family imitates the two papers' settings on a small
//! MLP-shaped model: yearly "time vectors" that drift as a random walk (so
//! nearby years are more similar than distant ones), and task models whose
//! task vector is a fixed direction plus the year's drift.

use crate::io::{Dtype, IoError, SaveOptions, TensorInfo, Writer};
use std::path::Path;

/// splitmix64: tiny, fast and fully specified, so the data never changes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    pub fn normals(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }
}

/// Float tensors by name (sorted), plus the model's integer buffer.
#[derive(Clone)]
pub struct Weights {
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Weights {
    /// `self + scale * other`, tensor by tensor.
    pub fn plus(&self, scale: f32, other: &Weights) -> Weights {
        let tensors = self
            .tensors
            .iter()
            .zip(&other.tensors)
            .map(|((n, s, a), (_, _, b))| {
                (
                    n.clone(),
                    s.clone(),
                    a.iter().zip(b).map(|(x, y)| x + scale * y).collect(),
                )
            })
            .collect();
        Weights { tensors }
    }
}

/// The shapes of the small MLP the experiments use.
pub fn mlp_shapes() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("embed.weight", vec![64, 32]),
        ("head.weight", vec![10, 32]),
        ("layers.0.bias", vec![32]),
        ("layers.0.weight", vec![32, 32]),
        ("layers.1.bias", vec![32]),
        ("layers.1.weight", vec![32, 32]),
    ]
}

pub fn random_weights(rng: &mut Rng, shapes: &[(&str, Vec<usize>)], scale: f64) -> Weights {
    let tensors = shapes
        .iter()
        .map(|(name, shape)| {
            (
                name.to_string(),
                shape.clone(),
                rng.normals(shape.iter().product(), scale),
            )
        })
        .collect();
    Weights { tensors }
}

/// Writes `weights` (plus an i64 `position_ids` buffer, carried through by
/// arithmetic) as f32 to `path`: a `.safetensors` file or a folder.
pub fn save(path: &Path, weights: &Weights, options: &SaveOptions) -> Result<(), IoError> {
    let mut infos: Vec<TensorInfo> = weights
        .tensors
        .iter()
        .map(|(n, s, _)| TensorInfo::new(n.clone(), Dtype::F32, s.clone()))
        .collect();
    infos.push(TensorInfo::new("position_ids", Dtype::I64, vec![64]));
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    let writer = Writer::create(path, &infos, options)?;
    for (i, info) in infos.iter().enumerate() {
        let bytes = match weights.tensors.iter().find(|(n, _, _)| *n == info.name) {
            Some((_, _, values)) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            None => (0..64i64).flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        };
        writer.write(i, &bytes)?;
    }
    writer.finish()
}

/// The years of the experiment family.
pub const YEARS: std::ops::RangeInclusive<u32> = 2012..=2016;

/// Writes the experiment family into `dir`:
/// - `base/`: a Hugging Face folder (config.json, two shards and an index);
/// - `lm_YEAR.safetensors`: base + the year's time vector;
/// - `task_YEAR.safetensors`: base + the year's time vector + a task vector.
pub fn write_experiment_checkpoints(dir: &Path) -> Result<(), IoError> {
    let write_err = |e: std::io::Error| IoError::Write {
        path: dir.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let shapes = mlp_shapes();
    let mut rng = Rng::new(2023);
    let base = random_weights(&mut rng, &shapes, 0.1);
    let config = r#"{"architectures": ["TinyMLP"], "hidden_size": 32, "vocab_size": 64}"#;
    let folder = SaveOptions {
        max_shard_bytes: 8 * 1024,
        config_json: Some(config.as_bytes().to_vec()),
        ..SaveOptions::default()
    };
    save(&dir.join("base"), &base, &folder)?;
    let task = random_weights(&mut rng, &shapes, 0.02);
    let mut drift = random_weights(&mut rng, &shapes, 0.01);
    for year in YEARS {
        let step = random_weights(&mut rng, &shapes, 0.01);
        drift = drift.plus(1.0, &step);
        let lm = base.plus(1.0, &drift);
        save(
            &dir.join(format!("lm_{year}.safetensors")),
            &lm,
            &SaveOptions::default(),
        )?;
        let noise = random_weights(&mut rng, &shapes, 0.002);
        let tuned = lm.plus(1.0, &task).plus(1.0, &noise);
        save(
            &dir.join(format!("task_{year}.safetensors")),
            &tuned,
            &SaveOptions::default(),
        )?;
    }
    Ok(())
}
