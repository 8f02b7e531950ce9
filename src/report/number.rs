//! Numbers as the report writes them.

/// The shortest decimal that reads back as the same f64. Plain notation for
/// everyday magnitudes, scientific beyond them (so `1e-9` is not written
/// with nine zeros).
pub fn format_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let magnitude = x.abs();
    if x != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        return format!("{x:e}");
    }
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn shortest_round_trip() {
        for x in [0.1 + 0.2, 1.0 / 3.0, 2012.0, -0.5, 1e-9, 6.02e23, 123456.789, 1e-5, 0.0] {
            let text = format_number(x);
            assert_eq!(text.parse::<f64>().unwrap(), x, "{text}");
        }
        assert_eq!(format_number(0.3), "0.3");
        assert_eq!(format_number(2012.0), "2012");
        assert_eq!(format_number(1e-9), "1e-9");
        assert_eq!(format_number(0.30000000000000004), "0.30000000000000004");
        assert_eq!(format_number(f64::NAN), "NaN");
    }
}
