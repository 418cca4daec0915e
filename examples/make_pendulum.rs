//! Writes the pendulum benchmark data set with vic's own simulator.
//!
//! ```text
//! cargo run --release --example make_pendulum -- [--standardize] [--out PATH]
//!     [--n 256] [--t 50] [--seed 0]
//! ```
//!
//! Arrays (float32): `o` (N, T, 3) = [cos θ, sin θ, θ̇] before each action, `a` (N, T, 1)
//! torque ~ U(−2, 2) i.i.d., `r` (N, T) reward of each step, and `obs_mean`, `obs_std`
//! (3,) per-dimension mean / population std of the raw `o` over all N·T steps.
//! With `--standardize`, `o` is written as `(o − obs_mean) / obs_std` (the constants are
//! still the raw ones, to undo it) and the default output is
//! `models/data/pendulum_std.npz` instead of `models/data/pendulum.npz`.
//! Paths are relative to the current directory (run from the crate root).

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::NpzWriter;
use vic::sim::pendulum::{simulate, ActionNoise, Params};

fn main() {
    if let Err(e) = run() {
        eprintln!("make_pendulum: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut n, mut t, mut seed) = (256usize, 50usize, 0u64);
    let mut standardize = false;
    let mut out: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--standardize" => standardize = true,
            "--out" => out = Some(value("--out")?),
            "--n" => n = value("--n")?.parse()?,
            "--t" => t = value("--t")?.parse()?,
            "--seed" => seed = value("--seed")?.parse()?,
            "-h" | "--help" => {
                println!("usage: make_pendulum [--standardize] [--out PATH] [--n 256] [--t 50] [--seed 0]");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    let out = out.unwrap_or_else(|| {
        if standardize {
            "models/data/pendulum_std.npz"
        } else {
            "models/data/pendulum.npz"
        }
        .to_string()
    });

    let traj = simulate(&Params::default(), n, t, ActionNoise::Uniform, seed);
    let (mean, std) = traj.obs_mean_std();
    let mut obs = traj.obs.clone();
    if standardize {
        for o in obs.chunks_mut(3) {
            for d in 0..3 {
                o[d] = (o[d] - mean[d]) / std[d];
            }
        }
    }
    if let Some(dir) = std::path::Path::new(&out).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut w = NpzWriter::new_compressed(std::fs::File::create(&out)?);
    w.add_array("o", &Array3::from_shape_vec((n, t, 3), obs)?)?;
    w.add_array("a", &Array3::from_shape_vec((n, t, 1), traj.act.clone())?)?;
    w.add_array("r", &Array2::from_shape_vec((n, t), traj.reward.clone())?)?;
    w.add_array("obs_mean", &Array1::from(mean.to_vec()))?;
    w.add_array("obs_std", &Array1::from(std.to_vec()))?;
    w.finish()?;
    println!(
        "wrote {out}: o ({n}, {t}, 3){}, a ({n}, {t}, 1), r ({n}, {t}); seed {seed}; obs_mean {mean:?}, obs_std {std:?}",
        if standardize { " standardized" } else { "" }
    );
    Ok(())
}
