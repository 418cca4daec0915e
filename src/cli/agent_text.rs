//! What both `vic agent` modes share: the run directory's preparation, an evaluation's summary
//! line and the command that resumes a run (`agent.rs`, a learned world model, and
//! `agent_known.rs`, known dynamics; neither imports the other's module for them).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// [`vic::train::rundir::prepare`]: creates and claims the run directory `out` (the lock;
/// `E094`/`E095` as `vic run`), and with `--force` on a new run removes the files `outputs` of
/// a run it held. `Err`: the exit code.
pub(super) fn prepare_dir(
    out: &Path,
    resume: bool,
    force: bool,
    outputs: &[&str],
) -> Result<vic::train::rundir::RunLock, u8> {
    vic::train::rundir::prepare(out, resume, force, outputs, &mut |n| eprintln!("note: {n}"))
        .map_err(super::io::claim_error)
}

/// `mean return −123.4 ± 5.6 (10 episodes)`: the mean and its standard error.
pub(super) fn eval_summary(returns: &[f64]) -> String {
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    if returns.len() < 2 {
        return format!("return {mean:>8.1} (1 episode)");
    }
    let var = returns.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!(
        "mean return {mean:>8.1} ± {:.1} ({} episodes)",
        (var / n).sqrt(),
        returns.len()
    )
}

/// `vic agent --evaluate N`'s answer: the run (`name` from `out`, where it stands `at`), the
/// environment and the returns' summary, or the diagnostic. The exit code.
pub(super) fn evaluation_report(
    name: &str,
    out: &Path,
    at: &str,
    env: &str,
    returns: Result<Vec<f64>, vic::diag::Diagnostic>,
) -> u8 {
    match returns {
        Ok(returns) => {
            let lo = returns.iter().cloned().fold(f64::MAX, f64::min);
            let hi = returns.iter().cloned().fold(f64::MIN, f64::max);
            println!(
                "{name} from {} ({at}) in {env}: {}, min {lo:.1}, max {hi:.1}",
                out.display(),
                eval_summary(&returns)
            );
            crate::exit::OK
        }
        Err(d) => {
            crate::exit::coded(d.code, d.message, &d.help);
            crate::exit::FAILED
        }
    }
}

/// This command line with `--out DIR` (or `--resume DIR`) as `--resume DIR` and no `--force`:
/// the command that continues the run with the same settings.
pub(super) fn resume_command(out: &Path) -> String {
    let mut parts = vec!["vic".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" | "--resume" => {
                args.next();
            }
            "--force" => {}
            _ if a.starts_with("--out=") || a.starts_with("--resume=") => {}
            _ => parts.push(a),
        }
    }
    parts.push("--resume".into());
    parts.push(out.display().to_string());
    parts.join(" ")
}

/// A flag Ctrl-C sets (the loop checks it between updates and checkpoints).
pub(super) fn ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    stop
}
