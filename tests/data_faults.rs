//! `vic run` on every data-file fault of `tests/fixtures/data/` (see its README): exit 1,
//! the stable code, the file and (where there is one) the array in the message. The good
//! fixtures load and train one step, so the harness itself can fail. Also: flag errors
//! (exit 2, `vic::E092`) and a backend-unsupported feature (`vic::E200`, exit 1).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/data").join(name)
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("data_faults-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn vic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the vic binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The README's four specs as small models (SEQ is models/ssm.vmodel itself: `o` (3, real),
/// `a` (1, real), lag 1 so min_len = 2).
const STATIC: &str = r#"
model static_fx {
  observed x : binary[4]
  observed u : unit[2]
  observed c : onehot[2, 3]
  latent   z : real
  net fx = linear(1 -> 4)
  net fu = linear(1 -> 2)
  net fc = linear(1 -> 6)
  p {
    z ~ Normal(0, 1)
    x ~ Bernoulli(fx(z))
    u ~ Bernoulli(fu(z))
    c ~ Categorical(fc(z))
  }
  q {
    z ~ Normal(0, 1)
  }
}"#;

const CSV: &str = r#"
model csv_fx {
  observed x : real[2]
  observed y : real
  latent   z : real
  net fx = linear(1 -> 2)
  p {
    z ~ Normal(0, 1)
    x ~ Normal(fx(z), 1)
    y ~ Normal(z, 1)
  }
  q {
    z ~ Normal(0, 1)
  }
}"#;

const NPY: &str = r#"
model npy_fx {
  observed img : unit[64]
  latent   z : real
  net dec = linear(1 -> 64)
  p {
    z ~ Normal(0, 1)
    img ~ Bernoulli(dec(z))
  }
  q {
    z ~ Normal(0, 1)
  }
}"#;

#[derive(Clone, Copy, Debug)]
enum Spec {
    Seq,
    Static,
    Csv,
    Npy,
}

/// Writes the spec's model into `dir` (SEQ: models/ssm.vmodel) and returns its path.
fn model_for(spec: Spec, dir: &Path) -> PathBuf {
    let (name, src) = match spec {
        Spec::Seq => return root().join("models/ssm.vmodel"),
        Spec::Static => ("static_fx.vmodel", STATIC),
        Spec::Csv => ("csv_fx.vmodel", CSV),
        Spec::Npy => ("npy_fx.vmodel", NPY),
    };
    let p = dir.join(name);
    std::fs::write(&p, src).unwrap();
    p
}

fn run_on(spec: Spec, data: &Path, dir: &Path) -> Output {
    let model = model_for(spec, dir);
    vic(&[
        "run",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--steps",
        "1",
        "--batch",
        "2",
        "--samples",
        "1",
        "--out",
        dir.join("out").to_str().unwrap(),
    ])
}

/// (file, spec, expected code, the array the message must name)
const BAD: &[(&str, Spec, &str, Option<&str>)] = &[
    ("does_not_exist.npz", Spec::Seq, "vic::E101", None),
    ("truncated.npz", Spec::Seq, "vic::E102", None),
    ("garbage.npz", Spec::Seq, "vic::E102", None),
    ("garbage.npy", Spec::Npy, "vic::E102", None),
    ("truncated.npy", Spec::Npy, "vic::E102", None),
    ("binary.csv", Spec::Csv, "vic::E102", None),
    ("missing_array.npz", Spec::Seq, "vic::E103", Some("a")),
    ("wrong_rank.npz", Spec::Seq, "vic::E104", Some("o")),
    ("feature_size.npz", Spec::Seq, "vic::E105", Some("o")),
    ("n_mismatch.npz", Spec::Seq, "vic::E106", Some("a")),
    ("t_mismatch.npz", Spec::Seq, "vic::E107", Some("a")),
    ("too_short.npz", Spec::Seq, "vic::E108", None),
    ("nan.npz", Spec::Seq, "vic::E109", Some("o")),
    ("inf.csv", Spec::Csv, "vic::E109", Some("x")),
    ("complex.npz", Spec::Seq, "vic::E110", Some("o")),
    ("strings.npz", Spec::Seq, "vic::E110", Some("a")),
    ("binary_bad.npz", Spec::Static, "vic::E111", Some("x")),
    ("onehot_bad.npz", Spec::Static, "vic::E111", Some("c")),
    ("unit_bad.npz", Spec::Static, "vic::E111", Some("u")),
    ("mask_shape.npz", Spec::Seq, "vic::E112", Some("mask")),
    ("mask_values.npz", Spec::Seq, "vic::E112", Some("mask")),
    ("mask_empty_row.npz", Spec::Seq, "vic::E113", Some("mask")),
    ("empty.npz", Spec::Seq, "vic::E114", None),
    ("ragged.csv", Spec::Csv, "vic::E115", None),
    ("non_numeric.csv", Spec::Csv, "vic::E116", Some("x.1")),
];

#[test]
fn every_bad_fixture_is_a_data_fault_with_its_code() {
    let dir = scratch("bad");
    let mut failures = Vec::new();
    for &(file, spec, code, array) in BAD {
        let path = fixture(file);
        assert_eq!(
            path.exists(),
            file != "does_not_exist.npz",
            "fixture {file} presence"
        );
        let out = run_on(spec, &path, &dir);
        let err = stderr(&out);
        // Miette may wrap long lines; compare with whitespace removed as well.
        let flat: String = err.split_whitespace().collect();
        let mut why = Vec::new();
        if out.status.code() != Some(1) {
            why.push(format!("exit {:?}, expected 1", out.status.code()));
        }
        if !err.contains(code) {
            why.push(format!("no {code}"));
        }
        if !flat.contains(file) {
            why.push(format!("does not name the file {file}"));
        }
        if let Some(a) = array {
            if !flat.contains(&format!("`{a}`")) {
                why.push(format!("does not name the array `{a}`"));
            }
        }
        if !why.is_empty() {
            failures.push(format!(
                "{file} ({spec:?}): {}\n--- stderr ---\n{err}",
                why.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The report of a data fault states its code and its help once (`vic::E1xx` in the header
/// and `help:` under it), not again inside the message.
#[test]
fn data_fault_report_is_not_duplicated() {
    let dir = scratch("dup");
    let out = run_on(Spec::Seq, &fixture("nan.npz"), &dir);
    let err = stderr(&out);
    assert_eq!(
        err.matches("help:").count(),
        1,
        "help printed more than once:\n{err}"
    );
    assert!(
        !err.contains("[vic::E109]"),
        "code repeated inside the message:\n{err}"
    );
}

#[test]
fn good_fixtures_train_one_step() {
    let dir = scratch("good");
    for (file, spec) in [
        ("good_seq.npz", Spec::Seq),
        ("good_static.npz", Spec::Static),
        ("good_static.csv", Spec::Csv),
        ("good_single.npy", Spec::Npy),
    ] {
        // One directory per run: a run directory holds one run (E095).
        let d = dir.join(file.replace('.', "_"));
        std::fs::create_dir_all(&d).unwrap();
        let out = run_on(spec, &fixture(file), &d);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: exit {:?}\n{}",
            out.status.code(),
            stderr(&out)
        );
    }
}

/// A flag error: exit 2 and `vic::E092`.
fn assert_flag_error(args: &[&str], what: &str) {
    let out = vic(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{what}: exit\n{err}");
    assert!(err.contains("vic::E092"), "{what}: no vic::E092\n{err}");
}

#[test]
fn flag_errors_exit_2_with_e092() {
    let dir = scratch("flags");
    let d = dir.to_str().unwrap();
    let model = root().join("models/ssm.vmodel");
    let m = model.to_str().unwrap();
    let run = |extra: &[&'static str]| -> Vec<&str> {
        let mut v = vec!["run", m, "--steps", "1", "--out", d];
        v.extend_from_slice(extra);
        v
    };
    assert_flag_error(&run(&["--lr=-1"]), "--lr=-1");
    assert_flag_error(&run(&["--lr", "0"]), "--lr 0");
    assert_flag_error(&run(&["--lr", "nan"]), "--lr nan");
    assert_flag_error(&run(&["--batch", "0"]), "--batch 0");
    if !cfg!(feature = "cuda") {
        assert_flag_error(&run(&["--device", "cuda"]), "--device cuda");
    }
    assert_flag_error(&run(&["--device", "tpu"]), "--device tpu");
}

/// `--lr -1` (a space, not `=`): clap must accept the negative number as the value so that
/// vic's own check reports it.
#[test]
fn negative_lr_with_a_space_is_e092() {
    let dir = scratch("neg_lr");
    let model = root().join("models/ssm.vmodel");
    assert_flag_error(
        &[
            "run",
            model.to_str().unwrap(),
            "--steps",
            "1",
            "--out",
            dir.to_str().unwrap(),
            "--lr",
            "-1",
        ],
        "--lr -1",
    );
}

#[test]
fn missing_data_file_is_e101() {
    let dir = scratch("missing");
    // The model's own `data "…"` pointing nowhere.
    let src = std::fs::read_to_string(root().join("models/ssm.vmodel"))
        .unwrap()
        .replace("data/pendulum_std.npz", "data/nowhere.npz");
    let model = dir.join("ssm.vmodel");
    std::fs::write(&model, src).unwrap();
    let out = vic(&[
        "run",
        model.to_str().unwrap(),
        "--steps",
        "1",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("vic::E101"), "{err}");
    assert!(
        err.split_whitespace()
            .collect::<String>()
            .contains("nowhere.npz"),
        "{err}"
    );
}

#[test]
fn unsupported_backend_feature_is_e200() {
    let dir = scratch("e200");
    let src = std::fs::read_to_string(root().join("models/lgssm_smooth.vmodel")).unwrap();
    // Latent overshooting needs a general case `z[t]` in q (this q has base cases only).
    let src = format!(
        "{}  objective {{\n    overshooting = 3\n  }}\n}}\n",
        src.trim_end().trim_end_matches('}')
    );
    let model = dir.join("lgssm_overshoot.vmodel");
    std::fs::write(&model, &src).unwrap();
    // The checker refuses it (a model `vic check` accepts trains), with the span of the
    // objective block, and `vic run` the same way.
    let check = vic(&["check", model.to_str().unwrap()]);
    let err = stderr(&check);
    assert_eq!(check.status.code(), Some(1), "{err}");
    assert!(err.contains("vic::E200"), "{err}");
    assert!(err.contains("sets overshooting"), "{err}");
    let out = vic(&[
        "run",
        model.to_str().unwrap(),
        "--data",
        root().join("models/data/lgssm.npz").to_str().unwrap(),
        "--steps",
        "1",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("vic::E200"), "{err}");
    assert!(err.contains("overshooting"), "{err}");
}

/// A model whose observed `y` (size 3) has `family`'s likelihood, for the support checks.
fn family_model(family: &str) -> String {
    let (ty, lik) = match family {
        "Poisson" => ("real[3]", "Poisson(exp(fy(z)))"),
        "Gamma" => ("real[3]", "Gamma(exp(fy(z)), 1)"),
        "LogNormal" => ("real[3]", "LogNormal(fy(z), 1)"),
        "Beta" => ("unit[3]", "Beta(exp(fy(z)), exp(fy(z)))"),
        other => panic!("no model for {other}"),
    };
    format!(
        "model fam_{f} {{\n  observed y : {ty}\n  latent z : real\n  net fy = linear(1 -> 3)\n  p {{\n    z ~ Normal(0, 1)\n    y ~ {lik}\n  }}\n  q {{\n    z ~ Normal(0, 1)\n  }}\n}}\n",
        f = family.to_lowercase()
    )
}

/// Values outside a likelihood's support (a negative or fractional count for Poisson, a value
/// ≤ 0 for Gamma and LogNormal, one outside (0, 1) for Beta) are `vic::E111` naming the array,
/// the index and the family, with the help line; never a NaN ELBO. Values inside train.
#[test]
fn values_outside_a_likelihoods_support_are_e111() {
    let dir = scratch("family_support");
    // (family, a bad CSV row (y.0, y.1, y.2) in row 2, the value as printed, a good row)
    let cases = [
        ("Poisson", "1,-1,2", "-1", "0,3,7"),
        ("Poisson", "1,2.5,2", "2.5", "0,3,7"),
        ("Gamma", "1,0,2", "0", "0.5,3,7"),
        ("LogNormal", "1,-2,2", "-2", "0.5,3,7"),
        ("Beta", "0.5,1,0.2", "1", "0.5,0.3,0.9"),
        ("Beta", "0.5,0,0.2", "0", "0.5,0.3,0.9"),
    ];
    for (i, (family, bad, value, good)) in cases.into_iter().enumerate() {
        let d = dir.join(format!("{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let model = d.join("m.vmodel");
        std::fs::write(&model, family_model(family)).unwrap();
        let csv = |row2: &str| format!("y.0,y.1,y.2\n{good}\n{good}\n{row2}\n{good}\n");
        let data = d.join("bad.csv");
        std::fs::write(&data, csv(bad)).unwrap();
        let out_dir = d.join("run");
        let (m, da, o) = (
            model.to_str().unwrap(),
            data.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        );
        let out = vic(&["run", m, "--data", da, "--steps", "1", "--out", o]);
        let err = stderr(&out);
        let flat: String = err.split_whitespace().collect();
        assert_eq!(out.status.code(), Some(1), "{family} {bad}:\n{err}");
        assert!(err.contains("vic::E111"), "{family} {bad}:\n{err}");
        assert!(err.contains("`y`"), "{family}: names y:\n{err}");
        assert!(
            flat.contains("[2,1]"),
            "{family}: the index (row 2, column 1):\n{err}"
        );
        assert!(
            flat.contains(&format!("value{value}")),
            "{family}: the value:\n{err}"
        );
        assert!(
            flat.contains(&format!("{family}-observed")),
            "{family}:\n{err}"
        );
        assert!(err.contains("help:"), "{family}: a help line:\n{err}");
        // The same data with the bad row replaced trains a step.
        std::fs::write(&data, csv(good)).unwrap();
        let ok_dir = d.join("ok");
        let out = vic(&[
            "run",
            m,
            "--data",
            da,
            "--steps",
            "1",
            "--out",
            ok_dir.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{family} good data:\n{}",
            stderr(&out)
        );
    }
}
