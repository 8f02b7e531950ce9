//! Colours, fonts and number formats the figures share.

use super::text::FAMILY;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Labels longer than this many characters are shortened in the middle.
const MAX_LABEL: usize = 32;

/// A label short enough to leave room for the plot: its start and its end
/// (where names usually differ) around an ellipsis.
pub fn shorten(label: &str) -> String {
    let chars: Vec<char> = label.chars().collect();
    if chars.len() <= MAX_LABEL {
        return label.to_string();
    }
    let keep = (MAX_LABEL - 1) / 2;
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{head}…{tail}")
}

/// Sizes are given for an SVG figure; a PNG figure multiplies them by its
/// scale (2, so it stays sharp on high-density screens).
#[derive(Copy, Clone)]
pub struct Scale(pub f64);

impl Scale {
    pub fn px(self, v: f64) -> i32 {
        (v * self.0).round() as i32
    }

    pub fn font(self, size: f64) -> TextStyle<'static> {
        TextStyle::from((FAMILY, size * self.0).into_font()).color(&INK)
    }

    pub fn centered(self, size: f64) -> TextStyle<'static> {
        self.font(size).pos(Pos::new(HPos::Center, VPos::Center))
    }
}

pub const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub const MISSING: RGBColor = RGBColor(0xd9, 0xd9, 0xd9);
pub const GRID: RGBColor = RGBColor(0xe6, 0xe6, 0xe6);

/// The colour of `v` on a scale from `lo` to `hi`: viridis, or when the
/// scale is centred, blue through white to red.
pub fn scale_color(v: f64, lo: f64, hi: f64, centered: bool) -> RGBColor {
    let t = if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    if centered {
        return diverging(t);
    }
    ViridisRGB.get_color_normalized(t as f32, 0.0, 1.0)
}

/// Blue (0) to near white (0.5) to red (1).
fn diverging(t: f64) -> RGBColor {
    const BLUE: (f64, f64, f64) = (33.0, 102.0, 172.0);
    const WHITE: (f64, f64, f64) = (247.0, 247.0, 247.0);
    const RED: (f64, f64, f64) = (178.0, 24.0, 43.0);
    let (a, b, u) = match t < 0.5 {
        true => (BLUE, WHITE, t * 2.0),
        false => (WHITE, RED, (t - 0.5) * 2.0),
    };
    let mix = |p: f64, q: f64| (p + (q - p) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Relative luminance (sRGB weights, without linearisation): dark cells
/// get white text.
pub fn luminance(c: RGBColor) -> f64 {
    (0.2126 * f64::from(c.0) + 0.7152 * f64::from(c.1) + 0.0722 * f64::from(c.2)) / 255.0
}

/// Curve colours: distinct hues for names (the palette, or evenly spaced
/// hues beyond its ten), a dark-to-light ramp when the groups are numbers
/// in order (years, sizes).
pub fn series_colors(names: &[String]) -> Vec<RGBColor> {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(0x4e, 0x79, 0xa7),
        RGBColor(0xf2, 0x8e, 0x2b),
        RGBColor(0xe1, 0x57, 0x59),
        RGBColor(0x76, 0xb7, 0xb2),
        RGBColor(0x59, 0xa1, 0x4f),
        RGBColor(0xed, 0xc9, 0x48),
        RGBColor(0xb0, 0x7a, 0xa1),
        RGBColor(0xff, 0x9d, 0xa7),
        RGBColor(0x9c, 0x75, 0x5f),
        RGBColor(0xba, 0xb0, 0xac),
    ];
    let numbers: Option<Vec<f64>> = names.iter().map(|n| n.parse::<f64>().ok()).collect();
    let ordered = numbers.is_some_and(|v| v.len() > 2 && v.windows(2).all(|w| w[0] < w[1]));
    let n = names.len();
    if ordered && n > PALETTE.len() / 2 {
        let last = (n - 1) as f64;
        return (0..n)
            .map(|i| ViridisRGB.get_color_normalized((0.85 * i as f64 / last) as f32, 0.0, 1.0))
            .collect();
    }
    if n > PALETTE.len() {
        return (0..n).map(|i| hue(i as f64 / n as f64)).collect();
    }
    PALETTE[..n].to_vec()
}

/// A saturated colour of hue `t` (0 to 1 around the wheel), dark enough
/// to read on white.
fn hue(t: f64) -> RGBColor {
    let h = 6.0 * t;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let channel = |c: f64| (40.0 + 160.0 * c).round() as u8;
    RGBColor(channel(r), channel(g), channel(b))
}

/// Axes never reach beyond this: plotters needs a finite span to place
/// its ticks.
const AXIS_LIMIT: f64 = 1e300;

/// An axis range plotters can draw: finite, within `AXIS_LIMIT`, and wide
/// enough against its magnitude for distinct ticks.
pub fn safe_range(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = (lo.max(-AXIS_LIMIT), hi.min(AXIS_LIMIT));
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        return (0.0, 1.0);
    }
    let least = (lo.abs().max(hi.abs()) * 1e-12).max(1e-300);
    if hi - lo >= least {
        return (lo, hi);
    }
    let middle = lo / 2.0 + hi / 2.0;
    (middle - least, middle + least)
}

/// Tick labels: a few more decimals than the axis's span needs, without
/// trailing zeros (`0.2`, `2.5`, `10`); powers of ten (`2e-9`, `1.5e12`)
/// for very small and very large numbers.
pub fn tick(v: f64, span: f64) -> String {
    let magnitude = v.abs();
    if v != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        let digits = if span > 0.0 {
            (magnitude / span).log10().ceil().clamp(0.0, 15.0) as usize + 1
        } else {
            3
        };
        return scientific(v, digits);
    }
    let decimals = if span > 0.0 {
        (3.0 - span.log10().floor()).clamp(0.0, 15.0) as usize
    } else {
        3
    };
    let mut text = format!("{v:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    match text.as_str() {
        "-0" => "0".to_string(),
        _ => text,
    }
}

/// `v` in scientific notation with at most `digits` decimals in the
/// mantissa, without trailing zeros.
fn scientific(v: f64, digits: usize) -> String {
    let text = format!("{v:.digits$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let mantissa = match mantissa.contains('.') {
        true => mantissa.trim_end_matches('0').trim_end_matches('.'),
        false => mantissa,
    };
    format!("{mantissa}e{exponent}")
}

/// A value in a heatmap cell: three decimals below 1, two below 10, one
/// below 1000 (and for percentages), none above; decided after rounding,
/// so that 0.9996 reads `1.00` like its neighbour 1.004.
pub fn cell(v: f64, percent: bool) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v != 0.0 && !(1e-3..1e6).contains(&v.abs()) {
        return scientific(v, 2);
    }
    if percent {
        return format!("{v:.1}");
    }
    let decimals = |a: f64| match () {
        _ if a >= 1000.0 => 0,
        _ if a >= 10.0 => 1,
        _ if a >= 1.0 => 2,
        _ => 3,
    };
    let first = decimals(v.abs());
    let rounded: f64 = format!("{v:.first$}").parse().unwrap_or(v);
    let decimals = decimals(rounded.abs());
    format!("{v:.decimals$}")
}
