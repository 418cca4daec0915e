//! The floor under a training step made of matrix products (docs/performance.md, issue 8):
//! builds the fused program of a `vic bench` workload for one worker's share of the batch,
//! lists every matrix product of its forward and backward pass with the shapes the graph gives
//! them, and runs exactly that list with `gemm` 0.19 (the crate and version the fused runtime
//! uses, no parallelism inside a product) on two threads at once, as the two workers do, with
//! nothing else in the step.
//!
//! ```sh
//! cargo run --release --example gemm_ceiling -- W4     # rssm, B = 16, T = 50
//! cargo run --release --example gemm_ceiling -- W5     # sac, B = 256, horizon 50
//! ```

use std::sync::{Arc, Barrier};
use std::time::Instant;
use vic::fused::build::build;
use vic::fused::graph::Op;
use vic::lower::Program;
use vic::runtime::{rng, Dev};

/// `m × k` times `k × n`; `ta`: A is read transposed, `tb`: B is read transposed.
#[derive(Clone, Copy, Debug)]
struct Product {
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
}

fn products(g: &vic::fused::graph::Graph) -> Vec<Product> {
    let p = |m, k, n, ta, tb| Product { m, k, n, ta, tb };
    let mut out = Vec::new();
    for op in &g.ops {
        match op {
            Op::Dense {
                xs,
                w,
                out: o,
                wgrad,
                ..
            } => {
                let (m, n) = (o.rows, g.cols(*o));
                for (x, _) in xs {
                    let k = g.cols(*x);
                    out.push(p(m, k, n, false, false));
                    if g.grad(*x) {
                        out.push(p(m, n, k, false, true));
                    }
                    if *wgrad && g.bufs[*w].grad {
                        out.push(p(k, m, n, true, false));
                    }
                }
            }
            Op::DenseGrad { xs, dpre, .. } => {
                for (x, _) in xs {
                    out.push(p(g.cols(*x), dpre.rows, g.cols(*dpre), true, false));
                }
            }
            Op::Gru {
                xs,
                h,
                out: o,
                wgrad,
                wi,
                ..
            } => {
                let (m, hd) = (o.rows, g.cols(*o));
                let h3 = 3 * hd;
                for (x, _) in xs {
                    let k = g.cols(*x);
                    out.push(p(m, k, h3, false, false));
                    if g.grad(*x) {
                        out.push(p(m, h3, k, false, true));
                    }
                    if *wgrad && g.bufs[*wi].grad {
                        out.push(p(k, m, h3, true, false));
                    }
                }
                out.push(p(m, hd, h3, false, false));
                if g.grad(*h) {
                    out.push(p(m, h3, hd, false, true));
                }
                if *wgrad && g.bufs[*wi].grad {
                    out.push(p(hd, m, h3, true, false));
                }
            }
            Op::GruGrad { xs, h, dgi, .. } => {
                let h3 = g.cols(*dgi);
                for (x, _) in xs {
                    out.push(p(g.cols(*x), dgi.rows, h3, true, false));
                }
                out.push(p(g.cols(*h), dgi.rows, h3, true, false));
            }
            Op::Gemm { a, out: o, .. } => {
                out.push(p(a.rows, g.cols(*a), g.cols(*o), false, false));
            }
            _ => {}
        }
    }
    out
}

fn run(list: &[Product], reps: usize) -> f64 {
    let size = |p: &Product| (p.m * p.k, p.k * p.n, p.m * p.n);
    let bufs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = list
        .iter()
        .map(|p| {
            let (a, b, c) = size(p);
            (vec![0.5; a], vec![0.25; b], vec![0.0; c])
        })
        .collect();
    let mut bufs = bufs;
    let t = Instant::now();
    for _ in 0..reps {
        for (p, (a, b, c)) in list.iter().zip(bufs.iter_mut()) {
            // Row-major A (m×k) or Aᵀ stored (k×m); B (k×n) or Bᵀ stored (n×k).
            let (a_rs, a_cs) = if p.ta { (1, p.m) } else { (p.k, 1) };
            let (b_rs, b_cs) = if p.tb { (1, p.k) } else { (p.n, 1) };
            // SAFETY: the buffers hold the shapes above.
            unsafe {
                gemm::gemm(
                    p.m,
                    p.n,
                    p.k,
                    c.as_mut_ptr(),
                    1,
                    p.n as isize,
                    true,
                    a.as_ptr(),
                    a_cs as isize,
                    a_rs as isize,
                    b.as_ptr(),
                    b_cs as isize,
                    b_rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "W5".into());
    let (src, b, t, jax) = match which.as_str() {
        "W4" => (include_str!("../models/rssm.vmodel"), 16, 50, 38.76),
        _ => (include_str!("../models/sac.vmodel"), 256, 50, 17.26),
    };
    let m = vic::compile(src, "model.vmodel").expect("compiles");
    let prog = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = prog
        .init_params(&Dev::default(), &mut rng::seeded(1))
        .expect("params");
    let (index, _) = vic::agent::learn::param_index(&store);
    let share = build(&prog, &index, b / 2, t).expect("the fused runtime runs it");
    let list = products(&share.g);
    let flops: f64 = list
        .iter()
        .map(|p| 2.0 * (p.m * p.k * p.n) as f64)
        .sum::<f64>()
        * 2.0;
    let reps = 40;
    // Warm up, then both threads at once.
    run(&list, 3);
    let barrier = Arc::new(Barrier::new(2));
    let l2 = list.clone();
    let b2 = barrier.clone();
    let other = std::thread::spawn(move || {
        b2.wait();
        run(&l2, reps)
    });
    barrier.wait();
    let mine = run(&list, reps);
    let theirs = other.join().expect("thread");
    let step = mine.max(theirs);
    let budget = 1.0 / (2.0 * jax);
    // Per shape: the share of the FLOPs and the rate of that shape alone on two threads.
    let mut shapes: Vec<(usize, usize, usize, bool, bool)> =
        list.iter().map(|p| (p.m, p.k, p.n, p.ta, p.tb)).collect();
    shapes.sort();
    shapes.dedup();
    let mut rows: Vec<(f64, String)> = Vec::new();
    for sh in shapes {
        let group: Vec<Product> = list
            .iter()
            .copied()
            .filter(|p| (p.m, p.k, p.n, p.ta, p.tb) == sh)
            .collect();
        let f: f64 = group
            .iter()
            .map(|p| 2.0 * (p.m * p.k * p.n) as f64)
            .sum::<f64>()
            * 2.0;
        if f / flops < 0.02 {
            continue;
        }
        let reps = (2e8 / f).clamp(5.0, 2000.0) as usize;
        run(&group, 2);
        let (g2, b2) = (group.clone(), Arc::new(Barrier::new(2)));
        let b3 = b2.clone();
        let th = std::thread::spawn(move || {
            b3.wait();
            run(&g2, reps)
        });
        b2.wait();
        let t = run(&group, reps).max(th.join().expect("thread"));
        rows.push((
            f / flops,
            format!(
                "  {:>5.1}% of the FLOPs: {} × ({}×{} · {}×{}{}{}) per worker at {:.0} GFLOP/s",
                100.0 * f / flops,
                group.len(),
                sh.0,
                sh.1,
                sh.1,
                sh.2,
                if sh.3 { ", A transposed" } else { "" },
                if sh.4 { ", B transposed" } else { "" },
                f / t / 1e9
            ),
        ));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "{which}: {} products per worker, {:.3e} FLOPs per step (both workers); products alone on two threads: {:.2} ms per step = {:.0} GFLOP/s; twice JAX ({jax} steps/s) leaves {:.2} ms per step: the products alone take {:.0}% of it",
        list.len(),
        flops,
        step * 1e3,
        flops / step / 1e9,
        budget * 1e3,
        100.0 * step / budget
    );
    for (_, r) in rows {
        println!("{r}");
    }
}
