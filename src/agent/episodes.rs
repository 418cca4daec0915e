//! `episodes.jsonl`: one JSON line per finished episode — `env_step` (environment steps
//! taken by training episodes when it ended), `return`, `length`, `eval` (true for an
//! evaluation episode with the policy mean), `seed` — appended as episodes end, and read back
//! on resume and for the plot of returns against environment steps.

use crate::diag::{Code, Diagnostic};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One line of `episodes.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Training environment steps so far (evaluation steps do not count).
    pub env_step: u64,
    /// The undiscounted return.
    #[serde(rename = "return")]
    pub ret: f64,
    /// Steps in the episode.
    pub length: u64,
    /// An evaluation episode (policy mean, not stored in the replay).
    pub eval: bool,
    /// The environment's reset seed.
    pub seed: u64,
}

/// Appends one record.
pub fn append(path: &Path, rec: &Record) -> Result<(), Diagnostic> {
    let line = serde_json::to_string(rec).expect("a record serialises");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"))
        .map_err(|e| {
            Diagnostic::new(
                Code::CannotWrite,
                format!("cannot append to `{}`: {e}", path.display()),
            )
            .help("check that the run directory is writable and the disk is not full")
        })
}

/// Opens a run's log (`metrics.jsonl`) for appending, creating it.
pub fn open_log(path: &Path) -> Result<std::fs::File, Diagnostic> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            Diagnostic::new(
                Code::CannotWrite,
                format!("cannot open `{}`: {e}", path.display()),
            )
            .help("check that the run directory is writable")
        })
}

/// Reads every record (an absent file is an empty log).
pub fn read(path: &Path) -> Result<Vec<Record>, Diagnostic> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(
                Diagnostic::new(Code::Io, format!("cannot read `{}`: {e}", path.display()))
                    .help("check the file's permissions"),
            )
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Diagnostic::new(
                    Code::BadCheckpoint,
                    format!("`{}` line {}: {e}", path.display(), i + 1),
                )
                .help("the episode log is damaged; start a new run with `--force`")
            })
        })
        .collect()
}

/// Mean return of the evaluation episodes at each evaluation point: `(env_step, mean, n)`.
pub fn eval_curve(records: &[Record]) -> Vec<(u64, f64, usize)> {
    let mut out: Vec<(u64, f64, usize)> = Vec::new();
    for r in records.iter().filter(|r| r.eval) {
        match out.last_mut() {
            Some(last) if last.0 == r.env_step => {
                last.1 += r.ret;
                last.2 += 1;
            }
            _ => out.push((r.env_step, r.ret, 1)),
        }
    }
    for p in &mut out {
        p.1 /= p.2 as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_gyms_field_names_and_evals_average() {
        let dir = std::env::temp_dir().join(format!("vic-episodes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("episodes.jsonl");
        let _ = std::fs::remove_file(&path);
        let recs = [
            Record {
                env_step: 200,
                ret: -1200.5,
                length: 200,
                eval: false,
                seed: 1,
            },
            Record {
                env_step: 200,
                ret: -900.0,
                length: 200,
                eval: true,
                seed: 2,
            },
            Record {
                env_step: 200,
                ret: -700.0,
                length: 200,
                eval: true,
                seed: 3,
            },
            Record {
                env_step: 400,
                ret: -150.0,
                length: 200,
                eval: true,
                seed: 4,
            },
        ];
        for r in &recs {
            append(&path, r).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines().next().unwrap().contains("\"return\":-1200.5"),
            "{text}"
        );
        assert_eq!(read(&path).unwrap(), recs);
        assert_eq!(eval_curve(&recs), vec![(200, -800.0, 2), (400, -150.0, 1)]);
        std::fs::write(&path, "{\"env_step\": 1}\n").unwrap();
        assert_eq!(read(&path).unwrap_err().code, Code::BadCheckpoint);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(read(&dir.join("none.jsonl")).unwrap().is_empty());
    }
}
