//! Line plots: the value against x, one curve with markers per group, a
//! legend beside the plot, and each curve's best point ringed on request.

use super::frame::Curves;
use super::spec::{Best, Spec};
use super::style::{self, Scale, GRID, INK};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

type Area<DB> = DrawingArea<DB, Shift>;
type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

pub fn draw<DB: DrawingBackend>(area: &Area<DB>, curves: &Curves, spec: &Spec, s: Scale) -> Result<(), String> {
    let keys: Vec<String> = curves.curves.iter().map(|c| c.key.clone()).collect();
    let colors = style::series_colors(&keys);
    let entries = legend_entries(curves, spec);
    let (w, _) = area.dim_in_pixel();
    let legend_w = match entries.is_empty() && spec.best.is_none() {
        true => 0,
        false => legend_width(area, &entries, s),
    };
    let (main, side) = area.split_horizontally(w as i32 - legend_w);
    plot(&main, curves, spec, s, &colors).map_err(|e| e.to_string())?;
    legend(&side, &entries, &colors, spec, s).map_err(|e| e.to_string())
}

/// At most this many curves are named in the legend.
const MAX_ENTRIES: usize = 24;

/// The legend's lines: one per curve when there are groups (the first
/// `MAX_ENTRIES`, then how many more).
fn legend_entries(curves: &Curves, spec: &Spec) -> Vec<String> {
    if spec.groups.is_empty() && spec.evals.len() == 1 {
        return Vec::new();
    }
    let room = (spec.height as usize).saturating_sub(120) / 20;
    let shown = MAX_ENTRIES.min(room.saturating_sub(1)).max(1);
    let named = curves.curves.iter().take(shown);
    let mut entries: Vec<String> = named.map(|c| style::shorten(&c.label)).collect();
    if curves.curves.len() > shown {
        entries.push(format!("and {} more", curves.curves.len() - shown));
    }
    entries
}

fn legend_width<DB: DrawingBackend>(area: &Area<DB>, entries: &[String], s: Scale) -> i32 {
    let style = s.font(12.0);
    let widest = entries
        .iter()
        .chain(&["highest".to_string()])
        .map(|e| area.estimate_text_size(e, &style).map_or(0, |(w, _)| w))
        .max()
        .unwrap_or(0);
    widest as i32 + s.px(56.0)
}

/// The axis's ends, padded so markers stay inside.
fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if lo.partial_cmp(&hi).is_none_or(|o| o == std::cmp::Ordering::Greater) {
        return (0.0, 1.0);
    }
    if lo == hi {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return style::safe_range(lo - d, hi + d);
    }
    let d = (hi / 2.0 - lo / 2.0) * 2.0 * pad;
    style::safe_range(lo - d, hi + d)
}

fn extent(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
}

fn plot<DB: DrawingBackend>(area: &Area<DB>, curves: &Curves, spec: &Spec, s: Scale, colors: &[RGBColor]) -> Drawn<DB> {
    let points = || curves.curves.iter().flat_map(|c| c.points.iter());
    let (x0, x1) = match &curves.categories {
        Some(labels) => (-0.5, labels.len() as f64 - 0.5),
        None => padded(extent(points().map(|p| p.0)).0, extent(points().map(|p| p.0)).1, 0.03),
    };
    let (lo, hi) = extent(points().map(|p| p.1));
    let (y0, y1) = padded(lo, hi, 0.06);
    let upright = categories_upright(area, curves, s);
    let x_area = upright.map_or(s.px(48.0), |widest| widest + s.px(44.0));
    let mut chart = ChartBuilder::on(area)
        .margin(s.px(14.0))
        .x_label_area_size(x_area)
        .y_label_area_size(s.px(70.0))
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let categories = curves.categories.clone();
    let x_tick = move |v: &f64| match &categories {
        Some(labels) => category(*v, labels),
        None => style::tick(*v, x1 - x0),
    };
    let y_tick = |v: &f64| style::tick(*v, y1 - y0);
    let x_count = curves.categories.as_ref().map_or(10, |l| l.len() + 1);
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .x_labels(x_count)
        .y_labels(8)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .label_style(s.font(12.0))
        .x_label_style(match upright {
            Some(_) => s.font(12.0).transform(plotters::style::FontTransform::Rotate90),
            None => s.font(12.0),
        })
        .x_desc(spec.xlabel.clone().unwrap_or_else(|| spec.x.name.clone()))
        .y_desc(spec.ylabel.clone().unwrap_or_else(|| value_name(spec)))
        .axis_desc_style(s.font(14.0))
        .axis_style(INK)
        .draw()?;
    // Points beyond the axes (only numbers near f64's limits) are pulled to
    // just outside them: plotters maps coordinates to 32-bit pixels.
    let (xs, ys) = (x1 - x0, y1 - y0);
    let inside = |p: &(f64, f64)| (p.0.clamp(x0 - xs, x1 + xs), p.1.clamp(y0 - ys, y1 + ys));
    for (curve, color) in curves.curves.iter().zip(colors) {
        let drawable: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|p| if p.1.is_finite() { inside(p) } else { *p })
            .collect();
        let curve = &drawable;
        for run in finite_runs(curve) {
            chart.draw_series(LineSeries::new(
                run.iter().copied(),
                color.stroke_width(s.px(2.0) as u32),
            ))?;
        }
        let markers = curve
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| Circle::new(*p, s.px(3.5) as u32, color.filled()));
        chart.draw_series(markers)?;
        if let Some(best) = spec.best.and_then(|b| best_point(curve, b)) {
            chart.draw_series(std::iter::once(Circle::new(
                best,
                s.px(8.0) as u32,
                INK.stroke_width(s.px(1.5) as u32),
            )))?;
        }
    }
    Ok(())
}

/// When text categories would not fit side by side, they stand upright:
/// the widest label's width, to make room for it.
fn categories_upright<DB: DrawingBackend>(area: &Area<DB>, curves: &Curves, s: Scale) -> Option<i32> {
    let labels = curves.categories.as_ref()?;
    let style = s.font(12.0);
    let width = |l: &String| {
        area.estimate_text_size(&style::shorten(l), &style)
            .map_or(0, |(w, _)| w as i32)
    };
    let widest = labels.iter().map(width).max().unwrap_or(0);
    let shown = labels.len().div_ceil(labels.len().div_ceil(MAX_ENTRIES).max(1)) as i32;
    let (w, _) = area.dim_in_pixel();
    ((widest + s.px(8.0)) * shown > w as i32 - s.px(100.0)).then_some(widest)
}

/// The vertical axis's name: the eval's, when there is one.
fn value_name(spec: &Spec) -> String {
    match spec.evals.as_slice() {
        [one] => one.name.clone(),
        _ => "value".to_string(),
    }
}

/// The label at a category's position; nothing between categories, and
/// only every few categories when there are many.
fn category(v: f64, labels: &[String]) -> String {
    let k = v.round();
    let every = labels.len().div_ceil(MAX_ENTRIES).max(1);
    if (v - k).abs() > 1e-6 || k < 0.0 || !(k as usize).is_multiple_of(every) {
        return String::new();
    }
    labels.get(k as usize).map(|l| style::shorten(l)).unwrap_or_default()
}

/// The stretches of a curve between non-finite values.
fn finite_runs(curve: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for p in curve {
        match p.1.is_finite() {
            true => runs.last_mut().expect("runs starts non-empty").push(*p),
            false => runs.push(Vec::new()),
        }
    }
    runs.retain(|r| r.len() > 1);
    runs
}

/// The lowest or highest finite point; the first of equals.
pub fn best_point(curve: &[(f64, f64)], best: Best) -> Option<(f64, f64)> {
    let finite = curve.iter().filter(|p| p.1.is_finite());
    let better = |a: &(f64, f64), b: &(f64, f64)| match best {
        Best::Min => b.1 < a.1,
        Best::Max => b.1 > a.1,
    };
    finite.fold(None, |kept: Option<(f64, f64)>, p| match kept {
        Some(k) if !better(&k, p) => Some(k),
        _ => Some(*p),
    })
}

fn legend<DB: DrawingBackend>(
    area: &Area<DB>,
    entries: &[String],
    colors: &[RGBColor],
    spec: &Spec,
    s: Scale,
) -> Drawn<DB> {
    let row = s.px(20.0);
    let top = s.px(24.0);
    let label = s.font(12.0).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, entry) in entries.iter().enumerate() {
        let y = top + row * k as i32;
        let last = k + 1 == entries.len() && entries.len() < colors.len();
        let Some(color) = colors.get(k).filter(|_| !last) else {
            area.draw(&Text::new(entry.clone(), (s.px(36.0), y), label.clone()))?;
            continue;
        };
        let line = PathElement::new(
            vec![(s.px(4.0), y), (s.px(28.0), y)],
            color.stroke_width(s.px(2.0) as u32),
        );
        area.draw(&line)?;
        area.draw(&Circle::new((s.px(16.0), y), s.px(3.5) as u32, color.filled()))?;
        area.draw(&Text::new(entry.clone(), (s.px(36.0), y), label.clone()))?;
    }
    if let Some(best) = spec.best {
        let y = top + row * entries.len() as i32 + s.px(6.0);
        area.draw(&Circle::new(
            (s.px(16.0), y),
            s.px(8.0) as u32,
            INK.stroke_width(s.px(1.5) as u32),
        ))?;
        let what = match best {
            Best::Min => "lowest",
            Best::Max => "highest",
        };
        area.draw(&Text::new(what.to_string(), (s.px(36.0), y), label))?;
    }
    Ok(())
}
