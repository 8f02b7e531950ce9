//! A matrix product for x86-64 CPUs with AVX-512: `y = x W^T + b` with
//! `W` packed into panels of 32 output columns. Each kernel call keeps a
//! block of up to 12 rows by 32 columns of `y` in 24 of the 32 vector
//! registers and walks the shared input dimension once, so every load of
//! two weight vectors feeds 24 fused multiply-adds. Threads take groups
//! of panels, and walk each group a run of panels at a time (small enough
//! to stay in L2) across every block of rows (whose inputs stay in L1).

use super::simd::Target;
use rayon::prelude::*;
use std::arch::x86_64::*;

const PANEL: usize = 32;
const ROWS: usize = 12;
/// Bytes of weight panels a thread walks before moving to the next rows.
const PANELS_IN_L2_BYTES: usize = 1 << 20;

pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

pub struct Packed {
    inputs: usize,
    outputs: usize,
    /// `[panel][input][32]`, columns beyond `outputs` zero.
    panels: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl Packed {
    /// Packs `weight`, `[outputs, inputs]` row-major.
    pub fn new(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>) -> Packed {
        let count = outputs.div_ceil(PANEL);
        let mut panels = vec![0f32; count * inputs * PANEL];
        panels
            .par_chunks_mut(inputs * PANEL)
            .enumerate()
            .for_each(|(p, panel)| {
                for c in 0..PANEL.min(outputs - p * PANEL) {
                    let row = &weight[(p * PANEL + c) * inputs..][..inputs];
                    for (k, w) in row.iter().enumerate() {
                        panel[k * PANEL + c] = *w;
                    }
                }
            });
        Packed {
            inputs,
            outputs,
            panels,
            bias,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x` is `[rows, inputs]` row-major; the result `[rows, outputs]`.
    pub fn multiply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert!(available(), "the packed kernel needs AVX-512");
        assert_eq!(x.len(), rows * self.inputs);
        let blocks = pack_rows(x, rows, self.inputs);
        let mut out = vec![0f32; rows * self.outputs];
        let target = Target(out.as_mut_ptr());
        let panels = self.outputs.div_ceil(PANEL);
        let group = panels.div_ceil(4 * rayon::current_num_threads()).max(1);
        let run = (PANELS_IN_L2_BYTES / (4 * PANEL * self.inputs)).max(1);
        (0..panels.div_ceil(group)).into_par_iter().for_each(|g| {
            let target = &target;
            let group = g * group..((g + 1) * group).min(panels);
            for start in group.clone().step_by(run) {
                for block in 0..rows.div_ceil(ROWS) {
                    for p in start..(start + run).min(group.end) {
                        self.block(&blocks, block, rows, p, target);
                    }
                }
            }
        });
        out
    }

    fn block(&self, blocks: &[f32], block: usize, rows: usize, p: usize, target: &Target) {
        let row = block * ROWS;
        let n = ROWS.min(rows - row);
        let columns = PANEL.min(self.outputs - p * PANEL);
        let block = Block {
            x: &blocks[block * ROWS * self.inputs..][..ROWS * self.inputs],
            inputs: self.inputs,
            panel: &self.panels[p * self.inputs * PANEL..][..self.inputs * PANEL],
            columns,
            bias: self.bias.as_ref().map(|b| &b[p * PANEL..p * PANEL + columns]),
            // Safety: each (row block, panel) of the output is written by
            // exactly one task.
            out: unsafe { target.0.add(row * self.outputs + p * PANEL) },
            stride: self.outputs,
        };
        // Safety: `available()` was checked in `multiply`.
        unsafe { block.run(n) };
    }
}

/// `x` in blocks of 12 rows, each `[input][12]`, so that a kernel reads
/// its rows' inputs from one contiguous stream (rows past the end zero).
fn pack_rows(x: &[f32], rows: usize, inputs: usize) -> Vec<f32> {
    let mut blocks = vec![0f32; rows.div_ceil(ROWS) * ROWS * inputs];
    blocks.par_chunks_mut(ROWS * inputs).enumerate().for_each(|(b, block)| {
        for r in 0..ROWS.min(rows - b * ROWS) {
            let row = &x[(b * ROWS + r) * inputs..][..inputs];
            for (k, v) in row.iter().enumerate() {
                block[k * ROWS + r] = *v;
            }
        }
    });
    blocks
}

struct Block<'a> {
    x: &'a [f32],
    inputs: usize,
    panel: &'a [f32],
    columns: usize,
    bias: Option<&'a [f32]>,
    out: *mut f32,
    stride: usize,
}

impl Block<'_> {
    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self, rows: usize) {
        match rows {
            12 => self.kernel::<12>(),
            11 => self.kernel::<11>(),
            10 => self.kernel::<10>(),
            9 => self.kernel::<9>(),
            8 => self.kernel::<8>(),
            7 => self.kernel::<7>(),
            6 => self.kernel::<6>(),
            5 => self.kernel::<5>(),
            4 => self.kernel::<4>(),
            3 => self.kernel::<3>(),
            2 => self.kernel::<2>(),
            _ => self.kernel::<1>(),
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize>(&self) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (x, w) = (self.x.as_ptr(), self.panel.as_ptr());
        for k in 0..self.inputs {
            let w0 = _mm512_loadu_ps(w.add(k * PANEL));
            let w1 = _mm512_loadu_ps(w.add(k * PANEL + 16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*x.add(k * ROWS + r));
                acc[0] = _mm512_fmadd_ps(v, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(v, w1, acc[1]);
            }
        }
        let mask = |half: usize| -> __mmask16 {
            let n = self.columns.saturating_sub(16 * half).min(16);
            ((1u32 << n) - 1) as __mmask16
        };
        let mut bias = [0f32; PANEL];
        if let Some(b) = self.bias {
            bias[..b.len()].copy_from_slice(b);
        }
        let (b0, b1) = (_mm512_loadu_ps(bias.as_ptr()), _mm512_loadu_ps(bias.as_ptr().add(16)));
        for (r, acc) in acc.iter().enumerate() {
            let out = self.out.add(r * self.stride);
            _mm512_mask_storeu_ps(out, mask(0), _mm512_add_ps(acc[0], b0));
            _mm512_mask_storeu_ps(out.add(16), mask(1), _mm512_add_ps(acc[1], b1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain f64 product, over shapes with partial panels and
    /// partial row blocks.
    #[test]
    fn products_equal_a_plain_computation() {
        if !available() {
            eprintln!("this CPU has no AVX-512: the packed kernel is not used here, so not tested");
            return;
        }
        let mut rng = crate::synth::Rng::new(7);
        for (rows, outputs, inputs) in [(1, 1, 1), (13, 33, 7), (25, 64, 100), (300, 70, 2000), (12, 32, 16)] {
            let w = rng.normals(outputs * inputs, 1.0);
            let x = rng.normals(rows * inputs, 1.0);
            let b = rng.normals(outputs, 1.0);
            let y = Packed::new(&w, outputs, inputs, Some(b.clone())).multiply(&x, rows);
            for i in 0..rows {
                for j in 0..outputs {
                    let exact: f64 = (0..inputs)
                        .map(|k| x[i * inputs + k] as f64 * w[j * inputs + k] as f64)
                        .sum::<f64>()
                        + b[j] as f64;
                    let scale: f64 = (0..inputs)
                        .map(|k| (x[i * inputs + k] * w[j * inputs + k]).abs() as f64)
                        .sum::<f64>();
                    let got = y[i * outputs + j] as f64;
                    assert!(
                        (got - exact).abs() <= 1e-6 * (scale + b[j].abs() as f64) + 1e-30,
                        "{rows}x{outputs}x{inputs} at ({i},{j}): {got} vs {exact}"
                    );
                }
            }
        }
    }
}
