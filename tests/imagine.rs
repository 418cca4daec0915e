//! Behaviour learning in imagination (`imagine { … }`): the derived term list of the two
//! shipped agents (kinds, discount weights, what each term trains, what is frozen), and a
//! hand check that the actor's terms add up, weight by weight, to Dreamer's λ-return as
//! `vic::agent::returns` computes it.

use std::path::Path;
use vic::derive::imagine::{Imagination, ImaginedKind, Learner, Trainable};
use vic::derive::KlForm;

fn load(stem: &str) -> vic::Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(format!("{stem}.vmodel"));
    let src = std::fs::read_to_string(&path).expect("model is readable");
    vic::compile(&src, &format!("{stem}.vmodel")).unwrap_or_else(|f| panic!("{stem}: {f}"))
}

fn imagination(m: &vic::Model) -> Imagination {
    m.elbo()
        .imagination
        .expect("the model has an imagine block")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn dreamer_terms_weights_and_trained_nets() {
    let m = load("dreamer_pendulum");
    let im = imagination(&m);
    assert_eq!((im.horizon, im.discount, im.lambda), (15, 0.99, 0.95));
    assert_eq!(im.action, "a");
    assert_eq!(im.state, ["s", "h"]);
    let kinds: Vec<&str> = im.terms.iter().map(|t| t.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "reward",
            "entropy",
            "bootstrap",
            "λ-correction",
            "critic loss"
        ]
    );
    // A Flat prior: −KL(q ‖ Flat) = H[q]; the TanhNormal has no closed-form entropy.
    assert_eq!(
        im.terms[1].kind,
        ImaginedKind::Entropy { closed_form: false }
    );
    // Discount weights γ^{τ−1}, τ = 1..15, on the reward and the entropy.
    for t in &im.terms[..2] {
        assert_eq!(t.weights.len(), 15);
        assert_eq!(t.weights[0], 1.0);
        for (k, w) in t.weights.iter().enumerate() {
            assert!(close(*w, 0.99f64.powi(k as i32)), "τ = {}: {w}", k + 1);
        }
    }
    assert!(close(im.terms[2].weights[0], 0.99f64.powi(15)));
    assert_eq!(im.terms[2].weights.len(), 1);
    // (1 − λ) γ^τ λ^{τ−1}, τ = 1..14: at τ = 1, 0.05 · 0.99.
    assert_eq!(im.terms[3].weights.len(), 14);
    assert!(close(im.terms[3].weights[0], 0.05 * 0.99));
    assert!(close(
        im.terms[3].weights[13],
        0.05 * 0.99f64.powi(14) * 0.95f64.powi(13)
    ));
    assert_eq!(im.terms[4].weights, vec![1.0; 15]);
    // The actor's terms train the actor only; the critic loss the critic only.
    let actor = m.ir().nets.iter().position(|n| n.name == "actor").unwrap();
    let value = m.ir().nets.iter().position(|n| n.name == "value").unwrap();
    for t in &im.terms[..4] {
        assert_eq!(t.learner, Learner::Actor);
        assert_eq!(
            t.train_ids,
            vec![Trainable::Net(actor)],
            "{}",
            t.kind.name()
        );
        assert_eq!(t.trains, ["actor"]);
    }
    assert_eq!(im.terms[4].learner, Learner::Critic);
    assert_eq!(im.terms[4].train_ids, vec![Trainable::Net(value)]);
    assert_eq!(im.frozen, ["cell", "prior", "post", "dec", "rew"]);
    assert!(!im.learned_prior);
    // The world model's ELBO is rssm's: same terms.
    let rssm = load("rssm").elbo();
    let world = m.elbo();
    assert_eq!(world.terms, rssm.terms);
    assert!(rssm.imagination.is_none());
}

#[test]
fn marino_yue_learned_prior_is_trained_through_the_kl_only() {
    let m = load("marino_yue_agent");
    let im = imagination(&m);
    let kinds: Vec<&ImaginedKind> = im.terms.iter().map(|t| &t.kind).collect();
    assert_eq!(
        kinds,
        [
            &ImaginedKind::Reward,
            &ImaginedKind::Kl {
                form: KlForm::NormalNormal
            },
            &ImaginedKind::Bootstrap,
            &ImaginedKind::LambdaCorrection,
            &ImaginedKind::CriticLoss
        ]
    );
    assert_eq!(im.terms[0].trains, ["policy"]);
    assert_eq!(im.terms[1].trains, ["habit", "policy"]);
    assert_eq!(im.terms[2].trains, ["policy"]);
    assert_eq!(im.terms[4].trains, ["value"]);
    assert_eq!(im.frozen, ["trans", "post", "dec", "rew"]);
    assert!(im.learned_prior);
    assert_eq!(im.policy, "q(a[t] | s[t])");
    assert_eq!(im.prior, "p(a[t] | s[t])");
}

/// Σ_τ w_r[τ] r̃_τ + w_b V_{H+1} + Σ_τ w_c[τ] (V_{τ+1} − G_{τ+1}) with the derived weights is
/// R^λ_1 exactly, for several (H, γ, λ), against `agent::returns::lambda_return`.
#[test]
fn actor_terms_sum_to_the_lambda_return() {
    for (h, gamma, lambda) in [
        (15, 0.99, 0.95),
        (4, 0.9, 0.5),
        (1, 0.99, 0.95),
        (6, 0.8, 1.0),
        (5, 0.7, 0.0),
    ] {
        let src = format!(
            "model m {{
               observed o[t] : real
               input    a[t] : real
               latent   s[t] : real
               init s[0] = 0
               init a[0] = 0
               net actor = mlp(1 -> 8 -> 2)
               net value = mlp(1 -> 8 -> 1)
               p {{
                 s[t] ~ Normal(s[t-1] + a[t-1], 1)
                 o[t] ~ Normal(s[t], 1)
               }}
               q {{ s[t] ~ Normal(o[t], 1) }}
               imagine {{
                 policy a[t] ~ TanhNormal.split(actor(s[t]))
                 prior  a[t] ~ Flat
                 reward   = -square(s[t])
                 critic   = value(s[t])
                 horizon  = {h}
                 discount = {gamma}
                 lambda   = {lambda}
               }}
             }}"
        );
        let m = vic::compile(&src, "inline.vmodel").unwrap_or_else(|f| panic!("{f}"));
        let im = imagination(&m);
        let weights = |k: ImaginedKind| -> Vec<f64> {
            im.terms
                .iter()
                .find(|t| t.kind == k)
                .map(|t| t.weights.clone())
                .unwrap_or_default()
        };
        let w_r = weights(ImaginedKind::Reward);
        let w_e = weights(ImaginedKind::Entropy { closed_form: false });
        assert_eq!(w_r, w_e, "the reward and the KL share the discount");
        let w_b = weights(ImaginedKind::Bootstrap);
        let w_c = weights(ImaginedKind::LambdaCorrection);
        assert_eq!(
            w_c.is_empty(),
            lambda == 1.0 || h == 1,
            "H = {h}, λ = {lambda}"
        );
        // Arbitrary soft rewards r̃_1..H and values V_1..V_{H+1}.
        let soft: Vec<f64> = (0..h)
            .map(|k| ((k * 7 + 3) % 11) as f64 * 0.3 - 1.2)
            .collect();
        let val: Vec<f64> = (0..=h)
            .map(|k| ((k * 5 + 1) % 9) as f64 * 0.4 - 1.0)
            .collect();
        // G_τ, the λ = 1 return from τ (1-based), G_{H+1} = V_{H+1}.
        let mut g = vec![0.0; h + 2];
        g[h + 1] = val[h];
        for tau in (1..=h).rev() {
            g[tau] = soft[tau - 1] + gamma * g[tau + 1];
        }
        let mut sum = w_b[0] * val[h];
        for tau in 1..=h {
            sum += w_r[tau - 1] * soft[tau - 1];
        }
        for (k, w) in w_c.iter().enumerate() {
            let tau = k + 1;
            sum += w * (val[tau] - g[tau + 1]);
        }
        let rew: Vec<f32> = soft.iter().map(|&x| x as f32).collect();
        let v32: Vec<f32> = val.iter().map(|&x| x as f32).collect();
        let ret = vic::agent::returns::lambda_return(
            &rew,
            &v32,
            &vec![1.0; h],
            1,
            gamma as f32,
            lambda as f32,
        );
        assert!(
            (sum - f64::from(ret[0])).abs() < 1e-4,
            "H = {h}, γ = {gamma}, λ = {lambda}: terms sum to {sum}, R^λ_1 = {}",
            ret[0]
        );
    }
}

#[test]
fn the_world_model_lowers_beside_an_imagine_block() {
    for stem in ["dreamer_pendulum", "marino_yue_agent"] {
        let m = load(stem);
        assert!(
            vic::lower::Program::new(m.ir(), &m.elbo()).is_ok(),
            "{stem}"
        );
    }
}

/// `vic run` trains the world model and says, on stderr, that the imagine block is ignored.
#[test]
fn run_trains_the_world_model_and_says_imagination_is_ignored() {
    let dir = std::env::temp_dir().join(format!("vic-imagine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vic"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "models/marino_yue_agent.vmodel",
            "--steps",
            "2",
            "--batch",
            "4",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("vic runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vic run failed: {stderr}");
    assert!(
        stderr.contains(
            "the `imagine` block (behaviour learning in imagination) is run by `vic agent`"
        ),
        "{stderr}"
    );
}

/// `vic graph` draws the policy and the prior into the action, and the critic and the imagined
/// reward as their own nodes, all dotted; rssm (no imagine block) has none of them.
#[test]
fn graph_shows_the_policy_and_the_critic() {
    let dot = load("dreamer_pendulum").graph();
    for line in [
        "\"h\" -> \"a\" [style=dotted, color=blue, label=\"policy\"];",
        "\"s\" -> \"a\" [style=dotted, color=blue, label=\"policy\"];",
        "\"h\" -> \"imagine critic\" [style=dotted, color=blue];",
        "\"s\" -> \"imagine reward\" [style=dotted, color=blue];",
        "\"imagine critic\" [label=\"V = value(h[t], s[t])\"",
    ] {
        assert!(dot.contains(line), "missing {line}\n{dot}");
    }
    // A Flat prior reads nothing: no prior edge.
    assert!(!dot.contains("label=\"prior\""));
    let habit = load("marino_yue_agent").graph();
    assert!(habit.contains("\"s\" -> \"a\" [style=dotted, color=blue, label=\"prior\"];"));
    assert!(!load("rssm").graph().contains("imagine"));
}
