//! The derived ELBO: reviewed snapshots of every model in `models/` in every output format
//! (`tests/snapshots/elbo/<stem>.{text,steps,latex,json}.snap`), structural checks of the term
//! lists against the seed papers, and a check that the LaTeX documents compile and fit their
//! page (no overfull line).

use std::path::{Path, PathBuf};
use std::process::Command;
use vic::derive::{Elbo, FactorView, KlForm, Method, Mode, Range, Term, TermKind};
use vic::ir::{FreeNats, FreeNatsPlacement, KlWeight};
use vic::render::Format;

fn model_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("models/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "vmodel"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no models found in models/");
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

fn load(stem: &str) -> vic::Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(format!("{stem}.vmodel"));
    let src = std::fs::read_to_string(&path).expect("model is readable");
    vic::compile(&src, &format!("{stem}.vmodel")).unwrap_or_else(|f| panic!("{stem}: {f}"))
}

fn inline(src: &str) -> vic::Model {
    vic::compile(src, "inline.vmodel").unwrap_or_else(|f| panic!("{f}"))
}

// ---------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn snapshots_of_every_model_in_every_format() {
    for path in model_files() {
        let stem = stem(&path);
        let m = load(&stem);
        let outputs = [
            ("text", m.render_elbo(Format::Text, false)),
            ("steps", m.render_elbo(Format::Text, true)),
            ("latex", m.render_elbo(Format::Latex, false)),
            ("json", m.render_elbo(Format::Json, false)),
        ];
        for (kind, out) in outputs {
            insta::with_settings!({
                snapshot_path => "snapshots/elbo",
                prepend_module_to_snapshot => false,
                description => format!("vic elbo models/{stem}.vmodel ({kind})"),
                omit_expression => true,
            }, {
                insta::assert_snapshot!(format!("{stem}.{kind}"), out);
            });
        }
    }
}

#[test]
fn json_is_valid_and_versioned() {
    for path in model_files() {
        let stem = stem(&path);
        let m = load(&stem);
        for steps in [false, true] {
            let doc: serde_json::Value = serde_json::from_str(&m.render_elbo(Format::Json, steps))
                .unwrap_or_else(|e| panic!("{stem}: invalid JSON: {e}"));
            assert_eq!(doc["version"], 1, "{stem}");
            assert_eq!(doc["model"], stem.as_str());
            let terms = doc["terms"].as_array().expect("terms is an array");
            assert_eq!(terms.len(), m.elbo().terms.len(), "{stem}");
            for t in terms {
                for key in [
                    "kind",
                    "owner",
                    "range",
                    "under",
                    "method",
                    "why",
                    "modifiers",
                ] {
                    assert!(t.get(key).is_some(), "{stem}: term without `{key}`");
                }
                assert!(t["sign"] == 1 || t["sign"] == -1, "{stem}");
            }
            assert_eq!(
                doc.get("steps").is_some(),
                steps,
                "{stem}: steps only on request"
            );
            if steps {
                for st in doc["steps"].as_array().unwrap() {
                    assert_eq!(
                        st["text"].as_array().unwrap().len(),
                        st["latex"].as_array().unwrap().len(),
                        "{stem}: one LaTeX line per text line"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Term structure

fn view(f: &FactorView) -> (&str, &str, Vec<&str>) {
    (
        f.block,
        f.target.as_str(),
        f.given.iter().map(String::as_str).collect(),
    )
}

fn kl(t: &Term) -> (&FactorView, &FactorView, KlForm) {
    match &t.kind {
        TermKind::Kl { q, p, form } => (q, p, *form),
        k => panic!("expected a KL term, got {k:?}"),
    }
}

fn kinds(e: &Elbo) -> Vec<(&'static str, &str, Range)> {
    e.terms
        .iter()
        .map(|t| {
            let k = match t.kind {
                TermKind::LogLikelihood { .. } => "loglik",
                TermKind::Kl { .. } => "kl",
                TermKind::LogRatio { .. } => "logratio",
                TermKind::Entropy { .. } => "entropy",
                TermKind::Reward { .. } => "reward",
                TermKind::Marginal { .. } => "marginal",
            };
            (k, t.owner.as_str(), t.range)
        })
        .collect()
}

fn estimator<'a>(e: &'a Elbo, var: &str) -> &'a str {
    e.estimators
        .iter()
        .find(|x| x.var == var)
        .unwrap_or_else(|| panic!("no estimator for {var}"))
        .estimator
}

/// W8's HMM: the chain `k` has no q factor and is annotated `via enumerate`, so it is summed
/// out of p by the forward algorithm: one marginal term, no cancellation, and the bound is
/// the evidence.
#[test]
fn hmm_is_one_marginal_term() {
    let e = load("hmm").elbo();
    assert_eq!(kinds(&e), [("marginal", "k", Range::From { t: 1 })]);
    assert!(e.cancellations.is_empty());
    assert_eq!(e.terms[0].compute, vic::forms::Compute::Forward);
    assert_eq!(estimator(&e, "k"), "enumerate");
}

#[test]
fn vae_is_reconstruction_minus_kl() {
    let e = load("vae_digits").elbo();
    assert_eq!(e.mode, Mode::Fit);
    assert_eq!(
        kinds(&e),
        [("loglik", "x", Range::Static), ("kl", "z", Range::Static)]
    );
    let TermKind::LogLikelihood { p } = &e.terms[0].kind else {
        unreachable!()
    };
    assert_eq!(view(p), ("p", "x", vec!["z"]));
    assert_eq!(e.terms[0].under, ["z"]);
    let (q, p, form) = kl(&e.terms[1]);
    assert_eq!(form, KlForm::NormalNormal);
    assert_eq!(view(q), ("q", "z", vec!["x"]));
    assert_eq!(view(p), ("p", "z", vec![]));
    assert_eq!(e.terms[1].method, Method::Analytic);
    assert_eq!(e.terms[1].kind.sign(), -1);
    assert!(e.cancellations.is_empty());
    assert_eq!(e.bound.evidence, ["x"]);
    assert!(e.bound.given.is_empty() && e.bound.optimality.is_empty());
    assert_eq!(estimator(&e, "z"), "reparam");
}

/// Eq. 4 of "Variational Inference in POMDPs", with the KL in the direction KL(q ‖ p).
#[test]
fn ssm_is_eq_4_of_vi_in_pomdps() {
    let m = load("ssm");
    let e = m.elbo();
    assert_eq!(e.mode, Mode::Fit);
    assert_eq!(
        kinds(&e),
        [
            ("loglik", "o", Range::From { t: 1 }),
            ("kl", "s", Range::At { t: 1 }),
            ("kl", "s", Range::From { t: 2 }),
        ]
    );
    let TermKind::LogLikelihood { p } = &e.terms[0].kind else {
        unreachable!()
    };
    assert_eq!(view(p), ("p", "o[t]", vec!["s[t]"]));
    // t = 1: q's general case reads the init values s[0], a[0]: constants, dropped.
    let (q, p, _) = kl(&e.terms[1]);
    assert_eq!(view(q), ("q", "s[1]", vec!["o[1]"]));
    assert_eq!(view(p), ("p", "s[1]", vec![]));
    assert!(e.terms[1].under.is_empty(), "no sampled parents at t = 1");
    let (q, p, form) = kl(&e.terms[2]);
    assert_eq!(form, KlForm::NormalNormal);
    assert_eq!(view(q), ("q", "s[t]", vec!["s[t-1]", "a[t-1]", "o[t]"]));
    assert_eq!(view(p), ("p", "s[t]", vec!["s[t-1]", "a[t-1]"]));
    assert_eq!(e.terms[2].under, ["s"]);
    for t in &e.terms[1..] {
        assert_eq!(t.kind.sign(), -1, "KL terms are subtracted");
    }
    assert!(e.cancellations.is_empty());
    assert_eq!(e.bound.evidence, ["o[1:T]"]);
    assert_eq!(e.bound.given, ["a[1:T-1]"]);
    // Direction: the q view is the first argument of the KL.
    let text = m.render_elbo(Format::Text, false);
    assert!(text.contains("− KL( q(s[1] | o[1]) ‖ p(s[1]) )"), "{text}");
    assert!(text.contains(
        "− Σ_{t=2..T} 𝔼_q[ KL( q(s[t] | s[t-1], a[t-1], o[t]) ‖ p(s[t] | s[t-1], a[t-1]) ) ]"
    ));
    assert!(text.contains("≤ log p(o[1:T] | a[1:T-1])"));
}

/// Marino & Yue 2019, eq. 6: rewards − KL on states − KL on actions; no data.
#[test]
fn marino_yue_is_rewards_minus_state_and_action_kl() {
    let e = load("marino_yue").elbo();
    assert_eq!(e.mode, Mode::Control);
    assert_eq!(
        kinds(&e),
        [
            ("reward", "O", Range::From { t: 1 }),
            ("kl", "s", Range::At { t: 1 }),
            ("kl", "s", Range::From { t: 2 }),
            ("kl", "a", Range::From { t: 1 }),
        ]
    );
    assert_eq!(e.terms[0].kind.sign(), 1);
    let TermKind::Reward { alpha, .. } = &e.terms[0].kind else {
        unreachable!()
    };
    assert_eq!(*alpha, vic::ir::Alpha::Fixed(1.0));
    let (q, p, _) = kl(&e.terms[2]);
    assert_eq!(view(q), ("q", "s[t]", vec!["s[t-1]", "a[t-1]"]));
    assert_eq!(view(p), ("p", "s[t]", vec!["s[t-1]", "a[t-1]"]));
    let (q, p, _) = kl(&e.terms[3]);
    assert_eq!(view(q), ("q", "a[t]", vec!["s[t]"]));
    assert_eq!(view(p), ("p", "a[t]", vec!["s[t]"]), "learned action prior");
    assert!(e.cancellations.is_empty());
    assert!(e.bound.evidence.is_empty() && e.bound.given.is_empty());
    assert_eq!(e.bound.optimality, ["O[1:T]"]);
}

/// MaxEnt RL: with a Flat action prior the KL is −H[q]; the state dynamics have no q factor,
/// so they cancel instead of giving terms.
#[test]
fn maxent_rl_is_reward_plus_entropy_with_tied_dynamics() {
    for (stem, state, action, closed) in [("lqr", "x", "u", true), ("sac", "s", "a", false)] {
        let e = load(stem).elbo();
        assert_eq!(e.mode, Mode::Control, "{stem}");
        assert_eq!(
            kinds(&e),
            [
                ("reward", "O", Range::From { t: 1 }),
                ("entropy", action, Range::From { t: 1 }),
            ],
            "{stem}"
        );
        let TermKind::Entropy { q, closed_form } = &e.terms[1].kind else {
            unreachable!()
        };
        assert_eq!(
            *closed_form, closed,
            "{stem}: Normal entropy analytic, TanhNormal MC"
        );
        assert_eq!(q.block, "q");
        assert_eq!(e.terms[1].kind.sign(), 1, "{stem}: + H[q]");
        assert!(e.terms.iter().all(|t| t.owner != state), "{stem}");
        let c: Vec<(&str, Range)> = e
            .cancellations
            .iter()
            .map(|c| (c.var.as_str(), c.range))
            .collect();
        assert_eq!(
            c,
            [(state, Range::At { t: 1 }), (state, Range::From { t: 2 })],
            "{stem}"
        );
        assert_eq!(e.cancellations[1].p.block, "p");
        let est = e.estimators.iter().find(|x| x.var == state).unwrap();
        assert_eq!(est.sampled_from, "p", "{stem}: the state is sampled from p");
        assert_eq!(e.bound.optimality, ["O[1:T]"]);
        assert!(e.bound.evidence.is_empty());
    }
    let sac = load("sac").elbo();
    let TermKind::Reward { alpha, .. } = &sac.terms[0].kind else {
        unreachable!()
    };
    assert!(matches!(alpha, vic::ir::Alpha::Auto { .. }));
}

#[test]
fn a_latent_without_q_only_cancels() {
    let e = inline(
        "model noq {
           observed x : real
           latent z : real
           latent w : real
           p { z ~ Normal(0, 1)
               w ~ Normal(z, 1)
               x ~ Normal(w, 1) }
           q { w ~ Normal(x, 1) }
         }",
    )
    .elbo();
    assert_eq!(
        kinds(&e),
        [("loglik", "x", Range::Static), ("kl", "w", Range::Static)]
    );
    assert_eq!(e.cancellations.len(), 1);
    assert_eq!(e.cancellations[0].var, "z");
    assert_eq!(e.cancellations[0].range, Range::Static);
    // The KL on w is averaged over z, which is drawn from p.
    let (q, p, _) = kl(&e.terms[1]);
    assert_eq!(view(q), ("q", "w", vec!["x"]));
    assert_eq!(view(p), ("p", "w", vec!["z"]));
    assert_eq!(e.terms[1].under, ["z"]);
    let z = e.estimators.iter().find(|x| x.var == "z").unwrap();
    assert_eq!(z.sampled_from, "p");
}

const DISCRETE: &str = "model disc {
  observed x : real[4]
  observed y[t] : real
  latent b : binary[3]
  latent c : onehot[4, 3]
  latent g : onehot[32, 32]
  latent k : onehot[10]
  latent s : onehot[32, 32] via straight_through
  latent u : real[2]
  latent d[t] : onehot[3]
  latent n : real[2]
  net f = mlp(4 -> 8 -> 3, relu)
  p { b ~ Bernoulli(zeros(3))
      c ~ Categorical(zeros(12))
      g ~ Categorical(zeros(1024))
      k ~ Categorical(zeros(10))
      s ~ Categorical(zeros(1024))
      u ~ Uniform(-2, 2)
      n ~ Normal(0, 1)
      d[t] ~ Categorical(zeros(3))
      x ~ Normal(u.0 + n.0 + dot(b, ones(3)) + sum(c) + sum(g) + sum(k) + sum(s), 1)
      y[t] ~ Normal(sum(d[t]), 1) }
  q { b ~ Bernoulli(f(x))
      c ~ Categorical(zeros(12))
      g ~ Categorical(zeros(1024))
      k ~ Categorical(zeros(10))
      s ~ Categorical(zeros(1024))
      u ~ Uniform(-1, 1)
      n ~ Normal(x.0, 1)
      d[t] ~ Categorical(zeros(3)) }
  objective {
    kl_weight = anneal(0, 1, steps = 100)
    free_nats = 3.0, placement = per_step
    kl_balance = 0.8
  }
}";

#[test]
fn closed_form_kl_pairs() {
    let e = inline(DISCRETE).elbo();
    let form = |v: &str| {
        let t = e.terms.iter().find(|t| t.owner == v).unwrap();
        assert_eq!(t.method, Method::Analytic, "{v}");
        kl(t).2
    };
    assert_eq!(form("b"), KlForm::BernoulliBernoulli);
    assert_eq!(form("c"), KlForm::CategoricalCategorical, "onehot[G, K]");
    assert_eq!(form("g"), KlForm::CategoricalCategorical);
    assert_eq!(form("u"), KlForm::UniformUniform);
    assert_eq!(form("n"), KlForm::NormalNormal);
    assert_eq!(form("d"), KlForm::CategoricalCategorical);
    // Evidence first, then the KL terms.
    assert_eq!(
        kinds(&e)[..2],
        [
            ("loglik", "x", Range::Static),
            ("loglik", "y", Range::From { t: 1 })
        ]
    );
}

#[test]
fn estimator_choice() {
    let e = inline(DISCRETE).elbo();
    assert_eq!(estimator(&e, "n"), "reparam", "Normal");
    assert_eq!(estimator(&e, "u"), "reparam", "Uniform");
    assert_eq!(estimator(&e, "b"), "enumerate", "binary[3]: 8 values");
    assert_eq!(estimator(&e, "k"), "enumerate", "onehot[10] static");
    assert_eq!(
        estimator(&e, "c"),
        "score_function",
        "onehot[4, 3]: 81 values"
    );
    assert_eq!(estimator(&e, "g"), "score_function", "onehot[32, 32]");
    assert_eq!(estimator(&e, "s"), "straight_through", "annotated");
    assert_eq!(
        estimator(&e, "d"),
        "score_function",
        "time-indexed discrete"
    );
    let why = |v: &str| {
        e.estimators
            .iter()
            .find(|x| x.var == v)
            .unwrap()
            .why
            .clone()
    };
    assert!(why("g").contains("32^32"), "{}", why("g"));
    assert!(why("d").contains("time-indexed"), "{}", why("d"));
    assert!(why("s").contains("via straight_through"), "{}", why("s"));
}

#[test]
fn modifiers_attach_to_kl_terms_only() {
    let e = inline(DISCRETE).elbo();
    for t in &e.terms {
        let m = &t.modifiers;
        if t.kind.is_kl_like() {
            assert_eq!(
                m.kl_weight,
                Some(KlWeight::Anneal {
                    from: 0.0,
                    to: 1.0,
                    steps: 100
                }),
                "{}",
                t.owner
            );
            assert_eq!(
                m.free_nats,
                Some(FreeNats {
                    nats: 3.0,
                    placement: FreeNatsPlacement::PerStep
                })
            );
            assert_eq!(m.kl_balance, Some(0.8));
        } else {
            assert_eq!(m.kl_weight, None, "{}", t.owner);
            assert_eq!(m.free_nats, None, "{}", t.owner);
            assert_eq!(m.kl_balance, None, "{}", t.owner);
        }
        assert_eq!(m.scale, 1.0);
    }
    // Free nats default to `after_mean`; per-term scales reach their own term only.
    let e = inline(
        "model fn {
           observed x : real
           latent z : real
           p { z ~ Normal(0, 1)
               x ~ Normal(z, 1) }
           q { z ~ Normal(x, 1) }
           objective {
             free_nats = 1.5
             scale x = 2
           }
         }",
    )
    .elbo();
    assert_eq!(e.terms[0].modifiers.scale, 2.0);
    assert_eq!(e.terms[0].modifiers.free_nats, None);
    assert_eq!(e.terms[1].modifiers.scale, 1.0);
    assert_eq!(
        e.terms[1].modifiers.free_nats,
        Some(FreeNats {
            nats: 1.5,
            placement: FreeNatsPlacement::AfterMean
        })
    );
    // No modifiers at all on a plain model.
    let vae = load("vae_digits").elbo();
    assert!(vae
        .terms
        .iter()
        .all(|t| t.modifiers.kl_weight.is_none() && t.modifiers.free_nats.is_none()));
}

#[test]
fn tanh_normal_against_uniform_is_a_monte_carlo_log_ratio() {
    let e = inline(
        "model tu {
           observed x : real
           latent a : real
           p { a ~ Uniform(-1, 1)
               x ~ Normal(a, 1) }
           q { a ~ TanhNormal(x, 1) }
         }",
    )
    .elbo();
    let t = &e.terms[1];
    let TermKind::LogRatio { q, p } = &t.kind else {
        panic!("expected a log-ratio, got {:?}", t.kind)
    };
    assert_eq!(view(q), ("q", "a", vec!["x"]));
    assert_eq!(view(p), ("p", "a", vec![]));
    assert_eq!(t.method, Method::MonteCarlo);
    assert_eq!(t.kind.sign(), 1, "+ 𝔼[log p − log q]");
    assert_eq!(t.under, ["a"], "a Monte Carlo average over a's own sample");
    assert_eq!(estimator(&e, "a"), "reparam");
}

const IWAE: &str = "model iw {
  observed x : real[2]
  latent z : real[2]
  net enc = mlp(2 -> 8 -> 4, relu)
  net dec = mlp(2 -> 8 -> 2, relu)
  p { z ~ Normal(0, 1)
      x ~ Normal(dec(z), 1) }
  q { z ~ Normal.split(enc(x)) }
  objective { iwae = 5 }
}";

#[test]
fn iwae_turns_kl_into_log_ratio() {
    let m = inline(IWAE);
    let e = m.elbo();
    assert_eq!(e.iwae, 5);
    assert_eq!(
        kinds(&e),
        [
            ("loglik", "x", Range::Static),
            ("logratio", "z", Range::Static)
        ]
    );
    assert_eq!(e.terms[1].method, Method::MonteCarlo);
    assert!(e.terms[1].why.contains("IWAE"));
    let text = m.render_elbo(Format::Text, false);
    assert!(
        text.starts_with("ELBO (IWAE, K = 5) = 𝔼_q[ log (1/K) Σ_{k=1..K} exp w_k ]\n"),
        "{text}"
    );
    assert!(text.contains("where w = log p(x | z)\n          + log p(z) − log q(z | x)\n"));
}

// ---------------------------------------------------------------------------------------------
// LaTeX compiles

/// Whether an external tool runs; when it does not, fail under CI and skip otherwise.
pub fn tool_available(tool: &str, version_arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("`{tool}` is not installed, and CI is set: CI must install it");
        }
        eprintln!("skipped: `{tool}` is not installed (set CI=1 to make this a failure)");
    }
    ok
}

#[test]
fn latex_documents_compile() {
    if !tool_available("pdflatex", "--version") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vic-latex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut docs: Vec<(String, vic::Model)> = model_files()
        .iter()
        .map(|p| (stem(p), load(&stem(p))))
        .collect();
    docs.push(("inline_discrete".into(), inline(DISCRETE)));
    docs.push(("inline_iwae".into(), inline(IWAE)));
    let mut failures = Vec::new();
    for (name, m) in &docs {
        for steps in [false, true] {
            let job = format!("{name}{}", if steps { "_steps" } else { "" });
            let tex = dir.join(format!("{job}.tex"));
            std::fs::write(&tex, m.render_elbo(Format::Latex, steps)).unwrap();
            let out = Command::new("pdflatex")
                .args(["-interaction=nonstopmode", "-halt-on-error"])
                .arg(format!("{job}.tex"))
                .current_dir(&dir)
                .output()
                .expect("pdflatex runs");
            if !out.status.success() || !dir.join(format!("{job}.pdf")).exists() {
                let log = String::from_utf8_lossy(&out.stdout);
                let errors: Vec<&str> = log
                    .lines()
                    .skip_while(|l| !l.starts_with('!'))
                    .take(12)
                    .collect();
                failures.push(format!("{job}.tex:\n{}", errors.join("\n")));
                continue;
            }
            // The page fits the math: TeX reports no line wider than the text.
            let log = std::fs::read_to_string(dir.join(format!("{job}.log"))).unwrap_or_default();
            let overfull: Vec<&str> = log
                .lines()
                .filter(|l| l.starts_with("Overfull \\hbox"))
                .collect();
            if !overfull.is_empty() {
                failures.push(format!(
                    "{job}.tex is wider than its page:\n{}",
                    overfull.join("\n")
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn json_doc_example_is_current() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/elbo-json.md"))
            .expect("docs/elbo-json.md exists");
    let example = doc
        .split("```json\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("docs/elbo-json.md has a ```json example");
    let documented: serde_json::Value = serde_json::from_str(example).expect("the example parses");
    let actual: serde_json::Value =
        serde_json::from_str(&load("lg_toy").render_elbo(Format::Json, false)).unwrap();
    assert_eq!(
        documented, actual,
        "update the example in docs/elbo-json.md"
    );
}
