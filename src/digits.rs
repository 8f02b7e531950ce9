//! The UCI optical-recognition handwritten digits (Alpaydin & Kaynak 1998,
//! CC BY 4.0, as distributed with scikit-learn; see `experiments/data/README.md`)
//! and fixed input transformations that turn it into separate "tasks" for
//! task-arithmetic experiments.
//!
//! Pixels are the 8x8 image in row-major order: index `8 * r + c` is row `r`
//! (0 = top) and column `c` (0 = left). Everything here is deterministic.

use crate::synth::Rng;
use std::fs;
use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};

/// One 8x8 image: its class (0..9) and 64 pixel values 0..16, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub label: u8,
    pub pixels: [u8; 64],
}

/// The task names accepted by [`transform`], in the order [`write_tasks`] writes them.
pub const TASKS: [&str; 8] = [
    "original", "rot90", "rot180", "rot270", "flip_h", "flip_v", "invert", "permute",
];

fn invalid(line: usize, message: String) -> Error {
    Error::new(ErrorKind::InvalidData, format!("line {line}: {message}"))
}

/// Reads `label,p0,...,p63` CSV (header line first, then one image per line,
/// label 0..9 then 64 pixels 0..16). A malformed line is an `InvalidData`
/// error naming its (1-based) line number.
pub fn read_digits(path: &Path) -> std::io::Result<Vec<Image>> {
    let text = fs::read_to_string(path)?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim().starts_with("label,") => {}
        _ => return Err(invalid(1, "expected a header line `label,p0,...,p63`".into())),
    }
    let mut images = Vec::new();
    for (i, line) in lines {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut values = Vec::with_capacity(65);
        for field in line.split(',') {
            let v: u8 = field
                .trim()
                .parse()
                .map_err(|_| invalid(number, format!("not an integer 0..255: {field:?}")))?;
            values.push(v);
        }
        if values.len() != 65 {
            return Err(invalid(number, format!("expected 65 values, found {}", values.len())));
        }
        if values[0] > 9 {
            return Err(invalid(number, format!("label {} is not in 0..9", values[0])));
        }
        if let Some(v) = values[1..].iter().find(|&&v| v > 16) {
            return Err(invalid(number, format!("pixel value {v} is not in 0..16")));
        }
        let mut pixels = [0u8; 64];
        pixels.copy_from_slice(&values[1..]);
        images.push(Image {
            label: values[0],
            pixels,
        });
    }
    Ok(images)
}

/// Fisher-Yates shuffle of `items` driven by `rng`: for `i` from `len - 1`
/// down to 1, swap item `i` with item `rng.next_u64() % (i + 1)`.
fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The fixed pixel permutation of the `permute` task: `0..64` shuffled by
/// [`shuffle`] with `Rng::new(1998)`. Output pixel `i` is input pixel `perm[i]`.
fn permutation() -> [usize; 64] {
    let mut perm: [usize; 64] = std::array::from_fn(|i| i);
    shuffle(&mut perm, &mut Rng::new(1998));
    perm
}

/// Applies the named task's fixed transformation, or `None` for an unknown task.
/// With `in[r][c]` the input pixel at row `r`, column `c`, the output `out[r][c]` is:
/// - `original`: `in[r][c]` (identity);
/// - `rot90`: `in[c][7 - r]`, the image rotated 90 degrees counter-clockwise
///   (the top-right corner moves to the top-left, the top row becomes the left column);
/// - `rot180`: `in[7 - r][7 - c]`;
/// - `rot270`: `in[7 - c][r]`, 270 degrees counter-clockwise (= 90 clockwise);
/// - `flip_h`: `in[r][7 - c]` (mirror left-right);
/// - `flip_v`: `in[7 - r][c]` (mirror top-bottom);
/// - `invert`: `16 - in[r][c]`;
/// - `permute`: flat pixel `i` is input pixel `perm[i]`, for a fixed permutation
///   `perm` of `0..64` (Fisher-Yates with `Rng::new(1998)`, see [`shuffle`]).
pub fn transform(task: &str, pixels: &[u8; 64]) -> Option<[u8; 64]> {
    let at = |r: usize, c: usize| pixels[8 * r + c];
    let map = |f: &dyn Fn(usize, usize) -> u8| -> [u8; 64] { std::array::from_fn(|i| f(i / 8, i % 8)) };
    Some(match task {
        "original" => *pixels,
        "rot90" => map(&|r, c| at(c, 7 - r)),
        "rot180" => map(&|r, c| at(7 - r, 7 - c)),
        "rot270" => map(&|r, c| at(7 - c, r)),
        "flip_h" => map(&|r, c| at(r, 7 - c)),
        "flip_v" => map(&|r, c| at(7 - r, c)),
        "invert" => pixels.map(|v| 16u8.saturating_sub(v)),
        "permute" => {
            let perm = permutation();
            std::array::from_fn(|i| pixels[perm[i]])
        }
        _ => return None,
    })
}

/// A fixed train/validation/test split of `0..count`: the indices shuffled
/// by [`shuffle`] with `Rng::new(42)`, then validation and test get
/// `count * 20 / 100` (rounded down) each and train the rest, taken in that
/// shuffled order as `[train, val, test]`. It depends only on `count`, so it
/// is the same images for every task.
pub fn split(count: usize) -> [Vec<usize>; 3] {
    let mut order: Vec<usize> = (0..count).collect();
    shuffle(&mut order, &mut Rng::new(42));
    let held = count * 20 / 100;
    let test = order.split_off(count - held);
    let val = order.split_off(count - 2 * held);
    [order, val, test]
}

/// Reads `digits_csv` (see [`read_digits`]) and writes, for every task in
/// [`TASKS`] and every part of [`split`], `out_dir/{task}_{train,val,test}.csv`
/// with header `label,x0,...,x63` and features `v / 16` (f32, shortest
/// round-trip formatting). Creates `out_dir`; returns the paths written.
pub fn write_tasks(digits_csv: &Path, out_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let images = read_digits(digits_csv)?;
    let parts = split(images.len());
    fs::create_dir_all(out_dir)?;
    let mut header = String::from("label");
    for i in 0..64 {
        header.push_str(&format!(",x{i}"));
    }
    let mut written = Vec::new();
    for task in TASKS {
        for (name, indices) in ["train", "val", "test"].iter().zip(&parts) {
            let mut text = header.clone();
            text.push('\n');
            for &i in indices {
                let image = &images[i];
                let pixels = transform(task, &image.pixels).ok_or_else(|| Error::other("unknown task"))?;
                text.push_str(&image.label.to_string());
                for v in pixels {
                    text.push_str(&format!(",{}", f32::from(v) / 16.0));
                }
                text.push('\n');
            }
            let path = out_dir.join(format!("{task}_{name}.csv"));
            fs::write(&path, text)?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixel value = index (0..63), so each output value says where it came from.
    fn ramp() -> [u8; 64] {
        std::array::from_fn(|i| i as u8)
    }

    fn vendored() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/data/digits.csv")
    }

    #[test]
    fn transforms_match_hand_written_expectations() {
        // (task, expected top row, expected bottom row) of the transformed ramp.
        let expected: [(&str, [u8; 8], [u8; 8]); 6] = [
            ("original", [0, 1, 2, 3, 4, 5, 6, 7], [56, 57, 58, 59, 60, 61, 62, 63]),
            // Counter-clockwise: the right column becomes the top row.
            ("rot90", [7, 15, 23, 31, 39, 47, 55, 63], [0, 8, 16, 24, 32, 40, 48, 56]),
            ("rot180", [63, 62, 61, 60, 59, 58, 57, 56], [7, 6, 5, 4, 3, 2, 1, 0]),
            // Clockwise: the left column, read bottom to top, becomes the top row.
            (
                "rot270",
                [56, 48, 40, 32, 24, 16, 8, 0],
                [63, 55, 47, 39, 31, 23, 15, 7],
            ),
            ("flip_h", [7, 6, 5, 4, 3, 2, 1, 0], [63, 62, 61, 60, 59, 58, 57, 56]),
            ("flip_v", [56, 57, 58, 59, 60, 61, 62, 63], [0, 1, 2, 3, 4, 5, 6, 7]),
        ];
        for (task, top, bottom) in expected {
            let out = transform(task, &ramp()).expect("known task");
            assert_eq!((&out[..8], &out[56..]), (&top[..], &bottom[..]), "{task}");
        }
        let small: [u8; 64] = std::array::from_fn(|i| (i % 17) as u8);
        let inverted = transform("invert", &small).expect("known task");
        assert_eq!((&inverted[..4], inverted[16]), (&[16, 15, 14, 13][..], 0));
        assert_eq!(transform("rot45", &small), None);
    }

    #[test]
    fn rotation_flip_and_permutation_identities() {
        let id = ramp();
        let t = |task, p: &[u8; 64]| transform(task, p).expect("known task");
        let mut p = id;
        for _ in 0..4 {
            p = t("rot90", &p);
        }
        assert_eq!(p, id);
        assert_eq!(t("rot270", &t("rot90", &id)), id);
        assert_eq!(t("rot90", &t("rot270", &id)), id);
        assert_eq!(t("rot180", &id), t("rot90", &t("rot90", &id)));
        for task in ["flip_h", "flip_v", "invert", "rot180"] {
            let small = id.map(|v| v % 17);
            assert_eq!(t(task, &t(task, &small)), small, "{task}");
        }
        let permuted = t("permute", &id);
        let mut sorted = permuted;
        sorted.sort_unstable();
        assert_eq!(sorted, id);
        assert_ne!(permuted, id);
        assert_eq!(t("permute", &id), permuted);
    }

    #[test]
    fn split_is_disjoint_complete_and_stable() {
        for count in [0, 1, 7, 100, 1797] {
            let [train, val, test] = split(count);
            assert_eq!(val.len(), count / 5);
            assert_eq!(test.len(), count / 5);
            assert_eq!(train.len() + val.len() + test.len(), count);
            let mut all: Vec<usize> = train.iter().chain(&val).chain(&test).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..count).collect::<Vec<_>>());
            assert_eq!(split(count), [train, val, test]);
        }
    }

    #[test]
    fn reads_the_vendored_digits() {
        let images = read_digits(&vendored()).expect("vendored digits.csv");
        assert_eq!(images.len(), 1797);
        let mut counts = [0usize; 10];
        for image in &images {
            assert!(image.pixels.iter().all(|&v| v <= 16));
            counts[usize::from(image.label)] += 1;
        }
        // From scikit-learn 1.9.1: numpy.bincount(sklearn.datasets.load_digits().target).
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }

    #[test]
    fn malformed_line_names_its_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.csv");
        let good = format!("3{}", ",0".repeat(64));
        fs::write(&path, format!("label,p0\n{good}\n{good},5\n")).expect("write");
        let err = read_digits(&path).expect_err("65 values expected");
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn writes_all_task_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_tasks(&vendored(), dir.path()).expect("write_tasks");
        assert_eq!(written.len(), 24);
        let lines = |task: &str, part: &str| -> Vec<String> {
            let text = fs::read_to_string(dir.path().join(format!("{task}_{part}.csv"))).expect("task file");
            text.lines().map(String::from).collect()
        };
        let labels = |rows: &[String]| -> Vec<String> {
            rows.iter()
                .map(|l| l.split(',').next().unwrap_or("").to_string())
                .collect()
        };
        for (part, n) in [("train", 1079), ("val", 359), ("test", 359)] {
            let control = lines("original", part);
            for task in TASKS {
                let rows = lines(task, part);
                assert_eq!(rows.len(), n + 1, "{task}_{part}");
                assert!(rows[0].starts_with("label,x0,x1,") && rows[0].ends_with(",x63"));
                assert_eq!(labels(&rows), labels(&control));
            }
        }
        // The first test image, scaled, and the bytes are the same on a second run.
        let images = read_digits(&vendored()).expect("vendored digits.csv");
        let first = &images[split(images.len())[2][0]];
        let scaled: Vec<String> = first
            .pixels
            .iter()
            .map(|&v| (f32::from(v) / 16.0).to_string())
            .collect();
        assert_eq!(
            lines("original", "test")[1],
            format!("{},{}", first.label, scaled.join(","))
        );
        let again = tempfile::tempdir().expect("tempdir");
        write_tasks(&vendored(), again.path()).expect("write_tasks");
        for path in &written {
            let name = path.file_name().expect("file name");
            assert_eq!(fs::read(path).ok(), fs::read(again.path().join(name)).ok(), "{name:?}");
        }
    }
}
