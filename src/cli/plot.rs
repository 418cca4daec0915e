//! SVG line plots (plotters): the training curves and sampled sequences.

use plotters::prelude::*;
use std::path::Path;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// One panel per group of series, stacked vertically.
pub fn panels(path: &Path, title: &str, groups: &[(String, Vec<Series>)]) -> Result<(), String> {
    let h = 260 * groups.len().max(1) as u32 + 40;
    let root = SVGBackend::new(path, (900, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| e.to_string())?;
    let areas = root.split_evenly((groups.len().max(1), 1));
    for ((label, series), area) in groups.iter().zip(areas) {
        let pts = series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
        if x0 > x1 {
            continue;
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&area)
            .caption(label, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let style = ShapeStyle {
                color,
                filled: false,
                stroke_width: if s.dashed { 1 } else { 2 },
            };
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied().filter(|p| p.1.is_finite()),
                    style,
                ))
                .map_err(|e| e.to_string())?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// A grid of grey images: one labelled row per entry, one column per image (`h × w` values,
/// row-major), scaled to the range of all values shown.
pub fn image_grid(
    path: &Path,
    title: &str,
    rows: &[(String, Vec<Vec<f64>>)],
    h: usize,
    w: usize,
) -> Result<(), String> {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in rows.iter().flat_map(|r| r.1.iter().flatten()) {
        if v.is_finite() {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if lo > hi {
        return Err("no finite values to draw".into());
    }
    let span = (hi - lo).max(1e-12);
    let cell = (96 / h.max(w)).max(2);
    let (label_w, gap, top) = (130, 6, 40);
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let width = label_w + cols * (w * cell + gap);
    let height = top + rows.len() * (h * cell + gap);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"8\" y=\"24\" font-family=\"sans-serif\" font-size=\"16\">{}</text>\n",
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
    for (r, (label, images)) in rows.iter().enumerate() {
        let y0 = top + r * (h * cell + gap);
        svg.push_str(&format!(
            "<text x=\"8\" y=\"{}\" font-family=\"sans-serif\" font-size=\"13\">{}</text>\n",
            y0 + h * cell / 2,
            label.replace('&', "&amp;").replace('<', "&lt;")
        ));
        for (c, img) in images.iter().enumerate() {
            let x0 = label_w + c * (w * cell + gap);
            for (p, v) in img.iter().enumerate().take(h * w) {
                let g = (255.0 * (1.0 - (v - lo) / span)).clamp(0.0, 255.0) as u8;
                svg.push_str(&format!(
                    "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({g},{g},{g})\"/>\n",
                    x0 + (p % w) * cell,
                    y0 + (p / w) * cell
                ));
            }
        }
    }
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).map_err(|e| e.to_string())
}
