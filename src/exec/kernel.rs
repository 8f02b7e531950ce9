//! CPU kernels over one tensor. Inputs are decoded straight from the memory
//! map, a chunk at a time, so no input is ever copied whole; chunks run in
//! parallel on the rayon pool.
//!
//! Every sum is split at fixed chunk boundaries and the chunk partials are
//! added in order, so results are bit-identical for any number of threads.

use super::exact::{Accurate, Compensated};
use crate::io::{Dtype, IoError};
use rayon::prelude::*;

/// Elements per chunk: large enough to amortise scheduling, small enough
/// that a chunk of every input stays in cache.
pub const CHUNK: usize = 1 << 14;

/// One tensor's values as the kernels read them.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// Statically zero (selected away).
    Zero,
    /// Stored bytes, little-endian, in a float dtype.
    Raw(Dtype, &'a [u8]),
    /// A primitive's result, computed for this tensor.
    F32(&'a [f32]),
}

impl Source<'_> {
    /// Decodes elements `start..start + out.len()` as f64.
    pub fn read_f64(&self, start: usize, out: &mut [f64]) {
        match *self {
            Source::Zero => out.fill(0.0),
            Source::F32(values) => {
                let values = &values[start..start + out.len()];
                out.iter_mut().zip(values).for_each(|(o, v)| *o = *v as f64);
            }
            Source::Raw(dtype, bytes) => decode(dtype, bytes, start, out),
        }
    }
}

impl Source<'_> {
    /// `out += coef * x` for elements `start..start + out.len()`, decoding
    /// as `read_f64` does.
    pub fn add_scaled(&self, start: usize, coef: f64, out: &mut [f64]) {
        match *self {
            Source::Zero => {}
            Source::F32(values) => {
                let values = &values[start..start + out.len()];
                out.iter_mut().zip(values).for_each(|(o, v)| *o += coef * *v as f64);
            }
            Source::Raw(dtype, bytes) => add_decoded(dtype, bytes, start, coef, out),
        }
    }
}

/// Defines `$name` to run `$generic` compiled for AVX2 where the CPU has
/// it (the loops are the same Rust, so the results are bit for bit the
/// same; only wider).
macro_rules! wide {
    ($vis:vis $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty, $generic:ident) => {
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

wide!(add_decoded(dtype: Dtype, bytes: &[u8], start: usize, coef: f64, out: &mut [f64]) -> (), add_decoded_generic);
wide!(pub(super) encode(dtype: Dtype, values: &[f64], out: &mut Vec<u8>) -> bool, encode_generic);

/// `out += coef * x` over little-endian `bytes` from element `start`.
#[inline(always)]
fn add_decoded_generic(dtype: Dtype, bytes: &[u8], start: usize, coef: f64, out: &mut [f64]) {
    zip_decoded(dtype, bytes, start, out, |o, x| *o += coef * x);
}

/// Calls `f` with each element of `out` and the matching element of
/// little-endian `bytes` from element `start`, decoded exactly to f64 (for
/// float dtypes; others are skipped). Plain loops, which the compiler
/// vectorises: this is the hot loop of a merge.
#[inline(always)]
fn zip_decoded(dtype: Dtype, bytes: &[u8], start: usize, out: &mut [f64], f: impl Fn(&mut f64, f64)) {
    let size = dtype.bitsize() / 8;
    let bytes = &bytes[start * size..(start + out.len()) * size];
    match dtype {
        Dtype::F32 => out
            .iter_mut()
            .zip(bytes.chunks_exact(4))
            .for_each(|(o, b)| f(o, f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)),
        // A bf16 is the top half of an f32.
        Dtype::BF16 => out.iter_mut().zip(bytes.chunks_exact(2)).for_each(|(o, b)| {
            f(
                o,
                f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
            )
        }),
        Dtype::F16 => {
            let table = f16_table();
            out.iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| f(o, table[u16::from_le_bytes([b[0], b[1]]) as usize] as f64));
        }
        Dtype::F64 => out
            .iter_mut()
            .zip(bytes.chunks_exact(8))
            .for_each(|(o, b)| f(o, f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))),
        _ => {}
    }
}

/// Decodes elements `start..start + out.len()` of little-endian `bytes`
/// to f64, exactly (zeros for a dtype that is not float).
fn decode(dtype: Dtype, bytes: &[u8], start: usize, out: &mut [f64]) {
    match dtype {
        Dtype::F32 | Dtype::BF16 | Dtype::F16 | Dtype::F64 => zip_decoded(dtype, bytes, start, out, |o, x| *o = x),
        _ => out.fill(0.0),
    }
}

/// Every f16 bit pattern's value, computed once (256 KiB): a lookup is
/// faster than converting each element's bits.
fn f16_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| (0..=u16::MAX).map(|bits| half::f16::from_bits(bits).to_f32()).collect())
}

/// `x` rounded to bf16 (to nearest, ties to even), as `half` rounds it;
/// without branches, so that the loop around it vectorises.
#[inline]
fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let nan = (bits & 0x7FFF_FFFF) > 0x7F80_0000;
    let round = ((bits >> 16) & 1) + 0x7FFF;
    let rounded = (bits.wrapping_add(round) >> 16) as u16;
    let quiet = ((bits >> 16) | 0x0040) as u16;
    if nan {
        quiet
    } else {
        rounded
    }
}

/// Adds per-chunk partial sums in chunk order, compensated, so that how
/// many chunks a tensor has does not enter the error bound (see
/// `ENTRY_ERROR`).
fn sum_in_order(partials: Vec<Vec<f64>>, width: usize) -> Vec<f64> {
    let mut totals = vec![Compensated::default(); width];
    for partial in partials {
        for (total, p) in totals.iter_mut().zip(partial) {
            total.add(p);
        }
    }
    totals.into_iter().map(Compensated::value).collect()
}

/// A bound on the rounding error of every sum of products these kernels
/// compute, `sum_i x_i y_i`, relative to `sum_i |x_i y_i|`: each product
/// is rounded once (and each difference `x_k - x_r` at most once), each
/// block of `BLOCK` products is summed on four lanes of `BLOCK / 4`, and
/// the blocks, chunks and tensors are added with compensation (about two
/// roundings in all). So at most `BLOCK / 4 + 8` roundings of the unit
/// roundoff `2^-53`; 128 leaves a margin.
pub const ENTRY_ERROR: f64 = 128.0 * f64::EPSILON / 2.0;

/// Products summed on plain accumulators before joining a compensated sum.
const BLOCK: usize = 256;

/// Receives a finished chunk of a save: its byte offset and bytes.
pub type Emit<'a> = dyn Fn(usize, &[u8]) -> Result<(), IoError> + Sync + 'a;

/// A save's share of a tensor: its coefficients on the atoms, the dtype to
/// write, where each finished chunk goes (byte offset, bytes), and a flag
/// raised when a written value is inf or NaN.
pub struct SaveOut<'a> {
    pub coefs: &'a [f64],
    pub dtype: Dtype,
    pub emit: &'a Emit<'a>,
    pub non_finite: &'a std::sync::atomic::AtomicBool,
}

/// Everything one pass computes on one tensor of a family.
pub struct TensorWork<'a> {
    /// One per atom of the family.
    pub sources: Vec<Source<'a>>,
    /// Gram entries are on the basis `x_r, x_k - x_r` for this reference
    /// atom `r`. Direct products and saves are always on the atoms, so a
    /// non-finite atom never reaches a result that does not use it.
    pub reference: usize,
    pub pairs: &'a [(usize, usize)],
    /// Coefficient pairs of the products measured directly, on the atoms.
    pub direct: Vec<(&'a [f64], &'a [f64])>,
    pub saves: Vec<SaveOut<'a>>,
}

/// Sums for one tensor: the Gram entries of `pairs`, then the direct
/// products.
pub struct TensorSums {
    pub gram: Vec<f64>,
    pub direct: Vec<f64>,
}

/// Runs everything one tensor needs in one fused loop over its chunks:
/// each input chunk is decoded once and serves every Gram entry, direct
/// product and save.
pub fn run(work: &TensorWork, numel: usize) -> Result<TensorSums, IoError> {
    let width = work.pairs.len() + work.direct.len();
    let blocks = numel.div_ceil(CHUNK).div_ceil(BLOCK_CHUNKS);
    let partials: Vec<Vec<Vec<f64>>> = (0..blocks)
        .into_par_iter()
        .map(|b| block(work, numel, b))
        .collect::<Result<_, _>>()?;
    let mut totals = sum_in_order(partials.into_iter().flatten().collect(), width);
    let direct = totals.split_off(work.pairs.len());
    Ok(TensorSums { gram: totals, direct })
}

/// Chunks per block. A block's chunks run in order on one worker, and each
/// save's bytes of the block go out in one write: small writes from several
/// threads contend for the file.
const BLOCK_CHUNKS: usize = 16;

/// Block `b` of a tensor: each chunk's sums, in order; its saves written.
fn block(work: &TensorWork, numel: usize, b: usize) -> Result<Vec<Vec<f64>>, IoError> {
    OUTPUTS.with(|outputs| {
        let outputs = &mut *outputs.borrow_mut();
        outputs.resize_with(work.saves.len(), Vec::new);
        outputs.iter_mut().for_each(Vec::clear);
        let first = b * BLOCK_CHUNKS * CHUNK;
        let end = numel.min(first + BLOCK_CHUNKS * CHUNK);
        let sums = (first..end)
            .step_by(CHUNK)
            .map(|start| chunk(work, start, CHUNK.min(end - start), outputs))
            .collect::<Result<_, _>>()?;
        for (save, bytes) in work.saves.iter().zip(outputs.iter()) {
            (save.emit)(first * save.dtype.bitsize() / 8, bytes)?;
        }
        Ok(sums)
    })
}

thread_local! {
    /// Each save's bytes of the block being computed, reused from block to
    /// block (fresh buffers would be new pages every time).
    static OUTPUTS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One chunk: returns its sums and appends each save's bytes to `outputs`.
fn chunk(work: &TensorWork, start: usize, len: usize, outputs: &mut [Vec<u8>]) -> Result<Vec<f64>, IoError> {
    if let ([save], true, true) = (work.saves.as_slice(), work.pairs.is_empty(), work.direct.is_empty()) {
        save_only(work, save, start, len, &mut outputs[0]);
        return Ok(Vec::new());
    }
    SCRATCH.with(|scratch| {
        let scratch = &mut *scratch.borrow_mut();
        let inputs = work.sources.len();
        // The atoms, two vectors for combinations, then the differences
        // (only when Gram entries need them: buffers that fit in cache
        // matter).
        let differences = !work.pairs.is_empty() && inputs > 1;
        let buffers = inputs + 2 + if differences { inputs } else { 0 };
        scratch.values.resize(buffers * CHUNK, 0.0);
        let (atoms, rest) = scratch.values.split_at_mut(inputs * CHUNK);
        let (spare, space) = rest.split_at_mut(2 * CHUNK);
        let (left, right) = spare.split_at_mut(CHUNK);
        let (left, right) = (&mut left[..len], &mut right[..len]);
        let atoms: Vec<&mut [f64]> = atoms.chunks_mut(CHUNK).map(|b| &mut b[..len]).collect();
        let basis = fill_atoms(work, atoms, start);
        let gram_basis = match differences {
            true => fill_differences(&basis, work.reference, space, len),
            false => basis.clone(),
        };
        let gram = work.pairs.iter().map(|&(p, q)| dot_f64(gram_basis[p], gram_basis[q]));
        let mut sums: Vec<f64> = gram.collect();
        for (a, b) in &work.direct {
            combine_exact(&basis, a, left);
            combine_exact(&basis, b, right);
            sums.push(dot_f64(left, right));
        }
        for (save, out) in work.saves.iter().zip(outputs.iter_mut()) {
            combine(&basis, save.coefs, left);
            if !encode(save.dtype, left, out) {
                save.non_finite.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(sums)
    })
}

/// A chunk of a merge, the commonest work: each input is decoded straight
/// into the weighted sum, so no input is copied to a buffer of its own
/// (which halves the memory traffic: merges are memory-bound).
fn save_only(work: &TensorWork, save: &SaveOut, start: usize, len: usize, out: &mut Vec<u8>) {
    // Pieces small enough that the sum stays in the first-level cache
    // while every input is added to it.
    const PIECE: usize = 2048;
    let mut sum = [0.0f64; PIECE];
    let mut finite = true;
    for at in (start..start + len).step_by(PIECE) {
        let sum = &mut sum[..PIECE.min(start + len - at)];
        sum.fill(0.0);
        for (source, coef) in work.sources.iter().zip(save.coefs).filter(|(_, c)| **c != 0.0) {
            source.add_scaled(at, *coef, sum);
        }
        finite &= encode(save.dtype, sum, out);
    }
    if !finite {
        save.non_finite.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Per-thread buffers, reused from chunk to chunk: fresh ones of this size
/// would be new pages, faulted in again for every chunk.
#[derive(Default)]
struct Scratch {
    values: Vec<f64>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Decodes the inputs' chunk into `atoms`.
fn fill_atoms<'b>(work: &TensorWork, mut atoms: Vec<&'b mut [f64]>, start: usize) -> Vec<&'b [f64]> {
    for (values, source) in atoms.iter_mut().zip(&work.sources) {
        source.read_f64(start, values);
    }
    atoms.into_iter().map(|b| &*b).collect()
}

/// The difference basis `x_r, x_k - x_r` of the atoms' chunk, in `space`.
fn fill_differences<'b>(atoms: &[&'b [f64]], r: usize, space: &'b mut [f64], len: usize) -> Vec<&'b [f64]> {
    let mut basis = Vec::with_capacity(atoms.len());
    for (k, (values, out)) in atoms.iter().zip(space.chunks_mut(CHUNK)).enumerate() {
        if k == r {
            basis.push(atoms[r]);
            continue;
        }
        let out = &mut out[..len];
        for ((o, v), x) in out.iter_mut().zip(values.iter()).zip(atoms[r]) {
            *o = v - x;
        }
        basis.push(&*out);
    }
    basis
}

/// `out = sum_k coefs_k basis_k` over one chunk.
fn combine(basis: &[&[f64]], coefs: &[f64], out: &mut [f64]) {
    out.fill(0.0);
    for (values, coef) in basis.iter().zip(coefs).filter(|(_, c)| **c != 0.0) {
        for (o, v) in out.iter_mut().zip(values.iter()) {
            *o += coef * v;
        }
    }
}

/// `out = sum_k coefs_k basis_k`, exact per element up to one rounding
/// (see `exact`): direct products are where terms cancel.
fn combine_exact(basis: &[&[f64]], coefs: &[f64], out: &mut [f64]) {
    let terms: Vec<(f64, &[f64])> = basis
        .iter()
        .zip(coefs)
        .filter(|(_, c)| **c != 0.0)
        .map(|(values, c)| (*c, *values))
        .collect();
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = Accurate::default();
        for (c, values) in &terms {
            acc.add(*c, values[i]);
        }
        *o = acc.value();
    }
}

/// Values as stored bytes, appended to `out`. Float tensors are computed in f64:
/// f64 outputs keep them, others are rounded to f32 once, and half-precision
/// ones from that. Returns whether every stored value is finite (checked in
/// the same loop, so it costs next to nothing).
#[inline(always)]
fn encode_generic(dtype: Dtype, values: &[f64], out: &mut Vec<u8>) -> bool {
    let size = match dtype {
        Dtype::F64 => 8,
        Dtype::F16 | Dtype::BF16 => 2,
        _ => 4,
    };
    let at = out.len();
    out.resize(at + values.len() * size, 0);
    let out = &mut out[at..];
    let mut finite = true;
    match dtype {
        Dtype::F64 => out.chunks_exact_mut(8).zip(values).for_each(|(o, v)| {
            finite &= v.is_finite();
            o.copy_from_slice(&v.to_le_bytes());
        }),
        Dtype::F16 => out.chunks_exact_mut(2).zip(values).for_each(|(o, v)| {
            let h = half::f16::from_f32(*v as f32);
            finite &= h.is_finite();
            o.copy_from_slice(&h.to_le_bytes());
        }),
        Dtype::BF16 => out.chunks_exact_mut(2).zip(values).for_each(|(o, v)| {
            let h = bf16_bits(*v as f32);
            // Exponent all ones: inf or NaN.
            finite &= h & 0x7F80 != 0x7F80;
            o.copy_from_slice(&h.to_le_bytes());
        }),
        _ => out.chunks_exact_mut(4).zip(values).for_each(|(o, v)| {
            let x = *v as f32;
            finite &= x.is_finite();
            o.copy_from_slice(&x.to_le_bytes());
        }),
    }
    finite
}

/// A dot product in f64: blocks of `BLOCK` products on four independent
/// accumulators (which lets the compiler vectorise them), each block's sum
/// added with compensation. The order is fixed, so the result is too, and
/// its error stays within `ENTRY_ERROR` of `sum |a_i b_i|` however long
/// the vectors.
pub(super) fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let mut total = Compensated::default();
    let (blocks_a, blocks_b) = (a.chunks(BLOCK), b.chunks(BLOCK));
    for (x, y) in blocks_a.zip(blocks_b) {
        let mut acc = [0.0f64; 4];
        let quads = x.len() / 4;
        for i in 0..quads {
            for lane in 0..4 {
                acc[lane] += x[4 * i + lane] * y[4 * i + lane];
            }
        }
        let tail: f64 = x[4 * quads..].iter().zip(&y[4 * quads..]).map(|(p, q)| p * q).sum();
        total.add((acc[0] + acc[1]) + (acc[2] + acc[3]) + tail);
    }
    total.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn bf16_rounding_and_decoding_match_half() {
        let mut rng = crate::synth::Rng::new(3);
        let mut values: Vec<f32> = rng.normals(10_000, 1.0);
        values.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e-40,
            -3.4e38,
            f32::MAX,
        ]);
        // Ties: halfway between two bf16 values.
        values.extend([f32::from_bits(0x3F80_8000), f32::from_bits(0x3F81_8000)]);
        for v in values {
            let want = half::bf16::from_f32(v).to_bits();
            assert_eq!(bf16_bits(v), want, "{v}");
        }
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
        for dtype in [Dtype::BF16, Dtype::F16] {
            let mut out = vec![0.0; 1 << 16];
            decode(dtype, &bytes, 0, &mut out);
            for (bits, got) in out.iter().enumerate() {
                let want = match dtype {
                    Dtype::BF16 => half::bf16::from_bits(bits as u16).to_f64(),
                    _ => half::f16::from_bits(bits as u16).to_f64(),
                };
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{bits:#x}"
                );
            }
        }
    }

    #[test]
    fn one_loop_serves_gram_direct_and_saves() {
        let n = CHUNK * 2 + 17;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let (bx, by) = (f32_bytes(&x), f32_bytes(&y));
        let saved = std::sync::Mutex::new(vec![0u8; n * 4]);
        let emit = |offset: usize, bytes: &[u8]| {
            saved.lock().unwrap()[offset..offset + bytes.len()].copy_from_slice(bytes);
            Ok(())
        };
        // Gram basis: x, y - x. Direct products and the save are on the
        // atoms x, y: the direct product is <y - x, x>, the save 2x - 0.5y.
        let coefs = [2.0, -0.5];
        let (a, b) = ([-1.0, 1.0], [1.0, 0.0]);
        let non_finite = std::sync::atomic::AtomicBool::new(false);
        let work = TensorWork {
            sources: vec![Source::Raw(Dtype::F32, &bx), Source::Raw(Dtype::F32, &by)],
            reference: 0,
            pairs: &[(0, 0), (0, 1), (1, 1)],
            direct: vec![(&a, &b)],
            saves: vec![SaveOut {
                coefs: &coefs,
                dtype: Dtype::F32,
                emit: &emit,
                non_finite: &non_finite,
            }],
        };
        let sums = run(&work, n).unwrap();
        assert!(!non_finite.into_inner());
        let xx: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
        let xd: f64 = x.iter().zip(&y).map(|(a, b)| *a as f64 * (*b as f64 - *a as f64)).sum();
        let dd: f64 = x.iter().zip(&y).map(|(a, b)| (*b as f64 - *a as f64).powi(2)).sum();
        for (got, want) in sums.gram.iter().chain(&sums.direct).zip([xx, xd, dd, xd]) {
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{got} vs {want}");
        }
        let saved = saved.into_inner().unwrap();
        for (i, bytes) in saved.chunks_exact(4).enumerate() {
            let want = (2.0 * x[i] as f64 - 0.5 * y[i] as f64) as f32;
            assert_eq!(f32::from_le_bytes(bytes.try_into().unwrap()), want);
        }
    }
}
