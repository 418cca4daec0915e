//! An image grid as plain SVG: one labelled row per entry (data, predictive mean, draws), one
//! column per image, grey levels scaled to the range of every value shown (dark = high).

use super::xml_escape;
use std::path::Path;

/// Draw `rows` of `h × w` images (row-major values) under column headers `cols` to `path`.
pub fn image_grid(
    path: &Path,
    title: &str,
    cols: &[String],
    rows: &[(String, Vec<Vec<f64>>)],
    (h, w): (usize, usize),
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
    let cell = (72 / h.max(w)).max(2);
    let (label_w, gap, top, head) = (150, 10, 44, 20);
    let ncols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let width = (label_w + ncols * (w * cell + gap) + gap).max(420);
    let height = top + head + rows.len() * (h * cell + gap) + 30;
    let text = |x: usize, y: usize, size: u32, anchor: &str, s: &str| {
        format!(
            "<text x=\"{x}\" y=\"{y}\" font-family=\"sans-serif\" font-size=\"{size}\" text-anchor=\"{anchor}\">{}</text>\n",
            xml_escape(s)
        )
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    svg.push_str(&text(10, 26, 18, "start", title));
    for (c, name) in cols.iter().enumerate().take(ncols) {
        let x = label_w + c * (w * cell + gap) + w * cell / 2;
        svg.push_str(&text(x, top + 12, 12, "middle", name));
    }
    for (r, (label, images)) in rows.iter().enumerate() {
        let y0 = top + head + r * (h * cell + gap);
        svg.push_str(&text(10, y0 + h * cell / 2 + 5, 14, "start", label));
        for (c, img) in images.iter().enumerate() {
            let x0 = label_w + c * (w * cell + gap);
            for (p, v) in img.iter().enumerate().take(h * w) {
                let g = if v.is_finite() {
                    (255.0 * (1.0 - (v - lo) / span)).clamp(0.0, 255.0) as u8
                } else {
                    255
                };
                svg.push_str(&format!(
                    "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgb({g},{g},{g})\"/>\n",
                    x0 + (p % w) * cell,
                    y0 + (p / w) * cell
                ));
            }
            svg.push_str(&format!(
                "<rect x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\" stroke-width=\"1\"/>\n",
                w * cell,
                h * cell
            ));
        }
    }
    svg.push_str(&text(
        10,
        height - 10,
        12,
        "start",
        &format!("grey scale: white = {lo:.3}, black = {hi:.3} (shared by every image)"),
    ));
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).map_err(|e| e.to_string())
}
