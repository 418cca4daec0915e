//! Writes the data of `models/switching_ssm.vmodel`: a switching linear-Gaussian state-space
//! model with two regimes (a sticky Markov chain), a 2-d continuous state and 2-d observations.
//!
//! ```text
//! cargo run --example make_switching_data -- [--out models/data/switching.npz] [--n 128] [--t 40] [--seed 0]
//! ```
//!
//! The generating process (float32 array `y` (N, T, 2); the regimes `true_k` (N, T) and states `true_x`
//! (N, T, 2) are written too, for inspection):
//!
//!   k[1] ~ uniform over {0, 1},   k[t] = k[t-1] with probability 0.95
//!   x[1] ~ N(0, I),               x[t] = 0.8 x[t-1] + b[k[t]] + N(0, 0.3² I)
//!   y[t] = x[t] + N(0, 0.2² I)    b[0] = (1, 0.5), b[1] = (−1, −0.5)

use ndarray::{Array2, Array3};
use ndarray_npy::NpzWriter;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

fn main() {
    if let Err(e) = run() {
        eprintln!("make_switching_data: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut n, mut t, mut seed) = (128usize, 40usize, 0u64);
    let mut out = "models/data/switching.npz".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => out = value("--out")?,
            "--n" => n = value("--n")?.parse()?,
            "--t" => t = value("--t")?.parse()?,
            "--seed" => seed = value("--seed")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let bias = [[1.0f32, 0.5], [-1.0, -0.5]];
    let (mut ys, mut ks, mut xs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let mut k = usize::from(r.gen_bool(0.5));
        let mut x = [0.0f32; 2];
        for step in 0..t {
            let mut z = || -> f32 { StandardNormal.sample(&mut r) };
            if step == 0 {
                x = [z(), z()];
            } else {
                for (d, xd) in x.iter_mut().enumerate() {
                    *xd = 0.8 * *xd + bias[k][d] + 0.3 * z();
                }
            }
            for xd in x {
                ys.push(xd + 0.2 * z());
                xs.push(xd);
            }
            ks.push(k as f32);
            if r.gen_bool(0.05) {
                k = 1 - k;
            }
        }
    }
    let mut w = NpzWriter::new_compressed(std::fs::File::create(&out)?);
    w.add_array("y", &Array3::from_shape_vec((n, t, 2), ys)?)?;
    w.add_array("true_x", &Array3::from_shape_vec((n, t, 2), xs)?)?;
    w.add_array("true_k", &Array2::from_shape_vec((n, t), ks)?)?;
    w.finish()?;
    println!("wrote {out}: y ({n}, {t}, 2), true_x ({n}, {t}, 2), true_k ({n}, {t}); seed {seed}");
    Ok(())
}
