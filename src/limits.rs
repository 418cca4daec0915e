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
/// and a few temporaries (×8), in f32, and so do a summed-out chain's per-state emissions and
/// K×K recursion tables; plus the parameters with Adam's two moments.
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
    // A chain summed out (`derive::marginal`): per row and step, its emission factors are
    // evaluated at each of the K states (their variables' values and temporaries, K times)
    // and the recursion keeps a K×K table per step on the reference tape, besides the K-wide
    // forward, backward and emission tables.
    let chains: u128 = crate::derive::marginal::chains(model)
        .iter()
        .map(|c| {
            let k = c.classes as u128;
            let emitted: u128 = c
                .emissions
                .iter()
                .map(|&fi| model.vars[model.factors[fi].var].ty.size() as u128 + 4)
                .sum();
            k * k + k * (emitted + 4)
        })
        .sum();
    let per_row_step = (vars + nets + chains).max(1) * 8;
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

#[cfg(test)]
mod tests {
    /// A chain summed out is charged its K² recursion and K per-state emission evaluations:
    /// the estimate grows with the number of states at a fixed model size otherwise.
    #[test]
    fn a_summed_out_chain_is_charged_its_states() {
        let src = |k: usize| {
            format!(
                "model m {{ dim K = {k}
  observed y[t] : real[2]
  latent k[t] : onehot[K] via enumerate
  param LP : real[K, K] = 0
  param MU : real[2, K] = 0
  p {{ k[1] ~ Categorical(zeros(K))
      k[t] ~ Categorical(LP @ k[t-1])
      y[t] ~ Normal(MU @ k[t], 1) }} }}"
            )
        };
        let bytes = |k: usize| {
            let m = crate::compile(&src(k), "m.vmodel").expect("compiles");
            super::run_bytes(m.ir(), 64, 50)
        };
        let (small, large) = (bytes(2), bytes(64));
        // K = 64: per row and step at least K² + 7K = 4544 values of 4 bytes (×8, ×4).
        assert!(large >= 64 * 50 * 4544 * 8 * 4, "{large}");
        assert!(large > 100 * small, "{small} vs {large}");
    }
}
