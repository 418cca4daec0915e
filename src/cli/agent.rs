//! `vic agent`: flags, the run directory, one progress line per episode, and `returns.svg`;
//! the loop itself is the library's ([`vic::agent::learn::Agent`]).

use super::agent_text::{ctrl_c, eval_summary, evaluation_report, prepare_dir, resume_command};
/// The defaults of every flag (the library's, shared with `vic.agent`).
const D: AgentConfig = AgentConfig::DEFAULT;
pub use super::args::AgentArgs;
use super::session::open_for;
use crate::exit::flag_error;
use crate::exit::{FAILED, OK};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use vic::agent::behaviour::{BehaviourConfig, BehaviourStats};
use vic::agent::episodes::{self, Record};
use vic::agent::learn::{Agent, AgentConfig, AgentObserver, Progress};

struct Lines {
    stop: Arc<AtomicBool>,
    start: Instant,
    evals: Vec<f64>,
    stats: Option<BehaviourStats>,
    elbo: f64,
    /// When the last line was printed (a long run of updates prints one every 10 s).
    last_line: Instant,
}

impl AgentObserver for Lines {
    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
    fn episode(&mut self, rec: &Record, p: &Progress) {
        let t = self.start.elapsed().as_secs_f64();
        if rec.eval {
            self.evals.push(rec.ret);
            return;
        }
        if !self.evals.is_empty() {
            println!(
                "{:>8.0}s  env step {:>6}  evaluation: {}",
                t,
                rec.env_step - rec.length,
                eval_summary(&self.evals)
            );
            self.evals.clear();
        }
        let extra = match &self.stats {
            Some(s) => format!(
                "  ELBO {:>9.2}  imagined return {:>8.2}  critic loss {:>8.3}",
                self.elbo, s.objective, s.critic_loss
            ),
            None => String::new(),
        };
        println!(
            "{:>8.0}s  env step {:>6}  episode {:>4}  return {:>8.1}{extra}",
            t, rec.env_step, p.episodes, rec.ret
        );
        self.last_line = Instant::now();
    }
    fn updated(&mut self, p: &Progress, elbo: f64, b: &BehaviourStats) {
        self.elbo = elbo;
        self.stats = Some(b.clone());
        if self.last_line.elapsed().as_secs_f64() >= 10.0 {
            println!(
                "{:>8.0}s  env step {:>6}  update {:>5}  ELBO {:>9.2}  imagined return {:>8.2}  critic loss {:>8.3}",
                self.start.elapsed().as_secs_f64(),
                p.env_steps,
                p.updates,
                elbo,
                b.objective,
                b.critic_loss
            );
            self.last_line = Instant::now();
        }
    }
}

fn flush_evals(l: &mut Lines, step: u64) {
    if l.evals.is_empty() {
        return;
    }
    println!(
        "{:>8.0}s  env step {step:>6}  evaluation: {}",
        l.start.elapsed().as_secs_f64(),
        eval_summary(&l.evals)
    );
    l.evals.clear();
}

/// `returns.svg`: training returns and evaluation means against environment steps.
pub fn plot_returns(dir: &Path, title: &str) -> Result<PathBuf, String> {
    use vic::plot::{panels, Line, Panel};
    let recs = episodes::read(&dir.join("episodes.jsonl")).map_err(|d| d.message)?;
    let train: Vec<(f64, f64)> = recs
        .iter()
        .filter(|r| !r.eval)
        .map(|r| (r.env_step as f64, r.ret))
        .collect();
    let curve = episodes::eval_curve(&recs);
    let mut evals = Line::new(
        "evaluation (policy mode), mean ± s.e.",
        curve.iter().map(|(s, m, _)| (*s as f64, *m)).collect(),
        1,
    );
    evals.dots = true;
    evals.band = curve
        .iter()
        .map(|&(step, mean, n)| {
            let rs: Vec<f64> = (recs.iter())
                .filter(|r| r.eval && r.env_step == step)
                .map(|r| r.ret)
                .collect();
            let var =
                rs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0).max(1.0);
            let se = (var / n as f64).sqrt();
            (step as f64, mean - se, mean + se)
        })
        .collect();
    let path = dir.join("returns.svg");
    panels(
        &path,
        title,
        &[Panel {
            caption: "episode return".into(),
            x_desc: "environment steps".into(),
            y_desc: "return".into(),
            lines: vec![Line::new("training episode", train, 0).dots_only(), evals],
            marker: None,
            clip_outliers: false,
        }],
    )?;
    Ok(path)
}

pub fn agent(a: AgentArgs, color: bool) -> u8 {
    let resume = a.resume.is_some();
    let Some(out) = a.resume.clone().or_else(|| a.out.clone()) else {
        return flag_error("pass --out DIR".into(), "the run directory is required");
    };
    if let (Some(r), Some(o)) = (&a.resume, &a.out) {
        if r != o {
            return flag_error(
                format!("--resume {} and --out {} differ", r.display(), o.display()),
                "a resumed run continues in its own directory: drop --out",
            );
        }
    }
    let mut env = match vic::agent::open(&a.env) {
        Ok(e) => e,
        Err(d) => {
            crate::exit::coded(d.code, d.message, &d.help);
            return FAILED;
        }
    };
    let shape = env.spec().shape();
    let session = match open_for(&a.file, color, Some(&shape)) {
        Ok(s) => s,
        Err(c) => return c,
    };
    if session.model.ir().behaviour.is_none() {
        return flag_error(
            format!("`{}` has no `imagine` block", a.file.display()),
            "an agent learns behaviour in imagination: see models/dreamer_pendulum.vmodel",
        );
    }
    if (session.model.ir().behaviour.as_ref())
        .is_some_and(|b| b.start == vic::ir::ImagineStart::Prior)
    {
        return super::agent_known::known(a, session);
    }
    for (name, v) in [("--batch", a.batch), ("--length", a.length)] {
        if v == 0 {
            return flag_error(
                format!("{name} must be at least 1"),
                "pass a positive number",
            );
        }
    }
    // Checked before the run directory is touched ([`vic::agent::Agent::new`] resolves it).
    if let Err((msg, help)) =
        vic::agent::learn::resolve_starts("--starts ", a.starts, a.batch, a.length)
    {
        return flag_error(msg, &help);
    }
    let actor_lr = a.actor_lr.unwrap_or(D.behaviour.actor_lr);
    let critic_lr = a.critic_lr.unwrap_or(D.behaviour.critic_lr);
    for (name, v) in [
        ("--model-lr", a.model_lr),
        ("--actor-lr", actor_lr),
        ("--critic-lr", critic_lr),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return flag_error(
                format!("{name} must be a positive number, not {v}"),
                &format!(
                    "the defaults: --model-lr {} --actor-lr {} --critic-lr {}",
                    AgentConfig::DEFAULT.model_lr,
                    BehaviourConfig::DEFAULT.actor_lr,
                    BehaviourConfig::DEFAULT.critic_lr
                ),
            );
        }
    }
    let _lock = match prepare_dir(&out, resume, a.force, &vic::agent::learn::OUTPUTS) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let cfg = AgentConfig {
        env_steps: a.env_steps,
        prefill: a.prefill,
        train_every: a.train_every,
        batch: a.batch,
        length: a.length,
        starts: a.starts,
        model_lr: a.model_lr,
        model_clip: D.model_clip,
        behaviour: BehaviourConfig {
            actor_lr,
            critic_lr,
            return_norm: a.return_norm,
            symlog_rewards: a.symlog_rewards,
            slow_critic: a.slow_critic,
            clip: D.behaviour.clip,
        },
        eval_every: a.eval_every,
        eval_episodes: a.eval_episodes,
        seed: a.seed,
        threads: a.threads,
    };
    let spec = env.spec().clone();
    let name = session.model.ir().name.clone();
    let mut agent = match Agent::new(session.program, &spec, cfg, &out, resume) {
        Ok(x) => x,
        Err(d) => {
            crate::exit::coded(d.code, d.message, &d.help);
            return FAILED;
        }
    };
    if let Some(n) = a.evaluate {
        let returns = agent.evaluate_only(env.as_mut(), n.max(1));
        let at = format!("environment step {}", agent.progress.env_steps);
        return evaluation_report(&name, &out, &at, &spec.id, returns);
    }
    let _ = std::fs::write(out.join("model.vmodel"), &session.model.source);
    if !agent.changed.is_empty() {
        crate::exit::resume_changed(&agent.changed);
    }
    if resume && agent.progress.env_steps >= a.env_steps {
        eprintln!(
            "{:?}",
            miette::Report::new(
                miette::MietteDiagnostic::new(format!(
                    "the run is at environment step {}, and --env-steps asks for {} in all: there is nothing left to do",
                    agent.progress.env_steps, a.env_steps
                ))
                .with_code(vic::diag::Code::AlreadyTrained.as_str())
                .with_severity(miette::Severity::Warning)
                .with_help("--env-steps counts every step, resumed ones included: pass a larger total")
            )
        );
    }
    let stop = ctrl_c();
    println!(
        "agent {name} in {}: {} environment steps ({} done), an update every {} steps, evaluation every {}",
        spec.id, a.env_steps, agent.progress.env_steps, a.train_every, a.eval_every
    );
    let mut lines = Lines {
        stop: stop.clone(),
        start: Instant::now(),
        evals: Vec::new(),
        stats: None,
        elbo: f64::NAN,
        last_line: Instant::now(),
    };
    let result = agent.run(env.as_mut(), &mut lines);
    flush_evals(&mut lines, agent.progress.env_steps);
    let code = match result {
        Ok(()) => OK,
        Err(d) => {
            crate::exit::coded(d.code, d.message, &d.help);
            FAILED
        }
    };
    match plot_returns(&out, &format!("{name} in {}", spec.id)) {
        Ok(p) => println!("returns: {}", p.display()),
        Err(e) => eprintln!("warning: cannot draw returns.svg: {e}"),
    }
    if stop.load(Ordering::SeqCst) {
        println!(
            "interrupted at env step {}: checkpoint saved to {}\nto continue: {}",
            agent.progress.env_steps,
            out.display(),
            resume_command(&out)
        );
    }
    code
}
