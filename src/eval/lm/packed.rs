//! A matrix product for x86-64 CPUs with AVX-512: `y = x W^T + b`, with
//! `W` packed into panels of 32 output columns. Each kernel call keeps a
//! tile of up to 12 rows by 32 columns of `y` in 24 of the 32 vector
//! registers, so every load of two weight vectors feeds 24 fused
//! multiply-adds. The shared input dimension is walked 256 at a time, so
//! that a tile's inputs (12 rows of them, read in place) stay in L1 while
//! a task's panels (up to 32 of them) stay in L2. The epilogue adds the bias,
//! and optionally a residual, or (for a gated MLP, whose gate and up
//! columns are interleaved 16 by 16) writes `act(gate) * up` directly.

use super::simd::Target;
use rayon::prelude::*;
use std::arch::x86_64::*;
use std::ops::Range;

const PANEL: usize = 32;
const HALF: usize = PANEL / 2;
const ROWS: usize = 12;
/// Inputs walked per pass: 12 rows of 256 inputs take 12 KiB of L1.
const DEPTH: usize = 256;
/// Panels per task: 32 panels of 256 inputs take 1 MiB of L2.
const TASK_PANELS: usize = 32;
/// Rows per task, in blocks of 12.
const TASK_ROWS: usize = 16 * ROWS;

pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// The activation of a gated MLP, applied to the gate before it scales `up`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gate {
    Silu,
    GeluTanh,
}

impl Gate {
    #[inline(always)]
    fn apply(self, g: f32, u: f32) -> f32 {
        match self {
            Gate::Silu => g / (1.0 + super::simd::exp(-g)) * u,
            Gate::GeluTanh => {
                // 0.5 g (1 + tanh(z)) = g / (1 + e^(-2z)).
                let z = 0.797_884_6 * (g + 0.044_715 * g * g * g);
                g / (1.0 + super::simd::exp(-2.0 * z)) * u
            }
        }
    }
}

pub struct Packed {
    inputs: usize,
    /// Columns of the result: the weight's rows, or for a gated layer the
    /// gate's rows.
    width: usize,
    /// `[panel][input][32]`, columns beyond the weight's rows zero.
    panels: Vec<f32>,
    /// In the panels' column order, padded with zeros to whole panels.
    bias: Option<Vec<f32>>,
    gate: Option<Gate>,
}

impl Packed {
    /// Packs a weight given by its rows (of `inputs` values each).
    pub fn new(rows: &[&[f32]], inputs: usize, bias: Option<&[f32]>) -> Packed {
        let outputs = rows.len();
        let column = |c: usize| (c < outputs).then_some(c);
        Packed::from_columns(rows, outputs, inputs, bias, column, None)
    }

    /// Packs the gate and up projections of a gated MLP, `rows` being the
    /// gate's `width` rows then up's: each panel holds 16 gate columns and
    /// the 16 up columns they scale.
    pub fn gated(rows: &[&[f32]], inputs: usize, bias: Option<&[f32]>, gate: Gate) -> Packed {
        let width = rows.len() / 2;
        let column = |c: usize| {
            let (panel, lane) = (c / PANEL, c % PANEL);
            let j = panel * HALF + lane % HALF;
            (j < width).then_some(j + if lane < HALF { 0 } else { width })
        };
        Packed::from_columns(rows, width, inputs, bias, column, Some(gate))
    }

    /// `column(c)` is the row packed as column `c`, if any.
    fn from_columns(
        rows: &[&[f32]],
        width: usize,
        inputs: usize,
        bias: Option<&[f32]>,
        column: impl Fn(usize) -> Option<usize> + Sync,
        gate: Option<Gate>,
    ) -> Packed {
        assert!(rows.iter().all(|r| r.len() == inputs), "rows of {inputs} inputs");
        let count = match gate {
            Some(_) => width.div_ceil(HALF),
            None => width.div_ceil(PANEL),
        };
        let size = inputs * PANEL;
        // Safety: each task writes every value of its panel.
        let panels = unsafe {
            super::simd::written_by(count * size, |target| {
                (0..count).into_par_iter().for_each(|p| {
                    // Safety: panel `p` is this task's alone.
                    let panel = std::slice::from_raw_parts_mut(target.0.add(p * size), size);
                    for c in 0..PANEL {
                        match column(p * PANEL + c) {
                            Some(row) => rows[row]
                                .iter()
                                .enumerate()
                                .for_each(|(k, w)| panel[k * PANEL + c] = *w),
                            None => (0..inputs).for_each(|k| panel[k * PANEL + c] = 0.0),
                        }
                    }
                })
            })
        };
        let bias = bias.map(|b| (0..count * PANEL).map(|c| column(c).map_or(0.0, |r| b[r])).collect());
        Packed {
            inputs,
            width,
            panels,
            bias,
            gate,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Columns of the result.
    pub fn width(&self) -> usize {
        self.width
    }

    /// `x` is `[rows, inputs]` row-major; the result `[rows, width]`, plus
    /// `residual` (of that shape) if given.
    pub fn multiply(&self, x: &[f32], rows: usize, residual: Option<&[f32]>) -> Vec<f32> {
        assert!(available(), "the packed kernel needs AVX-512");
        assert_eq!(x.len(), rows * self.inputs);
        assert!(residual.is_none_or(|r| r.len() == rows * self.width));
        assert!(residual.is_none() || self.gate.is_none());
        let grid = self.grid(rows);
        // Safety: the tiles of the first pass write every element.
        unsafe {
            super::simd::written_by(rows * self.width, |target| {
                (0..grid.tasks()).into_par_iter().for_each(|t| {
                    let (rows, panels) = grid.task(t);
                    let out = Out {
                        target,
                        stride: self.width,
                        first: (0, 0),
                    };
                    self.run_tiles(x, rows, panels, residual, &out);
                })
            })
        }
    }

    /// For each row `r` of `y = x W^T + b`, soft-capped (`c tanh(y / c)`)
    /// if `softcap` is given: `y_r[targets[r]] - ln sum_j e^(y_rj)`, in f64.
    /// No row of `y` is ever whole in memory: each task keeps its tiles in
    /// a buffer of its own and reduces them to a maximum and a sum per row.
    pub fn log_probs(&self, x: &[f32], rows: usize, targets: &[u32], softcap: Option<f32>) -> Vec<f64> {
        assert!(available(), "the packed kernel needs AVX-512");
        assert!(self.gate.is_none() && x.len() == rows * self.inputs && targets.len() == rows);
        assert!(
            targets.iter().all(|t| (*t as usize) < self.width),
            "targets within the columns"
        );
        let grid = self.grid(rows);
        let parts: Vec<Vec<Part>> = (0..grid.tasks())
            .into_par_iter()
            .map(|t| {
                let (rows, panels) = grid.task(t);
                let columns = panels.start * PANEL..(panels.end * PANEL).min(self.width);
                let mut buffer = vec![0f32; rows.len() * columns.len()];
                let out = Out {
                    target: &Target(buffer.as_mut_ptr()),
                    stride: columns.len(),
                    first: (rows.start, columns.start),
                };
                self.run_tiles(x, rows.clone(), panels, None, &out);
                let capped = |v: f32| softcap.map_or(v, |c| (v / c).tanh() * c);
                let row_parts = buffer.chunks_exact_mut(columns.len().max(1)).zip(rows);
                row_parts
                    .map(|(values, r)| {
                        if softcap.is_some() {
                            values.iter_mut().for_each(|v| *v = capped(*v));
                        }
                        let target = (targets[r] as usize).checked_sub(columns.start);
                        let target = target.and_then(|t| values.get(t).copied());
                        let (max, sum) = super::simd::max_and_sum_exp(values);
                        Part {
                            row: r,
                            max,
                            sum,
                            target,
                        }
                    })
                    .collect()
            })
            .collect();
        combine(parts.into_iter().flatten(), rows)
    }

    /// How the product is cut into tasks: groups of panels of equal size
    /// (so that no task is a small remainder) times groups of rows.
    fn grid(&self, rows: usize) -> Grid {
        let panels = self.panels.len() / (self.inputs * PANEL).max(1);
        Grid {
            rows,
            panels,
            group: panels.div_ceil(panels.div_ceil(TASK_PANELS).max(1)).max(1),
        }
    }

    /// Every tile of `rows` by `panels`, pass by pass.
    fn run_tiles(&self, x: &[f32], rows: Range<usize>, panels: Range<usize>, residual: Option<&[f32]>, out: &Out) {
        // A gated tile is finished in one pass: its epilogue needs whole sums.
        let depth = match self.gate {
            Some(_) => self.inputs.max(1),
            None => self.inputs.div_ceil(self.inputs.div_ceil(DEPTH).max(1)).max(1),
        };
        let mut block = vec![0f32; depth * ROWS];
        for start in (0..self.inputs.max(1)).step_by(depth) {
            let pass = Pass {
                start,
                depth: depth.min(self.inputs - start),
                first: start == 0,
                last: start + depth >= self.inputs,
            };
            for row in rows.clone().step_by(ROWS) {
                let n = ROWS.min(rows.end - row);
                interleave_rows(&x[row * self.inputs + start..], self.inputs, n, pass.depth, &mut block);
                for p in panels.clone() {
                    self.tile(&block, (row, n), p, &pass, residual, out);
                }
            }
        }
    }

    /// The tile of rows `row..row + n` (their inputs interleaved in
    /// `block`) and panel `p`.
    fn tile(
        &self,
        block: &[f32],
        (row, n): (usize, usize),
        p: usize,
        pass: &Pass,
        residual: Option<&[f32]>,
        out: &Out,
    ) {
        let (first_column, columns) = match self.gate {
            Some(_) => (p * HALF, HALF.min(self.width - p * HALF)),
            None => (p * PANEL, PANEL.min(self.width - p * PANEL)),
        };
        let at = row * self.width + first_column;
        let local = (row - out.first.0) * out.stride + first_column - out.first.1;
        let tile = Tile {
            x: block.as_ptr(),
            panel: self.panels[(p * self.inputs + pass.start) * PANEL..].as_ptr(),
            depth: pass.depth,
            bias: self
                .bias
                .as_ref()
                .filter(|_| pass.first)
                .map(|b| b[p * PANEL..].as_ptr()),
            residual: residual.filter(|_| pass.last).map(|r| r[at..].as_ptr()),
            accumulate: !pass.first,
            gate: self.gate,
            columns,
            // Safety: each tile of the output is written by one task.
            out: unsafe { out.target.0.add(local) },
            stride: out.stride,
        };
        // Safety: `available()` was checked in `multiply`.
        unsafe { tile.run(n) };
    }
}

/// Where tiles go: element `(r, c)` of the product at
/// `target + (r - first.0) * stride + (c - first.1)`.
struct Out<'a> {
    target: &'a Target,
    stride: usize,
    first: (usize, usize),
}

/// Tasks: each a group of rows by a group of panels.
struct Grid {
    rows: usize,
    panels: usize,
    group: usize,
}

impl Grid {
    fn tasks(&self) -> usize {
        self.panels.div_ceil(self.group) * self.rows.div_ceil(TASK_ROWS)
    }

    fn task(&self, t: usize) -> (Range<usize>, Range<usize>) {
        let row_tasks = self.rows.div_ceil(TASK_ROWS);
        let (g, r) = (t / row_tasks, t % row_tasks);
        let rows = r * TASK_ROWS..((r + 1) * TASK_ROWS).min(self.rows);
        (rows, g * self.group..((g + 1) * self.group).min(self.panels))
    }
}

/// One task's reduction of one row: its largest value, the sum of
/// `e^(v - max)` over its values, and the target's value if it holds it.
struct Part {
    row: usize,
    max: f32,
    sum: f64,
    target: Option<f32>,
}

/// Each row's log-probability of its target from its tasks' parts.
fn combine(parts: impl Iterator<Item = Part>, rows: usize) -> Vec<f64> {
    let mut by_row: Vec<Vec<Part>> = (0..rows).map(|_| Vec::new()).collect();
    for part in parts {
        by_row[part.row].push(part);
    }
    by_row
        .iter()
        .map(|parts| {
            let max = parts.iter().map(|p| p.max).fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = parts.iter().map(|p| p.sum * (p.max as f64 - max).exp()).sum();
            let target = parts.iter().find_map(|p| p.target).expect("a task holds the target") as f64;
            target - (max + sum.ln())
        })
        .collect()
}

/// A range of the input dimension walked by every tile at once.
struct Pass {
    start: usize,
    depth: usize,
    first: bool,
    last: bool,
}

struct Tile {
    /// The pass's inputs of the tile's rows, `[input][12]`.
    x: *const f32,
    panel: *const f32,
    depth: usize,
    bias: Option<*const f32>,
    residual: Option<*const f32>,
    /// Add to what the output holds (a later pass).
    accumulate: bool,
    gate: Option<Gate>,
    columns: usize,
    out: *mut f32,
    stride: usize,
}

impl Tile {
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
        // Pointers that advance (rather than indices) keep the loop free
        // of address arithmetic; two inputs per turn halve its overhead.
        let (mut x, mut w) = (self.x, self.panel);
        for _ in 0..self.depth / 2 {
            step(&mut acc, x, w);
            step(&mut acc, x.add(ROWS), w.add(PANEL));
            (x, w) = (x.add(2 * ROWS), w.add(2 * PANEL));
        }
        if self.depth % 2 == 1 {
            step(&mut acc, x, w);
        }
        if let Some(b) = self.bias {
            let (b0, b1) = (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(HALF)));
            for acc in acc.iter_mut() {
                acc[0] = _mm512_add_ps(acc[0], b0);
                acc[1] = _mm512_add_ps(acc[1], b1);
            }
        }
        match self.gate {
            Some(gate) => self.store_gated(acc, gate),
            None => self.store(acc),
        }
    }

    // Inlined into the kernel (whose features it runs with): taking the
    // sums by reference would keep them in memory through the loop.
    #[inline(always)]
    unsafe fn store<const R: usize>(&self, acc: [[__m512; 2]; R]) {
        let masks = [mask(self.columns), mask(self.columns.saturating_sub(HALF))];
        for (r, acc) in acc.iter().enumerate() {
            for (half, mask) in masks.iter().enumerate() {
                let out = self.out.add(r * self.stride + half * HALF);
                let mut y = acc[half];
                if self.accumulate {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(*mask, out));
                }
                if let Some(residual) = self.residual {
                    let residual = residual.add(r * self.stride + half * HALF);
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(*mask, residual));
                }
                _mm512_mask_storeu_ps(out, *mask, y);
            }
        }
    }

    /// `act(gate) * up` of each row's 16 pairs.
    #[inline(always)]
    unsafe fn store_gated<const R: usize>(&self, acc: [[__m512; 2]; R], gate: Gate) {
        let (mut g, mut u, mut y) = ([0f32; HALF], [0f32; HALF], [0f32; HALF]);
        for (r, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(g.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(u.as_mut_ptr(), acc[1]);
            for l in 0..HALF {
                y[l] = gate.apply(g[l], u[l]);
            }
            _mm512_mask_storeu_ps(
                self.out.add(r * self.stride),
                mask(self.columns),
                _mm512_loadu_ps(y.as_ptr()),
            );
        }
    }
}

/// One input's multiply-adds into the tile.
#[inline(always)]
unsafe fn step<const R: usize>(acc: &mut [[__m512; 2]; R], x: *const f32, w: *const f32) {
    let (w0, w1) = (_mm512_loadu_ps(w), _mm512_loadu_ps(w.add(HALF)));
    for (r, acc) in acc.iter_mut().enumerate() {
        let v = _mm512_set1_ps(*x.add(r));
        acc[0] = _mm512_fmadd_ps(v, w0, acc[0]);
        acc[1] = _mm512_fmadd_ps(v, w1, acc[1]);
    }
}

/// `n` rows of `depth` inputs (rows `stride` apart) as `[input][12]`, so
/// that a kernel reads one contiguous stream: one gather per input.
fn interleave_rows(x: &[f32], stride: usize, n: usize, depth: usize, block: &mut [f32]) {
    if n == 0 || depth == 0 {
        return;
    }
    assert!(n <= ROWS && block.len() >= depth * ROWS, "a block of rows");
    assert!(x.len() >= (n - 1) * stride + depth, "rows within the input");
    assert!(n * stride <= i32::MAX as usize, "offsets within an i32");
    // Safety: the checks above keep every gathered and stored lane in
    // bounds; the CPU has AVX-512 (checked in `multiply`).
    unsafe { gather_rows(x.as_ptr(), stride, n, depth, block.as_mut_ptr()) }
}

#[target_feature(enable = "avx512f")]
unsafe fn gather_rows(x: *const f32, stride: usize, n: usize, depth: usize, block: *mut f32) {
    let mut offsets = [0i32; HALF];
    for (r, offset) in offsets.iter_mut().enumerate().take(n) {
        *offset = (r * stride) as i32;
    }
    let offsets = _mm512_loadu_si512(offsets.as_ptr().cast());
    let rows = mask(n);
    for k in 0..depth {
        let column = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), rows, offsets, x.add(k).cast());
        _mm512_mask_storeu_ps(block.add(k * ROWS), rows, column);
    }
}

/// The first `n` (at most 16) lanes.
fn mask(n: usize) -> __mmask16 {
    ((1u32 << n.min(HALF)) - 1) as __mmask16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this CPU runs the kernel; says so when it does not.
    fn runs_here() -> bool {
        if !available() {
            eprintln!("this CPU has no AVX-512: the packed kernel is not used here, so not tested");
        }
        available()
    }

    fn dot(x: &[f32], w: &[f32]) -> (f64, f64) {
        let exact = x.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
        let scale = x.iter().zip(w).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
        (exact, scale)
    }

    /// Shapes with partial panels, partial row blocks and several passes.
    const SHAPES: [(usize, usize, usize); 6] = [
        (1, 1, 1),
        (13, 33, 7),
        (25, 64, 100),
        (300, 70, 2000),
        (12, 32, 16),
        (200, 17, 600),
    ];

    /// Against a plain f64 product, with a bias and a residual.
    #[test]
    fn products_equal_a_plain_computation() {
        if !runs_here() {
            return;
        }
        let mut rng = crate::synth::Rng::new(7);
        for (rows, outputs, inputs) in SHAPES {
            let w = rng.normals(outputs * inputs, 1.0);
            let x = rng.normals(rows * inputs, 1.0);
            let b = rng.normals(outputs, 1.0);
            let residual = rng.normals(rows * outputs, 1.0);
            let packed = Packed::new(&w.chunks(inputs).collect::<Vec<_>>(), inputs, Some(&b));
            let (plain, added) = (
                packed.multiply(&x, rows, None),
                packed.multiply(&x, rows, Some(&residual)),
            );
            for i in 0..rows {
                for j in 0..outputs {
                    let (exact, scale) = dot(&x[i * inputs..][..inputs], &w[j * inputs..][..inputs]);
                    let exact = exact + b[j] as f64;
                    let at = i * outputs + j;
                    let tolerance = 1e-6 * (scale + b[j].abs() as f64 + residual[at].abs() as f64) + 1e-30;
                    assert!(
                        (plain[at] as f64 - exact).abs() <= tolerance,
                        "{rows}x{outputs}x{inputs} at ({i},{j})"
                    );
                    let with_residual = exact + residual[at] as f64;
                    assert!(
                        (added[at] as f64 - with_residual).abs() <= tolerance,
                        "residual at ({i},{j})"
                    );
                }
            }
        }
    }

    /// Log-probabilities of targets, with and without a soft cap, against
    /// a plain f64 log-softmax over whole rows (more columns than one task
    /// holds, and a partial last panel).
    #[test]
    fn log_probs_equal_a_plain_log_softmax() {
        if !runs_here() {
            return;
        }
        let mut rng = crate::synth::Rng::new(9);
        let (rows, outputs, inputs) = (30, 2 * TASK_PANELS * PANEL + 37, 300);
        let w = rng.normals(outputs * inputs, 0.2);
        let x = rng.normals(rows * inputs, 1.0);
        let b = rng.normals(outputs, 1.0);
        let targets: Vec<u32> = (0..rows).map(|r| ((r * 977) % outputs) as u32).collect();
        let packed = Packed::new(&w.chunks(inputs).collect::<Vec<_>>(), inputs, Some(&b));
        for softcap in [None, Some(3.0f32)] {
            let got = packed.log_probs(&x, rows, &targets, softcap);
            for r in 0..rows {
                let logits: Vec<f64> = (0..outputs)
                    .map(|j| {
                        let y = dot(&x[r * inputs..][..inputs], &w[j * inputs..][..inputs]).0 + b[j] as f64;
                        softcap.map_or(y, |c| (y / c as f64).tanh() * c as f64)
                    })
                    .collect();
                let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
                let exact = logits[targets[r] as usize] - lse;
                assert!(
                    (got[r] - exact).abs() < 1e-5,
                    "{softcap:?} row {r}: {} vs {exact}",
                    got[r]
                );
            }
        }
    }

    /// `act(x G^T + b_g) * (x U^T + b_u)` against its definition in f64.
    #[test]
    fn gated_products_equal_their_definition() {
        if !runs_here() {
            return;
        }
        let mut rng = crate::synth::Rng::new(8);
        for (rows, width, inputs) in SHAPES {
            let w = rng.normals(2 * width * inputs, 0.5);
            let x = rng.normals(rows * inputs, 0.5);
            let b = rng.normals(2 * width, 0.5);
            for gate in [Gate::Silu, Gate::GeluTanh] {
                let y = Packed::gated(&w.chunks(inputs).collect::<Vec<_>>(), inputs, Some(&b), gate)
                    .multiply(&x, rows, None);
                for i in 0..rows {
                    for j in 0..width {
                        let x = &x[i * inputs..][..inputs];
                        let (g, gs) = dot(x, &w[j * inputs..][..inputs]);
                        let (u, us) = dot(x, &w[(width + j) * inputs..][..inputs]);
                        let (g, u) = (g + b[j] as f64, u + b[width + j] as f64);
                        let act = match gate {
                            Gate::Silu => g / (1.0 + (-g).exp()),
                            Gate::GeluTanh => {
                                0.5 * g
                                    * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g.powi(3))).tanh())
                            }
                        };
                        let exact = act * u;
                        let tolerance = 1e-5 * (gs + 1.0) * (us + 1.0);
                        let got = y[i * width + j] as f64;
                        assert!(
                            (got - exact).abs() <= tolerance,
                            "{gate:?} {rows}x{width}x{inputs} at ({i},{j}): {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }
}
