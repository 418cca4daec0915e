//! Special functions in f64, written once for both runtimes: `ln Γ`, digamma ψ, trigamma ψ′,
//! the regularised incomplete gamma `P(a, x)` and beta `I_x(a, b)` functions and their
//! inverses, and the inverse-CDF samplers of Gamma, Beta and StudentT with their implicit
//! reparameterisation gradients (Figurnov et al. 2018: `dz/dθ = −(∂F/∂θ)(z; θ) / p(z; θ)`).
//!
//! Input: plain numbers. Output: plain numbers. Invariants: no tensors and no randomness here;
//! the reference kernels (`runtime::dist::{gamma, beta, student_t, poisson}`) and the fused
//! kernels (`fused::families`) call the same functions element by element, so both runtimes
//! draw the same values from the same uniform noise. Accuracy (tested against scipy values in
//! `src/runtime/tests/special.rs`): ≲ 1e-12 relative for `ln Γ`, ψ, ψ′ on x > 0; ≲ 1e-10 for
//! the incomplete functions and their inverses.

use std::f64::consts::PI;

const LANCZOS_G: f64 = 7.0;
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7; reflection below ½).
pub fn ln_gamma(x: f64) -> f64 {
    if x < 0.5 {
        // Γ(x)Γ(1 − x) = π / sin(πx).
        return (PI / (PI * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = LANCZOS[0];
    let t = x + LANCZOS_G + 0.5;
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Digamma `ψ(x) = d ln Γ(x)/dx` for `x > 0` (recurrence to x ≥ 6, then the asymptotic series).
pub fn digamma(mut x: f64) -> f64 {
    // Below 0 by reflection (ψ(x) = ψ(1 − x) − π / tan πx), so the recurrence below always
    // ends: a diverged parameter or a negative count is a NaN the trainer reports, not a hang.
    if x.is_nan() || x <= 0.0 {
        return if x.is_nan() || x == x.floor() {
            f64::NAN
        } else {
            digamma(1.0 - x) - PI / (PI * x).tan()
        };
    }
    let mut r = 0.0;
    while x < 6.0 {
        r -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    r + x.ln()
        - 0.5 / x
        - f * (1.0 / 12.0
            - f * (1.0 / 120.0
                - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f * (1.0 / 132.0 - f * 691.0 / 32760.0)))))
}

/// Trigamma `ψ′(x)` for `x > 0` (recurrence to x ≥ 6, then the asymptotic series).
pub fn trigamma(mut x: f64) -> f64 {
    // Below 0 by reflection (ψ′(x) = π² / sin² πx − ψ′(1 − x)), as `digamma`.
    if x.is_nan() || x <= 0.0 {
        return if x.is_nan() || x == x.floor() {
            f64::NAN
        } else {
            (PI / (PI * x).sin()).powi(2) - trigamma(1.0 - x)
        };
    }
    let mut r = 0.0;
    while x < 6.0 {
        r += 1.0 / (x * x);
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    // ψ′(x) ~ 1/x + 1/(2x²) + Σ B₂ₖ / x^{2k+1}.
    r + 1.0 / x
        + f / 2.0
        + (1.0 / x)
            * f
            * (1.0 / 6.0
                - f * (1.0 / 30.0
                    - f * (1.0 / 42.0 - f * (1.0 / 30.0 - f * (5.0 / 66.0 - f * 691.0 / 2730.0)))))
}

/// `ln B(a, b)`.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

const EPS: f64 = 1e-15;
const TINY: f64 = 1e-300;

/// The regularised lower incomplete gamma function `P(a, x)`, `a > 0`, `x ≥ 0`.
pub fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x < a + 1.0 {
        // Series.
        let (mut ap, mut sum) = (a, 1.0 / a);
        let mut del = sum;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * EPS {
                break;
            }
        }
        (sum.ln() - x + a * x.ln() - ln_gamma(a)).exp()
    } else {
        1.0 - gamma_q_cf(a, x)
    }
}

/// `Q(a, x) = 1 − P(a, x)` by its continued fraction (modified Lentz), for `x ≥ a + 1`.
fn gamma_q_cf(a: f64, x: f64) -> f64 {
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    (-x + a * x.ln() - ln_gamma(a)).exp() * h
}

/// The Gamma(a, 1) density at `x > 0`.
pub fn gamma_pdf(a: f64, x: f64) -> f64 {
    ((a - 1.0) * x.ln() - x - ln_gamma(a)).exp()
}

/// The inverse of `P(a, ·)`: `x` with `P(a, x) = p`, `0 < p < 1` (Halley's method from the
/// Wilson–Hilferty or small-`a` starting point).
pub fn gamma_p_inv(a: f64, p: f64) -> f64 {
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let a1 = a - 1.0;
    let gln = ln_gamma(a);
    let (lna1, afac) = if a > 1.0 {
        let l = a1.ln();
        (l, (a1 * (l - 1.0) - gln).exp())
    } else {
        (0.0, 0.0)
    };
    let mut x = if a > 1.0 {
        let pp = if p < 0.5 { p } else { 1.0 - p };
        let t = (-2.0 * pp.ln()).sqrt();
        let mut z = (2.30753 + t * 0.27061) / (1.0 + t * (0.99229 + t * 0.04481)) - t;
        if p < 0.5 {
            z = -z;
        }
        (a * (1.0 - 1.0 / (9.0 * a) - z / (3.0 * a.sqrt())).powi(3)).max(1e-3)
    } else {
        let t = 1.0 - a * (0.253 + a * 0.12);
        if p < t {
            (p / t).powf(1.0 / a)
        } else {
            1.0 - (1.0 - (p - t) / (1.0 - t)).ln()
        }
    };
    for _ in 0..100 {
        if x <= 0.0 {
            return 0.0;
        }
        let err = gamma_p(a, x) - p;
        let t = if a > 1.0 {
            afac * (-(x - a1) + a1 * (x.ln() - lna1)).exp()
        } else {
            (-x + a1 * x.ln() - gln).exp()
        };
        if t == 0.0 {
            break;
        }
        let u = err / t;
        let step = u / (1.0 - 0.5 * (u * (a1 / x - 1.0)).min(1.0));
        x -= step;
        if x <= 0.0 {
            x = 0.5 * (x + step);
        }
        if step.abs() < 1e-13 * x {
            break;
        }
    }
    x
}

/// The regularised incomplete beta function `I_x(a, b)`.
pub fn beta_i(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let bt = (a * x.ln() + b * (1.0 - x).ln() - ln_beta(a, b)).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        bt * beta_cf(a, b, x) / a
    } else {
        1.0 - bt * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The Beta(a, b) density at `x ∈ (0, 1)`.
pub fn beta_pdf(a: f64, b: f64, x: f64) -> f64 {
    ((a - 1.0) * x.ln() + (b - 1.0) * (1.0 - x).ln() - ln_beta(a, b)).exp()
}

/// The inverse of `I_·(a, b)`: `x` with `I_x(a, b) = p`, `0 < p < 1` (Halley's method).
pub fn beta_i_inv(a: f64, b: f64, p: f64) -> f64 {
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let mut x = if a >= 1.0 && b >= 1.0 {
        let pp = if p < 0.5 { p } else { 1.0 - p };
        let t = (-2.0 * pp.ln()).sqrt();
        let mut z = (2.30753 + t * 0.27061) / (1.0 + t * (0.99229 + t * 0.04481)) - t;
        if p < 0.5 {
            z = -z;
        }
        let al = (z * z - 3.0) / 6.0;
        let h = 2.0 / (1.0 / (2.0 * a - 1.0) + 1.0 / (2.0 * b - 1.0));
        let w = z * (al + h).sqrt() / h
            - (1.0 / (2.0 * b - 1.0) - 1.0 / (2.0 * a - 1.0)) * (al + 5.0 / 6.0 - 2.0 / (3.0 * h));
        a / (a + b * (2.0 * w).exp())
    } else {
        let lna = (a / (a + b)).ln();
        let lnb = (b / (a + b)).ln();
        let t = (a * lna).exp() / a;
        let u = (b * lnb).exp() / b;
        let w = t + u;
        if p < t / w {
            (a * w * p).powf(1.0 / a)
        } else {
            1.0 - (b * w * (1.0 - p)).powf(1.0 / b)
        }
    };
    let afac = -ln_beta(a, b);
    let (a1, b1) = (a - 1.0, b - 1.0);
    for j in 0..100 {
        if x <= 0.0 || x >= 1.0 {
            x = x.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0);
        }
        let err = beta_i(a, b, x) - p;
        let t = (a1 * x.ln() + b1 * (1.0 - x).ln() + afac).exp();
        if t == 0.0 || !t.is_finite() {
            break;
        }
        let u = err / t;
        let step = u / (1.0 - 0.5 * (u * (a1 / x - b1 / (1.0 - x))).min(1.0));
        x -= step;
        if x <= 0.0 {
            x = 0.5 * (x + step);
        }
        if x >= 1.0 {
            x = 0.5 * (x + step + 1.0);
        }
        if step.abs() < 1e-14 * x && j > 0 {
            break;
        }
    }
    x
}

/// Keeps an f32 uniform draw strictly inside (0, 1), so inverse CDFs stay finite.
pub fn open_unit(u: f32) -> f64 {
    (u as f64).clamp(1e-12, 1.0 - 1e-12)
}

/// A central difference of `f` at `x` with relative step `1e-5` (for `∂F/∂θ` of a CDF,
/// smooth in θ; f64 keeps the error near 1e-9 relative).
fn central(f: impl Fn(f64) -> f64, x: f64) -> f64 {
    let h = 1e-5 * x.abs().max(1e-3);
    (f(x + h) - f(x - h)) / (2.0 * h)
}

/// The smallest positive draw (f32's smallest normal): as torch clamps Gamma and Beta draws
/// to `finfo.tiny`, so a tiny concentration never draws an exact 0 (a −∞ log-density).
pub const DRAW_MIN: f64 = 1.175_494_350_822_287_5e-38;

/// The largest Beta draw below 1 that f32 keeps below 1 (`1 − 2⁻²⁴`).
pub const BELOW_ONE: f64 = 1.0 - 5.960_464_477_539_063e-8;

/// A Gamma(a, 1) draw from uniform noise by inversion, and `dz/da` (implicit
/// reparameterisation: `−(∂P/∂a)(z) / p(z)`); draws are at least [`DRAW_MIN`].
pub fn gamma_sample(a: f64, u: f32) -> (f64, f64) {
    // A concentration outside (0, ∞) has no draws: NaN, which the trainer reports.
    if !a.is_finite() || a <= 0.0 {
        return (f64::NAN, 0.0);
    }
    let u = open_unit(u);
    let z = gamma_p_inv(a, u);
    if z <= DRAW_MIN {
        return (DRAW_MIN, 0.0);
    }
    let pdf = gamma_pdf(a, z);
    let dz = if pdf > 0.0 {
        -central(|s| gamma_p(s, z), a) / pdf
    } else {
        0.0
    };
    (z, if dz.is_finite() { dz } else { 0.0 })
}

/// A Beta(a, b) draw from uniform noise by inversion, and `(dz/da, dz/db)` (implicit); draws
/// lie in `[DRAW_MIN, BELOW_ONE]`, strictly inside (0, 1) in f32.
pub fn beta_sample(a: f64, b: f64, u: f32) -> (f64, f64, f64) {
    if !a.is_finite() || a <= 0.0 || !b.is_finite() || b <= 0.0 {
        return (f64::NAN, 0.0, 0.0);
    }
    let u = open_unit(u);
    let z = beta_i_inv(a, b, u);
    if z <= DRAW_MIN {
        return (DRAW_MIN, 0.0, 0.0);
    }
    if z >= BELOW_ONE {
        return (BELOW_ONE, 0.0, 0.0);
    }
    let pdf = beta_pdf(a, b, z);
    if pdf <= 0.0 || !pdf.is_finite() {
        return (z, 0.0, 0.0);
    }
    let da = -central(|s| beta_i(s, b, z), a) / pdf;
    let db = -central(|s| beta_i(a, s, z), b) / pdf;
    let fin = |v: f64| if v.is_finite() { v } else { 0.0 };
    (z, fin(da), fin(db))
}

/// The CDF of the standard StudentT(ν) at `t`.
pub fn student_t_cdf(nu: f64, t: f64) -> f64 {
    let x = nu / (nu + t * t);
    let tail = 0.5 * beta_i(0.5 * nu, 0.5, x);
    if t < 0.0 {
        tail
    } else {
        1.0 - tail
    }
}

/// `ln` of the standard StudentT(ν) density at `t`.
pub fn student_t_ln_pdf(nu: f64, t: f64) -> f64 {
    ln_gamma(0.5 * (nu + 1.0))
        - ln_gamma(0.5 * nu)
        - 0.5 * (nu * PI).ln()
        - 0.5 * (nu + 1.0) * (t * t / nu).ln_1p()
}

/// A standard StudentT(ν) draw from uniform noise by inversion, and `dt/dν` (implicit).
pub fn student_t_sample(nu: f64, u: f32) -> (f64, f64) {
    if !nu.is_finite() || nu <= 0.0 {
        return (f64::NAN, 0.0);
    }
    let u = open_unit(u);
    let pp = if u < 0.5 { u } else { 1.0 - u };
    // P(T < −s) = ½ I_{ν/(ν+s²)}(ν/2, ½) = pp.
    let x = beta_i_inv(0.5 * nu, 0.5, 2.0 * pp);
    let s = if x > 0.0 {
        (nu * (1.0 - x) / x).sqrt()
    } else {
        f64::INFINITY
    };
    let t = if u < 0.5 { -s } else { s };
    if !t.is_finite() {
        return (t, 0.0);
    }
    let pdf = student_t_ln_pdf(nu, t).exp();
    let dt = if pdf > 0.0 {
        -central(|n| student_t_cdf(n, t), nu) / pdf
    } else {
        0.0
    };
    (t, if dt.is_finite() { dt } else { 0.0 })
}

/// The entropy of the standard StudentT(ν): `(ν+1)/2·(ψ((ν+1)/2) − ψ(ν/2)) + ln(√ν·B(ν/2, ½))`,
/// and its derivative in ν.
pub fn student_t_entropy(nu: f64) -> (f64, f64) {
    let (h1, h) = (0.5 * (nu + 1.0), 0.5 * nu);
    let v = h1 * (digamma(h1) - digamma(h)) + 0.5 * nu.ln() + ln_beta(h, 0.5);
    let d = 0.5 * (digamma(h1) - digamma(h))
        + h1 * 0.5 * (trigamma(h1) - trigamma(h))
        + 0.5 / nu
        + 0.5 * (digamma(h) - digamma(h1));
    (v, d)
}

/// The Poisson(λ) quantile of `u`: the least `k ≥ 0` with `P(K ≤ k) = Q(k + 1, λ) ≥ u`
/// (bisection on the regularised upper incomplete gamma function).
pub fn poisson_quantile(rate: f64, u: f32) -> f64 {
    let u = open_unit(u);
    if rate.is_nan() || rate <= 0.0 {
        return 0.0;
    }
    let cdf = |k: f64| 1.0 - gamma_p(k + 1.0, rate);
    let (mut lo, mut hi) = (0.0f64, (rate + 40.0 * rate.sqrt() + 40.0).ceil());
    if cdf(lo) >= u {
        return 0.0;
    }
    // cdf(lo) < u ≤ cdf(hi).
    while hi - lo > 1.0 {
        let mid = ((lo + hi) / 2.0).floor();
        if cdf(mid) >= u {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}
