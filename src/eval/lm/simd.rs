//! Helpers for the CPU kernels of the forward pass: 16-lane arithmetic
//! that compilers turn into vector instructions, run under the widest
//! instruction set the CPU has, and access to a tensor's f32 values.

use candle_core::{CpuStorage, Result, Storage, Tensor};

const LANES: usize = 16;

/// A contiguous f32 tensor's values on the CPU, borrowed from its storage.
pub struct Values<'a> {
    storage: std::sync::RwLockReadGuard<'a, Storage>,
    start: usize,
    len: usize,
}

impl Values<'_> {
    pub fn get(&self) -> &[f32] {
        match &*self.storage {
            Storage::Cpu(CpuStorage::F32(all)) => &all[self.start..self.start + self.len],
            _ => unreachable!("checked when borrowed"),
        }
    }
}

/// Borrows the values of `t`, which must be contiguous f32 on the CPU.
pub fn values(t: &Tensor) -> Result<Values<'_>> {
    let (storage, layout) = t.storage_and_layout();
    if !matches!(&*storage, Storage::Cpu(CpuStorage::F32(_))) || !layout.is_contiguous() {
        candle_core::bail!("the CPU kernels take contiguous f32 tensors on the CPU")
    }
    let start = layout.start_offset();
    Ok(Values {
        storage,
        start,
        len: t.elem_count(),
    })
}

/// `f` of a tensor's values (copied first only if it is not contiguous).
pub fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let values = values(&t)?;
    Ok(f(values.get()))
}

/// An output buffer that parallel tasks write in disjoint parts.
pub struct Target(pub *mut f32);
// Safety: users write disjoint parts only, as each documents.
unsafe impl Sync for Target {}

/// A vector of `len` values written by `fill` through its target, without
/// first zeroing it (which for the buffers of a forward pass costs as much
/// as some of the kernels that fill them).
///
/// # Safety
/// `fill` must write every one of the `len` values.
pub unsafe fn written_by(len: usize, fill: impl FnOnce(&Target)) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    fill(&Target(out.as_mut_ptr()));
    // Safety: the caller promises `fill` wrote all `len` values.
    unsafe { out.set_len(len) };
    out
}

/// Defines a function whose body is compiled three times, for AVX-512,
/// for AVX2 and for plain x86-64, and runs the widest the CPU has. The
/// body uses lane-wise arithmetic only (no fused multiply-add, which
/// compilers do not introduce on their own), so the three agree exactly.
macro_rules! widest {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])* $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // Safety: the CPU has the feature.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // Safety: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use widest;

#[inline(always)]
fn tree(mut lanes: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// The largest value (`-inf` for none).
#[inline(always)]
pub fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for chunk in chunks {
        for l in 0..LANES {
            lanes[l] = if chunk[l] > lanes[l] { chunk[l] } else { lanes[l] };
        }
    }
    lanes.iter().fold(tail, |m, v| m.max(*v))
}

/// The sum, in 16 lanes then a fixed tree.
#[inline(always)]
pub fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for l in 0..LANES {
            lanes[l] += chunk[l];
        }
    }
    tree(lanes) + tail
}

widest! {
    /// The largest value and `sum(e^(v - max))`: each term in f32 (its
    /// rounding is far below the tolerance of a loss), summed in f64 lanes.
    pub fn max_and_sum_exp(values: &[f32]) -> (f32, f64) {
        let max = max(values);
        let mut lanes = [0f64; 8];
        let chunks = values.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().map(|v| exp(v - max) as f64).sum();
        for chunk in chunks {
            for l in 0..8 {
                lanes[l] += exp(chunk[l] - max) as f64;
            }
        }
        (max, lanes.iter().sum::<f64>() + tail)
    }
}

/// `e^x` in f32 within a few ulp, written so that it vectorises:
/// Cody-Waite reduction by ln 2 and a degree-6 polynomial. Arguments below
/// -86 give `e^-86` (4e-38): it serves softmax and log-sum-exp, whose
/// largest term is 1.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer
    // without a library call, so the loop vectorises.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-86.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    // The integer `n` is also the low bits of `shifted`: reading them
    // avoids a float-to-int cast, whose saturating checks would not vectorise.
    let power = shifted.to_bits().wrapping_sub(ROUND.to_bits()) << 23;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    f32::from_bits(p.to_bits().wrapping_add(power))
}

/// `silu(gate) * up`, elementwise, in parallel: the gated MLP's middle.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    use rayon::prelude::*;
    const PIECE: usize = 1 << 14;
    let out = with_values(gate, |g| {
        with_values(up, |u| {
            let mut out = vec![0f32; g.len()];
            out.par_chunks_mut(PIECE).enumerate().for_each(|(n, out)| {
                let (g, u) = (&g[n * PIECE..][..out.len()], &u[n * PIECE..][..out.len()]);
                swiglu_piece(out, g, u);
            });
            out
        })
    })??;
    Tensor::from_vec(out, gate.shape(), gate.device())
}

widest! {
    fn swiglu_piece(out: &mut [f32], gate: &[f32], up: &[f32]) {
        for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
            *o = g / (1.0 + exp(-g)) * u;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp_of_the_library() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -86.0 + i as f32 * (86.0 + 10.0) / 200_000.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 3.0 * f32::EPSILON as f64, "worst relative error {worst}");
        assert!(exp(-1000.0) < 1e-37 && exp(0.0) == 1.0);
    }

    #[test]
    fn reductions_equal_plain_ones() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let exact: f64 = a.iter().map(|x| *x as f64).sum();
        assert!((sum(&a) as f64 - exact).abs() < 1e-5);
        assert_eq!(max(&a), a.iter().cloned().fold(f32::MIN, f32::max));
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn swiglu_equals_its_definition() {
        use candle_core::{Device, Tensor};
        let g: Vec<f32> = (0..40_000).map(|i| (i as f32 * 0.013).sin() * 12.0).collect();
        let u: Vec<f32> = (0..40_000).map(|i| (i as f32 * 0.007).cos()).collect();
        let gate = Tensor::from_vec(g.clone(), (200, 200), &Device::Cpu).unwrap();
        let up = Tensor::from_vec(u.clone(), (200, 200), &Device::Cpu).unwrap();
        let out: Vec<f32> = swiglu(&gate, &up).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for ((o, g), u) in out.iter().zip(&g).zip(&u) {
            let exact = *g as f64 / (1.0 + (-*g as f64).exp()) * *u as f64;
            assert!(
                (*o as f64 - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
                "{g} {u}: {o} vs {exact}"
            );
        }
    }
}
