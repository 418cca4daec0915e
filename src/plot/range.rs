//! Axis ranges of the plots: a y-range that shows the converged part of training curves
//! (early, huge losses are cut off instead of flattening the rest), the clipping of a
//! polyline to that range, and a tick count that keeps integer axes (steps) on integers.

/// A y-range, and whether values of the series fall outside it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YRange {
    pub lo: f64,
    pub hi: f64,
    /// Some values lie below `lo` or above `hi` (drawn cut at the axis).
    pub clipped: bool,
}

/// The fraction of each series' first points that may fall off-scale (the burn-in).
const BURN_IN: f64 = 0.5;
/// A side is clipped only when values reach further than this many core spans beyond the core.
const FAR: f64 = 2.0;
/// A clipped side keeps this fraction of the core span beyond the core.
const KEEP: f64 = 0.5;
/// Padding of the final range, as a fraction of its span.
const PAD: f64 = 0.04;

/// The y-range for curves over training steps. The core is the range of the second half of
/// every series (of all of a series under 5 points); a side is cut at half the core's span
/// beyond the core when some value reaches further than two core spans beyond it, else it
/// holds every value. Then 4% padding each side. `None` when no value is finite.
pub fn y_range(series: &[&[f64]]) -> Option<YRange> {
    let finite = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|y| y.is_finite())
            .collect::<Vec<_>>()
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut core_lo, mut core_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        let v = finite(s);
        let skip = if v.len() >= 5 {
            (v.len() as f64 * BURN_IN).floor() as usize
        } else {
            0
        };
        for (i, y) in v.iter().enumerate() {
            lo = lo.min(*y);
            hi = hi.max(*y);
            if i >= skip {
                core_lo = core_lo.min(*y);
                core_hi = core_hi.max(*y);
            }
        }
    }
    if lo > hi {
        return None;
    }
    // A flat core still gets a visible span.
    let span = (core_hi - core_lo).max(1e-6 * core_lo.abs().max(core_hi.abs()).max(1.0));
    let mut clipped = false;
    if lo < core_lo - FAR * span {
        lo = core_lo - KEEP * span;
        clipped = true;
    }
    if hi > core_hi + FAR * span {
        hi = core_hi + KEEP * span;
        clipped = true;
    }
    let pad = PAD * (hi - lo).max(span);
    Some(YRange {
        lo: lo - pad,
        hi: hi + pad,
        clipped,
    })
}

/// A polyline cut to `lo ≤ y ≤ hi`: the pieces inside, each ending where the line crosses the
/// boundary (linear interpolation). Non-finite points break the line.
pub fn clip(points: &[(f64, f64)], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let inside = |y: f64| (lo..=hi).contains(&y);
    let cross = |a: (f64, f64), b: (f64, f64), y: f64| {
        let f = (y - a.1) / (b.1 - a.1);
        (a.0 + f * (b.0 - a.0), y)
    };
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    let mut prev: Option<(f64, f64)> = None;
    for &p in points {
        if !p.0.is_finite() || !p.1.is_finite() {
            pieces.push(std::mem::take(&mut cur));
            prev = None;
            continue;
        }
        if let Some(a) = prev {
            // The boundary crossings of the segment a → p, in the order met.
            let mut hits: Vec<(f64, f64)> = [lo, hi]
                .into_iter()
                .filter(|y| (a.1 - y) * (p.1 - y) < 0.0)
                .map(|y| cross(a, p, y))
                .collect();
            hits.sort_by(|u, v| (u.0 - a.0).abs().total_cmp(&(v.0 - a.0).abs()));
            if hits.len() == 2 {
                // Through the whole range in one segment.
                pieces.push(std::mem::take(&mut cur));
                pieces.push(hits);
            } else if let Some(&h) = hits.first() {
                cur.push(h);
                if !inside(p.1) {
                    pieces.push(std::mem::take(&mut cur));
                }
            }
        }
        if inside(p.1) {
            cur.push(p);
        }
        prev = Some(p);
    }
    pieces.push(cur);
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// How many labels to ask of plotters on an integer axis spanning `lo..hi`: at most one per
/// unit, so its 1-2-5 key points never fall between integers.
pub fn integer_labels(lo: f64, hi: f64) -> usize {
    ((hi - lo).floor() as usize + 1).clamp(2, 10)
}

/// An integer-axis label: `1200`, not `1200.0` or `1.2e3`.
pub fn integer_label(x: &f64) -> String {
    format!("{:.0}", x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_early_loss_is_clipped_off() {
        // Three early outliers, then 97 values alternating -110 and -100: the core (points
        // 50..) spans [-110, -100], span 10; the low side reaches -1e6 < -110 - 2·10, so it is
        // cut at -110 - 0.5·10 = -115; the high side holds -100. Padding 4% of 15 = 0.6.
        let mut v = vec![-1e6, -1e5, -1e4];
        v.extend((0..97).map(|i| if i % 2 == 0 { -110.0 } else { -100.0 }));
        let r = y_range(&[&v]).unwrap();
        assert!(r.clipped);
        assert!((r.lo - -115.6).abs() < 1e-9, "{r:?}");
        assert!((r.hi - -99.4).abs() < 1e-9, "{r:?}");
        assert!(r.lo > -1e4);
    }

    #[test]
    fn a_curve_without_outliers_is_shown_whole() {
        // 1..=10: core over points 5.. is [6, 10], span 4; the low side (1) is within 2 spans.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let r = y_range(&[&v]).unwrap();
        assert!(!r.clipped);
        assert!((r.lo - (1.0 - 0.04 * 9.0)).abs() < 1e-12, "{r:?}");
        assert!((r.hi - (10.0 + 0.04 * 9.0)).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn the_range_covers_every_series_and_skips_non_finite_values() {
        let a = [1.0, 2.0, f64::NAN];
        let b = [5.0, f64::INFINITY];
        let r = y_range(&[&a, &b]).unwrap();
        assert!(!r.clipped);
        assert!((r.lo - (1.0 - 0.16)).abs() < 1e-12 && (r.hi - 5.16).abs() < 1e-12);
        assert_eq!(y_range(&[&[f64::NAN]]), None);
    }

    #[test]
    fn a_flat_curve_gets_a_visible_span() {
        let r = y_range(&[&[3.0, 3.0, 3.0]]).unwrap();
        assert!(r.lo < 3.0 && r.hi > 3.0 && !r.clipped);
    }

    #[test]
    fn clipping_interpolates_the_crossings() {
        // From (0, -100) up to (1, 0): crosses y = -10 at x = 0.9.
        let p = clip(&[(0.0, -100.0), (1.0, 0.0), (2.0, 5.0)], -10.0, 10.0);
        assert_eq!(p.len(), 1);
        assert!((p[0][0].0 - 0.9).abs() < 1e-12 && p[0][0].1 == -10.0);
        assert_eq!(&p[0][1..], &[(1.0, 0.0), (2.0, 5.0)]);
        // Out and back in: two pieces.
        let p = clip(&[(0.0, 0.0), (1.0, 30.0), (2.0, 0.0)], -10.0, 10.0);
        assert_eq!(p.len(), 2);
        assert!((p[0][1].0 - 1.0 / 3.0).abs() < 1e-12 && p[0][1].1 == 10.0);
        assert!((p[1][0].0 - 5.0 / 3.0).abs() < 1e-12);
        // Straight through: one piece from the lower to the upper crossing.
        let p = clip(&[(0.0, -20.0), (4.0, 20.0)], -10.0, 10.0);
        assert_eq!(p, vec![vec![(1.0, -10.0), (3.0, 10.0)]]);
    }

    #[test]
    fn integer_axes_ask_for_at_most_one_label_per_unit() {
        assert_eq!(integer_labels(1.0, 4.0), 4);
        assert_eq!(integer_labels(0.0, 300.0), 10);
        assert_eq!(integer_labels(1.0, 1.5), 2);
        assert_eq!(integer_label(&1200.0), "1200");
    }
}
