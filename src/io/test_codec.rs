//! decode_f32 / encode_f32 against conversions computed independently.

use half::{bf16, f16};
use rand::Rng;

use super::test_util::rng;
use super::{decode_f32, encode_f32, Dtype};

/// A spread of values: random magnitudes across many exponents, both signs,
/// plus zeros, infinities and values past the f16 range.
fn sample_values() -> Vec<f32> {
    let mut r = rng(7);
    let mut values: Vec<f32> = (0..2000)
        .map(|_| r.gen_range(-1.0f32..1.0) * 2f32.powi(r.gen_range(-30..30)))
        .collect();
    values.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        65504.0,
        70000.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
    ]);
    values
}

/// Round-to-nearest-even truncation of an f32 to bf16 bits, by hand.
fn bf16_bits_by_hand(value: f32) -> u16 {
    let bits = value.to_bits();
    let round_bias = 0x7fff + ((bits >> 16) & 1);
    ((bits + round_bias) >> 16) as u16
}

#[test]
fn f32_round_trips_from_unaligned_bytes() {
    let values = sample_values();
    let mut buffer = vec![0u8];
    buffer.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    let unaligned = &buffer[1..];
    assert_eq!(encode_f32(Dtype::F32, &values).unwrap(), unaligned);
    let decoded = decode_f32(Dtype::F32, unaligned).unwrap();
    assert_eq!(decoded.len(), values.len());
    assert!(decoded.iter().zip(&values).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn f16_matches_half() {
    let values = sample_values();
    let expected: Vec<u8> = values
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let encoded = encode_f32(Dtype::F16, &values).unwrap();
    assert_eq!(encoded, expected);
    let decoded = decode_f32(Dtype::F16, &encoded).unwrap();
    for (d, v) in decoded.iter().zip(&values) {
        assert_eq!(d.to_bits(), f16::from_f32(*v).to_f32().to_bits());
    }
    // Ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
    let tie = encode_f32(Dtype::F16, &[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)]).unwrap();
    assert_eq!(
        decode_f32(Dtype::F16, &tie).unwrap(),
        vec![1.0, 1.0 + 2.0 * 2f32.powi(-10)]
    );
}

#[test]
fn bf16_matches_half_and_hand_rounding() {
    let values = sample_values();
    let encoded = encode_f32(Dtype::BF16, &values).unwrap();
    let by_half: Vec<u8> = values
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let by_hand: Vec<u8> = values
        .iter()
        .flat_map(|&v| bf16_bits_by_hand(v).to_le_bytes())
        .collect();
    assert_eq!(encoded, by_half);
    assert_eq!(encoded, by_hand);
    let decoded = decode_f32(Dtype::BF16, &encoded).unwrap();
    for (d, bits) in decoded.iter().zip(encoded.chunks(2)) {
        let upper = u32::from(u16::from_le_bytes([bits[0], bits[1]])) << 16;
        assert_eq!(d.to_bits(), upper);
    }
}

#[test]
fn f64_widens_exactly_and_narrows_by_rounding() {
    let values = sample_values();
    let encoded = encode_f32(Dtype::F64, &values).unwrap();
    let expected: Vec<u8> = values.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect();
    assert_eq!(encoded, expected);
    assert_eq!(decode_f32(Dtype::F64, &encoded).unwrap(), values);
    let precise = 0.1f64;
    assert_eq!(decode_f32(Dtype::F64, &precise.to_le_bytes()).unwrap(), vec![0.1f32]);
}

#[test]
fn non_float_dtypes_and_ragged_bytes_are_refused() {
    for dtype in [Dtype::I64, Dtype::U8, Dtype::BOOL, Dtype::F8_E4M3, Dtype::I32] {
        assert_eq!(decode_f32(dtype, &[0; 8]), None);
        assert_eq!(encode_f32(dtype, &[1.0]), None);
    }
    assert_eq!(decode_f32(Dtype::F32, &[0; 7]), None);
    assert_eq!(decode_f32(Dtype::BF16, &[0; 3]), None);
    assert_eq!(decode_f32(Dtype::F16, &[]), Some(vec![]));
}
