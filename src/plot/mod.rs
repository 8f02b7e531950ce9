//! Figures: heatmaps and line plots of the report, drawn with plotters
//! into SVG or PNG from the report's CSV text.

pub mod frame;
mod heatmap;
mod lines;
mod png;
pub mod spec;
mod style;
pub mod svg;
mod text;

pub use frame::{DataError, Frame};
pub use spec::{Format, Kind, Spec};

use plotters::coord::Shift;
use plotters::prelude::*;
use style::Scale;

/// A PNG has twice the SVG's pixels, so it stays sharp when shown at the
/// SVG's size.
const PNG_SCALE: f64 = 2.0;

/// Why a figure was not drawn.
#[derive(Debug)]
pub enum RenderError {
    /// The table does not fit the figure.
    Data(DataError),
    /// The drawing failed (a bug, or memory).
    Draw(String),
}

impl From<DataError> for RenderError {
    fn from(e: DataError) -> Self {
        RenderError::Data(e)
    }
}

/// The figure `spec` of `frame`, as the bytes of a file of `format`.
pub fn render(spec: &Spec, frame: &Frame, format: Format) -> Result<Vec<u8>, RenderError> {
    let data = Data::from(spec, frame)?;
    match format {
        Format::Svg => {
            let mut doc = svg::Document::new((spec.width, spec.height));
            {
                let area = svg::SvgBackend::new(&mut doc).into_drawing_area();
                draw(&area, &data, spec, Scale(1.0))?;
            }
            Ok(doc.finish().into_bytes())
        }
        Format::Png => {
            let size = (
                (f64::from(spec.width) * PNG_SCALE) as u32,
                (f64::from(spec.height) * PNG_SCALE) as u32,
            );
            let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
            {
                let area = png::PngBackend::new(&mut rgb, size).into_drawing_area();
                draw(&area, &data, spec, Scale(PNG_SCALE))?;
                area.present().map_err(|e| RenderError::Draw(e.to_string()))?;
            }
            png::encode(&rgb, size).map_err(|e| RenderError::Draw(e.to_string()))
        }
    }
}

/// What a figure draws, taken from the table.
enum Data {
    Grid(frame::Grid),
    Curves(frame::Curves),
}

impl Data {
    fn from(spec: &Spec, frame: &Frame) -> Result<Data, DataError> {
        match spec.kind {
            Kind::Heatmap => frame::grid(frame, spec).map(Data::Grid),
            Kind::Lines => frame::curves(frame, spec).map(Data::Curves),
        }
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &Data,
    spec: &Spec,
    s: Scale,
) -> Result<(), RenderError> {
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| RenderError::Draw(e.to_string());
    root.fill(&WHITE).map_err(failed)?;
    let area = match &spec.title {
        Some(title) => root.titled(title, s.font(17.0)).map_err(failed)?,
        None => root.clone(),
    };
    let drawn = match data {
        Data::Grid(grid) => heatmap::draw(&area, grid, spec, s),
        Data::Curves(curves) => lines::draw(&area, curves, spec, s),
    };
    drawn.map_err(RenderError::Draw)
}

/// Whether `path` holds a figure tv drew (so a rerun may replace it).
pub fn is_earlier_figure(path: &std::path::Path) -> bool {
    let Ok(start) = crate::io::manifest::read_bounded(path, 4096) else {
        return false;
    };
    match Format::of(path) {
        Some(Format::Svg) => start.starts_with(b"<svg") && String::from_utf8_lossy(&start).contains(svg::STAMP),
        Some(Format::Png) => {
            // The whole chunk, its length included: a "Software" text that
            // merely starts with "tv" is someone else's.
            let text = format!("{}\0{}", png::STAMP.0, png::STAMP.1);
            let mut chunk = (text.len() as u32).to_be_bytes().to_vec();
            chunk.extend(b"tEXt");
            chunk.extend(text.as_bytes());
            start.starts_with(b"\x89PNG") && start.windows(chunk.len()).any(|w| w == chunk.as_slice())
        }
        None => false,
    }
}
