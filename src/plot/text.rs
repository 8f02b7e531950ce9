//! Text from one embedded font (DejaVu Sans, `assets/fonts/`): the same
//! glyphs and the same layout on every machine, as outline paths in SVG
//! and as coverage in PNG. No system font is ever looked up.

use ab_glyph::{Font, FontRef, GlyphId, OutlineCurve, ScaleFont};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;
use std::sync::OnceLock;

const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name plotters knows the font by.
pub const FAMILY: &str = "tv-sans";

/// The parsed font; also registered with plotters, whose own text
/// measurements then agree with ours.
pub fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        let font = FontRef::try_from_slice(FONT_BYTES).expect("the embedded font parses");
        // Registering a font that parsed above cannot fail.
        let _ = plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, FONT_BYTES);
        font
    })
}

/// One glyph of a laid-out line: its id and where its origin sits on the
/// baseline, in pixels from the line's start.
pub struct Placed {
    pub id: GlyphId,
    pub x: f32,
}

/// A line of text at a pixel size.
pub struct Line {
    pub glyphs: Vec<Placed>,
    pub width: f32,
    /// Above the baseline, positive.
    pub ascent: f32,
    /// Below the baseline, negative.
    pub descent: f32,
    pub size: f32,
}

impl Line {
    pub fn height(&self) -> f32 {
        self.ascent - self.descent
    }
}

/// Lays out `text` at `size` pixels (the font's ascent minus descent),
/// with its kerning.
pub fn layout(text: &str, size: f32) -> Line {
    let scaled = font().as_scaled(size);
    let mut glyphs = Vec::new();
    let mut x = 0.0;
    let mut previous: Option<GlyphId> = None;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            x += scaled.kern(p, id);
        }
        glyphs.push(Placed { id, x });
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    Line {
        glyphs,
        width: x,
        ascent: scaled.ascent(),
        descent: scaled.descent(),
        size,
    }
}

/// Where a line's start on the baseline goes relative to its anchor point,
/// in the line's own (unrotated) frame: chosen so that the text's box *on
/// the image*, after the rotation, sits against the anchor as asked (an
/// upright label hangs below its tick, it does not straddle it).
pub fn origin(line: &Line, anchor: Pos, rotation: &FontTransform) -> (f32, f32) {
    let (w, a, d) = (line.width, line.ascent, line.descent);
    let middle = (a + d) / 2.0;
    match rotation {
        FontTransform::Rotate90 => {
            let x = match anchor.v_pos {
                VPos::Top => 0.0,
                VPos::Center => -w / 2.0,
                VPos::Bottom => -w,
            };
            let y = match anchor.h_pos {
                HPos::Left => d,
                HPos::Center => middle,
                HPos::Right => a,
            };
            (x, y)
        }
        FontTransform::Rotate270 => {
            let x = match anchor.v_pos {
                VPos::Top => -w,
                VPos::Center => -w / 2.0,
                VPos::Bottom => 0.0,
            };
            let y = match anchor.h_pos {
                HPos::Left => a,
                HPos::Center => middle,
                HPos::Right => d,
            };
            (x, y)
        }
        _ => {
            let x = match anchor.h_pos {
                HPos::Left => 0.0,
                HPos::Center => -w / 2.0,
                HPos::Right => -w,
            };
            let y = match anchor.v_pos {
                VPos::Top => a,
                VPos::Center => middle,
                VPos::Bottom => d,
            };
            (x, y)
        }
    }
}

/// The clockwise rotation, in degrees, of plotters' text transforms.
pub fn degrees(transform: &FontTransform) -> i32 {
    match transform {
        FontTransform::None => 0,
        FontTransform::Rotate90 => 90,
        FontTransform::Rotate180 => 180,
        FontTransform::Rotate270 => 270,
    }
}

/// The outline of glyph `id` as SVG path data, in font units with y up.
pub fn outline_path(id: GlyphId) -> Option<String> {
    let outline = font().outline(id)?;
    let mut d = String::new();
    let mut at: Option<ab_glyph::Point> = None;
    let num = |v: f32| crate::report::format_number(f64::from(v));
    for curve in &outline.curves {
        let (start, end) = match curve {
            OutlineCurve::Line(a, b) => (*a, *b),
            OutlineCurve::Quad(a, _, c) => (*a, *c),
            OutlineCurve::Cubic(a, _, _, d) => (*a, *d),
        };
        if at != Some(start) {
            if at.is_some() {
                d.push('Z');
            }
            d.push_str(&format!("M{} {}", num(start.x), num(start.y)));
        }
        match curve {
            OutlineCurve::Line(_, b) => d.push_str(&format!("L{} {}", num(b.x), num(b.y))),
            OutlineCurve::Quad(_, b, c) => d.push_str(&format!("Q{} {} {} {}", num(b.x), num(b.y), num(c.x), num(c.y))),
            OutlineCurve::Cubic(_, b, c, e) => d.push_str(&format!(
                "C{} {} {} {} {} {}",
                num(b.x),
                num(b.y),
                num(c.x),
                num(c.y),
                num(e.x),
                num(e.y)
            )),
        }
        at = Some(end);
    }
    if at.is_some() {
        d.push('Z');
    }
    Some(d)
}

/// The width and height of `text` at `size`, rounded up: what a backend
/// tells plotters when it lays out labels.
pub fn box_size(text: &str, size: f64) -> (u32, u32) {
    let line = layout(text, size as f32);
    (line.width.ceil() as u32, line.height().ceil() as u32)
}

/// Font units to pixels at `size`.
pub fn units_to_px(size: f32) -> f32 {
    let scaled = font().as_scaled(size);
    scaled.scale_factor().vertical
}
