//! Heatmaps: one coloured cell per (x, y) of the report, the colour scale
//! beside them, and each value written in its cell when it fits.

use super::frame::Grid;
use super::spec::{CellValues, Spec};
use super::style::{self, Scale, INK, MISSING};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;

type Area<DB> = DrawingArea<DB, Shift>;

/// At most this many labels on an axis; beyond it every k-th is shown.
const MAX_LABELS: usize = 24;

pub fn draw<DB: DrawingBackend>(area: &Area<DB>, grid: &Grid, spec: &Spec, s: Scale) -> Result<(), String> {
    let range = value_range(grid, spec);
    let (w, _) = area.dim_in_pixel();
    let (main, bar) = area.split_horizontally(w as i32 - s.px(118.0));
    cells(&main, grid, spec, s, range).map_err(|e| e.to_string())?;
    colorbar(&bar, spec, s, range, value_label(spec)).map_err(|e| e.to_string())
}

/// The scale's ends: as given, else the finite values' range (symmetric
/// around the centre when there is one).
fn value_range(grid: &Grid, spec: &Spec) -> (f64, f64) {
    let finite = grid
        .values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = match spec.center {
        _ if lo > hi => (0.0, 1.0),
        Some(c) => {
            let half = (hi - c).abs().max((lo - c).abs());
            let half = if half > 0.0 { half } else { 1.0 };
            (c - half, c + half)
        }
        None if lo == hi => (lo - 0.5, hi + 0.5),
        None => (lo, hi),
    };
    let (lo, hi) = (spec.min.unwrap_or(lo), spec.max.unwrap_or(hi));
    match lo < hi {
        true => style::safe_range(lo, hi),
        false => style::safe_range(lo - 0.5, lo + 0.5),
    }
}

/// What the colour scale measures.
fn value_label(spec: &Spec) -> String {
    if let Some(label) = &spec.label {
        return label.clone();
    }
    let name = match spec.evals.as_slice() {
        [one] => one.name.clone(),
        _ => "value".to_string(),
    };
    match spec.normalize {
        Some(super::spec::Normalize::Row) => format!("{name}, % change vs row mean"),
        Some(super::spec::Normalize::Column) => format!("{name}, % change vs column mean"),
        None => name,
    }
}

fn every(n: usize) -> usize {
    n.div_ceil(MAX_LABELS).max(1)
}

fn text_width<DB: DrawingBackend>(area: &Area<DB>, text: &str, style: &TextStyle) -> u32 {
    area.estimate_text_size(text, style).map_or(0, |(w, _)| w)
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn cells<DB: DrawingBackend>(area: &Area<DB>, grid: &Grid, spec: &Spec, s: Scale, range: (f64, f64)) -> Drawn<DB> {
    let (nx, ny) = (grid.x.len() as i32, grid.y.len() as i32);
    let label = s.font(13.0);
    let widest = |labels: &[String]| {
        labels
            .iter()
            .map(|l| text_width(area, &style::shorten(l), &label))
            .max()
            .unwrap_or(0) as i32
    };
    let (x_widest, y_widest) = (widest(&grid.x), widest(&grid.y));
    let (w, _) = area.dim_in_pixel();
    // Labels wider than their cells stand upright.
    let upright = x_widest + s.px(6.0) > (w as i32 - y_widest - s.px(60.0)) / nx.max(1) * every(nx as usize) as i32;
    let x_area = match upright {
        true => x_widest + s.px(40.0),
        false => s.px(48.0),
    };
    let mut chart = ChartBuilder::on(area)
        .margin(s.px(12.0))
        .x_label_area_size(x_area)
        .y_label_area_size(y_widest + s.px(44.0))
        // plotters' segmented range `0..n` has n + 1 segments.
        .build_cartesian_2d((0..nx - 1).into_segmented(), (0..ny - 1).into_segmented())?;
    let x_labels = |v: &SegmentValue<i32>| segment_label(v, &grid.x, false);
    let y_labels = |v: &SegmentValue<i32>| segment_label(v, &grid.y, true);
    let x_style = match upright {
        true => label.clone().transform(FontTransform::Rotate90),
        false => label.clone(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(nx as usize + 1)
        .y_labels(ny as usize + 1)
        .x_label_formatter(&x_labels)
        .y_label_formatter(&y_labels)
        .x_label_style(x_style)
        .y_label_style(label.clone())
        .x_desc(spec.xlabel.clone().unwrap_or_else(|| spec.x.name.clone()))
        .y_desc(
            spec.ylabel
                .clone()
                .unwrap_or_else(|| spec.groups.first().map_or(String::new(), |c| c.name.clone())),
        )
        .axis_desc_style(s.font(14.0))
        .axis_style(INK)
        .draw()?;
    let centered = spec.center.is_some();
    let fill = |v: Option<f64>| match v {
        Some(v) if v.is_finite() => style::scale_color(v, range.0, range.1, centered),
        _ => MISSING,
    };
    // A white line between cells, unless they are too small to spare it.
    let (plot_w, plot_h) = chart.plotting_area().dim_in_pixel();
    let small = (plot_w as i32) < nx * s.px(8.0) || (plot_h as i32) < ny * s.px(8.0);
    let gap = if small { 0 } else { s.px(1.0) as u32 };
    let rects = grid.values.iter().enumerate().flat_map(|(j, row)| {
        row.iter().enumerate().map(move |(i, v)| {
            let (i, k) = (i as i32, ny - 1 - j as i32);
            let corners = [
                (SegmentValue::Exact(i), SegmentValue::Exact(k + 1)),
                (SegmentValue::Exact(i + 1), SegmentValue::Exact(k)),
            ];
            let mut rect = Rectangle::new(corners, fill(*v).filled());
            rect.set_margin(0, gap, 0, gap);
            rect
        })
    });
    chart.draw_series(rects)?;
    if !show_values(area, grid, spec, s, &chart.plotting_area().dim_in_pixel()) {
        return Ok(());
    }
    let percent = spec.normalize.is_some();
    let texts = grid.values.iter().enumerate().flat_map(|(j, row)| {
        row.iter().enumerate().filter_map(move |(i, v)| {
            let v = (*v).filter(|v| v.is_finite())?;
            let ink: &'static RGBColor = match style::luminance(fill(Some(v))) > 0.5 {
                true => &INK,
                false => &WHITE,
            };
            let at = (
                SegmentValue::CenterOf(i as i32),
                SegmentValue::CenterOf(ny - 1 - j as i32),
            );
            Some(Text::new(style::cell(v, percent), at, s.centered(12.0).color(ink)))
        })
    });
    chart.draw_series(texts)?;
    Ok(())
}

/// Values go in the cells when asked, or (by default) when there are at
/// most 400 cells and every value fits its cell.
fn show_values<DB: DrawingBackend>(area: &Area<DB>, grid: &Grid, spec: &Spec, s: Scale, plot: &(u32, u32)) -> bool {
    let cells = grid.x.len() * grid.y.len();
    match spec.cells {
        CellValues::Show => true,
        CellValues::Hide => false,
        CellValues::Auto if cells > 400 => false,
        CellValues::Auto => {
            let cell_w = plot.0 as f64 / grid.x.len() as f64;
            let cell_h = plot.1 as f64 / grid.y.len() as f64;
            let style = s.font(12.0);
            let percent = spec.normalize.is_some();
            let texts = grid.values.iter().flatten().flatten().map(|v| style::cell(*v, percent));
            let widest = texts.map(|t| text_width(area, &t, &style)).max().unwrap_or(0);
            f64::from(widest) + s.0 * 4.0 <= cell_w && s.0 * 16.0 <= cell_h
        }
    }
}

/// The label of a segment's centre; rows are listed top to bottom.
fn segment_label(v: &SegmentValue<i32>, labels: &[String], reversed: bool) -> String {
    let SegmentValue::CenterOf(k) = v else {
        return String::new();
    };
    let n = labels.len();
    let k = *k as usize;
    let index = if reversed { n.wrapping_sub(1).wrapping_sub(k) } else { k };
    let shown = index.is_multiple_of(every(n));
    labels
        .get(index)
        .filter(|_| shown)
        .map(|l| style::shorten(l))
        .unwrap_or_default()
}

fn colorbar<DB: DrawingBackend>(area: &Area<DB>, spec: &Spec, s: Scale, range: (f64, f64), label: String) -> Drawn<DB> {
    let (lo, hi) = range;
    let mut chart = ChartBuilder::on(area)
        .margin_top(s.px(12.0))
        .margin_bottom(s.px(60.0))
        .margin_right(s.px(4.0))
        .y_label_area_size(0)
        .right_y_label_area_size(s.px(74.0))
        .build_cartesian_2d(0f64..1f64, lo..hi)?;
    let span = hi - lo;
    let tick = |v: &f64| style::tick(*v, span);
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&tick)
        .y_label_style(s.font(12.0))
        .y_desc(label)
        .axis_desc_style(s.font(13.0))
        .axis_style(INK)
        .draw()?;
    let steps = 128;
    let centered = spec.center.is_some();
    let bands = (0..steps).map(|k| {
        let a = lo + span * k as f64 / steps as f64;
        let b = lo + span * (k + 1) as f64 / steps as f64;
        let color = style::scale_color((a + b) / 2.0, lo, hi, centered);
        Rectangle::new([(0.0, a), (1.0, b)], color.filled())
    });
    chart.draw_series(bands)?;
    Ok(())
}
