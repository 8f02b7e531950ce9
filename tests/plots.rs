//! Figures checked as a reader would: SVG goldens of small reports, and
//! for PNG the decoded pixels: cell colours ordered as the values, a colour
//! scale beside them, each curve's points where its values put them.
//!
//! `TV_BLESS=1 cargo test --test plots` rewrites the SVG goldens in
//! `tests/plots/`; review their diff before committing.

use std::collections::BTreeMap;
use tv::plot::{render, Format, Frame, Spec};

fn spec(text: &str) -> Spec {
    let mut sources = tv::diag::Sources::default();
    match tv::plot_command::parse_figure(&mut sources, text) {
        Ok(spec) => spec,
        Err(diags) => panic!("{text}: {}", tv::diag::render_plain(&diags, &sources, 100)),
    }
}

fn draw(figure: &str, csv: &str, format: Format) -> Vec<u8> {
    let frame = Frame::from_csv(csv).expect("the test's CSV parses");
    render(&spec(figure), &frame, format).unwrap_or_else(|e| panic!("{figure}: {e:?}"))
}

/// The value of attribute `name` in one SVG element's text.
fn attribute<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = element[start..].find('"')? + start;
    Some(&element[start..end])
}

fn number(element: &str, name: &str) -> f64 {
    attribute(element, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every element `<tag ...>` of the SVG, as text.
fn elements<'a>(svg: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    svg.match_indices(&open)
        .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap_or(0) + 1])
        .collect()
}

fn rgb(hex: &str) -> (u8, u8, u8) {
    let channel = |k: usize| u8::from_str_radix(&hex[1 + 2 * k..3 + 2 * k], 16).expect("a hex colour");
    (channel(0), channel(1), channel(2))
}

fn luminance((r, g, b): (u8, u8, u8)) -> f64 {
    0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)
}

/// A filled rectangle of the SVG.
#[derive(Debug, Clone)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    fill: (u8, u8, u8),
}

impl Rect {
    fn center(&self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

fn filled_rects(svg: &str) -> Vec<Rect> {
    elements(svg, "rect")
        .into_iter()
        .filter_map(|e| {
            let fill = attribute(e, "fill").filter(|f| f.starts_with('#'))?;
            Some(Rect {
                x: number(e, "x"),
                y: number(e, "y"),
                w: number(e, "width"),
                h: number(e, "height"),
                fill: rgb(fill),
            })
        })
        .collect()
}

/// The heatmap's cells: the tall coloured rectangles, rows top to bottom.
fn cells(svg: &str) -> Vec<Rect> {
    let mut cells: Vec<Rect> = filled_rects(svg)
        .into_iter()
        .filter(|r| r.h >= 10.0 && r.fill != (255, 255, 255))
        .collect();
    cells.sort_by(|a, b| (a.y, a.x).partial_cmp(&(b.y, b.x)).expect("finite coordinates"));
    cells
}

/// A decoded PNG: RGB pixels.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(bytes: &[u8]) -> Image {
        let decoder = png::Decoder::new(bytes);
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut rgb = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut rgb).expect("PNG pixels");
        assert_eq!(info.color_type, png::ColorType::Rgb, "an RGB image");
        rgb.truncate(info.buffer_size());
        Image {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    fn at(&self, x: f64, y: f64) -> (u8, u8, u8) {
        let (x, y) = (x.round() as usize, y.round() as usize);
        let i = (y * self.width as usize + x) * 3;
        (self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }
}

/// Ranks of `values`, smallest first.
fn ranks(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0; values.len()];
    for (rank, &i) in order.iter().enumerate() {
        ranks[i] = rank;
    }
    ranks
}

/// A 3 x 2 grid whose values are out of order along both axes.
const GRID: &str = "row,col,v\nr1,c1,5\nr1,c2,1\nr1,c3,3\nr2,c1,2\nr2,c2,6\nr2,c3,4\n";

#[test]
fn heatmap_cells_are_coloured_in_the_order_of_their_values() {
    let figure = "heatmap(v, x = col, y = row, values = \"hide\")";
    let svg = String::from_utf8(draw(figure, GRID, Format::Svg)).expect("SVG is text");
    let cells = cells(&svg);
    assert_eq!(cells.len(), 6, "one cell per (col, row)");
    // Rows top to bottom in the report's order, columns left to right.
    let values = [5.0, 1.0, 3.0, 2.0, 6.0, 4.0];
    let lum: Vec<f64> = cells.iter().map(|c| luminance(c.fill)).collect();
    assert_eq!(ranks(&lum), ranks(&values), "viridis grows lighter with the value");
    let image = Image::decode(&draw(figure, GRID, Format::Png));
    assert_eq!((image.width, image.height), (1440, 1120), "PNG at twice the SVG's size");
    for cell in &cells {
        let (x, y) = cell.center();
        assert_eq!(
            image.at(2.0 * x, 2.0 * y),
            cell.fill,
            "the PNG cell at ({x}, {y}) has the SVG's colour"
        );
    }
}

#[test]
fn heatmap_has_a_colour_scale_from_low_to_high() {
    let svg = String::from_utf8(draw("heatmap(v, x = col, y = row)", GRID, Format::Svg)).expect("SVG is text");
    let cells = cells(&svg);
    let right = cells.iter().map(|c| c.x + c.w).fold(0.0, f64::max);
    let mut bands: Vec<Rect> = filled_rects(&svg)
        .into_iter()
        .filter(|r| r.x > right && r.h < 10.0)
        .collect();
    bands.sort_by(|a, b| a.y.total_cmp(&b.y));
    assert!(
        bands.len() >= 64,
        "a colour bar beside the cells ({} bands)",
        bands.len()
    );
    let lum: Vec<f64> = bands.iter().map(|b| luminance(b.fill)).collect();
    assert!(
        lum.windows(2).all(|w| w[0] >= w[1]),
        "the bar darkens from top (high) to bottom (low)"
    );
    let (top, bottom) = (bands[0].fill, bands[bands.len() - 1].fill);
    let (lo, hi) = cells.iter().fold((cells[0].fill, cells[0].fill), |(lo, hi), c| {
        (
            if luminance(c.fill) < luminance(lo) { c.fill } else { lo },
            if luminance(c.fill) > luminance(hi) { c.fill } else { hi },
        )
    });
    assert!(
        luminance(top) >= luminance(hi) - 8.0 && luminance(bottom) <= luminance(lo) + 8.0,
        "the bar spans the cells' colours"
    );
    let image = Image::decode(&draw("heatmap(v, x = col, y = row)", GRID, Format::Png));
    let sampled: Vec<f64> = bands
        .iter()
        .step_by(8)
        .map(|b| luminance(image.at(2.0 * b.center().0, 2.0 * b.center().1)))
        .collect();
    assert!(
        sampled.windows(2).all(|w| w[0] >= w[1]),
        "the PNG's bar darkens downwards too: {sampled:?}"
    );
}

/// The texts of the SVG (each drawn as glyph outlines, named by its label).
fn texts(svg: &str) -> Vec<String> {
    elements(svg, "g")
        .iter()
        .filter_map(|g| attribute(g, "aria-label"))
        .map(str::to_string)
        .collect()
}

#[test]
fn normalised_heatmap_writes_percent_change_against_each_column_mean() {
    let csv = "train,test,ppl\n2013,2013,80\n2013,2014,95\n2014,2013,90\n2014,2014,85\n2015,2013,100\n2015,2014,90\n";
    let svg = String::from_utf8(draw(
        "heatmap(ppl, x = test, y = train, normalize = \"column\", center = 0)",
        csv,
        Format::Svg,
    ))
    .expect("SVG is text");
    let shown = texts(&svg);
    // Column means: test 2013 = 90, test 2014 = 90.
    for (value, mean) in [(80.0, 90.0), (95.0, 90.0), (90.0, 90.0), (85.0, 90.0), (100.0, 90.0)] {
        let percent = format!("{:.1}", 100.0 * (value - mean) / mean);
        assert!(shown.contains(&percent), "cell text {percent} in {shown:?}");
    }
    assert!(
        shown.iter().any(|t| t.contains("% change vs column mean")),
        "the scale says what it shows"
    );
    // Centred at 0: the cell at 0% is (near) white, below is blue, above is red.
    let cells = cells(&svg);
    let at = |k: usize| cells[k].fill;
    assert!(
        at(2).0 > 240 && at(2).1 > 240 && at(2).2 > 240,
        "0% is white: {:?}",
        at(2)
    );
    assert!(at(0).2 > at(0).0, "below the centre is blue: {:?}", at(0));
    assert!(at(4).0 > at(4).2, "above the centre is red: {:?}", at(4));
}

#[test]
fn missing_and_non_finite_cells_are_grey_and_blank() {
    let csv = "y,x,v\na,p,1\na,q,NaN\nb,p,inf\nb,q,2\nc,p,3\n";
    let svg = String::from_utf8(draw("heatmap(v, x = x, y = y)", csv, Format::Svg)).expect("SVG is text");
    let cells = cells(&svg);
    assert_eq!(cells.len(), 6, "a cell for every (x, y), c/q included");
    let grey = (0xd9, 0xd9, 0xd9);
    let greys: Vec<usize> = (0..6).filter(|&k| cells[k].fill == grey).collect();
    assert_eq!(greys, vec![1, 2, 5], "NaN, inf and the missing cell are grey");
    let shown = texts(&svg);
    assert!(
        !shown.iter().any(|t| t == "NaN" || t == "inf"),
        "no text in non-finite cells: {shown:?}"
    );
}

/// The centres of the SVG's filled circles, by colour.
fn markers(svg: &str) -> BTreeMap<(u8, u8, u8), Vec<(f64, f64)>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for c in elements(svg, "circle") {
        if let Some(fill) = attribute(c, "fill").filter(|f| f.starts_with('#')) {
            out.entry(rgb(fill))
                .or_default()
                .push((number(c, "cx"), number(c, "cy")));
        }
    }
    out
}

/// Least-squares line through `(t, p)`: (slope, largest residual).
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (mt, mp) = points.iter().fold((0.0, 0.0), |(a, b), (t, p)| (a + t / n, b + p / n));
    let cov: f64 = points.iter().map(|(t, p)| (t - mt) * (p - mp)).sum();
    let var: f64 = points.iter().map(|(t, _)| (t - mt) * (t - mt)).sum();
    let slope = cov / var;
    let worst = points
        .iter()
        .map(|(t, p)| (p - (mp + slope * (t - mt))).abs())
        .fold(0.0, f64::max);
    (slope, worst)
}

const CURVES: &str = "year,alpha,ppl\n2013,0,10\n2013,0.25,12\n2013,0.5,11\n2013,1,17\n2014,0,20\n2014,0.25,14\n2014,0.5,13.5\n2014,1,15\n";

#[test]
fn line_points_sit_where_their_values_put_them() {
    let figure = "lines(ppl, x = alpha, by = year, best = \"min\")";
    let svg = String::from_utf8(draw(figure, CURVES, Format::Svg)).expect("SVG is text");
    let mut by_colour = markers(&svg);
    assert_eq!(by_colour.len(), 2, "one colour per year: {by_colour:?}");
    for marks in by_colour.values_mut() {
        // Four points and, right of them all, the legend's swatch.
        assert_eq!(marks.len(), 5, "four markers and a legend entry: {marks:?}");
        marks.sort_by(|a, b| a.0.total_cmp(&b.0));
        let swatch = marks.pop().expect("five marks");
        assert!(
            marks.iter().all(|m| m.0 + 10.0 < swatch.0),
            "the legend is beside the plot"
        );
    }
    // 2013 starts lower (10 against 20), so further down the image.
    let mut curves: Vec<&Vec<(f64, f64)>> = by_colour.values().collect();
    curves.sort_by(|a, b| b[0].1.total_cmp(&a[0].1));
    let data = [
        [(0.0, 10.0), (0.25, 12.0), (0.5, 11.0), (1.0, 17.0)],
        [(0.0, 20.0), (0.25, 14.0), (0.5, 13.5), (1.0, 15.0)],
    ];
    // One affine map from data to pixels for both curves: x grows to the
    // right, values grow upwards.
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (marks, values) in curves.iter().zip(&data) {
        for (m, d) in marks.iter().zip(values) {
            xs.push((d.0, m.0));
            ys.push((d.1, m.1));
        }
    }
    let (sx, ex) = fit(&xs);
    let (sy, ey) = fit(&ys);
    assert!(sx > 0.0 && ex <= 1.0, "x: slope {sx}, worst residual {ex} px");
    assert!(sy < 0.0 && ey <= 1.0, "values: slope {sy}, worst residual {ey} px");
    let shown = texts(&svg);
    assert!(
        shown.contains(&"year = 2013".to_string()) && shown.contains(&"year = 2014".to_string()),
        "a legend: {shown:?}"
    );
    // The best point of each curve is ringed: its lowest value.
    let rings: Vec<(f64, f64)> = elements(&svg, "circle")
        .into_iter()
        .filter(|c| attribute(c, "fill") == Some("none") && number(c, "r") >= 8.0)
        .map(|c| (number(c, "cx"), number(c, "cy")))
        .collect();
    let lowest = [(0.0, 10.0), (0.5, 13.5)];
    for (x, v) in lowest {
        let near = |(cx, cy): &(f64, f64)| {
            xs.iter()
                .zip(&ys)
                .any(|((dx, px), (dv, py))| *dx == x && *dv == v && (px - cx).abs() < 1.0 && (py - cy).abs() < 1.0)
        };
        assert!(rings.iter().any(near), "a ring at alpha = {x}, ppl = {v}: {rings:?}");
    }
    let image = Image::decode(&draw(figure, CURVES, Format::Png));
    for (colour, marks) in &by_colour {
        for (x, y) in marks {
            assert_eq!(image.at(2.0 * x, 2.0 * y), *colour, "the PNG marker at ({x}, {y})");
        }
    }
}

#[test]
fn text_labels_become_evenly_spaced_categories() {
    let csv = "method,task,acc\nlinear,rot,0.5\nlinear,flip,0.6\nties,rot,0.7\nties,flip,0.4\n";
    let svg = String::from_utf8(draw("lines(acc, x = task, by = method)", csv, Format::Svg)).expect("SVG is text");
    let shown = texts(&svg);
    assert!(
        shown.contains(&"rot".to_string()) && shown.contains(&"flip".to_string()),
        "category labels: {shown:?}"
    );
    for marks in markers(&svg).values().filter(|v| v.len() == 2) {
        assert!(marks[0].0 < marks[1].0, "rot before flip, in the report's order");
    }
}

#[test]
fn figures_are_text_free_and_the_same_every_time() {
    for (figure, csv) in [
        ("heatmap(v, x = col, y = row, title = \"A grid\")", GRID),
        ("lines(ppl, x = alpha, by = year)", CURVES),
    ] {
        let svg = draw(figure, csv, Format::Svg);
        assert_eq!(svg, draw(figure, csv, Format::Svg), "{figure}: SVG bytes repeat");
        assert_eq!(
            draw(figure, csv, Format::Png),
            draw(figure, csv, Format::Png),
            "{figure}: PNG bytes repeat"
        );
        let text = String::from_utf8(svg).expect("SVG is text");
        assert!(
            !text.contains("<text") && !text.contains("font-family"),
            "{figure}: glyphs are outlines, no font is looked up"
        );
    }
}

#[test]
fn several_values_per_point_are_refused() {
    let csv = "seed,a,b,v\n0,1,1,1\n0,1,2,2\n1,1,1,3\n1,1,2,4\n";
    let frame = Frame::from_csv(csv).expect("CSV");
    let Err(tv::plot::RenderError::Data(e)) = render(&spec("heatmap(v, x = a, y = b)"), &frame, Format::Svg) else {
        panic!("a heatmap of a report that also varies over seed must be refused");
    };
    assert!(
        e.message.contains("several values of `v` at a = 1, b = 1"),
        "{}",
        e.message
    );
    assert!(e.help.contains("seed"), "{}", e.help);
}

/// Small figures against their committed SVG.
#[test]
fn svg_goldens() {
    let cases = [
        ("heatmap", "heatmap(v, x = col, y = row, title = \"Values\")", GRID),
        (
            "heatmap_centered",
            "heatmap(v, x = col, y = row, center = 3.5, normalize = \"row\")",
            GRID,
        ),
        (
            "lines",
            "lines(ppl, x = alpha, by = year, best = \"min\", title = \"Interpolation\")",
            CURVES,
        ),
    ];
    let bless = std::env::var_os("TV_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, figure, csv) in cases {
        let path = std::path::Path::new("tests/plots").join(format!("{name}.svg"));
        let actual = draw(figure, csv, Format::Svg);
        if bless {
            std::fs::write(&path, &actual).expect("write the golden");
            continue;
        }
        match std::fs::read(&path) {
            Ok(expected) if expected == actual => {}
            Ok(_) => failures.push(format!(
                "{name}: differs from {} (TV_BLESS=1 to accept)",
                path.display()
            )),
            Err(e) => failures.push(format!(
                "{name}: cannot read {} ({e}); TV_BLESS=1 to create it",
                path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_heatmap_of_several_evals_has_a_row_per_eval() {
    let csv = "task,linear,ties\nrot,0.5,0.7\nflip,0.6,0.4\n";
    let svg = String::from_utf8(draw(
        "heatmap([linear, ties], x = task, values = \"hide\")",
        csv,
        Format::Svg,
    ))
    .expect("SVG is text");
    let cells = cells(&svg);
    assert_eq!(cells.len(), 4, "two evals by two tasks");
    let values = [0.5, 0.6, 0.7, 0.4];
    let lum: Vec<f64> = cells.iter().map(|c| luminance(c.fill)).collect();
    assert_eq!(
        ranks(&lum),
        ranks(&values),
        "rows linear then ties, columns rot then flip"
    );
    let shown = texts(&svg);
    assert!(
        shown.contains(&"linear".to_string()) && shown.contains(&"ties".to_string()),
        "rows named by eval: {shown:?}"
    );
}

#[test]
fn curves_can_be_grouped_by_several_columns() {
    let csv = "k,task,lambda,acc\n2,rot,0,1\n2,rot,1,2\n2,flip,0,3\n2,flip,1,4\n3,rot,0,5\n3,rot,1,6\n";
    let svg = String::from_utf8(draw("lines(acc, x = lambda, by = [k, task])", csv, Format::Svg)).expect("SVG is text");
    let shown = texts(&svg);
    for label in ["k = 2, task = rot", "k = 2, task = flip", "k = 3, task = rot"] {
        assert!(shown.contains(&label.to_string()), "legend entry {label}: {shown:?}");
    }
    assert_eq!(markers(&svg).len(), 3, "a colour per (k, task)");
    let quoted = draw("lines(acc, x = lambda, by = [\"k\", \"task\"])", csv, Format::Svg);
    assert_eq!(
        quoted,
        svg.as_bytes(),
        "columns may be named by strings, as in a plot statement"
    );
}

#[test]
fn cell_values_keep_their_precision_after_rounding() {
    let csv = "y,x,v\na,p,0.9996\na,q,0.9871\nb,p,230.4\nb,q,230.2\n";
    let shown =
        texts(&String::from_utf8(draw("heatmap(v, x = x, y = y, values = \"show\")", csv, Format::Svg)).expect("SVG"));
    for text in ["1.00", "0.987", "230.4", "230.2"] {
        assert!(shown.contains(&text.to_string()), "{text} in {shown:?}");
    }
    assert!(
        !shown.contains(&"1.000".to_string()),
        "0.9996 reads like the numbers above 1: {shown:?}"
    );
}

/// Draws on a thread and fails, rather than hangs, if drawing never ends.
fn draw_within_a_minute(figure: &'static str, csv: &'static str, format: Format) -> Vec<u8> {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let drawn = std::panic::catch_unwind(|| draw(figure, csv, format));
        let _ = send.send(drawn);
    });
    match receive.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => panic!("{figure} on {csv:?} panicked"),
        Err(_) => panic!("{figure} on {csv:?} did not finish in a minute"),
    }
}

#[test]
fn extreme_values_are_drawn_without_panic_or_hang() {
    let cases: [(&str, &str); 8] = [
        ("heatmap(v, x = a, y = b)", "a,b,v\n1,1,1e308\n1,2,-1e308\n"),
        ("lines(v, x = a)", "a,b,v\n0,0,1.7976931348623157e308\n"),
        ("lines(v, x = a)", "a,b,v\n0,0,1.7e308\n1,0,1\n"),
        ("lines(v, x = a)", "a,b,v\n0,0,1\n1.7e308,0,1\n"),
        ("heatmap(v, x = a, y = b, center = 1e308)", "a,b,v\n0,0,-1\n1,0,1\n"),
        (
            "lines(v, x = a)",
            "a,b,v\n1e-9,0,1.000000001\n2e-9,0,1.000000002\n5e-9,0,1.000000002\n",
        ),
        ("heatmap(v, x = a, y = b)", "a,b,v\n0,0,5e-324\n1,0,-5e-324\n"),
        (
            "lines(v, x = a, by = b)",
            "a,b,v\n1e12,p,1e15\n5e12,p,2e15\n1e13,q,3e15\n",
        ),
    ];
    for (figure, csv) in cases {
        for format in [Format::Svg, Format::Png] {
            assert!(!draw_within_a_minute(figure, csv, format).is_empty());
        }
    }
    // Ticks of a nanometre-wide axis are told apart.
    let svg = String::from_utf8(draw_within_a_minute(cases[5].0, cases[5].1, Format::Svg)).expect("SVG");
    let ticks: std::collections::BTreeSet<String> = texts(&svg).into_iter().filter(|t| t.contains("e-9")).collect();
    assert!(ticks.len() >= 3, "distinct ticks on the x axis: {ticks:?}");
}

#[test]
fn control_characters_never_reach_the_svg() {
    let csv = "a,b,v\n1,x\u{1}y,1\n2,x\u{1}y,2\n";
    let svg = String::from_utf8(draw("lines(v, x = a, by = b, title = \"t\")", csv, Format::Svg)).expect("SVG");
    assert!(
        !svg.chars().any(|c| c.is_control() && c != '\n'),
        "no control character in the SVG"
    );
    assert!(svg.contains("x\u{fffd}y"), "the label keeps its place");
}
