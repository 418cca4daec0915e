//! The second worker: one dedicated thread that runs a job handed over by the caller while
//! the caller runs its own share. Between steps it polls briefly, yielding the core each time
//! (the next job usually comes within a millisecond), and then parks, so a step pays no thread wake-up in steady training
//! and an idle trainer costs no CPU. (With a rayon pool, whose thread sleeps between the passes,
//! W1 ran 2,234 steps/s on two threads; with this worker 2,685.)

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the worker spins for the next job before it parks.
const SPIN: Duration = Duration::from_micros(2000);

type Job = *const (dyn Fn() + Sync);

struct Slot {
    job: UnsafeCell<Option<Job>>,
    epoch: AtomicU64,
    done: AtomicU64,
    panicked: AtomicBool,
}

// SAFETY: `job` is written by the caller before it publishes a new epoch (Release) and read by
// the worker after it observes that epoch (Acquire); the caller does not touch it again until
// `done` reaches the epoch.
unsafe impl Sync for Slot {}
unsafe impl Send for Slot {}

struct Worker {
    slot: Arc<Slot>,
    thread: Thread,
}

fn worker() -> &'static Worker {
    static W: OnceLock<Worker> = OnceLock::new();
    W.get_or_init(|| {
        let slot = Arc::new(Slot {
            job: UnsafeCell::new(None),
            epoch: AtomicU64::new(0),
            done: AtomicU64::new(0),
            panicked: AtomicBool::new(false),
        });
        let s = slot.clone();
        let handle = std::thread::Builder::new()
            .name("vic-worker".into())
            .spawn(move || {
                let mut seen = 0;
                loop {
                    let start = Instant::now();
                    let e = loop {
                        let e = s.epoch.load(Ordering::Acquire);
                        if e != seen {
                            break e;
                        }
                        if start.elapsed() < SPIN {
                            // Yield, not just spin: on a busy machine the caller may be
                            // waiting for this very core.
                            std::thread::yield_now();
                        } else {
                            std::thread::park_timeout(Duration::from_millis(50));
                        }
                    };
                    seen = e;
                    // SAFETY: see `Slot`; the job outlives this call (the caller waits).
                    let job = unsafe { (*s.job.get()).expect("a job with each epoch") };
                    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                        (*job)()
                    }));
                    if ok.is_err() {
                        s.panicked.store(true, Ordering::Release);
                    }
                    s.done.store(e, Ordering::Release);
                }
            })
            .expect("spawning the second worker");
        Worker {
            slot,
            thread: handle.thread().clone(),
        }
    })
}

/// Run `a` on this thread and `b` on the worker, and return when both are done. When another
/// thread holds the worker (two trainers at once), both run here, one after the other.
pub fn join(a: impl FnOnce(), b: impl Fn() + Sync) {
    static BUSY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = match BUSY.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            a();
            b();
            return;
        }
    };
    let w = worker();
    let s = &w.slot;
    let b_ref: &(dyn Fn() + Sync) = &b;
    // SAFETY: the lifetime is erased only for the duration of this call, which waits for the
    // worker to finish the job before `b` goes out of scope.
    let job: Job = unsafe { std::mem::transmute::<&(dyn Fn() + Sync), Job>(b_ref) };
    unsafe { *s.job.get() = Some(job) };
    let e = s.epoch.load(Ordering::Relaxed) + 1;
    s.epoch.store(e, Ordering::Release);
    w.thread.unpark();
    // `b` must not go out of scope while the worker runs it, even if `a` panics.
    let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(a));
    let start = Instant::now();
    while s.done.load(Ordering::Acquire) != e {
        if start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        std::thread::yield_now();
    }
    if let Err(p) = mine {
        std::panic::resume_unwind(p);
    }
    if s.panicked.swap(false, Ordering::AcqRel) {
        panic!("the second worker panicked");
    }
}

/// Apply `f` to every item, the items split in two halves of about equal `weight`, one half on
/// this thread and one on the worker.
pub fn each<T: Send>(items: Vec<T>, weight: impl Fn(&T) -> usize, f: impl Fn(T) + Sync) {
    let total: usize = items.iter().map(&weight).sum();
    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut acc = 0;
    for it in items {
        if acc * 2 < total {
            acc += weight(&it);
            first.push(it);
        } else {
            second.push(it);
        }
    }
    let second = std::sync::Mutex::new(Some(second));
    join(
        || first.into_iter().for_each(&f),
        || {
            let items = second.lock().unwrap_or_else(|p| p.into_inner()).take();
            items.into_iter().flatten().for_each(&f);
        },
    );
}
