//! Counter-based random numbers: element `i` of a tensor draws from a hash
//! of (seed, tensor name, stream, i), so a mask never depends on the order
//! in which tensors or chunks are computed, or on the thread count.

use crate::graph::Stream;

/// SplitMix64's finaliser: a bijection of u64 that mixes every bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// FNV-1a of the tensor name: stable across runs and platforms.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The uniform numbers of one tensor.
#[derive(Copy, Clone, Debug)]
pub struct Uniforms {
    key: u64,
}

impl Uniforms {
    pub fn new(stream: Stream, name: &str) -> Uniforms {
        let seed = mix(stream.seed.wrapping_add(GOLDEN));
        let named = mix(seed ^ name_hash(name));
        Uniforms {
            key: mix(named ^ mix((stream.index as u64).wrapping_add(1).wrapping_mul(GOLDEN))),
        }
    }

    /// Element `i`'s number, uniform on [0, 1) with 53 random bits: the
    /// SplitMix64 sequence started at the tensor's key.
    pub fn at(self, i: usize) -> f64 {
        let bits = mix(self.key.wrapping_add((i as u64).wrapping_add(1).wrapping_mul(GOLDEN)));
        (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64, index: u32) -> Stream {
        Stream { seed, index }
    }

    #[test]
    fn uniform_mean_and_spread() {
        let u = Uniforms::new(stream(7, 0), "layer.weight");
        let n = 200_000;
        let values: Vec<f64> = (0..n).map(|i| u.at(i)).collect();
        let mean = values.iter().sum::<f64>() / n as f64;
        let below_tenth = values.iter().filter(|v| **v < 0.1).count() as f64 / n as f64;
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        assert!((below_tenth - 0.1).abs() < 0.005, "{below_tenth}");
    }

    #[test]
    fn seed_name_and_stream_each_change_the_numbers() {
        let base = Uniforms::new(stream(1, 0), "a").at(5);
        assert_eq!(base, Uniforms::new(stream(1, 0), "a").at(5));
        assert_ne!(base, Uniforms::new(stream(2, 0), "a").at(5));
        assert_ne!(base, Uniforms::new(stream(1, 1), "a").at(5));
        assert_ne!(base, Uniforms::new(stream(1, 0), "b").at(5));
        assert_ne!(base, Uniforms::new(stream(1, 0), "a").at(6));
    }
}
