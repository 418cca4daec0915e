//! `--env gym:ID`: a Gymnasium environment in a Python subprocess, spoken to over the
//! `vic-env/1` line protocol documented in `scripts/gym_bridge.py` (whose text is compiled
//! into vic, so an installed `vic` needs no repository checkout). The interpreter is `$VIC_PYTHON`,
//! else `python3`.
//!
//! Every fault — no Python, no gymnasium, an unknown id, a non-Box space, a bridge that dies
//! or stops answering, a malformed line — is a diagnostic; nothing waits forever: each reply
//! has a deadline.

use super::env::{check_action, Env, EnvSpec, Space, Step};
use crate::diag::{Code, Diagnostic};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;

/// The bridge's source.
pub const SCRIPT: &str = include_str!("../../scripts/gym_bridge.py");
/// The protocol version the hello line must name.
pub const PROTOCOL: &str = "vic-env/1";
/// How long the bridge may take to import gymnasium and make the environment.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long one reset or step may take.
const STEP_DEADLINE: Duration = Duration::from_secs(60);

const INSTALL_HELP: &str =
    "install it with `python3 -m pip install gymnasium` (or point $VIC_PYTHON at a Python that has it)";

/// A running bridge.
pub struct GymBridge {
    spec: EnvSpec,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

fn python() -> String {
    std::env::var("VIC_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn protocol_error(id: &str, what: impl std::fmt::Display) -> Diagnostic {
    Diagnostic::new(
        Code::EnvProtocol,
        format!("the Gymnasium bridge for `{id}` {what}"),
    )
    .help("this is a fault in the bridge or in the environment; run the environment in Python to see its own error")
}

fn floats(v: &Value, key: &str) -> Option<Vec<f32>> {
    v.get(key)?
        .as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32))
        .collect()
}

impl GymBridge {
    /// Starts the bridge for Gymnasium id `id` and reads its hello line.
    pub fn start(id: &str) -> Result<GymBridge, Diagnostic> {
        let py = python();
        let mut cmd = Command::new(&py);
        cmd.arg("-c").arg(SCRIPT).arg(id);
        Self::start_command(cmd, id)
    }

    /// Starts a bridge with a given command line (a test may run a different interpreter,
    /// environment or script) and reads its hello line.
    pub fn start_command(mut cmd: Command, id: &str) -> Result<GymBridge, Diagnostic> {
        let py = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Diagnostic::new(
                    Code::EnvUnavailable,
                    format!("cannot run `{py}` for the Gymnasium bridge: {e}"),
                )
                .help(format!(
                    "`--env gym:ID` needs Python 3 with gymnasium: install Python 3, then {INSTALL_HELP}; or use the built-in `--env pendulum`"
                ))
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = pump(child.stdout.take().expect("piped stdout"));
        let stderr = {
            let (tx, rx) = channel();
            let mut err = child.stderr.take().expect("piped stderr");
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                let _ = tx.send(s);
            });
            rx
        };
        let mut bridge = GymBridge {
            spec: EnvSpec {
                id: format!("gym:{id}"),
                obs: Space {
                    low: vec![],
                    high: vec![],
                },
                act: Space {
                    low: vec![],
                    high: vec![],
                },
                max_steps: None,
                discrete: None,
            },
            child,
            stdin,
            lines,
            stderr,
        };
        let hello = bridge.reply(START_DEADLINE)?;
        if let Some(err) = hello.get("error").and_then(Value::as_str) {
            let kind = hello.get("kind").and_then(Value::as_str).unwrap_or("");
            return Err(match kind {
                "missing_gymnasium" => Diagnostic::new(
                    Code::EnvUnavailable,
                    format!("`--env gym:{id}`: {err}"),
                )
                .help(INSTALL_HELP.to_string()),
                "unsupported_space" => Diagnostic::new(
                    Code::EnvSpace,
                    format!("`gym:{id}` cannot be used: {err}"),
                )
                .help("vic's agent acts on vector observations with continuous (Box) or discrete (Discrete) actions: pick an environment with a Box observation space"),
                _ => Diagnostic::new(Code::UnknownEnv, format!("Gymnasium cannot make `{id}`: {err}"))
                    .help("check the id against `gymnasium.envs.registry` (for example `Pendulum-v1`)"),
            });
        }
        if hello.get("protocol").and_then(Value::as_str) != Some(PROTOCOL) {
            return Err(protocol_error(
                id,
                format!("spoke an unknown protocol: {hello}"),
            ));
        }
        let (Some(ol), Some(oh), Some(al), Some(ah)) = (
            floats(&hello, "obs_low"),
            floats(&hello, "obs_high"),
            floats(&hello, "act_low"),
            floats(&hello, "act_high"),
        ) else {
            return Err(protocol_error(
                id,
                format!("sent a malformed hello: {hello}"),
            ));
        };
        if ol.len() != oh.len() || al.len() != ah.len() || ol.is_empty() || al.is_empty() {
            return Err(protocol_error(
                id,
                format!("sent inconsistent spaces: {hello}"),
            ));
        }
        bridge.spec.obs = Space { low: ol, high: oh };
        bridge.spec.act = Space { low: al, high: ah };
        bridge.spec.discrete = match hello.get("act_n") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 && n as usize == bridge.spec.act.dim() => Some(n as usize),
                _ => {
                    return Err(protocol_error(
                        id,
                        format!("sent a Discrete space that is not a one-hot box: {hello}"),
                    ))
                }
            },
        };
        bridge.spec.max_steps = hello
            .get("max_steps")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        Ok(bridge)
    }

    fn id(&self) -> &str {
        self.spec.id.trim_start_matches("gym:")
    }

    /// The next line as JSON, or a diagnostic if the bridge died, hung or sent garbage.
    fn reply(&mut self, deadline: Duration) -> Result<Value, Diagnostic> {
        match self.lines.recv_timeout(deadline) {
            Ok(line) => serde_json::from_str(&line).map_err(|e| {
                protocol_error(
                    self.id(),
                    format!("sent a line that is not JSON ({e}): {line}"),
                )
            }),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(protocol_error(
                    self.id(),
                    format!("did not answer within {} s", deadline.as_secs()),
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                let stderr = self
                    .stderr
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(protocol_error(
                    self.id(),
                    format!(
                        "exited ({}){}",
                        status.map_or("unknown status".into(), |s| s.to_string()),
                        if tail.is_empty() {
                            String::new()
                        } else {
                            format!(":\n{}", tail.join("\n"))
                        }
                    ),
                ))
            }
        }
    }

    fn request(&mut self, req: Value) -> Result<Value, Diagnostic> {
        let line = format!("{req}\n");
        if self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
            .is_err()
        {
            return self.reply(Duration::from_secs(5)).and_then(|v| {
                Err(protocol_error(
                    self.id(),
                    format!("stopped reading requests (last line: {v})"),
                ))
            });
        }
        let v = self.reply(STEP_DEADLINE)?;
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            return Err(Diagnostic::new(
                Code::EnvProtocol,
                format!("`{}` failed: {err}", self.spec.id),
            )
            .help(
                "the environment raised an error for this request; run it in Python to see why",
            ));
        }
        Ok(v)
    }

    fn observation(&self, v: &Value) -> Result<Vec<f32>, Diagnostic> {
        match floats(v, "obs") {
            Some(o) if o.len() == self.spec.obs.dim() => Ok(o),
            _ => Err(protocol_error(
                self.id(),
                format!(
                    "sent an observation that is not {} numbers: {v}",
                    self.spec.obs.dim()
                ),
            )),
        }
    }
}

/// Lines of a child's stdout on a channel (closed when the child closes it).
fn pump(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Env for GymBridge {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64) -> Result<Vec<f32>, Diagnostic> {
        let v = self.request(json!({"cmd": "reset", "seed": seed}))?;
        self.observation(&v)
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, Diagnostic> {
        check_action(&self.spec, action)?;
        let v = match self.spec.discrete {
            // A Discrete space takes the index of the hot entry.
            Some(_) => {
                let k = super::env::hot_index(action);
                self.request(json!({"cmd": "step", "action": k}))?
            }
            None => self.request(json!({"cmd": "step", "action": action}))?,
        };
        let obs = self.observation(&v)?;
        let (Some(reward), Some(terminated), Some(truncated)) = (
            v.get("reward").and_then(Value::as_f64),
            v.get("terminated").and_then(Value::as_bool),
            v.get("truncated").and_then(Value::as_bool),
        ) else {
            return Err(protocol_error(
                self.id(),
                format!("sent a malformed step reply: {v}"),
            ));
        };
        Ok(Step {
            obs,
            reward,
            terminated,
            truncated,
        })
    }
}

impl Drop for GymBridge {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"{\"cmd\": \"close\"}\n");
        let _ = self.stdin.flush();
        // Give it a moment to exit on its own, then make sure it is gone.
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python is needed by these tests; `.ci/run` installs it, so under CI its absence fails.
    fn python_present() -> bool {
        let ok = Command::new("python3").arg("--version").output().is_ok();
        if !ok {
            assert!(std::env::var("CI").is_err(), "python3 is required under CI");
            eprintln!("skipped: no python3");
        }
        ok
    }

    fn script(id: &str) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(SCRIPT).arg(id);
        cmd
    }

    #[test]
    fn the_fake_environment_answers_as_computed_by_hand() {
        if !python_present() {
            return;
        }
        let mut env = GymBridge::start_command(script("fake:Counter-v0"), "fake:Counter-v0")
            .expect("the bridge starts");
        let spec = env.spec().clone();
        assert_eq!(spec.obs.dim(), 2);
        assert_eq!(spec.act.low, vec![-1.0]);
        assert_eq!(spec.max_steps, Some(5));
        assert_eq!(env.reset(2).unwrap(), vec![2.0, 0.0]);
        // x' = x + clip(a, −1, 1), reward −x'².
        let s = env.step(&[0.5]).unwrap();
        assert_eq!((s.obs.clone(), s.reward), (vec![2.5, 1.0], -6.25));
        let s = env.step(&[7.0]).unwrap();
        assert_eq!((s.obs.clone(), s.reward), (vec![3.5, 2.0], -12.25));
        let mut last = s;
        for _ in 0..3 {
            assert!(!last.truncated);
            last = env.step(&[-1.0]).unwrap();
        }
        assert_eq!(last.obs, vec![0.5, 5.0]);
        assert!(last.truncated && !last.terminated);
        assert_eq!(env.reset(0).unwrap(), vec![0.0, 0.0]);
        assert_eq!(env.step(&[1.0, 1.0]).unwrap_err().code, Code::EnvProtocol);
    }

    #[test]
    fn a_terminating_discrete_fake_is_one_hot_and_its_end_is_terminated_not_truncated() {
        if !python_present() {
            return;
        }
        let mut env = GymBridge::start_command(script("fake:Faller-v0"), "fake:Faller-v0")
            .expect("the bridge starts");
        let spec = env.spec().clone();
        assert_eq!(spec.discrete, Some(2));
        assert_eq!(
            (spec.act.low.clone(), spec.act.high.clone()),
            (vec![0.0; 2], vec![1.0; 2])
        );
        assert_eq!(spec.act_kind(), "Discrete(2)");
        assert_eq!(env.reset(5).unwrap(), vec![1.0, 0.0]); // x = 5 mod 3 − 1
                                                           // One-hot (0, 1) is action 1: x 1 → 2; then (1, 0) is action 0: x 2 → 1; then 1, 1:
                                                           // x = 3 ends the episode inside the MDP at t = 4, before the time limit of 8.
        let s = env.step(&[0.0, 1.0]).unwrap();
        assert_eq!(
            (s.obs.clone(), s.reward, s.terminated),
            (vec![2.0, 1.0], 1.0, false)
        );
        let s = env.step(&[1.0, 0.0]).unwrap();
        assert_eq!(s.obs, vec![1.0, 2.0]);
        env.step(&[0.0, 1.0]).unwrap();
        let s = env.step(&[0.0, 1.0]).unwrap();
        assert_eq!(s.obs, vec![3.0, 4.0]);
        assert!(s.terminated && !s.truncated);
        // The rollout stores it with c = 0 on the last step only.
        let mut pi = crate::agent::rollout::Random::one_hot(2, 3);
        let out = crate::agent::rollout::episode(&mut env, &mut pi, 0, 100).unwrap();
        let ep = &out.episode;
        // From x = −1 every path ends by |x| = 3 or by 8 steps: at most 8 steps.
        assert!(ep.len() <= 8);
        let n = ep.len();
        assert_eq!(ep.cont[..n - 1], vec![1.0; n - 1][..]);
        assert_eq!(out.terminated, ep.terminated());
        assert_eq!(ep.cont[n - 1], if out.terminated { 0.0 } else { 1.0 });
        assert_eq!(
            env.step(&[1.0, 1.0, 0.0]).unwrap_err().code,
            Code::EnvProtocol
        );
    }

    #[test]
    fn a_python_without_gymnasium_is_e301_with_the_pip_command() {
        if !python_present() {
            return;
        }
        // A `gymnasium` module that cannot be imported stands in for a missing package.
        let dir = std::env::temp_dir().join(format!("vic-nogym-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("gymnasium.py"),
            "raise ImportError(\"No module named 'gymnasium'\")\n",
        )
        .unwrap();
        let mut cmd = script("Pendulum-v1");
        cmd.env("PYTHONPATH", &dir);
        let e = GymBridge::start_command(cmd, "Pendulum-v1")
            .err()
            .expect("fails");
        assert_eq!(e.code, Code::EnvUnavailable, "{}", e.message);
        assert!(e.help.contains("pip install gymnasium"), "{}", e.help);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_python_is_e301_and_says_what_to_install() {
        let cmd = Command::new("/nonexistent/python3");
        let e = GymBridge::start_command(cmd, "Pendulum-v1")
            .err()
            .expect("fails");
        assert_eq!(e.code, Code::EnvUnavailable);
        assert!(
            e.help.contains("gymnasium") && e.help.contains("--env pendulum"),
            "{}",
            e.help
        );
    }

    #[test]
    fn a_bridge_that_dies_or_babbles_is_e303_with_its_stderr() {
        if !python_present() {
            return;
        }
        let hello = r#"{"protocol": "vic-env/1", "id": "x", "obs_low": [0], "obs_high": [1], "act_low": [-1], "act_high": [1], "max_steps": null}"#;
        // Dies on the first request, after a traceback-like line on stderr.
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(format!(
            "import sys; print({hello:?}, flush=True); sys.stdin.readline(); \
             sys.stderr.write('RuntimeError: physics exploded\\n'); sys.exit(3)"
        ));
        let mut env = GymBridge::start_command(cmd, "x").expect("hello is fine");
        assert_eq!(env.spec().max_steps, None);
        let e = env.reset(0).unwrap_err();
        assert_eq!(e.code, Code::EnvProtocol);
        assert!(e.message.contains("physics exploded"), "{}", e.message);
        // Not the protocol at all.
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg("print('hello there')");
        let e = GymBridge::start_command(cmd, "x").err().expect("fails");
        assert_eq!(e.code, Code::EnvProtocol);
        assert!(e.message.contains("not JSON"), "{}", e.message);
        // An error reply to a request: the message is the environment's.
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(format!(
            "import sys; print({hello:?}, flush=True); sys.stdin.readline(); \
             print('{{\"error\": \"ValueError: bad seed\", \"kind\": \"env\"}}', flush=True); sys.stdin.readline()"
        ));
        let mut env = GymBridge::start_command(cmd, "x").expect("hello is fine");
        let e = env.reset(0).unwrap_err();
        assert!(e.message.contains("bad seed"), "{}", e.message);
    }
}
