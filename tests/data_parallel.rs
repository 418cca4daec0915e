//! Data-parallel training without MPI: three ranks as threads of one process, joined by an
//! in-process [`Collective`] that sums in rank order, train `models/ssm.vmodel` on a global
//! batch of 8 sequences (split 3 + 3 + 2) and must reproduce the single-process trainer on the
//! same batch: every step's ELBO within 1e-5 relative and every parameter of every rank within
//! 1e-5 · (1 + |p|) after 6 Adam steps. The single process sums the 8 rows' gradients in one
//! worker, the ranks in three partial sums, so the float order differs and the tolerance is
//! exercised (the MPI test, `tests/distributed.rs`, splits as the fused workers do and agrees
//! bit for bit). Why 1e-5: f32 rounding of the reordered sums is ≈ 1e-7 relative to the
//! gradient's terms; Adam's update is scale-free in the gradient, so it moves by a few ulps of
//! lr = 1e-3 per step, far below 1e-5 after 6 steps. A wrong split (other rows or noise, a
//! gradient not summed or summed twice) moves the first ELBO by ≫ 1e-3 or parameters by ≈ lr.

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

use vic::lower::Program;
use vic::train::distributed::Collective;
use vic::train::{specs_of, TrainConfig, Trainer};

/// What the ranks of one process exchange: each writes its slot, then all read every slot.
struct Board {
    barrier: Barrier,
    f32s: Mutex<Vec<Vec<f32>>>,
    f64s: Mutex<Vec<Vec<f64>>>,
    u64s: Mutex<Vec<u64>>,
}

struct Local {
    rank: usize,
    size: usize,
    board: Arc<Board>,
}

impl Local {
    /// Publish, wait for every rank, combine in rank order, wait again (so the slots can be
    /// reused by the next collective).
    fn exchange<T: Clone, R>(
        &self,
        slots: &Mutex<Vec<T>>,
        mine: T,
        combine: impl FnOnce(&[T]) -> R,
    ) -> R {
        slots.lock().unwrap()[self.rank] = mine;
        self.board.barrier.wait();
        let r = combine(&slots.lock().unwrap());
        self.board.barrier.wait();
        r
    }
}

impl Collective for Local {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, buf: &mut [f32]) {
        let sum = self.exchange(&self.board.f32s, buf.to_vec(), |all| {
            let mut s = all[0].clone();
            for v in &all[1..] {
                for (a, b) in s.iter_mut().zip(v) {
                    *a += b;
                }
            }
            s
        });
        buf.copy_from_slice(&sum);
    }
    fn sum_f64(&self, buf: &mut [f64]) {
        let sum = self.exchange(&self.board.f64s, buf.to_vec(), |all| {
            let mut s = all[0].clone();
            for v in &all[1..] {
                for (a, b) in s.iter_mut().zip(v) {
                    *a += b;
                }
            }
            s
        });
        buf.copy_from_slice(&sum);
    }
    fn min_max(&self, x: u64) -> (u64, u64) {
        self.exchange(&self.board.u64s, x, |all| {
            (*all.iter().min().unwrap(), *all.iter().max().unwrap())
        })
    }
    fn describe(&self) -> String {
        format!("threads, {} rank(s)", self.size)
    }
}

fn trainer() -> Trainer {
    trainer_with("")
}

/// `models/ssm.vmodel` with `objective` (a block) added before its closing brace.
fn trainer_with(objective: &str) -> Trainer {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut src = std::fs::read_to_string(root.join("ssm.vmodel")).unwrap();
    let end = src.rfind('}').unwrap();
    src.insert_str(end, objective);
    let m = vic::compile(&src, "ssm.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let rel = p.model.data.clone().expect("ssm names its data");
    let d = vic::data::load(root.join(rel), &specs_of(&p), p.plan.max_lag as usize + 1)
        .expect("shipped data loads");
    let cfg = TrainConfig {
        batch: 8,
        seed: 5,
        // One fused worker: the single process sums all 8 rows in one pass.
        threads: 1,
        ..TrainConfig::default()
    };
    Trainer::new(p, Some(d), cfg).expect("trainer")
}

const STEPS: usize = 6;

/// Per-step ELBOs and the final parameters.
fn train(tr: &mut Trainer) -> (Vec<f64>, Vec<Vec<f32>>) {
    let elbos = (0..STEPS).map(|_| tr.step().expect("step").elbo).collect();
    (elbos, tr.store.iter().map(|(_, p)| p.to_host()).collect())
}

#[test]
fn three_ranks_in_one_process_reproduce_the_single_process_step() {
    let worst = compare("");
    eprintln!("[3 ranks vs 1 process: largest parameter difference {worst:e}]");
}

/// Free nats after the mean clamp the batch's mean KL: with the floor just below the first
/// batch's mean KL at t = 1 (so the global clamp is off while a rank's own mean may be under
/// the floor), the ranks must decide on the global mean, as the single process does.
#[test]
fn free_nats_after_the_mean_are_decided_on_the_global_batch() {
    let mut probe = trainer();
    let first = probe.step().expect("step");
    // Term 2 is KL(q(s_1) ‖ p(s_1)): one row per sequence, so its term mean is the mean the
    // floor compares.
    let floor = first.terms[1] * 0.999;
    let worst = compare(&format!(
        "  objective {{\n    free_nats = {floor:.6}, placement = after_mean\n  }}\n"
    ));
    eprintln!("[free nats {floor:.6}: largest parameter difference {worst:e}]");
}

/// Train the model (with `objective`) in one process and on 3 ranks; compare; return the
/// largest parameter difference.
fn compare(objective: &str) -> f64 {
    let mut one = trainer_with(objective);
    let start: Vec<Vec<f32>> = one.store.iter().map(|(_, p)| p.to_host()).collect();
    let (e1, p1) = train(&mut one);
    assert!(one.is_lead() && one.distributed().is_none());

    let size = 3;
    let board = Arc::new(Board {
        barrier: Barrier::new(size),
        f32s: Mutex::new(vec![Vec::new(); size]),
        f64s: Mutex::new(vec![Vec::new(); size]),
        u64s: Mutex::new(vec![0; size]),
    });
    let ranks: Vec<_> = (0..size)
        .map(|rank| {
            let board = board.clone();
            let objective = objective.to_string();
            std::thread::spawn(move || {
                let mut tr = trainer_with(&objective);
                tr.distribute(Box::new(Local { rank, size, board }))
                    .expect("ssm splits over ranks");
                assert_eq!(tr.is_lead(), rank == 0);
                train(&mut tr)
            })
        })
        .collect();
    let results: Vec<_> = ranks.into_iter().map(|h| h.join().unwrap()).collect();

    let mut worst = 0.0f64;
    let mut moved = false;
    for (rank, (e, p)) in results.iter().enumerate() {
        for (s, (x, y)) in e1.iter().zip(e).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                "rank {rank}, step {}: ELBO {x} vs {y}",
                s + 1
            );
        }
        for (i, ((a, b), s)) in p1.iter().zip(p).zip(&start).enumerate() {
            for ((u, v), w) in a.iter().zip(b).zip(s) {
                let d = f64::from((u - v).abs());
                assert!(
                    d <= 1e-5 * (1.0 + f64::from(u.abs())),
                    "rank {rank}, parameter {i}: {u} vs {v}"
                );
                worst = worst.max(d);
                moved |= (u - w).abs() > 1e-4;
            }
        }
        // Every rank holds the same parameters, bit for bit.
        assert_eq!(
            p.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>(),
            results[0]
                .1
                .iter()
                .flatten()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
            "rank {rank} differs from rank 0"
        );
    }
    assert!(moved, "no parameter moved: the comparison is vacuous");
    worst
}

#[test]
fn a_batch_smaller_than_the_ranks_is_refused() {
    let mut tr = trainer();
    tr.cfg.batch = 2;
    let board = Arc::new(Board {
        barrier: Barrier::new(1),
        f32s: Mutex::new(vec![Vec::new(); 3]),
        f64s: Mutex::new(vec![Vec::new(); 3]),
        u64s: Mutex::new(vec![0; 3]),
    });
    let e = tr
        .distribute(Box::new(Local {
            rank: 0,
            size: 3,
            board,
        }))
        .expect_err("refused");
    assert!(
        e.to_string()
            .contains("a batch of 2 sequence(s) cannot be split over 3 ranks"),
        "{e}"
    );
    assert!(tr.distributed().is_none(), "a refused trainer stays single");
}
