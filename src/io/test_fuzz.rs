//! A seeded fuzz loop: random bytes and random mutations of valid files and
//! indexes must produce errors or valid checkpoints, never panics.

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tempfile::tempdir;

use super::test_util::{mixed_tensors, rng, serialize, write};
use super::Checkpoint;

const ITERATIONS: usize = 2000;

/// Apply one to four random edits: flip, overwrite, insert, delete, cut short,
/// or replace the length prefix with a plausible value.
fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..=4) {
        let at = rng.gen_range(0..=bytes.len());
        match rng.gen_range(0..6) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 if at < bytes.len() => bytes[at] = *b"{}[],:\"0123456789e-. x".choose(rng).unwrap_or(&b'0'),
            2 => bytes.insert(at, rng.gen()),
            3 if at < bytes.len() => {
                bytes.remove(at);
            }
            4 => bytes.truncate(at),
            _ if bytes.len() >= 8 => {
                let len: u64 = rng.gen_range(0..bytes.len() as u64 + 16);
                bytes[..8].copy_from_slice(&len.to_le_bytes());
            }
            _ => {}
        }
    }
}

/// Open `path`, reporting whether it was accepted; an accepted checkpoint
/// must be self-consistent: every tensor's bytes are exactly its byte length.
fn open_checked(path: &Path) -> bool {
    let Ok(checkpoint) = Checkpoint::open(path) else {
        return false;
    };
    for (i, info) in checkpoint.tensors().iter().enumerate() {
        assert_eq!(checkpoint.bytes(i).len(), info.byte_len());
    }
    true
}

#[test]
fn open_never_panics_on_random_or_mutated_input() {
    let dir = tempdir().unwrap();
    let mut rng = rng(42);
    let valid = serialize(&mixed_tensors(&mut rng));
    let index = br#"{"metadata":{},"weight_map":{"scale":"model.safetensors","empty":"model.safetensors"}}"#;
    let (mut accepted, mut rejected) = (0, 0);
    for iteration in 0..ITERATIONS {
        let path = match iteration % 4 {
            0 => {
                let len = rng.gen_range(0..64);
                let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                write(dir.path(), "random.safetensors", &bytes)
            }
            1 => {
                let mut bytes = index.to_vec();
                mutate(&mut rng, &mut bytes);
                write(dir.path(), "model.safetensors", &valid);
                write(dir.path(), "model.safetensors.index.json", &bytes)
            }
            _ => {
                let mut bytes = valid.clone();
                mutate(&mut rng, &mut bytes);
                write(dir.path(), "mutated.safetensors", &bytes)
            }
        };
        match open_checked(&path) {
            true => accepted += 1,
            false => rejected += 1,
        }
    }
    // Both outcomes must occur, or the loop is not exercising anything.
    assert!(
        accepted > 0 && rejected > ITERATIONS / 2,
        "{accepted} accepted, {rejected} rejected"
    );
}
