//! The error corpus: `tests/fixtures/errors/*.vmodel`, one small model per check.
//!
//! Each fixture starts with a header comment `// expect: vic::E0nn[, vic::E0mm …]` listing the
//! diagnostic codes it must produce. The test compiles every fixture and requires the *set* of
//! codes produced (errors and warnings alike) to equal the header's set exactly: an extra code
//! is a cascade, a missing one a check that did not fire. Warnings only appear in a fixture
//! that has no errors (the checker suppresses unused-name warnings while errors hide reads),
//! so a W-code fixture lists just its warning. The rendered diagnostics (plain, no colour) are
//! snapshotted with insta, one file per fixture, under `tests/fixtures/errors/snapshots/`.
//!
//! Some codes cannot come out of `vic::compile`, so they have no fixture ([`NOT_FROM_SOURCE`]):
//! `vic::E090`–`vic::E092` are command-line faults (a file that cannot be read, a file that is
//! not UTF-8, a bad flag) — E090 and E091 are tested here through the `vic check` binary, E092
//! belongs to the CLI's own tests — and `vic::E200`/`vic::E201` come from the tensor backend
//! and training (a checked model using a feature the backend does not run yet, a run that
//! produced NaN), after the checker has accepted the model, as does `vic::E202` (a run that
//! would not fit in memory).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use vic::diag::{render_plain, Code};

/// Codes that `vic::compile` cannot produce from any source (see the module doc).
const NOT_FROM_SOURCE: &[Code] = &[
    Code::UnknownEnv,
    Code::EnvUnavailable,
    Code::EnvSpace,
    Code::EnvProtocol,
    Code::DataUnreadable,
    Code::DataInvalidFormat,
    Code::DataMissingArray,
    Code::DataWrongRank,
    Code::DataFeatureSize,
    Code::DataNMismatch,
    Code::DataTMismatch,
    Code::DataTooShort,
    Code::DataNonFinite,
    Code::DataUnsupportedDtype,
    Code::DataOutOfSupport,
    Code::DataBadMask,
    Code::DataEmptyMaskRow,
    Code::DataEmptyDataset,
    Code::DataCsvRagged,
    Code::DataCsvNonNumeric,
    Code::Io,
    Code::NotUtf8,
    Code::BadFlag,
    Code::BadCheckpoint,
    Code::RunDirInUse,
    Code::RunDirNotEmpty,
    Code::CannotWrite,
    Code::ResumeChanged,
    Code::AlreadyTrained,
    Code::Unsupported,
    Code::NonFinite,
    Code::OutOfMemory,
    Code::CannotSample,
    Code::Backend,
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/errors")
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(fixture_dir())
        .expect("tests/fixtures/errors exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "vmodel"))
        .collect();
    files.sort();
    files
}

/// The codes of a fixture's `// expect:` header (its first line).
fn expected(path: &Path, src: &str) -> BTreeSet<String> {
    let first = src.lines().next().unwrap_or_default();
    let list = first.strip_prefix("// expect:").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `// expect: vic::E0nn`",
            path.display()
        )
    });
    let codes: BTreeSet<String> = list.split(',').map(|c| c.trim().to_string()).collect();
    for c in &codes {
        assert!(
            Code::ALL.iter().any(|k| k.as_str() == c),
            "{}: `{c}` is not a diagnostic code",
            path.display()
        );
    }
    codes
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_fixture_reports_its_expected_codes() {
    let files = fixtures();
    assert!(files.len() >= 45, "only {} fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let src = fs::read_to_string(path).unwrap();
        let name = stem(path);
        let file = format!("{name}.vmodel");
        let want = expected(path, &src);
        let reports = match vic::compile(&src, &file) {
            Ok(model) => model.warnings(),
            Err(failure) => failure.reports,
        };
        let got: BTreeSet<String> = reports
            .iter()
            .map(|r| r.diag.code.as_str().to_string())
            .collect();
        if got != want {
            failures.push(format!("{file}: expected {want:?}, got {got:?}"));
        }
        let rendered: Vec<String> = reports.iter().map(render_plain).collect();
        insta::with_settings!({
            snapshot_path => fixture_dir().join("snapshots"),
            prepend_module_to_snapshot => false,
            input_file => path,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, rendered.join("\n"));
        });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_source_level_code_has_a_fixture() {
    let mut covered = BTreeSet::new();
    for path in fixtures() {
        let src = fs::read_to_string(&path).unwrap();
        covered.extend(expected(&path, &src));
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !NOT_FROM_SOURCE.contains(c))
        .map(|c| c.as_str())
        .filter(|c| !covered.contains(*c))
        .collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
}

#[test]
fn docs_errors_md_describes_every_code() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md"))
        .expect("docs/errors.md exists");
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !doc.contains(&format!("## {}", c.trim_start_matches("vic::"))))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/errors.md has no section for {missing:?}"
    );
}

fn vic_check(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .arg("check")
        .arg(path)
        .output()
        .expect("the vic binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_reports_a_missing_file_as_e090() {
    let path = fixture_dir().join("no_such_file.vmodel");
    let (code, stderr) = vic_check(&path);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(stderr.contains("vic::E090"), "stderr: {stderr}");
}

#[test]
fn cli_reports_a_non_utf8_file_as_e091() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("not_utf8.vmodel");
    fs::write(&path, b"model m {\n  observed x : real \xff\xfe\n}\n").unwrap();
    let (code, stderr) = vic_check(&path);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(stderr.contains("vic::E091"), "stderr: {stderr}");
}
