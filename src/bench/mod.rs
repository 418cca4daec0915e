//! `vic bench W1|…|W8`: the workloads of the performance issues, run exactly as the
//! peer scripts in `shared/bench/peers/` run them (same model, data, batch, learning rate,
//! init scheme, minibatches drawn with replacement each step, loss summed over the batch for
//! the optimiser), timed the same way as their `common.run`:
//!
//! - the first step is timed on its own (`first_call_s`), the rest of the `--warmup` steps are
//!   untimed;
//! - the timed window is the rest of the fixed `--steps` run (losses kept) plus, if that took
//!   less than `--min-time` seconds, further steps (losses discarded) until it did; it runs in
//!   ~0.5 s chunks whose rates give the p10 / median / p90 spread;
//! - `final_loss` is the mean per-datapoint −ELBO (per image / sequence / rollout) over the last
//!   `--loss-window` training minibatches of the fixed run (the plain ELBO of the step's
//!   statistics, not the training objective with its KL balance, free nats or scales);
//! - control workloads (W5) add the final α, and the mean policy entropy per step and mean
//!   return Σ_t r_t per rollout over the same window;
//! - CPU used by other processes during the timed window is recorded (`other_cores`); above
//!   0.15 cores the run is marked `contended`.
//!
//! On top it prints the matmul FLOPs per step (3 × forward, the peers' convention), the
//! fraction of the sgemm peak, the peak RSS (`VmHWM`) and the RSS after warm-up vs at the end.
//! Nothing here changes how vic trains: it is `vic::compile` → `Program::new` →
//! `Trainer::new` → `trainer.step()`, as a user of the library would write it.

use crate::exit::{coded, train_error};
use crate::exit::{FAILED, OK, USAGE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vic::data::{Dataset, RawArray};
use vic::derive::TermKind;
use vic::diag::{render, Code, Report};
use vic::ir::{Alpha, NetKind};
use vic::lower::{Program, ALPHA_PARAM};
use vic::train::{specs_of, Sampling, TrainConfig, TrainError, Trainer};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// VAE on the 8×8 digits (models/vae_digits.vmodel), B = 128, Adam 1e-3, 2000 steps.
    #[value(name = "W1", alias = "w1")]
    W1,
    /// State-space model on standardized pendulum observations (models/ssm.vmodel),
    /// B = 32 sequences of T = 50, Adam 1e-3, 1000 steps.
    #[value(name = "W2", alias = "w2")]
    W2,
    /// 1-d linear-Gaussian toy (models/lg_toy.vmodel), x = 1, B = 1, Adam 1e-2, 5000 steps.
    #[value(name = "W3", alias = "w3")]
    W3,
    /// Dreamer RSSM on standardized pendulum observations and raw rewards
    /// (models/rssm.vmodel), B = 16 sequences of T = 50, Adam 3e-4, 300 steps.
    #[value(name = "W4", alias = "w4")]
    W4,
    /// SAC-form max-entropy control, automatic α (models/sac.vmodel, no data),
    /// B = 256 rollouts of T = 50, Adam 1e-3, 300 steps.
    #[value(name = "W5", alias = "w5")]
    W5,
    /// Deep Markov Model with a reverse-time GRU posterior (models/dmm.vmodel) on standardized
    /// pendulum observations, B = 32 sequences of T = 50, Adam 1e-3, 1000 steps.
    #[value(name = "W6", alias = "w6")]
    W6,
    /// Discrete VAE on the 8×8 digits (models/discrete_vae.vmodel: c onehot[10] enumerated,
    /// z onehot[4, 8] straight-through), B = 128, Adam 1e-3, 2000 steps.
    #[value(name = "W7", alias = "w7")]
    W7,
    /// HMM, its chain summed out by the forward algorithm (models/hmm.vmodel with `--states`
    /// K = 2, 4 or 8) on data/hmm.npz (1024 sequences of T = 50, D = 2), B = 64, Adam 1e-2,
    /// 500 steps.
    #[value(name = "W8", alias = "w8")]
    W8,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The workload to run.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Optimiser steps of the fixed run (default: W1/W7 2000, W2/W6 1000, W3 5000, W4/W5 300,
    /// as the peers).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Steps before the timed window (the first is timed on its own as `first_call_s`).
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// The timed window lasts at least this long (seconds); 0 times the fixed run only.
    #[arg(long, default_value_t = 10.0)]
    pub min_time: f64,
    /// Minibatches averaged for the final loss (default: W1/W2/W6/W7 100, W3 200, W4/W5 50,
    /// or the timed part of the fixed run if that is shorter).
    #[arg(long)]
    pub loss_window: Option<usize>,
    /// Random seed (initialisation, minibatches, noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads: the fused runtime's workers (at most 2), and RAYON_NUM_THREADS for the
    /// reference path's matmuls unless already set.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print one JSON line (the peers' result format plus vic's extra fields).
    #[arg(long)]
    pub json: bool,
    /// Model file (default: the workload's model, compiled into this binary).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Directory with digits.npy and pendulum.npz (default: $VIC_PEERS_DATA, else
    /// ../shared/bench/peers/data, else /work/shared/bench/peers/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// sgemm peak of this machine in GFLOP/s, for the fraction of peak.
    #[arg(long, default_value_t = 190.0)]
    pub peak_gflops: f64,
    /// W8: the HMM's number of states K (the peers' `--K`; the benchmark runs 2, 4 and 8).
    #[arg(long, default_value_t = 4)]
    pub states: usize,
    /// Wait up to this many seconds for the machine to go idle first (as common.wait_quiet).
    #[arg(long, default_value_t = 0.0)]
    pub wait_quiet: f64,
}

/// Where a workload's data comes from, as the peers load it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// `digits.npy` (1797, 64) in [0, 1] → `x`.
    Digits,
    /// `pendulum.npz`: (obs − obs_mean) / obs_std → `o`, act → `a`, and with `reward` the raw
    /// rew → `r` (common.load_pendulum).
    Pendulum { reward: bool },
    /// The single data point x = 1 (w3_*.py's `X = 1.0`).
    Point,
    /// Control mode: rollouts of the model's own dynamics, no data.
    Control,
    /// `hmm.npz`: y (1024, 50, 2) → `y` (make_hmm_data.py).
    Hmm,
}

/// How many (batch × time) rows a net runs on per step.
#[derive(Clone, Copy, Debug)]
enum Rows {
    /// B (non-sequential models).
    Batch,
    /// T·B: once per time step t = 1..T.
    Steps,
    /// (T−1)·B: transitions into t = 2..T.
    Transitions,
    /// n·B: the batch tiled over the n values of an enumerated latent.
    Tiled,
}

struct Spec {
    name: &'static str,
    source: &'static str,
    data: Source,
    /// What one row of the batch is, for the printed loss.
    unit: &'static str,
    batch: usize,
    lr: f64,
    steps: u64,
    window: usize,
    /// Rows of every net, except those named in `rows_of`.
    rows: Rows,
    rows_of: &'static [(&'static str, Rows)],
}

fn spec(w: Workload) -> Spec {
    match w {
        Workload::W1 => Spec {
            name: "vae_digits",
            source: include_str!("../../models/vae_digits.vmodel"),
            data: Source::Digits,
            unit: "per image",
            batch: 128,
            lr: 1e-3,
            steps: 2000,
            window: 100,
            rows: Rows::Batch,
            rows_of: &[],
        },
        // filter on T·B rows (the posterior chain), trans on (T−1)·B, emit on T·B
        Workload::W2 => Spec {
            name: "ssm",
            source: include_str!("../../models/ssm.vmodel"),
            data: Source::Pendulum { reward: false },
            unit: "per sequence",
            batch: 32,
            lr: 1e-3,
            steps: 1000,
            window: 100,
            rows: Rows::Steps,
            rows_of: &[("trans", Rows::Transitions)],
        },
        // The peers (w3_*.py) fit the single point x = 1.0: every step's "batch" is that point.
        Workload::W3 => Spec {
            name: "lg_toy",
            source: include_str!("../../models/lg_toy.vmodel"),
            data: Source::Point,
            unit: "",
            batch: 1,
            lr: 1e-2,
            steps: 5000,
            window: 200,
            rows: Rows::Batch,
            rows_of: &[],
        },
        // w4_*.py: DreamerV2's world-model rate 3e-4, no gradient clipping; the GRU and every
        // head run on all T·B rows (h[1] = cell(h[0], s[0], a[0]) from zeros).
        Workload::W4 => Spec {
            name: "rssm",
            source: include_str!("../../models/rssm.vmodel"),
            data: Source::Pendulum { reward: true },
            unit: "per sequence",
            batch: 16,
            lr: 3e-4,
            steps: 300,
            window: 50,
            rows: Rows::Steps,
            rows_of: &[],
        },
        // w5_*.py: sac.vmodel's objective block sets batch = 256, horizon = 50; the actor runs
        // on every (t, rollout).
        Workload::W5 => Spec {
            name: "sac",
            source: include_str!("../../models/sac.vmodel"),
            data: Source::Control,
            unit: "per rollout",
            batch: 256,
            lr: 1e-3,
            steps: 300,
            window: 50,
            rows: Rows::Steps,
            rows_of: &[],
        },
        // w6_*.py (NOTES.md "W6 DMM"): the reverse GRU, trans (p(z_1) from z_0 = 0 included),
        // emit and the combiner all run on T·B rows; the file's `a` is unused.
        Workload::W6 => Spec {
            name: "dmm",
            source: include_str!("../../models/dmm.vmodel"),
            data: Source::Pendulum { reward: false },
            unit: "per sequence",
            batch: 32,
            lr: 1e-3,
            steps: 1000,
            window: 100,
            rows: Rows::Steps,
            rows_of: &[],
        },
        // w7_*.py: the peers run enc_c once on the B images, enc_z and dec on the 10·B rows of
        // the enumerated batch (vic's fused runtime does the same; its reference path runs
        // enc_c on the tiled rows too).
        Workload::W7 => Spec {
            name: "discrete_vae",
            source: include_str!("../../models/discrete_vae.vmodel"),
            data: Source::Digits,
            unit: "per image",
            batch: 128,
            lr: 1e-3,
            steps: 2000,
            window: 100,
            rows: Rows::Tiled,
            rows_of: &[("enc_c", Rows::Batch)],
        },
        // w8_*.py (NOTES.md "W8"): no nets; the FLOPs are the chain's transitions (below).
        Workload::W8 => Spec {
            name: "hmm",
            source: include_str!("../../models/hmm.vmodel"),
            data: Source::Hmm,
            unit: "per sequence",
            batch: 64,
            lr: 1e-2,
            steps: 500,
            window: 50,
            rows: Rows::Steps,
            rows_of: &[],
        },
    }
}

// ---------------------------------------------------------------- /proc readers

fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn clk_tck() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux we run on; no libc dependency for one constant.
    100.0
}

/// System-wide busy CPU-seconds since boot (all cores), as common._cpu_busy_s.
fn cpu_busy_s() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return 0.0;
    }
    let idle = v[3] + v[4];
    (v[..8].iter().sum::<f64>() - idle) / clk_tck()
}

/// CPU-seconds used by this process (user + system, all threads).
fn own_cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // after ")": state is index 0, utime index 11, stime index 12
    (get(11) + get(12)) / clk_tck()
}

/// Block until the rest of the machine uses < `thresh` cores over a 2 s window (or give up).
fn wait_quiet(max_wait: f64, thresh: f64) -> f64 {
    let end = Instant::now() + std::time::Duration::from_secs_f64(max_wait);
    loop {
        let (b0, o0) = (cpu_busy_s(), own_cpu_s());
        std::thread::sleep(std::time::Duration::from_secs(2));
        let other = (cpu_busy_s() - b0 - (own_cpu_s() - o0)) / 2.0;
        if other < thresh || Instant::now() > end {
            if other >= thresh {
                eprintln!("# wait_quiet: gave up, other load {other:.2} cores");
            }
            return other;
        }
    }
}

// ---------------------------------------------------------------- data

fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Ok(p) = std::env::var("VIC_PEERS_DATA") {
        return PathBuf::from(p);
    }
    let rel = PathBuf::from("../shared/bench/peers/data");
    if rel.join("digits.npy").exists() {
        return rel;
    }
    PathBuf::from("/work/shared/bench/peers/data")
}

/// Arrays of an `.npz` by name (without `.npy`): shape and row-major f32 data.
type Arrays = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn read_npz_f32(path: &Path) -> Result<Arrays, String> {
    use ndarray_npy::NpzReader;
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut z = NpzReader::new(f).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for name in z.names().map_err(|e| e.to_string())? {
        let a: ndarray::ArrayD<f32> = z
            .by_name(&name)
            .map_err(|e| format!("{}: array {name}: {e}", path.display()))?;
        let key = name.trim_end_matches(".npy").to_string();
        out.insert(key, (a.shape().to_vec(), a.iter().copied().collect()));
    }
    Ok(out)
}

/// The workload's dataset, as the peers load it (None in control mode).
fn load_data(src: Source, program: &Program, dir: &Path) -> Result<Option<Dataset>, String> {
    let specs = specs_of(program);
    let min_len = program.plan.max_lag as usize + 1;
    match src {
        // digits.npy (1797, 64) float32 in [0, 1] → the observed `x`.
        Source::Digits => {
            let p = dir.join("digits.npy");
            vic::data::load(&p, &specs, min_len)
                .map(Some)
                .map_err(|e| e.to_string())
        }
        // pendulum.npz: obs (512, 50, 3), act (512, 50, 1), rew (512, 50); the peers train on
        // (obs − obs_mean) / obs_std (common.load_pendulum) and the raw rew; o[t] = obs[:, t-1]
        // (vic's t = 1..T), the transition into s[t] reads a[t-1] = act[:, t-2], as the peers'
        // act[:, t-1] for their 0-based t.
        Source::Pendulum { reward } => {
            let p = dir.join("pendulum.npz");
            let z = read_npz_f32(&p)?;
            let get = |k: &str| {
                z.get(k)
                    .ok_or_else(|| format!("{}: no array `{k}`", p.display()))
            };
            let (oshape, obs) = get("obs")?;
            let (ashape, act) = get("act")?;
            let (_, mean) = get("obs_mean")?;
            let (_, std) = get("obs_std")?;
            let d = *oshape.last().unwrap_or(&1);
            // as numpy does it: all three arrays are float32, so (obs - mean) / std in f32
            let o: Vec<f32> = obs
                .iter()
                .enumerate()
                .map(|(i, x)| (x - mean[i % d]) / std[i % d])
                .collect();
            let mut raw = BTreeMap::from([
                ("o".to_string(), RawArray::new(oshape.clone(), o)),
                ("a".to_string(), RawArray::new(ashape.clone(), act.clone())),
            ]);
            if reward {
                let (rshape, rew) = get("rew")?;
                raw.insert("r".to_string(), RawArray::new(rshape.clone(), rew.clone()));
            }
            Dataset::from_raw(&p, raw, &specs, min_len)
                .map(Some)
                .map_err(|e| e.to_string())
        }
        // w3_*.py: X = 1.0, the single data point.
        Source::Point => {
            let raw = BTreeMap::from([("x".to_string(), RawArray::new(vec![1], vec![1.0]))]);
            Dataset::from_raw("x=1", raw, &specs, min_len)
                .map(Some)
                .map_err(|e| e.to_string())
        }
        Source::Control => Ok(None),
        // hmm.npz: y (N, T, D) float32 is the observed `y`; the other arrays are extras.
        Source::Hmm => vic::data::load(dir.join("hmm.npz"), &specs, min_len)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

// ---------------------------------------------------------------- FLOPs

/// Forward matmul FLOPs of one row through a net: Σ_layers 2·in·out for an MLP; for a GRU
/// (PyTorch's gates [r|z|n]) 2·(in·3H + H·3H) per step.
fn row_flops(kind: &NetKind) -> f64 {
    match kind {
        NetKind::Mlp { sizes, .. } => sizes.windows(2).map(|s| 2.0 * (s[0] * s[1]) as f64).sum(),
        NetKind::Gru { input, hidden } | NetKind::Rnn { input, hidden, .. } => {
            2.0 * (input * 3 * hidden + hidden * 3 * hidden) as f64
        }
    }
}

/// Forward matmul FLOPs of one step: Σ over nets of rows(net) × row_flops(net), where
/// rows(net) is how many (batch × time) rows the net is applied to per step (the spec's
/// `rows` / `rows_of`): W1: enc and dec on B rows; W2: filter on T·B rows (the posterior
/// chain, t = 1..T), trans on (T−1)·B rows, emit on T·B rows; W3: no matmuls; W4: the GRU,
/// post, prior, dec and rew on T·B rows; W5: the actor on T·B rows; W6: every net on T·B rows;
/// W7: enc_c on B rows, enc_z and dec on 10·B rows (the peers' `w7_jax.flops()`).
fn fwd_flops(sp: &Spec, program: &Program, b: usize, t: usize) -> f64 {
    program
        .model
        .nets
        .iter()
        .map(|n| {
            let rows = match sp.rows_of.iter().find(|(name, _)| *name == n.name) {
                Some((_, r)) => *r,
                None => sp.rows,
            };
            let rows = match rows {
                Rows::Batch => b,
                Rows::Steps => t * b,
                Rows::Transitions => t.saturating_sub(1) * b,
                Rows::Tiled => program.enumerated().map_or(1, |(_, n)| n) * b,
            };
            row_flops(&n.kind) * rows as f64
        })
        .fold(0.0, |acc, f| acc + f) // (an empty `sum` is −0.0)
        + chain_flops(program, b, t)
}

/// A chain summed out (W8): the transition as a K → K dense layer on the b forward vectors
/// at each of the T − 1 steps, 2·b·(T − 1)·K² (the peers' `w8_jax.flops()`; the emission
/// table and the exps are not counted).
fn chain_flops(program: &Program, b: usize, t: usize) -> f64 {
    vic::derive::marginal::chains(&program.model)
        .iter()
        .map(|c| 2.0 * (b * t.saturating_sub(1) * c.classes * c.classes) as f64)
        .sum::<f64>()
}

// ---------------------------------------------------------------- the run

/// W8's MU at `--seed 0` for K = 2, 4, 8: the peers' init, numpy `default_rng(0)
/// .standard_normal((K, 2))` as float32, transposed to the model's D × K layout, so that vic
/// starts where w8_jax.py / w8_numpyro.py start (the minibatches still differ: theirs come from
/// a JAX key stream). Other seeds and K draw MU ~ N(0, 1) from vic's own generator.
fn peers_mu(k: usize) -> Option<&'static str> {
    Some(match k {
        2 => "[[0.1257302165031433, 0.6404226422309875], [-0.13210485875606537, 0.10490011423826218]]",
        4 => "[[0.1257302165031433, 0.6404226422309875, -0.5356693863868713, 1.3040000200271606], [-0.13210485875606537, 0.10490011423826218, 0.3615950644016266, 0.9470809698104858]]",
        8 => "[[0.1257302165031433, 0.6404226422309875, -0.5356693863868713, 1.3040000200271606, -0.7037352323532104, -0.6232744455337524, -2.32503080368042, -1.2459110021591187], [-0.13210485875606537, 0.10490011423826218, 0.3615950644016266, 0.9470809698104858, -1.2654215097427368, 0.04132597893476486, -0.218791663646698, -0.7322673797607422]]",
        _ => return None,
    })
}

/// The model source with its `dim K = …` set to `k` (W8's number of states).
fn with_states(source: &str, k: usize) -> Option<String> {
    if k == 0 {
        return None;
    }
    let at = source.find("dim K = ")? + "dim K = ".len();
    let end = at + source[at..].find(|c: char| !c.is_ascii_digit())?;
    Some(format!("{}{k}{}", &source[..at], &source[end..]))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    // numpy's default (linear interpolation)
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn round(x: f64, d: i32) -> f64 {
    let m = 10f64.powi(d);
    (x * m).round() / m
}

/// `vic bench`: run a workload and print its measurements.
pub fn run(a: BenchArgs) -> u8 {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", a.threads.max(1).to_string());
    }
    let sp = spec(a.workload);
    let steps = a.steps.unwrap_or(sp.steps);
    // the default window shrinks to the timed part of a short run (--steps 3 for a smoke test)
    let window = a.loss_window.unwrap_or_else(|| {
        sp.window
            .min(steps.saturating_sub(a.warmup.max(1)).max(1) as usize)
    });
    if steps == 0 || window == 0 || a.warmup >= steps {
        return crate::exit::flag_error(
            "--steps must exceed --warmup, and --loss-window must be ≥ 1".into(),
            "e.g. --steps 2000 --warmup 5",
        );
    }
    if window as u64 > steps - a.warmup.max(1) {
        return crate::exit::flag_error(
            format!("--loss-window {window} is longer than the timed part of the fixed run"),
            "lower --loss-window or raise --steps",
        );
    }
    if a.wait_quiet > 0.0 {
        wait_quiet(a.wait_quiet, 0.15);
    }
    let rss_before = status_kb("VmRSS:").unwrap_or(0);

    // compile → derive → lower, as a library user does
    let (source, label) = match &a.model {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(s) => (s, p.display().to_string()),
            Err(e) => {
                coded(
                    Code::Io,
                    format!("cannot read `{}`: {e}", p.display()),
                    "check the path and its permissions",
                );
                return USAGE;
            }
        },
        None => (sp.source.to_string(), format!("models/{}.vmodel", sp.name)),
    };
    // W8 runs the HMM at the peers' K (from the peers' MU at seed 0).
    let source = if a.workload == Workload::W8 {
        match with_states(&source, a.states) {
            Some(s) => match peers_mu(a.states).filter(|_| a.seed == 0) {
                Some(mu) => s.replace(
                    "param MU  : real[D, K] = normal(0, 1)",
                    &format!("param MU  : real[D, K] = {mu}"),
                ),
                None => s,
            },
            None => {
                return crate::exit::flag_error(
                    "W8 needs a model declaring `dim K = …` and --states ≥ 1".into(),
                    "e.g. vic bench W8 --states 4",
                )
            }
        }
    } else {
        source
    };
    let model = match vic::compile(&source, &label) {
        Ok(m) => m,
        Err(f) => {
            eprint!("{f}");
            return FAILED;
        }
    };
    let elbo = model.elbo();
    let program = match Program::new_spanned(model.ir(), &elbo, &model.checked.spans) {
        Ok(p) => p,
        Err(ds) => {
            for d in ds {
                eprint!("{}", render(&Report::new(d, &label, &source), false));
            }
            return FAILED;
        }
    };
    let dir = data_dir(a.data_dir.as_deref());
    let data = match load_data(sp.data, &program, &dir) {
        Ok(d) => d,
        Err(e) => {
            coded(
                Code::DataUnreadable,
                e,
                "pass --data-dir (the peers' data/ folder) or set VIC_PEERS_DATA",
            );
            return USAGE;
        }
    };
    let data_t = data.as_ref().map(|d| d.t.unwrap_or(1));
    let n_data = data.as_ref().map(|d| d.n);
    let cfg = TrainConfig {
        batch: sp.batch,
        lr: sp.lr,
        betas: [0.9, 0.999],
        eps: 1e-8,
        seed: a.seed,
        holdout: 0.0, // the peers train on every row
        sampling: Sampling::WithReplacement,
        threads: a.threads,
        ..TrainConfig::default()
    };
    let mut tr = match Trainer::new(program, data, cfg) {
        Ok(t) => t,
        Err(e) => return train_error(&e, "cannot set up the model"),
    };
    // time steps per row: the data's length, or the rollout horizon in control mode
    let t_len = data_t.unwrap_or_else(|| tr.horizon());
    let flops = 3.0 * fwd_flops(&sp, &tr.program, sp.batch, t_len);
    let n_params: usize = tr.store.numel();

    // Control mode: the Reward terms (per rollout, Σ_t r_t / α at the step's α) and the
    // Entropy terms, to report the return and the policy entropy as the peers do.
    let rewards: Vec<(usize, Alpha)> = (tr.program.elbo.terms.iter().enumerate())
        .filter_map(|(i, t)| match &t.kind {
            TermKind::Reward { alpha, .. } => Some((i, *alpha)),
            _ => None,
        })
        .collect();
    let entropies: Vec<usize> = (tr.program.elbo.terms.iter().enumerate())
        .filter(|(_, t)| matches!(t.kind, TermKind::Entropy { .. }))
        .map(|(i, _)| i)
        .collect();
    let alpha_now = |tr: &Trainer, alpha: &Alpha| -> f64 {
        match alpha {
            Alpha::Fixed(v) => *v,
            Alpha::Auto { .. } => tr
                .store
                .get(ALPHA_PARAM)
                .map(|p| f64::from(p.to_host()[0]).exp())
                .unwrap_or(f64::NAN),
        }
    };
    let control = sp.data == Source::Control && !rewards.is_empty();

    let mut losses: Vec<f64> = Vec::with_capacity(steps as usize);
    // (mean policy entropy per step, mean return Σ_t r_t per rollout) of each fixed-run step
    let mut ctl: Vec<(f64, f64)> = Vec::new();
    let step = |tr: &mut Trainer| -> Result<(f64, Option<(f64, f64)>), TrainError> {
        // the α the forward pass divides the reward by: its value before the update
        let alphas: Vec<f64> = if control {
            rewards.iter().map(|(_, al)| alpha_now(tr, al)).collect()
        } else {
            Vec::new()
        };
        let s = tr.step()?;
        let extra = control.then(|| {
            let ret = (rewards.iter().zip(&alphas))
                .map(|((i, _), al)| s.terms[*i] * al)
                .sum::<f64>();
            let h = s.policy_entropy.unwrap_or_else(|| {
                entropies.iter().map(|i| s.terms[*i]).sum::<f64>() / t_len as f64
            });
            (h, ret)
        });
        Ok((-s.elbo, extra))
    };
    macro_rules! try_step {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return train_error(&e, "training failed"),
            }
        };
    }

    macro_rules! keep {
        ($e:expr) => {{
            let (loss, c) = try_step!($e);
            losses.push(loss);
            ctl.extend(c);
        }};
    }

    // first call (timed alone) + untimed warm-up
    let t_first = Instant::now();
    keep!(step(&mut tr));
    let first_call_s = t_first.elapsed().as_secs_f64();
    let w_calls = a.warmup.max(1);
    for _ in 1..w_calls {
        keep!(step(&mut tr));
    }
    let rss_start = status_kb("VmRSS:").unwrap_or(0);

    // timed window in ~0.5 s chunks
    let (busy0, own0) = (cpu_busy_s(), own_cpu_s());
    let t0 = Instant::now();
    let mut chunks: Vec<(u64, f64)> = Vec::new();
    let mut chunk: u64 = 1;
    // (steps taken, VmRSS kB) after every chunk: RSS must not grow with the number of steps
    let mut rss_trace: Vec<(u64, u64)> = Vec::new();
    let mut remaining = steps - w_calls;
    let next_chunk =
        |k: u64, dt: f64| -> u64 { ((k as f64 / dt.max(1e-6) * 0.5) as u64).clamp(1, 1_000_000) };
    while remaining > 0 {
        let k = chunk.min(remaining);
        let t = Instant::now();
        for _ in 0..k {
            keep!(step(&mut tr));
        }
        let dt = t.elapsed().as_secs_f64();
        chunks.push((k, dt));
        rss_trace.push((tr.step, status_kb("VmRSS:").unwrap_or(0)));
        chunk = next_chunk(k, dt);
        remaining -= k;
    }
    let rss_after_fixed = status_kb("VmRSS:").unwrap_or(0);
    while chunks.iter().map(|c| c.1).sum::<f64>() < a.min_time {
        let k = chunk;
        let t = Instant::now();
        for _ in 0..k {
            try_step!(step(&mut tr));
        }
        let dt = t.elapsed().as_secs_f64();
        chunks.push((k, dt));
        rss_trace.push((tr.step, status_kb("VmRSS:").unwrap_or(0)));
        chunk = next_chunk(k, dt);
    }
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    let other_cores = (cpu_busy_s() - busy0 - (own_cpu_s() - own0)) / wall;
    let own_cores = (own_cpu_s() - own0) / wall;
    let rss_end = status_kb("VmRSS:").unwrap_or(0);
    let hwm = status_kb("VmHWM:").unwrap_or(0);
    let os_threads = status_kb("Threads:").unwrap_or(0);

    let timed_steps: u64 = chunks.iter().map(|c| c.0).sum();
    let elapsed: f64 = chunks.iter().map(|c| c.1).sum();
    let sps = timed_steps as f64 / elapsed;
    let mut rates: Vec<f64> = chunks
        .iter()
        .filter(|c| c.1 >= 0.2)
        .map(|c| c.0 as f64 / c.1)
        .collect();
    if rates.is_empty() {
        rates = chunks.iter().map(|c| c.0 as f64 / c.1).collect();
    }
    rates.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
    let p = [10.0, 50.0, 90.0].map(|q| round(percentile(&rates, q), 1));
    let tail = &losses[losses.len() - window..];
    let final_loss = tail.iter().sum::<f64>() / window as f64;
    let gflops = sps * flops / 1e9;
    // RSS growth over the second half of the timed window (kB per 1000 steps): ~0 when the
    // memory is flat; the first half absorbs allocator warm-up
    let half = &rss_trace[rss_trace.len() / 2..];
    let rss_slope = match (half.first(), half.last()) {
        (Some(a0), Some(a1)) if a1.0 > a0.0 => {
            (a1.1 as f64 - a0.1 as f64) / (a1.0 - a0.0) as f64 * 1000.0
        }
        _ => 0.0,
    };
    let stride = rss_trace.len().div_ceil(16).max(1);
    let mut trace: Vec<(u64, u64)> = rss_trace.iter().copied().step_by(stride).collect();
    if let Some(l) = rss_trace.last() {
        if trace.last() != Some(l) {
            trace.push(*l);
        }
    }
    let pct_peak = 100.0 * gflops / a.peak_gflops;

    let mut res = serde_json::json!({
        "system": "vic",
        "workload": format!("{:?}", a.workload),
        "steps_per_s": round(sps, 2),
        "chunk_rate_p10_med_p90": p,
        "final_loss": round(final_loss, 4),
        "threads": a.threads,
        "runtime": tr.engine(),
        "steps": steps,
        "timed_steps": timed_steps,
        "timed_s": round(elapsed, 3),
        "first_call_s": round(first_call_s, 3),
        "initial_loss": round(losses[0], 4),
        "finite": losses.iter().all(|x| x.is_finite()),
        "own_cores": round(own_cores, 2),
        "other_cores": round(other_cores, 2),
        "contended": other_cores > 0.15,
        "batch": sp.batch,
        "n_data": n_data,
        "params": n_params,
        "flops_per_step": flops,
        "gflops": round(gflops, 2),
        "peak_gflops": a.peak_gflops,
        "pct_peak": round(pct_peak, 2),
        "floor_steps_per_s": if flops > 0.0 { round(a.peak_gflops * 1e9 / flops, 0) } else { f64::NAN },
        "rss_before_kb": rss_before,
        "rss_start_kb": rss_start,
        "rss_after_fixed_kb": rss_after_fixed,
        "rss_end_kb": rss_end,
        "peak_rss_kb": hwm,
        "rss_growth_kb_per_1k_steps_2nd_half": round(rss_slope, 1),
        "rss_trace_step_kb": trace,
        "os_threads": os_threads,
        "versions": {"vic": env!("CARGO_PKG_VERSION"), "dfdx": "0.13.0",
                      "profile": if cfg!(debug_assertions) { "debug" } else { "release" }},
    });
    if a.workload == Workload::W8 {
        res["K"] = serde_json::json!(a.states);
    }
    if a.workload == Workload::W3 {
        let get = |n: &str| {
            tr.store
                .get(n)
                .map(|p| f64::from(p.to_host()[0]))
                .unwrap_or(f64::NAN)
        };
        let (m, s) = (get("param.m"), get("param.s"));
        let softplus = if s > 20.0 { s } else { s.exp().ln_1p() };
        res["final_elbo"] = serde_json::json!(round(-final_loss, 4));
        res["q_loc"] = serde_json::json!(round(m, 4));
        res["q_scale"] = serde_json::json!(round(softplus, 4));
    }
    if control && ctl.len() >= window {
        // as w5_*.py: α at the end of the run; entropy and return over the loss window
        let tail = &ctl[ctl.len() - window..];
        let mean = |f: fn(&(f64, f64)) -> f64| tail.iter().map(f).sum::<f64>() / window as f64;
        let alpha = rewards
            .first()
            .map_or(f64::NAN, |(_, al)| alpha_now(&tr, al));
        res["alpha"] = serde_json::json!(round(alpha, 4));
        res["policy_entropy"] = serde_json::json!(round(mean(|c| c.0), 4));
        res["return"] = serde_json::json!(round(mean(|c| c.1), 4));
    }
    if a.json {
        println!("{res}");
    } else {
        let unit = sp.unit;
        println!(
            "vic {:?} ({}): B = {}, {} steps (+{} untimed), {} threads, runtime {}",
            a.workload,
            sp.name,
            sp.batch,
            steps,
            w_calls,
            a.threads,
            tr.engine()
        );
        println!(
            "  steps/s        {:.1}   (chunks p10 / med / p90: {} / {} / {}; {} steps in {:.2} s)",
            sps, p[0], p[1], p[2], timed_steps, elapsed
        );
        println!(
            "  final loss     {:.4} {unit} (−ELBO, mean of the last {window} minibatches; first {:.4})",
            final_loss, losses[0]
        );
        if flops > 0.0 {
            println!(
                "  matmul FLOPs   {:.0} /step (3 × fwd) → {:.2} GFLOP/s = {:.1}% of {} GFLOP/s (floor {:.0} steps/s)",
                flops, gflops, pct_peak, a.peak_gflops, a.peak_gflops * 1e9 / flops
            );
        }
        println!(
            "  memory         peak RSS {:.1} MiB; RSS after warm-up {:.1} MiB, after fixed run {:.1} MiB, at end {:.1} MiB",
            hwm as f64 / 1024.0,
            rss_start as f64 / 1024.0,
            rss_after_fixed as f64 / 1024.0,
            rss_end as f64 / 1024.0
        );
        println!(
            "  RSS trace      {} (steps: MiB); 2nd-half growth {:.1} kB / 1000 steps",
            trace
                .iter()
                .map(|(s, k)| format!("{s}: {:.1}", *k as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", "),
            rss_slope
        );
        println!(
            "  CPU            own {:.2} cores, others {:.2} cores{}; first step {:.3} s",
            own_cores,
            other_cores,
            if other_cores > 0.15 {
                " (CONTENDED)"
            } else {
                ""
            },
            first_call_s
        );
        if a.workload == Workload::W3 {
            println!(
                "  q              loc {} scale {} (exact 0.5 / 0.7071; −ELBO exact 1.5155)",
                res["q_loc"], res["q_scale"]
            );
        }
        if res.get("alpha").is_some() {
            println!(
                "  control        α {} at the end; policy entropy {} per step, return {} per rollout (last {window} minibatches)",
                res["alpha"], res["policy_entropy"], res["return"]
            );
        }
    }
    OK
}
