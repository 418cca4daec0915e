//! SVG plots (plotters) of `vic run`, `vic sample --plot` and the Python package, drawn from
//! in-memory series only: the training curves ([`training`], [`CurveLog`]), sampled against
//! real sequences ([`panels`]) and image grids ([`image_grid`]). Colours come from Okabe and
//! Ito's colour-blind-safe palette; every legend sits beside its axes, never on the data.

mod chart;
mod grid;
mod range;
mod training;

pub use chart::{panels, Line, Marker, Panel};
pub use grid::image_grid;
pub use training::{training, CurveLog, Curves};

use plotters::style::RGBColor;

/// Okabe–Ito, without its yellow (too pale on white): blue, vermillion, bluish green, reddish
/// purple, orange, sky blue, black.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
];

/// The `i`-th colour of the palette (cycling).
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Text for an SVG text node.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
