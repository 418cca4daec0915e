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
