//! The upper reference for `vic agent` on the pendulum: the policy of
//! `models/pendulum_control.vmodel`, trained by `vic run` through the known dynamics, acting
//! with its mode (2·tanh(loc)) in the built-in Gym pendulum from Gym's random initial states.
//!
//! ```sh
//! cargo run --release -- run models/pendulum_control.vmodel --steps 3000 --out runs/pendulum_control
//! cargo run --release --example known_dynamics_policy -- runs/pendulum_control 100
//! ```
//! prints the mean return over the episodes with its standard error.

use vic::agent::rollout::{episode, Policy};
use vic::diag::Diagnostic;
use vic::runtime::Dev;

struct Mlp {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Mlp {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut h = x.to_vec();
        let n = self.layers.len();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            let out = b.len();
            let mut y = b.clone();
            for (k, xk) in h.iter().enumerate() {
                for j in 0..out {
                    y[j] += xk * w[k * out + j];
                }
            }
            if i + 1 < n {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            h = y;
        }
        h
    }
}

impl Policy for Mlp {
    fn act(&mut self, obs: &[f32], _first: bool) -> Result<Vec<f32>, Diagnostic> {
        // The model's policy reads (cos θ, sin θ, θ̇): the pendulum's observation.
        let head = self.forward(obs);
        Ok(vec![2.0 * head[0].tanh()])
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map_or("runs/pendulum_control", String::as_str);
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let path = std::path::Path::new(dir).join("checkpoint.safetensors");
    let ck = match vic::runtime::checkpoint::load(&path, &Dev::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot load {}: {e}", path.display());
            std::process::exit(2);
        }
    };
    let mut layers = Vec::new();
    for i in 0.. {
        let (Ok(w), Ok(b)) = (
            ck.params.get(&format!("net.policy.l{i}.w")),
            ck.params.get(&format!("net.policy.l{i}.b")),
        ) else {
            break;
        };
        layers.push((w.to_host(), b.to_host()));
    }
    if layers.is_empty() {
        eprintln!("{} has no `policy` net", path.display());
        std::process::exit(2);
    }
    let mut pi = Mlp { layers };
    let mut env = vic::agent::open("pendulum").expect("the built-in pendulum");
    let mut returns = Vec::new();
    for seed in 0..n {
        let out = episode(env.as_mut(), &mut pi, 2_000_000 + seed, 200).expect("runs");
        returns.push(out.episode.ret());
    }
    let m = returns.iter().sum::<f64>() / n as f64;
    let var = returns.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (n as f64 - 1.0).max(1.0);
    println!(
        "pendulum: the known-dynamics policy of {dir}, {n} episodes: mean return {m:.1} ± {:.1} (s.e.), min {:.1}, max {:.1}",
        (var / n as f64).sqrt(),
        returns.iter().cloned().fold(f64::MAX, f64::min),
        returns.iter().cloned().fold(f64::MIN, f64::max)
    );
}
