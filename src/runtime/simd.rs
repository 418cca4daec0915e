//! Run-time CPU feature dispatch for hot loops: the same Rust code compiled a second time
//! with AVX2 and FMA, chosen once the CPU is known to have them (the default x86-64 target
//! is SSE2 only, so the loops otherwise run 4 lanes wide).

/// Whether the CPU runs AVX2 + FMA code.
#[cfg(target_arch = "x86_64")]
pub fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Whether the CPU runs AVX2 + FMA code.
#[cfg(not(target_arch = "x86_64"))]
pub fn avx2() -> bool {
    false
}
