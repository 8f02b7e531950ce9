//! PNG figures: plotters' bitmap backend, with text drawn from the
//! embedded font's glyph coverage (as in SVG, never a system font), then
//! encoded with a fixed compression so the bytes are the same everywhere.

use super::text;
use ab_glyph::{point, Font, ScaleFont};
use plotters::prelude::{BitMapBackend, DrawingBackend};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};
use plotters_bitmap::BitMapBackendError;

/// The PNG text chunk by which a rerun knows the file is tv's figure.
pub const STAMP: (&str, &str) = ("Software", "tv");

/// Draws with the bitmap backend except for text.
pub struct PngBackend<'a> {
    inner: BitMapBackend<'a>,
}

type Drawn = Result<(), DrawingErrorKind<BitMapBackendError>>;

impl<'a> PngBackend<'a> {
    /// Draws into `rgb`, three bytes per pixel of `size`.
    pub fn new(rgb: &'a mut [u8], size: (u32, u32)) -> PngBackend<'a> {
        PngBackend {
            inner: BitMapBackend::with_buffer(rgb, size),
        }
    }
}

/// Encodes an RGB buffer as PNG.
pub fn encode(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Default);
    encoder.add_text_chunk(STAMP.0.to_string(), STAMP.1.to_string())?;
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

impl DrawingBackend for PngBackend<'_> {
    type ErrorType = BitMapBackendError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Drawn {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Drawn {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Drawn {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Drawn {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(&mut self, a: BackendCoord, b: BackendCoord, style: &S, fill: bool) -> Drawn {
        self.inner.draw_rect(a, b, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, path: I, style: &S) -> Drawn {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(&mut self, c: BackendCoord, radius: u32, style: &S, fill: bool) -> Drawn {
        self.inner.draw_circle(c, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, vert: I, style: &S) -> Drawn {
        self.inner.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(&mut self, content: &str, style: &S, pos: BackendCoord) -> Drawn {
        let color = style.color();
        if color.alpha == 0.0 || content.is_empty() {
            return Ok(());
        }
        let size = style.size() as f32;
        let line = text::layout(content, size);
        let (dx, dy) = text::origin(&line, style.anchor(), &style.transform());
        let transform = style.transform();
        let scaled = text::font().as_scaled(size);
        let (w, h) = self.get_size();
        for placed in &line.glyphs {
            let glyph = placed
                .id
                .with_scale_and_position(scaled.scale(), point(dx + placed.x, dy));
            let Some(outlined) = text::font().outline_glyph(glyph) else {
                continue;
            };
            let bounds = outlined.px_bounds();
            let mut pixels = Vec::new();
            outlined.draw(|x, y, coverage| {
                let local = (bounds.min.x as i32 + x as i32, bounds.min.y as i32 + y as i32);
                pixels.push((local, coverage));
            });
            for ((x, y), coverage) in pixels {
                let (tx, ty) = transform.transform(x, y);
                let (px, py) = (pos.0 + tx, pos.1 + ty);
                if coverage > 0.0 && px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    let alpha = color.alpha * f64::from(coverage.min(1.0));
                    self.inner
                        .draw_pixel((px, py), BackendColor { alpha, rgb: color.rgb })?;
                }
            }
        }
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        content: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<BitMapBackendError>> {
        Ok(text::box_size(content, style.size()))
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Drawn {
        self.inner.blit_bitmap(pos, size, src)
    }
}
