//! `vic check FILE…`

use super::io::{print, read_source};
use crate::exit::{FAILED, OK, USAGE};
use std::path::PathBuf;

/// `vic check`: check each file, print its diagnostics; the worst exit code.
pub fn run(files: &[PathBuf], deny_warnings: bool, color: bool) -> u8 {
    let mut worst = OK;
    for path in files {
        let name = path.display().to_string();
        let src = match read_source(path) {
            Ok(s) => s,
            Err(r) => {
                print(&r, color);
                worst = USAGE;
                continue;
            }
        };
        // A model no runtime trains fails here, not at `vic run`.
        match vic::compile(&src, &name).and_then(|m| m.trainable().map(|()| m)) {
            Ok(m) => {
                let warnings = m.warnings();
                for w in &warnings {
                    print(w, color);
                }
                if deny_warnings && !warnings.is_empty() {
                    eprintln!("{name}: {} warning(s), denied", warnings.len());
                    worst = worst.max(FAILED);
                } else {
                    println!("ok: {name} ({} warning(s))", warnings.len());
                }
            }
            Err(f) => {
                for r in &f.reports {
                    print(r, color);
                }
                let n = f.diagnostics().filter(|d| d.is_error()).count();
                eprintln!("{name}: {n} error(s)");
                worst = worst.max(FAILED);
            }
        }
    }
    worst
}
