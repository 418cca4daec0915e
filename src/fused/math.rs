//! Branch-free scalar functions that the compiler vectorises inside the kernels' loops
//! (libm's `expf`/`tanhf` are calls, one element at a time). Accuracy: `exp` and `ln` within
//! 2 ulp on their working ranges; `tanh`, `sigmoid`, `softplus` built on them (tested against
//! libm in `tests.rs`).

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting this rounds an f32 of magnitude < 2²² to the nearest integer.
const ROUND: f32 = 12_582_912.0;

/// `eˣ` (Cephes' polynomial after range reduction); saturates below −87.3 and above 88.7.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let y = p * r * r + r + 1.0;
    // t's low mantissa bits hold n (|n| < 2²²): 2ⁿ without a float → int conversion.
    let bits = t.to_bits().wrapping_add(127) << 23;
    y * f32::from_bits(bits)
}

/// `ln x` for finite `x > 0` (Cephes' `logf`); `ln 0 = −∞`-like (−88.7), NaN stays NaN.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
                                                                // Centre the mantissa on 1: m in [√½, √2).
    let big = m > std::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = (e + i32::from(big)) as f32;
    let f = m - 1.0;
    let z = f * f;
    let mut p = 7.037_683_6e-2_f32;
    p = p * f - 1.151_461e-1;
    p = p * f + 1.167_699_9e-1;
    p = p * f - 1.242_014_1e-1;
    p = p * f + 1.424_932_3e-1;
    p = p * f - 1.666_805_8e-1;
    p = p * f + 2.000_071_5e-1;
    p = p * f - 2.499_999_4e-1;
    p = p * f + 3.333_333e-1;
    let y = f * z * p - 0.5 * z + f;
    let r = y + e * std::f32::consts::LN_2;
    if x > 0.0 {
        r
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else {
        f32::NAN
    }
}

/// `σ(x) = 1 / (1 + e⁻ˣ)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x`, odd, with a series near 0 (no cancellation).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let e = exp(-2.0 * a);
    let big = (1.0 - e) / (1.0 + e);
    let a2 = a * a;
    let small = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 - a2 * (17.0 / 315.0))));
    let t = if a < 0.125 { small } else { big };
    t.copysign(x)
}

/// `ln(1 + eˣ) = max(x, 0) + ln(1 + e^{−|x|})`.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + ln(1.0 + exp(-x.abs()))
}

/// `ln(1 − tanh²u) = 2(ln 2 − u − softplus(−2u))`, stable for large `|u|`.
#[inline(always)]
pub fn log_dtanh(u: f32) -> f32 {
    2.0 * (std::f32::consts::LN_2 - u - softplus(-2.0 * u))
}
