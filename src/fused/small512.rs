//! Products with few rows (the per-step products of a chain: 16 sequences × a weight) in
//! AVX-512, without packing. `gemm` packs the weight on every call, and a chain calls it once
//! per step with the same weight, so for `m ≤ ROWS` rows these loops read the weight where it
//! lies: row-major `(k, n)` for the forward product (outer products, 8 rows × 32 columns of
//! accumulators), and the same weight as `(n, k)` for the backward product with respect to the
//! input (dot products along the weight's rows, 4 × 4 accumulators). The outer-product loop
//! also takes every product small enough for `kernels::mm`'s plain loops (a per-step weight
//! gradient `xᵀ·dpre` reads `a` transposed): its 8 rows of accumulators are independent sums,
//! where the plain loops' one sum per row waits on each addition.
//!
//! Only called when the CPU has AVX-512F ([`available`]); the results equal a plain sum of
//! products up to the order of the additions (checked against `gemm` in the tests below and
//! end to end by `tests/fused.rs`).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Products with at most this many rows take these loops.
pub const ROWS: usize = 32;

/// Whether the CPU runs these loops.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `c (m×n, row stride ldc) (+)= a (m×k, row stride a_rs, column stride a_cs) · b (k×n, row
/// stride ldb, contiguous rows)`: `a` may be read transposed (`a_rs = 1`, a weight gradient's
/// `xᵀ`), its elements are broadcast one at a time.
///
/// # Safety
/// The pointers must cover the shapes; the CPU must have AVX-512F ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn rows_times_weight(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    (a, a_rs, a_cs): (*const f32, usize, usize),
    b: *const f32,
    ldb: usize,
) {
    let mut i0 = 0;
    while i0 < m {
        let mr = (m - i0).min(8);
        let mut j0 = 0;
        while j0 < n {
            let w = (n - j0).min(32);
            let m0: __mmask16 = if w >= 16 {
                0xffff
            } else {
                ((1u32 << w) - 1) as u16
            };
            let m1: __mmask16 = if w <= 16 {
                0
            } else if w >= 32 {
                0xffff
            } else {
                ((1u32 << (w - 16)) - 1) as u16
            };
            let (ct, at, bt) = (c.add(i0 * ldc + j0), a.add(i0 * a_rs), b.add(j0));
            // A block of at most 16 columns keeps one accumulator per row (no FMAs on lanes
            // that are masked off anyway).
            if w <= 16 {
                tile::<1>(mr, k, ct, ldc, acc, (at, a_rs, a_cs), bt, ldb, [m0, m1]);
            } else {
                tile::<2>(mr, k, ct, ldc, acc, (at, a_rs, a_cs), bt, ldb, [m0, m1]);
            }
            j0 += 32;
        }
        i0 += 8;
    }
}

/// One block of [`rows_times_weight`]: `mr ≤ 8` rows × `H` 16-lane column blocks (lanes
/// masked by `masks`), the accumulators in registers over the whole sum.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // register tiles by index
unsafe fn tile<const H: usize>(
    mr: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    (a, a_rs, a_cs): (*const f32, usize, usize),
    b: *const f32,
    ldb: usize,
    masks: [__mmask16; 2],
) {
    let mut s = [[_mm512_setzero_ps(); H]; 8];
    for p in 0..k {
        let bp = b.add(p * ldb);
        let mut bv = [_mm512_setzero_ps(); H];
        for (h, v) in bv.iter_mut().enumerate() {
            *v = _mm512_maskz_loadu_ps(masks[h], bp.add(16 * h));
        }
        let ap = a.add(p * a_cs);
        for r in 0..mr {
            let x = _mm512_set1_ps(*ap.add(r * a_rs));
            for h in 0..H {
                s[r][h] = _mm512_fmadd_ps(x, bv[h], s[r][h]);
            }
        }
    }
    for r in 0..mr {
        let cp = c.add(r * ldc);
        for h in 0..H {
            let mut v = s[r][h];
            if acc {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[h], cp.add(16 * h)));
            }
            _mm512_mask_storeu_ps(cp.add(16 * h), masks[h], v);
        }
    }
}

/// `c (m×n, row stride ldc) (+)= a (m×k, row stride lda, contiguous rows) · wᵀ`, with `w`
/// stored `(n, k)` (row stride ldw, contiguous rows): `c[i][j] = Σ_p a[i][p] · w[j][p]`.
///
/// # Safety
/// The pointers must cover the shapes; the CPU must have AVX-512F ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // register tiles by index
pub unsafe fn rows_times_weight_t(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    a: *const f32,
    lda: usize,
    w: *const f32,
    ldw: usize,
) {
    let mut i0 = 0;
    while i0 < m {
        let mr = (m - i0).min(4);
        let mut j0 = 0;
        while j0 < n {
            let nr = (n - j0).min(4);
            let mut s = [[_mm512_setzero_ps(); 4]; 4];
            let mut p = 0;
            while p < k {
                let left = k - p;
                let mask: __mmask16 = if left >= 16 {
                    0xffff
                } else {
                    ((1u32 << left) - 1) as u16
                };
                let mut wv = [_mm512_setzero_ps(); 4];
                for (q, v) in wv.iter_mut().enumerate().take(nr) {
                    *v = _mm512_maskz_loadu_ps(mask, w.add((j0 + q) * ldw + p));
                }
                for r in 0..mr {
                    let av = _mm512_maskz_loadu_ps(mask, a.add((i0 + r) * lda + p));
                    for q in 0..nr {
                        s[r][q] = _mm512_fmadd_ps(av, wv[q], s[r][q]);
                    }
                }
                p += 16;
            }
            for r in 0..mr {
                for q in 0..nr {
                    let v = _mm512_reduce_add_ps(s[r][q]);
                    let cp = c.add((i0 + r) * ldc + j0 + q);
                    *cp = if acc { *cp + v } else { v };
                }
            }
            j0 += 4;
        }
        i0 += 4;
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The plain triple loop in f64, the reference for both kernels.
    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: impl Fn(usize, usize) -> f32) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b(p, j) as f64).sum();
            }
        }
        c
    }

    #[test]
    fn both_kernels_equal_the_triple_loop_on_ragged_shapes() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        for &(m, n, k) in &[
            (16, 600, 231),
            (1, 1, 1),
            (7, 33, 17),
            (16, 60, 200),
            (32, 31, 5),
            (3, 200, 600),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
                .collect();
            let want = naive(m, n, k, &a, |p, j| b[p * n + j]);
            // The transposed forms read w stored (n, k) = bᵀ, and a stored (k, m) = aᵀ.
            let wt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            for name in ["a·b", "a·wᵀ", "(aᵀ)ᵀ·b"] {
                for acc in [false, true] {
                    let mut c = vec![1.0f32; m * n];
                    let (cp, ap) = (c.as_mut_ptr(), a.as_ptr());
                    unsafe {
                        match name {
                            "a·b" => {
                                rows_times_weight(m, n, k, cp, n, acc, (ap, k, 1), b.as_ptr(), n)
                            }
                            "a·wᵀ" => {
                                rows_times_weight_t(m, n, k, cp, n, acc, ap, k, wt.as_ptr(), k)
                            }
                            _ => rows_times_weight(
                                m,
                                n,
                                k,
                                cp,
                                n,
                                acc,
                                (at.as_ptr(), 1, m),
                                b.as_ptr(),
                                n,
                            ),
                        }
                    };
                    for (x, w) in c.iter().zip(&want) {
                        let w = w + if acc { 1.0 } else { 0.0 };
                        assert!(
                            (*x as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{name} {m}×{n}×{k}: {x} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
