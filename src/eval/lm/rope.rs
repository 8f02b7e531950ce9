//! Rotary position embeddings as transformers 5 computes them: the
//! inverse frequencies of each RoPE type (`default`, `linear`, `dynamic`,
//! `yarn`, `longrope`, `llama3`), over the whole head or its first part
//! (`partial_rotary_factor`), and the cosine and sine tables.
//!
//! Frequencies are computed in f32 as transformers computes them, so long
//! contexts round alike. `dynamic` and `longrope` depend on the length of
//! the sequence in the forward pass; tv computes them for each window as a
//! freshly loaded transformers model does (transformers' `dynamic` also
//! remembers the longest sequence it has seen; tv does not).

use serde_json::{Map, Value};
use std::f64::consts::PI;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rope {
    pub base: f64,
    /// Dimensions of each head that rotate (the first ones); even.
    pub rotary_dim: usize,
    pub scaling: Scaling,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Scaling {
    Default,
    Linear {
        factor: f64,
    },
    /// NTK-aware scaling of the base beyond `max_positions` tokens.
    Dynamic {
        factor: f64,
        max_positions: usize,
    },
    Yarn {
        factor: f64,
        original_max: usize,
        attention_factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        truncate: bool,
    },
    /// Per-frequency factors: the long ones beyond `original_max` tokens.
    Longrope {
        short: Vec<f64>,
        long: Vec<f64>,
        original_max: usize,
        attention_factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max: usize,
    },
}

/// The RoPE type's name as configs write it.
pub fn type_name(scaling: &Scaling) -> &'static str {
    match scaling {
        Scaling::Default => "default",
        Scaling::Linear { .. } => "linear",
        Scaling::Dynamic { .. } => "dynamic",
        Scaling::Yarn { .. } => "yarn",
        Scaling::Longrope { .. } => "longrope",
        Scaling::Llama3 { .. } => "llama3",
    }
}

/// Where a model's RoPE settings come from.
pub struct RopeInputs<'a> {
    /// The `rope_scaling`/`rope_parameters` object, if any.
    pub params: Option<&'a Map<String, Value>>,
    /// Its name, for messages.
    pub name: &'a str,
    /// The base given outside the object (`rope_theta` and the like).
    pub theta: Option<f64>,
    pub default_theta: f64,
    /// The rotary fraction given outside the object.
    pub partial: Option<f64>,
    pub head_dim: usize,
    /// `max_position_embeddings`.
    pub max_positions: usize,
    /// `original_max_position_embeddings` outside the object (Phi-3 puts it
    /// there, and it wins).
    pub original_max: Option<usize>,
}

const COMMON_KEYS: &[&str] = &["rope_type", "type", "rope_theta", "partial_rotary_factor"];

impl Rope {
    /// The RoPE the inputs describe, refusing keys it does not know.
    pub fn parse(inputs: &RopeInputs) -> Result<Rope, String> {
        let empty = Map::new();
        let params = Params {
            map: inputs.params.unwrap_or(&empty),
            name: inputs.name,
        };
        let kind = params.string("rope_type")?.or(params.string("type")?);
        let kind = kind.unwrap_or_else(|| "default".to_string());
        let base = match (params.positive("rope_theta")?, inputs.theta) {
            (Some(inner), Some(outer)) if inner != outer => {
                return Err(format!(
                    "`{}.rope_theta` ({inner}) and the config's RoPE base ({outer}) disagree",
                    inputs.name
                ))
            }
            (Some(base), _) | (None, Some(base)) => base,
            (None, None) => inputs.default_theta,
        };
        let partial = params
            .positive("partial_rotary_factor")?
            .or(inputs.partial)
            .unwrap_or(1.0);
        if partial > 1.0 {
            return Err(format!("the partial rotary factor {partial} is more than 1"));
        }
        let rotary_dim = (inputs.head_dim as f64 * partial) as usize;
        if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) {
            return Err(format!(
                "RoPE would rotate {rotary_dim} dimensions of each head ({} x {partial}); it needs a positive even number",
                inputs.head_dim
            ));
        }
        let original_max = || -> Result<usize, String> {
            match inputs.original_max {
                Some(n) => Ok(n),
                None => Ok(params
                    .count("original_max_position_embeddings")?
                    .unwrap_or(inputs.max_positions)),
            }
        };
        let (scaling, extra): (Scaling, &[&str]) = match kind.as_str() {
            "default" => (Scaling::Default, &[]),
            "linear" => (
                Scaling::Linear {
                    factor: params.required("factor")?,
                },
                &["factor"],
            ),
            "dynamic" => (
                Scaling::Dynamic {
                    factor: params.required("factor")?,
                    max_positions: inputs.max_positions,
                },
                &["factor"],
            ),
            "yarn" => (yarn(&params, original_max()?)?, YARN_KEYS),
            "longrope" => (longrope(&params, original_max()?, inputs, rotary_dim)?, LONGROPE_KEYS),
            "llama3" => (
                Scaling::Llama3 {
                    factor: params.required("factor")?,
                    low_freq_factor: params.required("low_freq_factor")?,
                    high_freq_factor: params.required("high_freq_factor")?,
                    original_max: original_max()?,
                },
                LLAMA3_KEYS,
            ),
            other => {
                return Err(format!(
                "`{}` asks for RoPE type \"{other}\"; tv computes default, linear, dynamic, yarn, longrope and llama3",
                inputs.name
            ))
            }
        };
        if let Some(key) = params
            .map
            .keys()
            .find(|k| !COMMON_KEYS.contains(&k.as_str()) && !extra.contains(&k.as_str()))
        {
            return Err(format!(
                "`{}.{key}` is not understood for RoPE type \"{kind}\"",
                inputs.name
            ));
        }
        if let Scaling::Llama3 {
            low_freq_factor,
            high_freq_factor,
            ..
        } = scaling
        {
            if high_freq_factor <= low_freq_factor {
                return Err(format!(
                    "`{}`: high_freq_factor must be above low_freq_factor",
                    inputs.name
                ));
            }
        }
        Ok(Rope {
            base,
            rotary_dim,
            scaling,
        })
    }

    /// Whether the frequencies depend on the sequence length.
    pub fn length_dependent(&self) -> bool {
        matches!(self.scaling, Scaling::Dynamic { .. } | Scaling::Longrope { .. })
    }

    /// The longest window this RoPE is meant for, given the config's
    /// `max_position_embeddings`: dynamic scaling exists to go `factor`
    /// times beyond it.
    pub fn context_limit(&self, max_positions: usize) -> usize {
        match self.scaling {
            Scaling::Dynamic { factor, .. } if factor > 1.0 => (max_positions as f64 * factor) as usize,
            _ => max_positions,
        }
    }

    /// Inverse frequencies (`rotary_dim / 2`) and the factor cos and sin are
    /// multiplied by, for a sequence of `len` tokens.
    pub fn frequencies(&self, len: usize) -> (Vec<f32>, f32) {
        let dim = self.rotary_dim;
        let exponents = || (0..dim / 2).map(move |i| (2 * i) as f32 / dim as f32);
        let powers = |base: f32| exponents().map(move |e| base.powf(e));
        let plain = |base: f32| powers(base).map(|p| 1.0 / p).collect::<Vec<f32>>();
        let base = self.base as f32;
        match &self.scaling {
            Scaling::Default => (plain(base), 1.0),
            Scaling::Linear { factor } => (plain(base).into_iter().map(|f| f / *factor as f32).collect(), 1.0),
            Scaling::Dynamic { factor, max_positions } => {
                if len <= *max_positions {
                    return (plain(base), 1.0);
                }
                let factor = *factor as f32;
                let grown = factor * len as f32 / *max_positions as f32 - (factor - 1.0);
                let base = base * grown.powf(dim as f32 / (dim as f32 - 2.0));
                (plain(base), 1.0)
            }
            Scaling::Yarn { .. } => yarn_frequencies(self, powers(base).collect()),
            Scaling::Longrope {
                short,
                long,
                original_max,
                attention_factor,
            } => {
                let factors = if len > *original_max { long } else { short };
                let inverse = powers(base).zip(factors).map(|(p, f)| 1.0 / (*f as f32 * p)).collect();
                (inverse, *attention_factor as f32)
            }
            Scaling::Llama3 { .. } => (llama3_frequencies(&self.scaling, plain(base)), 1.0),
        }
    }

    /// Cosines and sines `[positions, rotary_dim / 2]`, row-major, for a
    /// sequence of `len` tokens.
    pub fn tables(&self, len: usize, positions: usize) -> (Vec<f32>, Vec<f32>) {
        let (inverse, scale) = self.frequencies(len);
        let angles = (0..positions).flat_map(|p| inverse.iter().map(move |f| p as f32 * f));
        angles.map(|a| (a.cos() * scale, a.sin() * scale)).unzip()
    }
}

const YARN_KEYS: &[&str] = &[
    "factor",
    "original_max_position_embeddings",
    "attention_factor",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "truncate",
];
const LONGROPE_KEYS: &[&str] = &[
    "short_factor",
    "long_factor",
    "factor",
    "attention_factor",
    "original_max_position_embeddings",
];
const LLAMA3_KEYS: &[&str] = &[
    "factor",
    "low_freq_factor",
    "high_freq_factor",
    "original_max_position_embeddings",
];

fn yarn(params: &Params, original_max: usize) -> Result<Scaling, String> {
    let factor = params.required("factor")?;
    let mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
    let attention_factor = match params.positive("attention_factor")? {
        Some(a) => a,
        None => match (params.positive("mscale")?, params.positive("mscale_all_dim")?) {
            (Some(m), Some(all)) => mscale(factor, m) / mscale(factor, all),
            _ => mscale(factor, 1.0),
        },
    };
    let truncate = match params.map.get("truncate") {
        None | Some(Value::Null) => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("`{}.truncate` must be true or false", params.name))?,
    };
    Ok(Scaling::Yarn {
        factor,
        original_max,
        attention_factor,
        beta_fast: params.positive("beta_fast")?.unwrap_or(32.0),
        beta_slow: params.positive("beta_slow")?.unwrap_or(1.0),
        truncate,
    })
}

/// YaRN: each frequency blends its interpolated (divided by the factor) and
/// extrapolated (unchanged) values along a ramp between two dimensions.
fn yarn_frequencies(rope: &Rope, powers: Vec<f32>) -> (Vec<f32>, f32) {
    let Scaling::Yarn {
        factor,
        original_max,
        attention_factor,
        beta_fast,
        beta_slow,
        truncate,
    } = rope.scaling
    else {
        unreachable!("yarn_frequencies is called for YaRN only")
    };
    let dim = rope.rotary_dim as f64;
    let correction =
        |rotations: f64| dim * (original_max as f64 / (rotations * 2.0 * PI)).ln() / (2.0 * rope.base.ln());
    let (mut low, mut high) = (correction(beta_fast), correction(beta_slow));
    if truncate {
        (low, high) = (low.floor(), high.ceil());
    }
    let (low, mut high) = (low.max(0.0) as f32, high.min(dim - 1.0) as f32);
    if low == high {
        high += 0.001;
    }
    let inverse = powers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
            let extrapolation = 1.0 - ramp;
            let interpolated = 1.0 / (factor as f32 * p);
            interpolated * (1.0 - extrapolation) + (1.0 / p) * extrapolation
        })
        .collect();
    (inverse, attention_factor as f32)
}

fn longrope(params: &Params, original_max: usize, inputs: &RopeInputs, rotary_dim: usize) -> Result<Scaling, String> {
    let list = |key: &str| -> Result<Vec<f64>, String> {
        let values = params.map.get(key).and_then(Value::as_array);
        let values = values.ok_or_else(|| format!("`{}.{key}` must be a list of numbers", params.name))?;
        let numbers: Option<Vec<f64>> = values.iter().map(|v| v.as_f64().filter(|f| *f > 0.0)).collect();
        match numbers {
            Some(n) if n.len() == rotary_dim / 2 => Ok(n),
            _ => Err(format!(
                "`{}.{key}` must list {} positive numbers, one per rotary frequency",
                params.name,
                rotary_dim / 2
            )),
        }
    };
    let factor = params
        .positive("factor")?
        .unwrap_or(inputs.max_positions as f64 / original_max as f64);
    let attention_factor = match params.positive("attention_factor")? {
        Some(a) => a,
        None if factor <= 1.0 => 1.0,
        None => (1.0 + factor.ln() / (original_max as f64).ln()).sqrt(),
    };
    Ok(Scaling::Longrope {
        short: list("short_factor")?,
        long: list("long_factor")?,
        original_max,
        attention_factor,
    })
}

/// Llama 3: low frequencies divided by the factor, high ones kept, and a
/// smooth blend between.
fn llama3_frequencies(scaling: &Scaling, inverse: Vec<f32>) -> Vec<f32> {
    let Scaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max,
    } = *scaling
    else {
        unreachable!("llama3_frequencies is called for Llama 3 RoPE only")
    };
    let old = original_max as f32;
    let (low_wavelen, high_wavelen) = (old / low_freq_factor as f32, old / high_freq_factor as f32);
    let (factor, low, high) = (factor as f32, low_freq_factor as f32, high_freq_factor as f32);
    inverse
        .into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            let scaled = if wavelen > low_wavelen { f / factor } else { f };
            if wavelen < high_wavelen || wavelen > low_wavelen {
                return scaled;
            }
            let smooth = (old / wavelen - low) / (high - low);
            (1.0 - smooth) * scaled / factor + smooth * scaled
        })
        .collect()
}

/// The RoPE object's values, with messages naming it.
struct Params<'a> {
    map: &'a Map<String, Value>,
    name: &'a str,
}

impl Params<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| format!("`{}.{key}` must be a string, not {v}", self.name)),
        }
    }

    fn positive(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|f| *f > 0.0 && f.is_finite())
                .map(Some)
                .ok_or_else(|| format!("`{}.{key}` must be a positive number, not {v}", self.name)),
        }
    }

    fn required(&self, key: &str) -> Result<f64, String> {
        self.positive(key)?
            .ok_or_else(|| format!("`{}` needs `{key}`", self.name))
    }

    fn count(&self, key: &str) -> Result<Option<usize>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| Some(n as usize))
                .ok_or_else(|| format!("`{}.{key}` must be a positive whole number, not {v}", self.name)),
        }
    }
}
