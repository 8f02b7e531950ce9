//! Fixtures shared by the integration tests: random checkpoints written with
//! the `safetensors` crate, and an independent reader that decodes tensors
//! (f32, f16 and bf16 through the `half` crate) to f64. Nothing here uses
//! tv's own codec or reductions.
#![allow(dead_code)]

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One tensor to write: raw little-endian bytes.
#[derive(Clone, Debug)]
pub struct Raw {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Raw {
    pub fn is_float(&self) -> bool {
        is_float(self.dtype)
    }
}

pub fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// The layout of the test model: float tensors of several ranks (a scalar
/// included) and an i64 buffer.
pub const FLOAT_SHAPES: [(&str, &[usize]); 4] = [
    ("embed.weight", &[7, 5]),
    ("layers.0.bias", &[13]),
    ("layers.0.weight", &[3, 4, 2]),
    ("scale", &[]),
];
pub const INT_NAME: &str = "position_ids";
pub const INT_LEN: usize = 6;

/// Encodes f32 values in `dtype` (f32, f16 or bf16; halves rounded by `half`).
pub fn encode(dtype: Dtype, values: &[f32]) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        other => panic!("no encoder for {other:?}"),
    }
}

/// Decodes a float tensor's bytes exactly to f64; `None` for other dtypes.
pub fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        _ => return None,
    })
}

/// A random model with the test layout: float tensors in `dtype` (normal
/// values times `scale`), and an i64 buffer whose values depend on the seed.
pub fn random_model(seed: u64, dtype: Dtype, scale: f64) -> Vec<Raw> {
    let mut rng = tv::synth::Rng::new(seed);
    let mut out: Vec<Raw> = FLOAT_SHAPES
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = rng.normals(n, scale);
            Raw {
                name: name.to_string(),
                dtype,
                shape: shape.to_vec(),
                bytes: encode(dtype, &values),
            }
        })
        .collect();
    let ints: Vec<u8> = (0..INT_LEN as i64)
        .flat_map(|i| (i * 1000 + seed as i64).to_le_bytes())
        .collect();
    out.push(Raw {
        name: INT_NAME.to_string(),
        dtype: Dtype::I64,
        shape: vec![INT_LEN],
        bytes: ints,
    });
    out
}

/// A random model with `count` float tensors of assorted sizes (and very
/// different magnitudes), plus the i64 buffer.
pub fn many_tensor_model(seed: u64, count: usize) -> Vec<Raw> {
    let mut rng = tv::synth::Rng::new(seed);
    let mut out: Vec<Raw> = (0..count)
        .map(|i| {
            let shape = vec![1 + i % 7, 1 + (i * 5) % 11];
            let n: usize = shape.iter().product();
            let scale = 10f64.powi((i % 5) as i32 - 2);
            Raw {
                name: format!("blocks.{i:02}.weight"),
                dtype: Dtype::F32,
                shape,
                bytes: encode(Dtype::F32, &rng.normals(n, scale)),
            }
        })
        .collect();
    out.push(Raw {
        name: INT_NAME.to_string(),
        dtype: Dtype::I64,
        shape: vec![INT_LEN],
        bytes: (0..INT_LEN as i64).flat_map(|i| i.to_le_bytes()).collect(),
    });
    out
}

/// The same tensors with float ones converted (through f32) to `dtype`.
pub fn convert(model: &[Raw], dtype: Dtype) -> Vec<Raw> {
    model
        .iter()
        .map(|t| match decode(t.dtype, &t.bytes) {
            Some(values) => {
                let values: Vec<f32> = values.iter().map(|v| *v as f32).collect();
                Raw {
                    dtype,
                    bytes: encode(dtype, &values),
                    ..t.clone()
                }
            }
            None => t.clone(),
        })
        .collect()
}

fn serialize(tensors: &[&Raw]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// Writes one `.safetensors` file.
pub fn write_file(path: &Path, model: &[Raw]) {
    let refs: Vec<&Raw> = model.iter().collect();
    std::fs::write(path, serialize(&refs)).unwrap();
}

/// Writes a sharded Hugging Face folder: `shards` files, the index, and a
/// config.json and tokenizer.json whose text names `tag`.
pub fn write_sharded(dir: &Path, model: &[Raw], shards: usize, tag: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut weight_map = serde_json::Map::new();
    let mut total = 0usize;
    for k in 0..shards {
        let name = format!("model-{:05}-of-{:05}.safetensors", k + 1, shards);
        let part: Vec<&Raw> = model
            .iter()
            .enumerate()
            .filter(|(i, _)| i % shards == k)
            .map(|(_, t)| t)
            .collect();
        for t in &part {
            weight_map.insert(t.name.clone(), serde_json::Value::String(name.clone()));
            total += t.bytes.len();
        }
        std::fs::write(dir.join(&name), serialize(&part)).unwrap();
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    write_companions(dir, tag);
}

/// A folder with one `model.safetensors`, plus config and tokenizer.
pub fn write_folder(dir: &Path, model: &[Raw], tag: &str) {
    std::fs::create_dir_all(dir).unwrap();
    write_file(&dir.join("model.safetensors"), model);
    write_companions(dir, tag);
}

pub fn write_companions(dir: &Path, tag: &str) {
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"architectures": ["TinyMLP"], "tag": "{tag}"}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer.json"),
        format!(r#"{{"version": "1.0", "tag": "{tag}"}}"#),
    )
    .unwrap();
}

/// A tensor as read back from disk.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Loaded {
    pub fn values(&self) -> Option<Vec<f64>> {
        decode(self.dtype, &self.bytes)
    }
}

/// Reads every tensor of one safetensors file with the `safetensors` crate.
pub fn read_file(path: &Path) -> BTreeMap<String, Loaded> {
    let buffer = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let st = SafeTensors::deserialize(&buffer).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let loaded = Loaded {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (name, loaded)
        })
        .collect()
}

/// Reads a Hugging Face folder: `model.safetensors`, or the shards its index names.
pub fn read_folder(dir: &Path) -> BTreeMap<String, Loaded> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return read_file(&single);
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    let map = index["weight_map"].as_object().unwrap();
    let mut files: Vec<&str> = map.values().map(|v| v.as_str().unwrap()).collect();
    files.sort();
    files.dedup();
    let mut out = BTreeMap::new();
    for file in files {
        for (name, t) in read_file(&dir.join(file)) {
            assert_eq!(map[&name].as_str(), Some(file), "index and shard disagree on {name}");
            assert!(out.insert(name.clone(), t).is_none(), "{name} stored twice");
        }
    }
    assert_eq!(
        out.len(),
        map.len(),
        "index lists {} tensors, shards hold {}",
        map.len(),
        out.len()
    );
    out
}

/// The float tensors of a model decoded to f64, by name.
pub type Floats = BTreeMap<String, Vec<f64>>;

pub fn floats(model: &[Raw]) -> Floats {
    model
        .iter()
        .filter_map(|t| Some((t.name.clone(), decode(t.dtype, &t.bytes)?)))
        .collect()
}

pub fn floats_of(loaded: &BTreeMap<String, Loaded>) -> Floats {
    loaded
        .iter()
        .filter_map(|(n, t)| Some((n.clone(), t.values()?)))
        .collect()
}

/// Bytes of the float tensors of a model.
pub fn float_bytes(model: &[Raw]) -> u64 {
    model
        .iter()
        .filter(|t| t.is_float())
        .map(|t| t.bytes.len() as u64)
        .sum()
}

/// Runs the `tv` binary with `args` in `dir`, stdin closed and stdout/stderr piped.
pub fn tv_command(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tv"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the tv binary runs")
}

/// Every entry under `dir`, recursively, hidden ones included.
pub fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

/// Writes `program` to `dir/file` and runs it through the library; returns
/// the CSV report, or panics with the rendered diagnostics.
pub fn run_program(dir: &Path, file: &str, program: &str, overrides: &tv::Overrides) -> String {
    let path = dir.join(file);
    std::fs::write(&path, program).unwrap();
    let mut sources = tv::diag::Sources::default();
    match tv::run(&mut sources, &path, overrides, false) {
        Ok(out) => out.csv(),
        Err(diags) => panic!("{file} failed:\n{}", tv::diag::render_plain(&diags, &sources, 100)),
    }
}

/// A float tensor of `shape` with normal values times `scale`, as f32.
pub fn normal_tensor(rng: &mut tv::synth::Rng, name: &str, shape: &[usize], scale: f64) -> Raw {
    let values = rng.normals(shape.iter().product(), scale);
    Raw {
        name: name.to_string(),
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: encode(Dtype::F32, &values),
    }
}

/// The windows of a language-model reference case (`context`, `stride`),
/// scored `batch` at a time.
pub fn case_windowing(case: &serde_json::Value, batch: usize) -> tv::eval::lm::Windowing {
    tv::eval::lm::Windowing {
        context: case["context"].as_u64().unwrap() as usize,
        stride: case["stride"].as_u64().unwrap() as usize,
        batch,
    }
}

/// Every per-token loss within 1e-4 relative of the reference case's, or
/// within 1e-6 nats for losses under 0.01: a loss is a difference of f32
/// logits and their log-sum-exp, whose magnitude (tens of nats) puts its
/// rounding near 1e-6 however the sums are ordered.
pub fn assert_losses_match(what: &str, losses: &[f64], case: &serde_json::Value) {
    let expected: Vec<f64> = case["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), expected.len(), "{what}: scored tokens");
    for (i, (got, want)) in losses.iter().zip(&expected).enumerate() {
        let relative = (got - want).abs() / want.abs().max(0.01);
        assert!(relative < 1e-4, "{what} token {i}: {got} vs {want}");
    }
}

/// `|a - b| / |b|`.
pub fn relative_difference(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// The JSON value of a file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Token ids listed in a reference file.
pub fn token_ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// The language-model config of a Hugging Face folder, as tv reads it.
pub fn lm_config(folder: &Path) -> tv::eval::lm::LmConfig {
    let json = read_json(&folder.join("config.json"));
    tv::eval::lm::LmConfig::parse(json.as_object().unwrap()).unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
}

/// A checkpoint's tensors in f32, as tv materialises them for scoring.
pub fn f32_tensors(
    tensors: std::collections::HashMap<String, candle_core::Tensor>,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    tensors
        .into_iter()
        .map(|(name, t)| (name, t.to_dtype(candle_core::DType::F32).unwrap()))
        .collect()
}

/// A safetensors file's tensors: name -> (shape, values in f64); every one
/// must be f32. Read with the safetensors crate, not tv.
#[allow(dead_code)]
pub fn f32_file(path: &std::path::Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// A CSV report's rows, each a map from column to cell.
#[allow(dead_code)]
pub fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("header").clone();
    reader
        .records()
        .map(|r| {
            let record = r.expect("record");
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}
