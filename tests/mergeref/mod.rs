//! Merge methods computed the plain way, to check tv's against: full sorts
//! instead of selection, one f64 loop per formula, following the method
//! descriptions of mergekit 0.1.5 (which the fixtures pin down further).
#![allow(dead_code)]

/// The magnitude mergekit ranks: that of the value rounded to f32.
fn magnitude(v: f64) -> f32 {
    (v as f32).abs()
}

/// Element indices by magnitude, a stable sort, largest first.
fn largest_first(x: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| magnitude(x[b]).total_cmp(&magnitude(x[a])));
    order
}

fn keep(x: &[f64], indices: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for &i in indices {
        out[i] = x[i];
    }
    out
}

/// The `max(1, floor(density n))` largest magnitudes.
pub fn trim(x: &[f64], density: f64) -> Vec<f64> {
    if density >= 1.0 {
        return x.to_vec();
    }
    let k = ((density * x.len() as f64).floor() as usize).max(1);
    keep(x, &largest_first(x)[..k])
}

/// Drops the `floor(gamma n)` largest, keeps the next `floor(density n)`.
pub fn trim_outliers(x: &[f64], density: f64, gamma: f64) -> Vec<f64> {
    if density >= 1.0 {
        return x.to_vec();
    }
    let n = x.len();
    let target = (density * n as f64).floor() as usize;
    let top = (gamma * n as f64).floor() as usize;
    let mut ascending: Vec<usize> = (0..n).collect();
    ascending.sort_by(|&a, &b| magnitude(x[a]).total_cmp(&magnitude(x[b])));
    let bottom = n.saturating_sub(target + top);
    keep(x, &ascending[bottom..(bottom + target).min(n)])
}

/// Scales `kept` so its L1 norm is `original`'s.
pub fn rescale_l1(kept: &[f64], original: &[f64]) -> Vec<f64> {
    let before: f64 = original.iter().map(|v| v.abs()).sum();
    let after: f64 = kept.iter().map(|v| v.abs()).sum();
    if before < 1e-7 || after < 1e-7 {
        return kept.to_vec();
    }
    kept.iter().map(|v| v * before / after).collect()
}

/// TIES: elect by the sign of the sum, add the agreeing deltas, divide by
/// their weights' sum (or 1) when normalizing.
pub fn disjoint_mean(deltas: &[Vec<f64>], weights: &[f64], normalize: bool) -> Vec<f64> {
    let n = deltas[0].len();
    (0..n)
        .map(|e| {
            let total: f64 = deltas.iter().map(|d| d[e]).sum();
            let up = total >= 0.0;
            let mut sum = 0.0;
            let mut weight = 0.0;
            for (d, w) in deltas.iter().zip(weights) {
                let agrees = if up { d[e] > 0.0 } else { d[e] < 0.0 };
                if agrees {
                    sum += d[e];
                    weight += w;
                }
            }
            if normalize && weight != 0.0 {
                sum / weight
            } else {
                sum
            }
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Slerp of two flattened tensors.
pub fn slerp(a: &[f64], b: &[f64], t: f64) -> Vec<f64> {
    let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
    let cos = (dot(a, b) / (na * nb)).clamp(-1.0, 1.0);
    let (ca, cb) = if cos.abs() > 0.9995 {
        (1.0 - t, t)
    } else {
        let omega = cos.acos();
        (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin())
    };
    a.iter().zip(b).map(|(x, y)| ca * x + cb * y).collect()
}

/// Model Stock over whole tensors, or rows of `row` elements.
pub fn model_stock(base: &[f64], models: &[Vec<f64>], row: Option<usize>) -> Vec<f64> {
    let n = base.len();
    let row = row.unwrap_or(n);
    let k = models.len() as f64;
    let mut out = vec![0.0; n];
    for start in (0..n).step_by(row) {
        let end = start + row;
        let offsets: Vec<Vec<f64>> = models
            .iter()
            .map(|m| (start..end).map(|i| m[i] - base[i]).collect())
            .collect();
        let mut cosines = Vec::new();
        for i in 0..offsets.len() {
            for j in i + 1..offsets.len() {
                let norms = (dot(&offsets[i], &offsets[i]) * dot(&offsets[j], &offsets[j])).sqrt();
                cosines.push((dot(&offsets[i], &offsets[j]) / norms.max(1e-6)).clamp(-1.0, 1.0));
            }
        }
        let cos = cosines.iter().sum::<f64>() / cosines.len() as f64;
        let t = k * cos / (1.0 + (k - 1.0) * cos);
        for i in start..end {
            let mean = models.iter().map(|m| m[i]).sum::<f64>() / k;
            out[i] = t * mean + (1.0 - t) * base[i];
        }
    }
    out
}

/// The deterministic merges both test suites run, as tv writes them over
/// `base` and `ms = [m1, m2, m3]` (and `m1` alone): the same cases the
/// mergekit fixtures hold.
pub const CASES: &[(&str, &str)] = &[
    ("linear", "linear(ms, weight = [0.5, 0.3, 0.2])"),
    ("linear_sum", "linear(ms, weight = [0.6, 0.3, 0.4], normalize = 0)"),
    ("task_arithmetic", "task_arithmetic(ms, base, weight = [1, 0.5, 0.7], lambda = 0.8)"),
    (
        "task_arithmetic_normalized",
        "task_arithmetic(ms, base, weight = [1, 0.5, 0.7], normalize = 1)",
    ),
    ("ties", "ties(ms, base, weight = [1, 0.5, 0.8], density = 0.5)"),
    (
        "ties_per_model",
        "ties(ms, base, weight = [0.7, 1, 0.4], density = [0.3, 0.6, 0.9], lambda = 0.9, normalize = 0)",
    ),
    (
        "ties_filtered",
        "only(ties(ms, base, density = 0.3), \"*self_attn*\") + except(ties(ms, base, density = 0.7), \"*self_attn*\")",
    ),
    ("ties_rescaled", "ties(ms, base, density = 0.4, rescale = 1)"),
    (
        "breadcrumbs",
        "breadcrumbs(ms, base, weight = [1, 0.6, 0.8], density = 0.8, gamma = 0.05)",
    ),
    ("breadcrumbs_ties", "breadcrumbs_ties(ms, base, density = 0.7, gamma = 0.02)"),
    ("slerp", "slerp(base, m1, 0.3)"),
    (
        "slerp_filtered",
        "only(slerp(base, m1, 0.2), \"*self_attn*\") + only(slerp(base, m1, 0.7), \"*mlp*\") + except(except(slerp(base, m1, 0.5), \"*self_attn*\"), \"*mlp*\")",
    ),
    ("model_stock", "model_stock(ms, base)"),
    ("model_stock_filter_wise", "model_stock(ms, base, filter_wise = 1)"),
];

/// A program that loads each input with the expression `load(name)` gives
/// and saves every case, `(name, expression)`, to `out/NAME.safetensors`.
pub fn cases_program(load: &dyn Fn(&str) -> String, cases: &[(&str, &str)]) -> String {
    let mut program = format!(
        "use \"std/merge\"\nlet base = {}\nlet m1 = {}\nlet ms = [m1, {}, {}]\n",
        load("base"),
        load("m1"),
        load("m2"),
        load("m3")
    );
    for (name, expr) in cases {
        program.push_str(&format!("save {expr} to \"out/{name}.safetensors\"\n"));
    }
    program
}
