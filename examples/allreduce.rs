//! The gradient all-reduce of a data-parallel step, alone: `mpirun -n N
//! target/release/examples/allreduce [FLOATS] [REPS]` sums a buffer of FLOATS f32 (default
//! 418,524: W4's parameters, `models/rssm.vmodel`) over the ranks REPS times (default 200, after
//! 20 warm-up sums) through the transport `vic run --distributed` uses, and prints the median,
//! the quartiles and the bus bandwidth 2(N−1)/N · bytes / time (docs/scaling.md).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let floats: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(418_524);
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let comm = match vic::train::distributed::connect() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("allreduce: {e}");
            std::process::exit(2);
        }
    };
    let n = comm.size();
    let mut buf: Vec<f32> = (0..floats).map(|i| (i % 7) as f32).collect();
    for _ in 0..20 {
        comm.sum_f32(&mut buf);
    }
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            comm.sum_f32(&mut buf);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    if comm.rank() == 0 {
        let bytes = (floats * 4) as f64;
        let busbw = 2.0 * (n as f64 - 1.0) / n as f64 * bytes / q(0.5);
        println!(
            "{}: {floats} f32 ({:.2} MB) over {n} rank(s), {reps} sums: median {:.1} µs (quartiles {:.1}–{:.1}), bus bandwidth {:.2} GB/s",
            comm.describe(),
            bytes / 1e6,
            q(0.5) * 1e6,
            q(0.25) * 1e6,
            q(0.75) * 1e6,
            busbw / 1e9
        );
    }
    vic::train::distributed::finish(0);
}
