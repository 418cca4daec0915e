//! `vic agent` on a model with known dynamics (`imagine { … start = prior }`): behaviour
//! learned in imagination in the model's own `p` ([`vic::agent::known::Known`]), evaluated in
//! `--env` (the built-in `pendulum`, or Gymnasium through the bridge).
//!
//! Input: the parsed `vic agent` flags (`--updates`, `--starts`, the learning rates, the
//! evaluation flags, `--resume`/`--evaluate`) and the opened model. Output: the run directory
//! (see the library's module) with `returns.svg` (evaluation returns against updates), one
//! progress line per evaluation, and the exit code. The world-model flags (`--env-steps`,
//! `--prefill`, `--train-every`, `--batch`, `--length`, `--model-lr`) do not apply.

use super::agent_text::{ctrl_c, eval_summary, evaluation_report, prepare_dir, resume_command};
use super::session::Session;
use crate::exit::{coded, flag_error, FAILED, OK};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use vic::agent::behaviour::{BehaviourConfig, BehaviourStats};
use vic::agent::episodes;
use vic::agent::known::{Known, KnownConfig, KnownObserver, KnownProgress};

struct Lines {
    stop: Arc<AtomicBool>,
    start: Instant,
    last: Instant,
}

impl KnownObserver for Lines {
    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn updated(&mut self, p: &KnownProgress, b: &BehaviourStats, rollout: f64) {
        if self.last.elapsed().as_secs_f64() >= 10.0 {
            println!(
                "{:>8.0}s  update {:>6}  imagined return {:>8.2}  critic loss {:>8.3}  rollout in p {:>8.1}",
                self.start.elapsed().as_secs_f64(),
                p.updates,
                b.objective,
                b.critic_loss,
                rollout
            );
            self.last = Instant::now();
        }
    }
    fn evaluated(&mut self, p: &KnownProgress, returns: &[f64]) {
        if returns.is_empty() {
            return;
        }
        println!(
            "{:>8.0}s  update {:>6}  evaluation: {}",
            self.start.elapsed().as_secs_f64(),
            p.updates,
            eval_summary(returns)
        );
        self.last = Instant::now();
    }
}

/// `returns.svg`: evaluation returns (policy mode, in the environment) against updates.
fn plot(dir: &Path, title: &str) -> Result<std::path::PathBuf, String> {
    use vic::plot::{panels, Line, Panel};
    let recs = episodes::read(&dir.join("episodes.jsonl")).map_err(|d| d.message)?;
    let curve = episodes::eval_curve(&recs);
    let mut evals = Line::new(
        "evaluation mean (policy mode)",
        curve.iter().map(|(s, m, _)| (*s as f64, *m)).collect(),
        1,
    );
    evals.dots = true;
    let each: Vec<(f64, f64)> = (recs.iter().filter(|r| r.eval))
        .map(|r| (r.env_step as f64, r.ret))
        .collect();
    let path = dir.join("returns.svg");
    panels(
        &path,
        title,
        &[Panel {
            caption: "episode return".into(),
            x_desc: "behaviour updates (imagined in the known model)".into(),
            y_desc: "return".into(),
            lines: vec![Line::new("evaluation episode", each, 0).dots_only(), evals],
            marker: None,
            clip_outliers: false,
        }],
    )?;
    Ok(path)
}

/// Runs `vic agent` in known-dynamics mode.
pub fn known(a: super::args::AgentArgs, session: Session) -> u8 {
    let resume = a.resume.is_some();
    let Some(out) = a.resume.clone().or_else(|| a.out.clone()) else {
        return flag_error("pass --out DIR".into(), "the run directory is required");
    };
    let starts = a.starts.unwrap_or(KnownConfig::default().starts);
    if starts == 0 {
        return flag_error(
            "--starts must be at least 1".into(),
            "pass a positive number",
        );
    }
    let d = KnownConfig::default().behaviour;
    let actor_lr = a.actor_lr.unwrap_or(d.actor_lr);
    let critic_lr = a.critic_lr.unwrap_or(d.critic_lr);
    for (name, v) in [("--actor-lr", actor_lr), ("--critic-lr", critic_lr)] {
        if !(v.is_finite() && v > 0.0) {
            return flag_error(
                format!("{name} must be a positive number, not {v}"),
                "e.g. --actor-lr 3e-4 --critic-lr 3e-4",
            );
        }
    }
    let mut env = match vic::agent::open(&a.env) {
        Ok(e) => e,
        Err(d) => {
            coded(d.code, d.message, &d.help);
            return FAILED;
        }
    };
    let _lock = match prepare_dir(&out, resume, a.force, &vic::agent::known::OUTPUTS) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let cfg = KnownConfig {
        updates: a.updates,
        starts,
        behaviour: BehaviourConfig {
            actor_lr,
            critic_lr,
            ..d
        },
        eval_every: a.eval_every,
        eval_episodes: a.eval_episodes,
        seed: a.seed,
        threads: a.threads,
        ..KnownConfig::default()
    };
    let spec = env.spec().clone();
    let name = session.model.ir().name.clone();
    let source = session.model.source.clone();
    let mut k = match Known::new(session.program, &spec, cfg, &out, resume) {
        Ok(x) => x,
        Err(d) => {
            coded(d.code, d.message, &d.help);
            return FAILED;
        }
    };
    if let Some(n) = a.evaluate {
        let returns = k.evaluate_only(env.as_mut(), n.max(1));
        let at = format!("update {}", k.progress.updates);
        return evaluation_report(&name, &out, &at, &spec.id, returns);
    }
    let _ = std::fs::write(out.join("model.vmodel"), &source);
    if !k.changed.is_empty() {
        crate::exit::resume_changed(&k.changed);
    }
    let stop = ctrl_c();
    println!(
        "agent {name} with known dynamics: {} behaviour updates ({} done) of {} start states, evaluation in {} every {} updates",
        a.updates, k.progress.updates, starts, spec.id, a.eval_every
    );
    let mut lines = Lines {
        stop: stop.clone(),
        start: Instant::now(),
        last: Instant::now(),
    };
    let code = match k.run(env.as_mut(), &mut lines) {
        Ok(()) => OK,
        Err(d) => {
            coded(d.code, d.message, &d.help);
            FAILED
        }
    };
    println!(
        "{} updates in {:.0} s",
        k.progress.updates, k.progress.seconds
    );
    match plot(
        &out,
        &format!("{name} (known dynamics), evaluated in {}", spec.id),
    ) {
        Ok(p) => println!("returns: {}", p.display()),
        Err(e) => eprintln!("warning: cannot draw returns.svg: {e}"),
    }
    if stop.load(Ordering::SeqCst) {
        println!(
            "interrupted at update {}: checkpoint saved to {}\nto continue: {}",
            k.progress.updates,
            out.display(),
            resume_command(&out)
        );
    }
    code
}
