//! Writes `models/data/demos.npz`, the demonstrations `models/cvae_imitation.vmodel` imitates,
//! with vic's own pendulum simulator (gym `Pendulum-v1` dynamics, `vic::sim::pendulum`).
//!
//! ```text
//! cargo run --release --example make_demos -- [--out PATH] [--episodes 64] [--t 50] [--seed 0]
//! ```
//!
//! Two demonstrators with opposite intentions, so that p(a | s) has two action modes:
//!
//! * mode 0, "balance": a PD controller towards upright,
//!   `u = clip(−(10·wrap(θ) + 2·θ̇), −2, 2)` (opposes the motion);
//! * mode 1, "pump": energy pumping, `u = 2·tanh(2·θ̇)` (pushes along the motion).
//!
//! Each episode draws its demonstrator uniformly, starts from gym's reset distribution
//! (θ ~ U(−π, π), θ̇ ~ U(−1, 1)) and runs `t` steps; the recorded action is the controller's
//! torque plus N(0, 0.1²) demonstration noise (the simulator clips it to ±2 when applied).
//! Every step is one data point (the CVAE is static: it models p(a | s) for single states).
//!
//! Arrays (float32): `s` (N, 3) = [cos θ, sin θ, θ̇] before the action, `a` (N, 1) the
//! demonstrated torque, and the extra `mode` (N,) = 0 or 1, the demonstrator of each point
//! (not read by the model; kept to check what the recognition network learned).
//! N = episodes · t. Paths are relative to the current directory (run from the crate root).

use ndarray::{Array1, Array2};
use ndarray_npy::NpzWriter;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::f64::consts::PI;
use vic::sim::pendulum::{angle_normalize, observe, step, Params, State};

/// The two demonstrators.
fn controller(mode: usize, s: &State) -> f64 {
    match mode {
        0 => (-(10.0 * angle_normalize(s.theta) + 2.0 * s.theta_dot)).clamp(-2.0, 2.0),
        _ => 2.0 * (2.0 * s.theta_dot).tanh(),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("make_demos: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut episodes, mut t, mut seed) = (64usize, 50usize, 0u64);
    let mut out = "models/data/demos.npz".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => out = value("--out")?,
            "--episodes" => episodes = value("--episodes")?.parse()?,
            "--t" => t = value("--t")?.parse()?,
            "--seed" => seed = value("--seed")?.parse()?,
            "-h" | "--help" => {
                println!("usage: make_demos [--out PATH] [--episodes 64] [--t 50] [--seed 0]");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    let p = Params::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.1)?;
    let n = episodes * t;
    let (mut states, mut actions, mut modes) = (
        Vec::with_capacity(n * 3),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut count = [0usize; 2];
    for _ in 0..episodes {
        let mode = rng.gen_range(0..2usize);
        count[mode] += 1;
        let mut s = State {
            theta: rng.gen_range(-PI..PI),
            theta_dot: rng.gen_range(-1.0..1.0),
        };
        for _ in 0..t {
            let u = controller(mode, &s) + noise.sample(&mut rng);
            states.extend(observe(&s).map(|v| v as f32));
            actions.push(u as f32);
            modes.push(mode as f32);
            s = step(&p, &s, u).0;
        }
    }
    if let Some(dir) = std::path::Path::new(&out).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut w = NpzWriter::new_compressed(std::fs::File::create(&out)?);
    w.add_array("s", &Array2::from_shape_vec((n, 3), states)?)?;
    w.add_array("a", &Array2::from_shape_vec((n, 1), actions)?)?;
    w.add_array("mode", &Array1::from(modes))?;
    w.finish()?;
    println!(
        "wrote {out}: s ({n}, 3), a ({n}, 1), mode ({n},); {} balance and {} pump episodes of {t} steps; seed {seed}",
        count[0], count[1]
    );
    Ok(())
}
