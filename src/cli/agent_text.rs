//! The words both `vic agent` modes print: an evaluation's summary line and the command that
//! resumes a run (shared by `agent.rs`, a learned world model, and `agent_known.rs`, known
//! dynamics; neither imports the other's module for them).

use std::path::Path;

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
