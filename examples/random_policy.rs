//! The reference a learning agent must beat: a uniform random policy on an environment.
//!
//! ```sh
//! cargo run --release --example random_policy -- pendulum 100
//! VIC_PYTHON=/path/to/venv/bin/python cargo run --release --example random_policy -- gym:Pendulum-v1 100
//! ```
//! prints the mean return over the episodes with its standard error.

use vic::agent::rollout::{episode, Random};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("pendulum", String::as_str);
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut env = match vic::agent::open(name) {
        Ok(e) => e,
        Err(d) => {
            eprintln!("{}: {}\nhelp: {}", d.code.as_str(), d.message, d.help);
            std::process::exit(2);
        }
    };
    let (low, high) = (env.spec().act.low.clone(), env.spec().act.high.clone());
    let max = env.spec().max_steps.unwrap_or(1000);
    let mut returns = Vec::new();
    for seed in 0..n {
        let mut pi = Random::new(&low, &high, 1000 + seed);
        match episode(env.as_mut(), &mut pi, seed, max) {
            Ok(out) => returns.push(out.episode.ret()),
            Err(d) => {
                eprintln!("{}: {}\nhelp: {}", d.code.as_str(), d.message, d.help);
                std::process::exit(1);
            }
        }
    }
    let m = returns.iter().sum::<f64>() / n as f64;
    let var = returns.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (n as f64 - 1.0).max(1.0);
    println!(
        "{name}: random policy, {n} episodes: mean return {m:.1} ± {:.1} (s.e.), min {:.1}, max {:.1}",
        (var / n as f64).sqrt(),
        returns.iter().cloned().fold(f64::MAX, f64::min),
        returns.iter().cloned().fold(f64::MIN, f64::max)
    );
}
