//! Sizes past which a request is a typo, not a wish: the one place that bounds counts, lags
//! and constants (checked by `check` and by the command line), and estimates the memory a
//! training or evaluation run needs before anything is allocated.

use crate::ir::Model;

/// Batches, rollouts, horizons, importance samples, draws: a flag or an `objective` setting
/// above this is refused (it would exhaust memory).
pub const MAX_COUNT: u64 = 1_000_000;

/// The largest lag `x[t-k]` a model may read.
pub const MAX_LAG: u64 = 1_000_000;

/// The most elements a constant (`zeros`, `ones`, `eye`, a literal array) may have: 2²⁴.
pub const MAX_CONST_ELEMENTS: u128 = 1 << 24;

/// A rough upper estimate, in bytes, of the memory one forward and backward pass needs for
/// `rows` sequences (batch × importance samples × draws) of `steps` steps: every variable
/// and every net layer holds a value per row and step, kept on the tape with its gradient
/// and a few temporaries (×8), in f32; plus the parameters with Adam's two moments.
pub fn run_bytes(model: &Model, rows: u64, steps: u64) -> u128 {
    use crate::ir::NetKind;
    let vars: u128 = model.vars.iter().map(|v| v.ty.size() as u128).sum();
    let mut nets: u128 = 0;
    let mut params: u128 = model.params.iter().map(|p| p.shape.numel() as u128).sum();
    for n in &model.nets {
        match &n.kind {
            NetKind::Mlp { sizes, .. } => {
                nets += sizes.iter().map(|&s| s as u128).sum::<u128>();
                params += sizes
                    .windows(2)
                    .map(|w| (w[0] as u128 + 1) * w[1] as u128)
                    .sum::<u128>();
            }
            NetKind::Gru { input, hidden } | NetKind::Rnn { input, hidden, .. } => {
                nets += 4 * *hidden as u128 + *input as u128;
                params += 3 * *hidden as u128 * (*input as u128 + *hidden as u128 + 2);
            }
        }
    }
    let per_row_step = (vars + nets).max(1) * 8;
    4 * (per_row_step * rows as u128 * steps.max(1) as u128 + 3 * params)
}

/// Memory this process may use: `VIC_MEMORY_BYTES` when set, else the kernel's
/// `MemAvailable` (Linux), else 16 GiB.
pub fn available_bytes() -> u128 {
    if let Some(v) = std::env::var("VIC_MEMORY_BYTES")
        .ok()
        .and_then(|v| v.parse::<u128>().ok())
    {
        return v;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u128>().ok())
                .map(|kb| kb * 1024)
        })
        .unwrap_or(16 << 30)
}

/// `n` bytes for people: `3.2 GiB`.
pub fn human(n: u128) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
