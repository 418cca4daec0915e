//! Panels of lines over an integer x-axis (steps), stacked vertically, each with its legend in
//! a column to the right of its axes: the one drawing routine of every line plot.

use super::colour;
use super::range::{clip, integer_label, integer_labels, y_range, YRange};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;

/// One line of a panel.
pub struct Line {
    /// The legend's entry.
    pub name: String,
    /// `(x, y)` in order of x.
    pub points: Vec<(f64, f64)>,
    /// Palette index: lines that belong together (a draw and its real series) share it.
    pub colour: usize,
    /// Drawn dashed (a real series beside its draws).
    pub dashed: bool,
    /// Points drawn as dots too (sparse evaluations), with the band as error bars.
    pub dots: bool,
    /// Points joined by a line (else dots only: values of separate examples).
    pub joined: bool,
    /// A shaded band `(x, low, high)` around the line (an interval or ± a standard error).
    pub band: Vec<(f64, f64, f64)>,
}

impl Line {
    /// A solid line without band or dots.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, colour: usize) -> Line {
        Line {
            name: name.into(),
            points,
            colour,
            dashed: false,
            dots: false,
            joined: true,
            band: Vec::new(),
        }
    }
    /// The same line, dashed.
    pub fn dashed(mut self) -> Line {
        self.dashed = true;
        self
    }
    /// Dots (with error bars from the band) and no line.
    pub fn dots_only(mut self) -> Line {
        self.dots = true;
        self.joined = false;
        self
    }
    /// Dots where a line could not be seen (a single point).
    fn has_dots(&self) -> bool {
        self.dots || self.points.len() == 1
    }
}

/// A vertical rule across a panel (the end of conditioning), named in the legend.
pub struct Marker {
    /// Where it stands.
    pub x: f64,
    /// Its legend entry.
    pub name: String,
}

/// One panel: a caption, axis titles, lines, and optionally a vertical marker.
pub struct Panel {
    /// The panel's caption.
    pub caption: String,
    /// The x axis' title.
    pub x_desc: String,
    /// The y axis' title.
    pub y_desc: String,
    /// Its lines.
    pub lines: Vec<Line>,
    /// A vertical rule, if any.
    pub marker: Option<Marker>,
    /// Cut the y-axis to the converged part of the curves ([`y_range`]); else show every value.
    pub clip_outliers: bool,
}

const WIDTH: u32 = 1000;
const LEGEND_W: u32 = 300;
const PANEL_H: u32 = 300;
const GRID: RGBColor = RGBColor(225, 225, 225);
const MARK: RGBColor = RGBColor(90, 90, 90);

/// Draw `panels` stacked under `title` to an SVG at `path`.
pub fn panels(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let h = PANEL_H * panels.len().max(1) as u32 + 50;
    let root = SVGBackend::new(path, (WIDTH, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    for (p, area) in panels
        .iter()
        .zip(root.split_evenly((panels.len().max(1), 1)))
    {
        let (plot, legend) = area.split_horizontally(WIDTH - LEGEND_W);
        draw_panel(&plot, p)?;
        draw_legend(&legend, p)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// The y-range of a panel: clipped to the converged part, or every value with 4% padding.
fn panel_range(p: &Panel) -> Option<YRange> {
    let mut series: Vec<Vec<f64>> = p
        .lines
        .iter()
        .map(|l| l.points.iter().map(|q| q.1).collect())
        .collect();
    for l in &p.lines {
        series.push(l.band.iter().map(|b| b.1).collect());
        series.push(l.band.iter().map(|b| b.2).collect());
    }
    let refs: Vec<&[f64]> = series.iter().map(|s| s.as_slice()).collect();
    if p.clip_outliers {
        return y_range(&refs);
    }
    let all: Vec<f64> = series.into_iter().flatten().collect();
    y_range(&[&all]).map(|_| {
        let (lo, hi) = all
            .iter()
            .filter(|v| v.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        let pad = 0.04 * (hi - lo).max(1e-6 * lo.abs().max(1.0));
        YRange {
            lo: lo - pad,
            hi: hi + pad,
            clipped: false,
        }
    })
}

/// Labels of a y-axis spanning `span`: enough decimals to tell neighbouring ticks apart.
fn y_label(v: &f64, span: f64) -> String {
    let decimals = (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

fn draw_panel(area: &DrawingArea<SVGBackend, Shift>, p: &Panel) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let Some(y) = panel_range(p) else {
        return Ok(());
    };
    let xs = p
        .lines
        .iter()
        .flat_map(|l| {
            l.points
                .iter()
                .map(|q| q.0)
                .chain(l.band.iter().map(|b| b.0))
        })
        .chain(p.marker.iter().map(|m| m.x))
        .filter(|x| x.is_finite());
    let (mut x0, mut x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if x0 > x1 {
        return Ok(());
    }
    if x1 - x0 < 1.0 {
        x0 -= 0.5;
        x1 += 0.5;
    } else {
        // Room for dots at the ends (the same in every panel, so that their steps line up).
        let pad = 0.015 * (x1 - x0);
        x0 -= pad;
        x1 += pad;
    }
    let caption = if y.clipped {
        format!("{} (y-axis cut to the converged part)", p.caption)
    } else {
        p.caption.clone()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(42)
        .y_label_area_size(78)
        .build_cartesian_2d(x0..x1, y.lo..y.hi)
        .map_err(err)?;
    let span = y.hi - y.lo;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_labels(integer_labels(x0, x1))
        .x_label_formatter(&integer_label)
        .y_labels(6)
        .y_label_formatter(&|v| y_label(v, span))
        .x_desc(p.x_desc.as_str())
        .y_desc(p.y_desc.as_str())
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    // Bands first, under every line.
    for l in p.lines.iter().filter(|l| l.joined) {
        let c = colour(l.colour);
        if l.band.len() >= 2 {
            let clamp = |v: f64| v.clamp(y.lo, y.hi);
            let poly: Vec<(f64, f64)> = l
                .band
                .iter()
                .map(|b| (b.0, clamp(b.2)))
                .chain(l.band.iter().rev().map(|b| (b.0, clamp(b.1))))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                .map_err(err)?;
        }
    }
    if let Some(m) = &p.marker {
        chart
            .draw_series(DashedLineSeries::new(
                [(m.x, y.lo), (m.x, y.hi)],
                5,
                4,
                MARK.stroke_width(2),
            ))
            .map_err(err)?;
    }
    for l in &p.lines {
        let c = colour(l.colour);
        let style = c.stroke_width(2);
        let joined = if l.joined { l.points.as_slice() } else { &[] };
        for piece in clip(joined, y.lo, y.hi) {
            if l.dashed {
                chart
                    .draw_series(DashedLineSeries::new(piece, 7, 5, style))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(piece, style))
                    .map_err(err)?;
            }
        }
        if l.has_dots() {
            let inside = |v: f64| (y.lo..=y.hi).contains(&v);
            // Error bars of a sparse band: a vertical stroke with caps.
            let half = 0.006 * (x1 - x0);
            for b in l.band.iter().filter(|b| b.1.is_finite() && b.2.is_finite()) {
                let (lo, hi) = (b.1.clamp(y.lo, y.hi), b.2.clamp(y.lo, y.hi));
                let bar = [
                    vec![(b.0, lo), (b.0, hi)],
                    vec![(b.0 - half, lo), (b.0 + half, lo)],
                    vec![(b.0 - half, hi), (b.0 + half, hi)],
                ];
                chart
                    .draw_series(
                        bar.into_iter()
                            .map(|v| PathElement::new(v, c.stroke_width(1))),
                    )
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    l.points
                        .iter()
                        .filter(|q| q.0.is_finite() && inside(q.1))
                        .map(|q| Circle::new(*q, 3, c.filled())),
                )
                .map_err(err)?;
        }
    }
    Ok(())
}

/// The legend of a panel in the column beside it: a sample of each line (and band), then the
/// marker.
fn draw_legend(area: &DrawingArea<SVGBackend, Shift>, p: &Panel) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    let (x, mut yy) = (8i32, 44i32);
    let max_rows = ((PANEL_H as i32 - 60) / 20).max(1) as usize;
    for (rows, l) in p.lines.iter().enumerate() {
        if rows == max_rows {
            area.draw(&Text::new(
                format!("… and {} more", p.lines.len() - rows),
                (x, yy - 6),
                font.clone(),
            ))
            .map_err(err)?;
            break;
        }
        let c = colour(l.colour);
        if !l.band.is_empty() && l.joined {
            area.draw(&Rectangle::new(
                [(x, yy - 7), (x + 34, yy + 7)],
                c.mix(0.18).filled(),
            ))
            .map_err(err)?;
        }
        let seg = vec![(x, yy), (x + 34, yy)];
        if !l.joined {
            if !l.band.is_empty() {
                // An error bar.
                area.draw(&PathElement::new(
                    vec![(x + 17, yy - 7), (x + 17, yy + 7)],
                    c.stroke_width(1),
                ))
                .map_err(err)?;
            }
        } else if l.dashed {
            area.draw(&DashedPathElement::new(seg, 7, 5, c.stroke_width(2)))
                .map_err(err)?;
        } else {
            area.draw(&PathElement::new(seg, c.stroke_width(2)))
                .map_err(err)?;
        }
        if l.has_dots() {
            area.draw(&Circle::new((x + 17, yy), 3, c.filled()))
                .map_err(err)?;
        }
        area.draw(&Text::new(shorten(&l.name), (x + 42, yy - 7), font.clone()))
            .map_err(err)?;
        yy += 20;
    }
    if let Some(m) = &p.marker {
        area.draw(&DashedPathElement::new(
            vec![(x + 17, yy - 8), (x + 17, yy + 8)],
            4,
            3,
            MARK.stroke_width(2),
        ))
        .map_err(err)?;
        area.draw(&Text::new(shorten(&m.name), (x + 42, yy - 7), font))
            .map_err(err)?;
    }
    Ok(())
}

/// A legend entry cut to fit its column.
fn shorten(s: &str) -> String {
    const MAX: usize = 38;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        s.chars().take(MAX - 1).collect::<String>() + "…"
    }
}
