//! Every model in `models/` compiles without errors or warnings, its checked IR matches a
//! reviewed snapshot (`tests/snapshots/ir/<stem>.snap`), and `vic check` accepts it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The `.vmodel` files in `models/`, sorted by name.
fn model_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(models_dir())
        .expect("models/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "vmodel"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no models found in models/");
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_model_compiles_cleanly_and_matches_its_ir_snapshot() {
    let mut failures = Vec::new();
    for path in model_files() {
        let stem = stem(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(&path).expect("model is readable UTF-8");
        let model = match vic::compile(&src, &name) {
            Ok(m) => m,
            Err(f) => {
                failures.push(format!("{name}: does not compile:\n{f}"));
                continue;
            }
        };
        let warnings = model.warnings();
        if !warnings.is_empty() {
            let text: Vec<String> = warnings.iter().map(vic::diag::render_plain).collect();
            failures.push(format!(
                "{name}: {} warning(s):\n{}",
                warnings.len(),
                text.join("\n")
            ));
        }
        let dump = model.ir().dump();
        insta::with_settings!({
            snapshot_path => "snapshots/ir",
            prepend_module_to_snapshot => false,
            description => format!("checked IR of models/{name}"),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(stem.as_str(), dump);
        });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn vic_check_accepts_every_model() {
    let files = model_files();
    // One invocation per file, so a failure names the model.
    for path in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_vic"))
            .arg("check")
            .arg(path)
            .output()
            .expect("the vic binary runs");
        assert!(
            out.status.success(),
            "`vic check {}` exited with {:?}\nstdout:\n{}\nstderr:\n{}",
            path.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And all at once, with warnings denied.
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .arg("check")
        .arg("--deny-warnings")
        .args(&files)
        .output()
        .expect("the vic binary runs");
    assert!(
        out.status.success(),
        "`vic check --deny-warnings models/*.vmodel` exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
