//! A run directory belongs to one `vic run` at a time, and holds one run.
//!
//! `vic run` claims its directory with a lock file (`.vic-run.lock`, created with
//! `create_new`, holding the process id) before it writes anything there, and removes it
//! when it ends — normally, on an error, or on Ctrl-C (the handler only sets a flag; the run
//! returns through [`RunLock`]'s `Drop`). A lock whose process is no longer running (a run
//! that was killed) is taken over with a note. A directory that already holds files is not
//! reused unless the run resumes it (`--resume`) or overwrites it (`--force`).
//!
//! Beside its results a run records how it was made: `config.json` (the vic version, the
//! command's flags and the configuration resolved from them, the model and data files) and
//! `model.vmodel` (a copy of the model's source), so a run directory can be reproduced.

use super::USAGE;
use std::io::Write;
use std::path::{Path, PathBuf};
use vic::diag::Code;

/// The lock file of a run directory.
pub const LOCK: &str = ".vic-run.lock";

/// What a forced run replaces; other files in the directory are left alone.
const OUTPUTS: &[&str] = &[
    vic::train::rundir::CHECKPOINT,
    vic::train::rundir::METRICS,
    "elbo.svg",
    CONFIG,
    SOURCE,
];

/// The resolved configuration of the run.
pub const CONFIG: &str = vic::train::rundir::CONFIG;
/// The copy of the model's source.
pub const SOURCE: &str = vic::train::rundir::SOURCE;

/// What `config.json` records.
pub struct Record<'a> {
    /// The model's name.
    pub model: &'a str,
    /// The flags of `vic run`.
    pub args: &'a super::run::RunArgs,
    /// The plan resolved from them.
    pub plan: &'a vic::train::RunPlan,
    /// The data file, if any.
    pub data: Option<&'a Path>,
    /// The runtime the run starts on.
    pub engine: &'a str,
}

/// Writes `config.json` and `model.vmodel` into `dir` ([`vic::train::rundir::write_record`]
/// with the flags of `vic run`).
pub fn write_record(dir: &Path, r: &Record, source: &str) -> std::io::Result<()> {
    let a = r.args;
    let record = vic::train::rundir::Record {
        command: std::env::args().collect(),
        model: r.model,
        model_file: a.file.display().to_string(),
        data: r.data,
        plan: r.plan,
        epochs: a.epochs,
        engine: r.engine,
        device: &a.device,
        samples: a.samples,
        log_every: a.log_every,
        eval_every: a.eval_every,
        checkpoint_every: a.checkpoint_every,
        resumed_from: a.resume.as_ref().map(|p| p.display().to_string()),
    };
    vic::train::rundir::write_record(dir, &record, source)
}

/// Held while the run writes its directory; dropping it removes the lock file.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn report(code: Code, msg: String, help: &str) -> u8 {
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(msg)
                .with_code(code.as_str())
                .with_help(help.to_string())
        )
    );
    USAGE
}

/// Whether process `pid` is running (on other platforms every lock counts as held).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        // Our own id in a lock we did not write: a reused id of a process that is gone.
        return false;
    }
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(p, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Claim `dir` (which exists) for a run: `vic::E094` if another run holds it, `vic::E095`
/// if it already holds a run and the run neither resumes nor forces. Both exit 2.
pub fn claim(dir: &Path, resume: bool, force: bool) -> Result<RunLock, u8> {
    let path = dir.join(LOCK);
    let mut attempts = 0;
    let lock = loop {
        attempts += 1;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let lock = RunLock { path: path.clone() };
                let _ = writeln!(f, "{}", std::process::id());
                break lock;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 4 => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = text.trim().parse::<u32>().ok();
                // A lock without a readable id is being written right now, unless it is old.
                let fresh = || {
                    std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() < 5)
                };
                let held = match pid {
                    Some(pid) => alive(pid),
                    None => fresh(),
                };
                if held {
                    return Err(in_use(dir, pid));
                }
                // Remove the stale lock only if it is still the one read (another run may
                // have taken it over meanwhile); then race for it again with create_new.
                if std::fs::read_to_string(&path).unwrap_or_default() == text {
                    eprintln!(
                        "note: taking over `{}`: its lock was left by {}, which is no longer running",
                        dir.display(),
                        pid.map_or("a run".to_string(), |p| format!("process {p}"))
                    );
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(in_use(dir, None));
            }
            Err(e) => {
                return Err(report(
                    Code::BadFlag,
                    format!("cannot write in `{}`: {e}", dir.display()),
                    "choose another --out directory",
                ))
            }
        }
    };
    if resume {
        return Ok(lock);
    }
    let others: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != LOCK)
                .collect()
        })
        .unwrap_or_default();
    if others.is_empty() {
        return Ok(lock);
    }
    if force {
        for name in OUTPUTS {
            let _ = std::fs::remove_file(dir.join(name));
        }
        return Ok(lock);
    }
    let mut shown = others;
    shown.sort();
    let more = shown.len().saturating_sub(3);
    shown.truncate(3);
    Err(report(
        Code::RunDirNotEmpty,
        format!(
            "`{}` is not empty ({}{}): another run's results would be overwritten",
            dir.display(),
            shown.join(", "),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        ),
        &format!(
            "continue that run with `--resume {0}`, overwrite it with `--force`, or pass another `--out`",
            dir.display()
        ),
    ))
}

fn in_use(dir: &Path, pid: Option<u32>) -> u8 {
    report(
        Code::RunDirInUse,
        format!(
            "`{}` is in use by another vic run{}",
            dir.display(),
            pid.map_or(String::new(), |p| format!(" (process {p})"))
        ),
        &format!(
            "wait for it to finish or pass another `--out`; if no run is using the directory, delete `{}`",
            dir.join(LOCK).display()
        ),
    )
}
