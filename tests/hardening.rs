//! Faults a hostile user found (issue 11): each is a coded diagnostic, never a panic, an
//! abort or a silent wrong answer.

use vic::render::Format;

fn model(name: &str) -> String {
    std::fs::read_to_string(format!("{}/models/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("model file")
}

/// miette draws label columns as format widths, which panic above 65,535.
#[test]
fn labels_past_column_65535_render() {
    let src = model("lg_toy.vmodel").replace(
        "  latent   z : real",
        &format!(
            "  latent   z : real{}latent w : nosuchtype",
            " ".repeat(70_000)
        ),
    );
    let Err(f) = vic::compile(&src, "long.vmodel") else {
        panic!("a syntax error expected")
    };
    for r in &f.reports {
        let text = vic::diag::render_plain(r);
        assert!(text.contains("vic::E001"), "{text}");
        assert!(text.contains("latent w : nosuchtype"), "{text}");
        assert!(text.contains("long lines shortened"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() < 400), "{text}");
    }
    // A label spanning a whole 70,000-character name, in a warning.
    let name = "z".repeat(70_000);
    let src = model("lg_toy.vmodel")
        .replace(
            "latent   z : real",
            &format!("latent   z : real\n  latent {name} : real"),
        )
        .replace(
            "    z ~ Normal(0, 1)\n",
            &format!("    z ~ Normal(0, 1)\n    {name} ~ Normal(0, 1)\n"),
        );
    let m = vic::compile(&src, "longid.vmodel").expect("compiles");
    for w in m.warnings() {
        vic::diag::render_plain(&w);
    }
}

/// The ELBO table and the derivation pad names without `{:<w$}` (which panics above 65,535).
#[test]
fn names_longer_than_65535_render_in_elbo_and_steps() {
    let name = "z".repeat(70_000);
    let src = model("lg_toy.vmodel")
        .replace(
            "latent   z : real",
            &format!("latent   z : real\n  latent {name} : real"),
        )
        .replace(
            "    z ~ Normal(0, 1)\n",
            &format!("    z ~ Normal(0, 1)\n    {name} ~ Normal(0, 1)\n"),
        )
        .replace("  q {\n", &format!("  q {{\n    {name} ~ Normal(0, 1)\n"));
    let m = vic::compile(&src, "longid.vmodel").expect("compiles");
    for format in [Format::Text, Format::Latex, Format::Json] {
        for steps in [false, true] {
            let out = m.render_elbo(format, steps);
            assert!(out.contains(&name));
        }
    }
}

fn codes(src: &str) -> Vec<&'static str> {
    match vic::compile(src, "m.vmodel") {
        Ok(_) => vec![],
        Err(f) => f.reports.iter().map(|r| r.diag.code.as_str()).collect(),
    }
}

/// Lags are range-checked as written: beyond `limits::MAX_LAG` they are E078 (they allocated
/// a step list of that length), and `t-4294967297` no longer wraps to `t-1`.
#[test]
fn huge_lags_are_e078_not_an_abort_or_a_wrap() {
    let ssm = model("ssm.vmodel");
    for lag in [
        "1000001",
        "1000000000",
        "4294967297",
        "100000000000",
        "9223372036854775807",
    ] {
        let src = ssm.replace(
            "s[t] ~ Normal.split(trans(s[t-1], a[t-1])",
            &format!("s[t] ~ Normal.split(trans(s[t-{lag}], a[t-1])"),
        );
        assert_ne!(src, ssm);
        let c = codes(&src);
        assert!(c.contains(&"vic::E078"), "t-{lag}: {c:?}");
    }
    // A long lag within the bound: one E032, computed without listing every step.
    let src = ssm.replace(
        "s[t] ~ Normal.split(trans(s[t-1], a[t-1])",
        "s[t] ~ Normal.split(trans(s[t-1000000], a[t-1])",
    );
    let c = codes(&src);
    assert_eq!(c.iter().filter(|c| **c == "vic::E032").count(), 1, "{c:?}");
}

#[test]
fn huge_constants_are_e078() {
    for value in ["zeros(1000000000)", "ones(100000, 100000)", "eye(100000)"] {
        let src = format!(
            "model m {{\n  const E = {value}\n  observed x : real\n  p {{ x ~ Normal(0, 1) }}\n}}\n"
        );
        assert_eq!(codes(&src), vec!["vic::E078"], "{value}");
    }
}

/// The objective's counts stop where the flags stop.
#[test]
fn objective_counts_stop_at_max_count() {
    let lqr = model("lqr.vmodel");
    for (from, to) in [
        ("batch = 256", "batch = 1000000000"),
        ("horizon = 20", "horizon = 1000001"),
        ("batch = 256", "batch = 256\n    iwae = 2000000"),
    ] {
        let src = lqr.replace(from, to);
        assert_ne!(src, lqr);
        assert_eq!(codes(&src), vec!["vic::E082"], "{to}");
    }
}

/// 20,000 declarations: the whole-model rules scanned every factor once per variable and
/// every report copied and rescanned the whole source (O(n²) time; 20,000 warnings ran out
/// of memory). Each variable's factors are now indexed once, and one compilation's reports
/// share one line-indexed source.
#[test]
fn twenty_thousand_declarations_check_in_linear_work() {
    let n = 20_000;
    let mut src = String::from("model big {\n  observed x : real\n");
    for i in 0..n {
        src += &format!("  latent z{i} : real\n");
    }
    src += "  p {\n    x ~ Normal(z0, 1)\n";
    for i in 0..n {
        src += &format!("    z{i} ~ Normal(0, 1)\n");
    }
    src += "  }\n  q {\n";
    for i in 0..n {
        src += &format!("    z{i} ~ Normal(0, 1)\n");
    }
    src += "  }\n}\n";
    let m = vic::compile(&src, "big.vmodel").expect("the model checks");
    assert_eq!(m.ir().vars.len(), n + 1);
    assert_eq!(m.ir().factors.len(), 2 * n + 1);
    // Every latent but z0 is read by nothing: one W002 each, all bound to one source.
    let warnings = m.warnings();
    assert_eq!(warnings.len(), n - 1);
    assert!(warnings
        .iter()
        .all(|w| std::sync::Arc::ptr_eq(&w.source, &warnings[0].source)));
    let last = vic::diag::render_plain(&warnings[n - 2]);
    assert!(last.contains("big.vmodel:20002:10"), "{last}");
    assert!(last.contains("latent z19999 : real"), "{last}");
    // One duplicate factor among 40,001: one E023.
    let dup = src.replace("  q {\n", "  q {\n    z7 ~ Normal(0, 1)\n");
    let Err(f) = vic::compile(&dup, "dup.vmodel") else {
        panic!("a duplicate factor expected")
    };
    assert_eq!(f.reports.len(), 1, "{f}");
    assert_eq!(f.reports[0].diag.code, vic::diag::Code::DuplicateFactor);
}

/// Features the backend does not run (E200) point at their declaration: the enumerated
/// latent (a static one, under free nats; a time-indexed one that the forward algorithm
/// cannot sum out is a check-time `E079` now), the objective block that sets overshooting (they had no span, so the report showed
/// no source).
#[test]
fn backend_refusals_point_at_their_declaration() {
    let src = r#"model hmm {
  observed x[t] : real
  latent   c : onehot[2] via enumerate
  param mu : real[2] = [-1, 1]
  p { c ~ Categorical(zeros(2))
      x[t] ~ Normal(dot(c, mu), 1) }
  q { c ~ Categorical(zeros(2)) }
  objective { overshooting = 2  free_nats = 1 }
}
"#;
    let m = vic::compile(src, "hmm.vmodel").expect("compiles");
    let errs =
        vic::lower::Program::new_spanned(m.ir(), &m.elbo(), &m.checked.spans).expect_err("refused");
    let rendered: Vec<String> = errs
        .into_iter()
        .map(|d| {
            assert_eq!(d.code, vic::diag::Code::Unsupported);
            assert!(d.primary_span().is_some(), "{d:?}");
            vic::diag::render_plain(&vic::diag::Report::new(d, "hmm.vmodel", src))
        })
        .collect();
    insta::assert_snapshot!(rendered.join("\n"));
}

/// `vic sample` of a model with an enumerated latent (discrete_vae's `c`) panicked in dfdx:
/// the ELBO enumerates over a batch tiled once per value, but the draws' batch is not tiled.
/// Draws now sample the latent like any other: one one-hot row per draw.
#[test]
fn sampling_a_model_with_an_enumerated_latent_draws_it() {
    let m = vic::compile(&model("discrete_vae.vmodel"), "discrete_vae.vmodel").unwrap();
    let program = vic::lower::Program::new(m.ir(), &m.elbo()).unwrap();
    let path = format!("{}/models/data/digits.npz", env!("CARGO_MANIFEST_DIR"));
    let d = vic::data::load(&path, &vic::train::specs_of(&program), 1).unwrap();
    let d = d.gather(&[0, 1, 2]);
    let cfg = vic::train::TrainConfig {
        batch: 3,
        holdout: 0.0,
        ..Default::default()
    };
    let tr = vic::train::Trainer::new(program, Some(d.clone()), cfg).unwrap();
    let batch = vic::train::data_batch(&tr.program, &d, &[0, 1, 2], 1);
    let mut rng = vic::runtime::rng::seeded(0);
    let drawn = tr
        .program
        .simulate(&tr.store, &batch, 0, &mut rng)
        .expect("draws");
    let c = tr.program.model.var_id("c").unwrap();
    let rows: Vec<&[f32]> = drawn[&c].chunks(10).collect();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(r.iter().filter(|&&x| x == 1.0).count(), 1, "{r:?}");
        assert_eq!(r.iter().filter(|&&x| x == 0.0).count(), 9, "{r:?}");
    }
}
