//! A plotters backend that writes SVG whose text is the embedded font's
//! glyph outlines (each glyph defined once and reused), so the figure looks
//! the same in every viewer and its bytes are the same on every machine.

use super::text::{self, Line};
use ab_glyph::GlyphId;
use plotters::prelude::DrawingBackend;
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What every SVG figure says it is: how a rerun knows the file at its
/// target is tv's earlier figure.
pub const STAMP: &str = "<desc>Drawn by tv</desc>";

/// The document being drawn.
pub struct Document {
    size: (u32, u32),
    body: String,
    /// Glyphs used so far, by id, with their path data.
    glyphs: BTreeMap<u16, Option<String>>,
}

/// Never produced: writing into a string cannot fail.
#[derive(Debug)]
pub struct NoError;

impl std::fmt::Display for NoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no error")
    }
}

impl std::error::Error for NoError {}

type Drawn = Result<(), DrawingErrorKind<NoError>>;

/// Draws into a document.
pub struct SvgBackend<'a> {
    doc: &'a mut Document,
}

impl<'a> SvgBackend<'a> {
    pub fn new(doc: &'a mut Document) -> SvgBackend<'a> {
        SvgBackend { doc }
    }
}

impl Document {
    pub fn new(size: (u32, u32)) -> Document {
        Document {
            size,
            body: String::new(),
            glyphs: BTreeMap::new(),
        }
    }

    /// The finished document.
    pub fn finish(self) -> String {
        let (w, h) = self.size;
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n{STAMP}\n"
        );
        out.push_str("<defs>\n");
        for (id, path) in &self.glyphs {
            if let Some(d) = path {
                let _ = writeln!(out, "<path id=\"g{id}\" d=\"{d}\"/>");
            }
        }
        out.push_str("</defs>\n");
        out.push_str(&self.body);
        out.push_str("</svg>\n");
        out
    }

    fn glyph(&mut self, id: GlyphId) -> bool {
        let entry = self.glyphs.entry(id.0).or_insert_with(|| text::outline_path(id));
        entry.is_some()
    }

    fn text_line(&mut self, line: &Line, color: &BackendColor) -> String {
        let scale = text::units_to_px(line.size);
        let mut uses = String::new();
        for placed in &line.glyphs {
            if self.glyph(placed.id) {
                let _ = write!(
                    uses,
                    "<use xlink:href=\"#g{}\" transform=\"translate({} 0) scale({} -{})\"/>",
                    placed.id.0,
                    num(f64::from(placed.x)),
                    num(f64::from(scale)),
                    num(f64::from(scale))
                );
            }
        }
        format!("{}>{uses}", paint("fill", color))
    }
}

/// A coordinate or length, shortest exact decimal (rounded to 1/1000 px).
fn num(v: f64) -> String {
    crate::report::format_number((v * 1000.0).round() / 1000.0)
}

fn hex(color: &BackendColor) -> String {
    let (r, g, b) = color.rgb;
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// `fill="#rrggbb"` (or `stroke=`), with its opacity when not opaque.
fn paint(attribute: &str, color: &BackendColor) -> String {
    let mut out = format!(" {attribute}=\"{}\"", hex(color));
    if color.alpha < 1.0 {
        let _ = write!(out, " {attribute}-opacity=\"{}\"", num(color.alpha));
    }
    out
}

fn stroke<S: BackendStyle>(style: &S) -> String {
    format!(
        "{} stroke-width=\"{}\"",
        paint("stroke", &style.color()),
        style.stroke_width()
    )
}

fn points(path: impl IntoIterator<Item = BackendCoord>) -> String {
    let all: Vec<String> = path.into_iter().map(|(x, y)| format!("{x},{y}")).collect();
    all.join(" ")
}

/// XML text content or attribute value; characters XML does not allow
/// (most control characters) become U+FFFD.
pub fn escape(text: &str) -> String {
    let allowed = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    let text: String = text.chars().map(|c| if allowed(c) { c } else { '\u{fffd}' }).collect();
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl DrawingBackend for SvgBackend<'_> {
    type ErrorType = NoError;

    fn get_size(&self) -> (u32, u32) {
        self.doc.size
    }

    fn ensure_prepared(&mut self) -> Drawn {
        Ok(())
    }

    fn present(&mut self) -> Drawn {
        Ok(())
    }

    fn draw_pixel(&mut self, (x, y): BackendCoord, color: BackendColor) -> Drawn {
        if color.alpha > 0.0 {
            let fill = paint("fill", &color);
            let _ = writeln!(
                self.doc.body,
                "<rect x=\"{x}\" y=\"{y}\" width=\"1\" height=\"1\"{fill}/>"
            );
        }
        Ok(())
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Drawn {
        if style.color().alpha > 0.0 {
            let (x1, y1, x2, y2) = (from.0, from.1, to.0, to.1);
            let _ = writeln!(
                self.doc.body,
                "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\"{}/>",
                stroke(style)
            );
        }
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(&mut self, a: BackendCoord, b: BackendCoord, style: &S, fill: bool) -> Drawn {
        if style.color().alpha > 0.0 {
            let (x, y) = (a.0.min(b.0), a.1.min(b.1));
            let (w, h) = ((a.0 - b.0).abs(), (a.1 - b.1).abs());
            let look = match fill {
                true => paint("fill", &style.color()),
                false => format!(" fill=\"none\"{}", stroke(style)),
            };
            let _ = writeln!(
                self.doc.body,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\"{look}/>"
            );
        }
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, path: I, style: &S) -> Drawn {
        if style.color().alpha > 0.0 {
            let _ = writeln!(
                self.doc.body,
                "<polyline points=\"{}\" fill=\"none\"{} stroke-linejoin=\"round\"/>",
                points(path),
                stroke(style)
            );
        }
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(&mut self, c: BackendCoord, radius: u32, style: &S, fill: bool) -> Drawn {
        if style.color().alpha > 0.0 {
            let look = match fill {
                true => paint("fill", &style.color()),
                false => format!(" fill=\"none\"{}", stroke(style)),
            };
            let _ = writeln!(
                self.doc.body,
                "<circle cx=\"{}\" cy=\"{}\" r=\"{radius}\"{look}/>",
                c.0, c.1
            );
        }
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, vert: I, style: &S) -> Drawn {
        if style.color().alpha > 0.0 {
            let fill = paint("fill", &style.color());
            let _ = writeln!(self.doc.body, "<polygon points=\"{}\"{fill}/>", points(vert));
        }
        Ok(())
    }

    fn draw_text<S: BackendTextStyle>(&mut self, content: &str, style: &S, pos: BackendCoord) -> Drawn {
        let color = style.color();
        if color.alpha == 0.0 || content.is_empty() {
            return Ok(());
        }
        let line = text::layout(content, style.size() as f32);
        let (dx, dy) = text::origin(&line, style.anchor(), &style.transform());
        let rotation = match text::degrees(&style.transform()) {
            0 => String::new(),
            r => format!(" rotate({r})"),
        };
        let group = self.doc.text_line(&line, &color);
        let _ = writeln!(
            self.doc.body,
            "<g aria-label=\"{}\" transform=\"translate({} {}){rotation} translate({} {})\"{group}</g>",
            escape(content),
            pos.0,
            pos.1,
            num(f64::from(dx)),
            num(f64::from(dy)),
        );
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        content: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<NoError>> {
        Ok(text::box_size(content, style.size()))
    }
}
