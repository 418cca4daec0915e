//! Behaviour learning in imagination, run (issue 9): the compiled actor and critic programs
//! against an independent f64 rollout of a tiny linear world model written out by hand here
//! (value of the imagined λ-return bound, the critic's loss and its gradient), and the actor's
//! gradient against central finite differences of the objective — on the linear model and on a
//! small Dreamer-shaped one (GRU, ELU layers, TanhNormal policy, Flat prior).

use rand::Rng as _;
use rand_distr::StandardNormal;
use vic::agent::behaviour::{Behaviour, BehaviourConfig};
use vic::agent::learn::param_index;
use vic::lower::Program;
use vic::runtime::{rng, Dev};

const LINEAR: &str = "model tiny_agent {
  dim O = 2, A = 1, S = 2
  observed o[t] : real[O]
  observed r[t] : real
  input    a[t] : real[A]
  latent   s[t] : real[S]
  init s[0] = 0
  init a[0] = 0
  net trans  = mlp(S + A -> 2*S)
  net post   = mlp(S + A + O -> 2*S)
  net dec    = mlp(S -> O)
  net rew    = mlp(S + A -> 1)
  net policy = mlp(S -> 2*A)
  net habit  = mlp(S -> 2*A)
  net value  = mlp(S -> 1)
  p {
    s[t] ~ Normal.split(trans(s[t-1], a[t-1]), min = 0.1)
    o[t] ~ Normal(dec(s[t]), 1)
    r[t] ~ Normal(rew(s[t], a[t]), 1)
  }
  q {
    s[t] ~ Normal.split(post(s[t-1], a[t-1], o[t]), min = 0.1)
  }
  imagine {
    policy a[t] ~ Normal.split(policy(s[t]), min = 0.01)
    prior  a[t] ~ Normal.split(habit(s[t]), min = 0.01)
    reward   = rew(s[t], a[t])
    alpha    = 0.5
    critic   = value(s[t])
    horizon  = 3
    discount = 0.9
    lambda   = 0.8
    start    = posterior
  }
}";

const DREAMER: &str = "model tiny_dreamer {
  dim O = 2, A = 1, S = 2, D = 3, H = 4
  observed o[t] : real[O]
  observed r[t] : real
  input    a[t] : real[A]
  latent   s[t] : real[S]
  state    h[t] : real[D]
  init h[0] = 0
  init s[0] = 0
  init a[0] = 0
  net cell  = gru(S + A -> D)
  net prior = mlp(D -> H -> 2*S, elu)
  net post  = mlp(D + O -> H -> 2*S, elu)
  net dec   = mlp(D + S -> O)
  net rew   = mlp(D + S -> H -> 1, elu)
  net actor = mlp(D + S -> H -> 2*A, elu)
  net value = mlp(D + S -> 1)
  p {
    h[t] = cell(h[t-1], s[t-1], a[t-1])
    s[t] ~ Normal.split(prior(h[t]), min = 0.1)
    o[t] ~ Normal(dec(h[t], s[t]), 1)
    r[t] ~ Normal(rew(h[t], s[t]), 1)
  }
  q {
    s[t] ~ Normal.split(post(h[t], o[t]), min = 0.1)
  }
  imagine {
    policy a[t] ~ TanhNormal.split(actor(h[t], s[t]))
    prior  a[t] ~ Flat
    reward   = rew(h[t], s[t])
    alpha    = 0.1
    critic   = value(h[t], s[t])
    horizon  = 4
    discount = 0.95
    lambda   = 0.9
    start    = posterior
  }
}";

struct Setup {
    _program: Program,
    bh: Behaviour,
    values: Vec<Vec<f32>>,
    names: Vec<String>,
    starts: Vec<Vec<f32>>,
}

fn setup(src: &str, n: usize) -> Setup {
    setup_with(src, n, BehaviourConfig::default())
}

fn setup_with(src: &str, n: usize, cfg: BehaviourConfig) -> Setup {
    let m = vic::compile(src, "tiny.vmodel").expect("compiles");
    let program = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = program
        .init_params(&Dev::default(), &mut rng::seeded(3))
        .expect("params");
    let (index, mut values) = param_index(&store);
    let mut names = vec![String::new(); index.len()];
    for (k, v) in &index {
        names[v.0] = k.clone();
    }
    // Biases away from zero, so that every path carries a gradient.
    let mut r = rng::seeded(5);
    for (v, name) in values.iter_mut().zip(&names) {
        if name.ends_with(".b") || name.ends_with(".b_i") || name.ends_with(".b_h") {
            for x in v.iter_mut() {
                *x = 0.3 * r.sample::<f32, _>(StandardNormal);
            }
        }
    }
    let im = program.elbo.imagination.clone().expect("an imagine block");
    let bh =
        Behaviour::new(&program, &im, &index, n, 1, cfg).expect("compiles the behaviour programs");
    let starts = bh
        .state_vars
        .iter()
        .map(|&v| {
            let size = program.model.vars[v].ty.size();
            (0..n * size)
                .map(|_| r.sample::<f32, _>(StandardNormal))
                .collect()
        })
        .collect();
    Setup {
        _program: program,
        bh,
        values,
        names,
        starts,
    }
}

fn param<'a>(s: &'a Setup, name: &str) -> &'a [f32] {
    let i = s.names.iter().position(|n| n == name).expect(name);
    &s.values[i]
}

fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// `y = x·W + b` with `W` stored `(in, out)` row-major.
fn affine(x: &[f64], w: &[f32], b: &[f32]) -> Vec<f64> {
    let out = b.len();
    (0..out)
        .map(|j| {
            b[j] as f64
                + x.iter()
                    .enumerate()
                    .map(|(i, xi)| xi * w[i * out + j] as f64)
                    .sum::<f64>()
        })
        .collect()
}

/// The linear model's imagined objective, the critic's loss and the critic's gradient
/// (dW, db), rolled out by hand in f64 with the noise the programs draw (per step: the
/// action's, then the latent's, each `n × size` in row order).
fn hand(s: &Setup, n: usize, seed: u64) -> (f64, f64, Vec<f64>, Vec<f64>) {
    let (h, gamma, lambda, alpha) = (3usize, 0.9f64, 0.8f64, 0.5f64);
    let k = 1.0 / (1.0 - gamma);
    let mut r = rng::seeded(seed);
    let mut eps_a = Vec::new();
    let mut eps_s = Vec::new();
    for _ in 0..h {
        eps_a.push(
            (0..n)
                .map(|_| r.sample::<f32, _>(StandardNormal) as f64)
                .collect::<Vec<_>>(),
        );
        eps_s.push(
            (0..2 * n)
                .map(|_| r.sample::<f32, _>(StandardNormal) as f64)
                .collect::<Vec<_>>(),
        );
    }
    let p = |name: &str| param(s, name);
    let (mut obj, mut closs) = (0.0, 0.0);
    let (mut dw, mut db) = (vec![0.0; 2], vec![0.0; 1]);
    for i in 0..n {
        let mut st: Vec<Vec<f64>> = vec![s.starts[0][2 * i..2 * i + 2]
            .iter()
            .map(|&x| x as f64)
            .collect()];
        let (mut soft, mut vals) = (Vec::new(), vec![0.0]);
        for tau in 0..h {
            let x = &st[tau];
            let hq = affine(x, p("net.policy.l0.w"), p("net.policy.l0.b"));
            let (lq, sq) = (hq[0], softplus(hq[1]) + 0.01);
            let a = lq + sq * eps_a[tau][i];
            let hp = affine(x, p("net.habit.l0.w"), p("net.habit.l0.b"));
            let (lp, sp) = (hp[0], softplus(hp[1]) + 0.01);
            let kl = (sp / sq).ln() + (sq * sq + (lq - lp) * (lq - lp)) / (2.0 * sp * sp) - 0.5;
            let xa = [x[0], x[1], a];
            let rew = affine(&xa, p("net.rew.l0.w"), p("net.rew.l0.b"))[0];
            soft.push(rew - alpha * kl);
            let ht = affine(&xa, p("net.trans.l0.w"), p("net.trans.l0.b"));
            let next: Vec<f64> = (0..2)
                .map(|d| ht[d] + (softplus(ht[2 + d]) + 0.1) * eps_s[tau][2 * i + d])
                .collect();
            vals.push(k * affine(&next, p("net.value.l0.w"), p("net.value.l0.b"))[0]);
            st.push(next);
        }
        let mut ret = vec![0.0; h + 1];
        ret[h] = vals[h];
        for tau in (0..h).rev() {
            ret[tau] = soft[tau] + gamma * ((1.0 - lambda) * vals[tau + 1] + lambda * ret[tau + 1]);
        }
        obj += ret[0];
        for tau in 0..h {
            let v = k * affine(&st[tau], p("net.value.l0.w"), p("net.value.l0.b"))[0];
            let e = v - ret[tau];
            closs += 0.5 * e * e;
            for d in 0..2 {
                dw[d] += k * e * st[tau][d];
            }
            db[0] += k * e;
        }
    }
    let nn = n as f64;
    (
        obj / nn,
        closs / nn,
        dw.iter().map(|x| x / nn).collect(),
        db.iter().map(|x| x / nn).collect(),
    )
}

fn close(what: &str, got: f64, want: f64, rel: f64, abs: f64) {
    assert!(
        (got - want).abs() <= abs + rel * want.abs(),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn the_imagined_bound_and_the_critic_match_a_hand_rollout_of_a_linear_world_model() {
    let n = 7;
    let mut s = setup(LINEAR, n);
    let (st, _, gc) =
        s.bh.gradients(&s.starts, None, &s.values, &mut rng::seeded(42))
            .expect("finite");
    let (obj, closs, dw, db) = hand(&s, n, 42);
    // f32 programs against an f64 hand computation: rounding only.
    close("α·R^λ_1", st.objective, obj, 1e-4, 1e-5);
    close("critic loss", st.critic_loss, closs, 1e-4, 1e-5);
    // The critic's gradient: ∂/∂θ ½ Σ_τ (V(s_τ) − sg(R^λ_τ))², by hand.
    let ids = &s.bh.critic_params;
    for (&p, g) in ids.iter().zip(&gc) {
        let want: &[f64] = if s.names[p].ends_with(".w") { &dw } else { &db };
        for (a, b) in g.iter().zip(want) {
            close(&s.names[p], *a as f64, *b, 1e-4, 1e-5);
        }
    }
    assert!(st.objective.abs() > 1e-3, "a non-trivial objective");
}

/// The actor's gradient of −mean α·R^λ_1 against central differences of the same objective
/// (the same noise: the generator is re-seeded for every evaluation).
fn actor_gradient_matches_finite_differences(src: &str, n: usize) {
    let mut s = setup(src, n);
    let seed = 9;
    let (st, ga, _) =
        s.bh.gradients(&s.starts, None, &s.values, &mut rng::seeded(seed))
            .expect("finite");
    assert!(st.actor_grad_norm > 1e-4, "a gradient to check");
    let ids = s.bh.actor_params.clone();
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for (j, &p) in ids.iter().enumerate() {
        for (e, &g) in ga[j].iter().enumerate() {
            let x0 = s.values[p][e];
            let h = 1e-2f32;
            let at = |x: f32, s: &mut Setup| {
                s.values[p][e] = x;
                let (st, _, _) =
                    s.bh.gradients(&s.starts, None, &s.values, &mut rng::seeded(seed))
                        .expect("finite");
                -st.objective
            };
            let up = at(x0 + h, &mut s);
            let down = at(x0 - h, &mut s);
            s.values[p][e] = x0;
            let fd = (up - down) / (2.0 * h as f64);
            let g = g as f64;
            // f32 forward passes: the difference quotient carries ~1e-6·|J|/h of rounding.
            let tol = 2e-3 + 2e-2 * fd.abs();
            assert!(
                (g - fd).abs() <= tol,
                "{}[{e}]: backward {g}, finite differences {fd}",
                s.names[p]
            );
            worst = worst.max((g - fd).abs());
            checked += 1;
        }
    }
    assert!(checked >= 6, "checked {checked} parameters");
    let _ = worst;
}

#[test]
fn the_actors_gradient_matches_finite_differences_on_a_linear_world_model() {
    actor_gradient_matches_finite_differences(LINEAR, 5);
}

#[test]
fn the_actors_gradient_matches_finite_differences_through_a_gru_and_a_tanh_policy() {
    actor_gradient_matches_finite_differences(DREAMER, 5);
}

/// A tiny tabular model with a discrete (one-hot) action and a continuation head: the state
/// is a deterministic function of the last state and action, the reward a table over actions
/// plus a linear term of the state, one imagined step (H = 1).
const DISCRETE: &str = "model tiny_discrete {
  dim O = 2, A = 3, S = 2
  observed o[t] : real[O]
  observed r[t] : real
  observed c[t] : binary
  input    a[t] : onehot[A]
  state    s[t] : real[S]
  init s[0] = 0
  init a[0] = 0
  net trans  = mlp(S + A -> S)
  net dec    = mlp(S -> O)
  net rew    = mlp(S + A -> 1)
  net cont   = mlp(S -> 1)
  net pick   = mlp(S -> A)
  net value  = mlp(S -> 1)
  p {
    s[t] = trans(s[t-1], a[t-1])
    o[t] ~ Normal(dec(s[t]), 1)
    r[t] ~ Normal(rew(s[t], a[t]), 1)
    c[t] ~ Bernoulli(logits = cont(s[t]))
  }
  imagine {
    policy a[t] ~ Categorical(logits = pick(s[t]))
    prior  a[t] ~ Categorical(logits = zeros(A))
    estimator = straight_through
    reward   = rew(s[t], a[t])
    alpha    = 0.5
    critic   = value(s[t])
    horizon  = 1
    discount = 0.9
    lambda   = 0.8
    start    = posterior
    continue = c
  }
}";

/// For start state `x`: the policy's probabilities and, per action k, what R^λ_1 is when the
/// policy draws k (α·units: r_k − α KL(q ‖ uniform) + γ σ(cont(x)) V(trans(x, e_k))), in f64.
fn discrete_hand(s: &Setup, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (gamma, alpha) = (0.9f64, 0.5f64);
    let k = 1.0 / (1.0 - gamma);
    let p = |name: &str| param(s, name);
    let logits = affine(x, p("net.pick.l0.w"), p("net.pick.l0.b"));
    let m = logits.iter().cloned().fold(f64::MIN, f64::max);
    let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
    let q: Vec<f64> = logits.iter().map(|l| (l - m).exp() / z).collect();
    // KL(q ‖ uniform over 3) = Σ q log q + log 3.
    let kl: f64 = q.iter().map(|&qk| qk * qk.ln()).sum::<f64>() + 3f64.ln();
    let c = 1.0 / (1.0 + (-affine(x, p("net.cont.l0.w"), p("net.cont.l0.b"))[0]).exp());
    let ret = (0..3)
        .map(|a| {
            let mut xa = x.to_vec();
            xa.extend((0..3).map(|j| f64::from(u8::from(j == a))));
            let r = affine(&xa, p("net.rew.l0.w"), p("net.rew.l0.b"))[0];
            let next = affine(&xa, p("net.trans.l0.w"), p("net.trans.l0.b"));
            let v = k * affine(&next, p("net.value.l0.w"), p("net.value.l0.b"))[0];
            r - alpha * kl + gamma * c * v
        })
        .collect();
    (q, ret)
}

#[test]
fn a_discrete_policys_imagined_objective_matches_the_exact_sum_over_its_actions() {
    // 1. With the programs' own uniforms (one per start, inverse CDF), each start's return is
    //    the hand value of the action drawn: the objective to f32 rounding.
    let n = 9;
    let mut s = setup(DISCRETE, n);
    let seed = 17;
    let (st, _, _) =
        s.bh.gradients(&s.starts, None, &s.values, &mut rng::seeded(seed))
            .expect("finite");
    let mut r = rng::seeded(seed);
    let u: Vec<f64> = (0..n).map(|_| r.gen::<f32>() as f64).collect();
    let mut want = 0.0;
    for (i, &ui) in u.iter().enumerate() {
        let x: Vec<f64> = s.starts[0][2 * i..2 * i + 2]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let (q, ret) = discrete_hand(&s, &x);
        let mut acc = 0.0;
        let drawn = (0..3)
            .find(|&k| {
                acc += q[k];
                ui < acc
            })
            .unwrap_or(2);
        want += ret[drawn];
    }
    close(
        "α·R^λ_1 (drawn actions)",
        st.objective,
        want / n as f64,
        1e-4,
        1e-5,
    );
    // 2. Every start the same: the objective's mean over many draws is the exact expectation
    //    Σ_k q(k) R(k), within 5 standard errors of the exact variance.
    let n = 20_000;
    let mut s = setup(DISCRETE, n);
    let x0 = [0.7f32, -0.4];
    s.starts[0] = (0..n).flat_map(|_| x0).collect();
    let (st, _, _) =
        s.bh.gradients(&s.starts, None, &s.values, &mut rng::seeded(3))
            .expect("finite");
    let x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    let (q, ret) = discrete_hand(&s, &x);
    let mean: f64 = q.iter().zip(&ret).map(|(a, b)| a * b).sum();
    let var: f64 = q
        .iter()
        .zip(&ret)
        .map(|(a, b)| a * (b - mean).powi(2))
        .sum();
    let se = (var / n as f64).sqrt();
    assert!(var > 1e-6, "the actions matter: {ret:?}");
    assert!(
        (st.objective - mean).abs() <= 5.0 * se + 1e-5,
        "mean over draws {} vs exact Σ_k q(k)·R(k) = {mean} (s.e. {se})",
        st.objective
    );
    // Against the discount without the continuation head the difference is many s.e.: the
    // test sees the continuation.
    let p = |name: &str| param(&s, name);
    let c = 1.0 / (1.0 + (-affine(&x, p("net.cont.l0.w"), p("net.cont.l0.b"))[0]).exp());
    assert!(c < 0.95, "a continuation probability that matters: {c}");
}

#[test]
fn return_normalisation_divides_the_actors_return_gradient_by_the_percentile_range() {
    let n = 6;
    // The model has no continuation head, so the λ-return, and with it the actor's gradient,
    // is linear in α: g(α) = g_R + α·g_H (the return's part and the entropy bonus's). Two
    // unnormalised runs at α = 0.1 and 0.2 give both parts.
    let twice = DREAMER.replace("alpha    = 0.1", "alpha    = 0.2");
    assert_ne!(twice, DREAMER);
    let grads = |src: &str, cfg: BehaviourConfig, range: Option<f64>| {
        let mut s = setup_with(src, n, cfg);
        if let Some(r) = range {
            s.bh.percentiles = (-1.0, -1.0 + r);
        }
        s.bh.gradients(&s.starts, None, &s.values, &mut rng::seeded(4))
            .expect("finite")
    };
    let (sa, ga, gca) = grads(DREAMER, BehaviourConfig::default(), None);
    let (_, g2, _) = grads(&twice, BehaviourConfig::default(), None);
    let g_ret: Vec<f64> = (ga.iter().flatten().zip(g2.iter().flatten()))
        .map(|(a, b)| 2.0 * *a as f64 - *b as f64)
        .collect();
    let g_ent: Vec<f64> = (ga.iter().flatten().zip(g2.iter().flatten()))
        .map(|(a, b)| *b as f64 - *a as f64)
        .collect();
    assert!(
        g_ent.iter().map(|x| x.abs()).sum::<f64>() > 1e-4,
        "the entropy bonus moves the gradient"
    );
    let normed = BehaviourConfig {
        return_norm: true,
        ..BehaviourConfig::default()
    };
    // A range below 1 does not scale (max(1, S)); a range of 4 divides the return's part by 4
    // and leaves the entropy bonus's.
    for (range, div) in [(0.5f64, 1.0f64), (4.0, 4.0)] {
        let (sb, gb, gcb) = grads(DREAMER, normed.clone(), Some(range));
        assert_eq!(sb.return_scale, Some(div));
        close("objective", sb.objective, sa.objective, 1e-6, 1e-7);
        for ((r, e), y) in g_ret.iter().zip(&g_ent).zip(gb.iter().flatten()) {
            close("actor gradient", *y as f64, r / div + e, 1e-4, 1e-6);
        }
        // The critic's regression is not normalised.
        for (x, y) in gca.iter().flatten().zip(gcb.iter().flatten()) {
            close("critic gradient", *y as f64, *x as f64, 1e-6, 1e-9);
        }
        let (lo, hi) = sb.return_percentiles.expect("tracked");
        assert!(lo <= hi);
    }
    let mut normed = setup_with(DREAMER, n, normed);
    // The moving percentiles move 1% of the way to this update's.
    normed.bh.percentiles = (0.0, 0.0);
    let st = vic::agent::behaviour::BehaviourStats {
        return_percentiles: Some((-10.0, 30.0)),
        ..Default::default()
    };
    normed.bh.track_returns(&st);
    let (lo, hi) = normed.bh.percentiles;
    close("moving 5th percentile", lo, -0.1, 1e-12, 1e-12);
    close("moving 95th percentile", hi, 0.3, 1e-12, 1e-12);
    assert_eq!(
        vic::agent::behaviour::symexp(vic::agent::behaviour::symlog(-7.5)),
        -7.5
    );
    close(
        "symlog",
        vic::agent::behaviour::symlog(9.0) as f64,
        10f64.ln(),
        1e-6,
        0.0,
    );
}

#[test]
fn a_slow_critic_is_what_the_returns_bootstrap_from_and_the_critic_still_regresses() {
    let n = 5;
    let mut slow = setup_with(
        DREAMER,
        n,
        BehaviourConfig {
            slow_critic: 0.02,
            ..BehaviourConfig::default()
        },
    );
    // The slow copy: the critic's parameters scaled by ½ (a different value function).
    slow.bh.slow = (slow.bh.critic_params.iter())
        .map(|&p| slow.values[p].iter().map(|x| 0.5 * x).collect())
        .collect();
    let (ss, _, _) = slow
        .bh
        .gradients(&slow.starts, None, &slow.values, &mut rng::seeded(8))
        .expect("finite");
    // The same objective as a plain learner whose critic *is* the halved one.
    let mut plain = setup(DREAMER, n);
    let ids = plain.bh.critic_params.clone();
    for &p in &ids {
        plain.values[p].iter_mut().for_each(|x| *x *= 0.5);
    }
    let (sp, _, _) = plain
        .bh
        .gradients(&plain.starts, None, &plain.values, &mut rng::seeded(8))
        .expect("finite");
    close(
        "objective with the slow critic",
        ss.objective,
        sp.objective,
        1e-6,
        1e-7,
    );
    // Without the halving the objective differs (the test sees the slow copy).
    let mut full = setup(DREAMER, n);
    let (sf, _, _) = full
        .bh
        .gradients(&full.starts, None, &full.values, &mut rng::seeded(8))
        .expect("finite");
    assert!(
        (sf.objective - ss.objective).abs() > 1e-4,
        "{} vs {}",
        sf.objective,
        ss.objective
    );
}

/// The critic's forward pass is copied from the actor's program (it evaluated the critic on
/// the same states with the same parameters); with a slow critic whose copy equals the critic,
/// the critic's program runs its own forward pass instead. Both give the same loss and
/// gradients on the shipped Dreamer model, to f32 rounding: the products run in `gemm`, whose
/// blocking (and so the order of its sums) may differ between the actor's `n` rows and the
/// critic's `15·n`. The actor's side is the same program either way: bit for bit. (The
/// critic's gradient itself is checked against a hand computation above, through the copy.)
#[test]
fn the_critics_forward_copied_from_the_actors_program_is_its_own_forward() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/dreamer.vmodel"
    ))
    .expect("models/dreamer.vmodel");
    let bits = |g: &[Vec<f32>]| -> Vec<Vec<u32>> {
        g.iter()
            .map(|v| v.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    // 400: a worker's share of the agent's 800 start states.
    for n in [64, 400] {
        let mut copied = setup(&src, n);
        assert!(copied.bh.critic_copied(), "the shipped Dreamer copies");
        let (sc, ac, gc) = copied
            .bh
            .gradients(&copied.starts, None, &copied.values, &mut rng::seeded(4))
            .expect("finite");
        let mut own = setup_with(
            &src,
            n,
            BehaviourConfig {
                slow_critic: 0.02,
                ..BehaviourConfig::default()
            },
        );
        own.bh.slow = (own.bh.critic_params.iter())
            .map(|&p| own.values[p].clone())
            .collect();
        let (so, ao, go) = own
            .bh
            .gradients(&own.starts, None, &own.values, &mut rng::seeded(4))
            .expect("finite");
        assert_eq!(sc.objective.to_bits(), so.objective.to_bits());
        assert_eq!(bits(&ac), bits(&ao), "the actor's gradients");
        assert!(sc.critic_loss > 1e-3 && sc.critic_grad_norm > 1e-3);
        close("critic loss", sc.critic_loss, so.critic_loss, 1e-6, 0.0);
        let diff: f64 = (gc.iter().flatten().zip(go.iter().flatten()))
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            diff <= 1e-5 * so.critic_grad_norm,
            "n = {n}: |Δ critic gradient| {diff} against |g| {}",
            so.critic_grad_norm
        );
    }
}
