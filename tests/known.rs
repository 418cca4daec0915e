//! Known-dynamics behaviour learning (`imagine { … start = prior }`, issue 19), against
//! independent computations written here: the imagined λ-return bound and the critic's loss of
//! a known linear model against an f64 hand rollout; the actor's gradient against central
//! finite differences through the known pendulum dynamics (models/pendulum_known.vmodel with
//! smaller nets); start states drawn from p's initial distribution against its moments; the
//! visited-state rollouts against an f64 simulation of Gym's pendulum; a resumed run against
//! an uninterrupted one; acting through the Gymnasium bridge (its fake environment) against
//! the policy evaluated by hand on the observations; and the faults (an observation the policy cannot read, an `imagine`
//! block whose dynamics are not declared) as coded diagnostics.

use rand::Rng as _;
use rand_distr::StandardNormal;
use vic::agent::behaviour::{Behaviour, BehaviourConfig};
use vic::agent::known::{chain_vars, policy_inputs, Known, KnownConfig, Roller, Sampler};
use vic::agent::learn::param_index;
use vic::diag::Code;
use vic::lower::Program;
use vic::runtime::{rng, Dev};

const LINEAR: &str = "model lin_known {
  input  a[t] : real
  latent x0   : real
  state  x[t] : real
  net actor = mlp(1 -> 2)
  net value = mlp(1 -> 1)
  p {
    x0 ~ Normal(0.5, 0.3)
    x[1] = x0
    x[t] = 0.9 * x[t-1] + 0.2 * a[t-1]
  }
  imagine {
    policy a[t] ~ Normal.split(actor(x[t]), min = 0.01)
    prior  a[t] ~ Normal(0, 1)
    reward   = -square(x[t]) - 0.1 * square(a[t])
    alpha    = 0.5
    critic   = value(x[t])
    horizon  = 4
    discount = 0.9
    lambda   = 0.8
    start    = prior
  }
}";

fn pendulum_src(hidden: usize, horizon: usize) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/pendulum_known.vmodel");
    let src = std::fs::read_to_string(path).expect("models/pendulum_known.vmodel");
    assert!(src.contains("dim H = 64") && src.contains("horizon  = 15"));
    src.replace("dim H = 64", &format!("dim H = {hidden}"))
        .replace("horizon  = 15", &format!("horizon  = {horizon}"))
}

struct Setup {
    program: Program,
    values: Vec<Vec<f32>>,
    names: Vec<String>,
    index: vic::fused::build::ParamIndex,
}

fn setup(src: &str) -> Setup {
    let m = vic::compile(src, "known.vmodel").expect("compiles");
    let program = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = program
        .init_params(&Dev::default(), &mut rng::seeded(3))
        .expect("params");
    let (index, mut values) = param_index(&store);
    let mut names = vec![String::new(); index.len()];
    for (k, v) in &index {
        names[v.0] = k.clone();
    }
    let mut r = rng::seeded(5);
    for (v, name) in values.iter_mut().zip(&names) {
        if name.ends_with(".b") {
            for x in v.iter_mut() {
                *x = 0.3 * r.sample::<f32, _>(StandardNormal);
            }
        }
    }
    Setup {
        program,
        values,
        names,
        index,
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

fn close(what: &str, got: f64, want: f64, rel: f64, abs: f64) {
    assert!(
        (got - want).abs() <= abs + rel * want.abs(),
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn the_imagined_bound_of_a_known_linear_model_matches_a_hand_rollout() {
    let n = 6;
    let s = setup(LINEAR);
    let im = s.program.elbo.imagination.clone().expect("imagination");
    let mut bh = Behaviour::new(&s.program, &im, &s.index, n, 1, BehaviourConfig::default())
        .expect("compiles");
    assert_eq!(bh.state_vars.len(), 1, "x is the only chain variable");
    // Start states from p's initial distribution: x_1 = x0 ~ N(0.5, 0.3).
    let mut sampler = Sampler::new(&s.program, &s.index, n).expect("sampler");
    let starts = sampler.draw(&mut rng::seeded(11));
    let mut r = rng::seeded(11);
    for (i, &x) in starts[0].iter().enumerate() {
        let u: f32 = r.sample(StandardNormal);
        close(
            &format!("start {i}"),
            x as f64,
            0.5 + 0.3 * u as f64,
            1e-6,
            1e-6,
        );
    }
    let (st, _, gc) = bh
        .gradients(&starts, None, &s.values, &mut rng::seeded(42))
        .expect("finite");
    // By hand, in f64, with the programs' noise (one action draw per row and step).
    let (h, gamma, lambda, alpha) = (4usize, 0.9f64, 0.8f64, 0.5f64);
    let k = 1.0 / (1.0 - gamma);
    let mut r = rng::seeded(42);
    let eps: Vec<Vec<f64>> = (0..h)
        .map(|_| {
            (0..n)
                .map(|_| r.sample::<f32, _>(StandardNormal) as f64)
                .collect()
        })
        .collect();
    let (aw, ab) = (param(&s, "net.actor.l0.w"), param(&s, "net.actor.l0.b"));
    let (vw, vb) = (param(&s, "net.value.l0.w"), param(&s, "net.value.l0.b"));
    let v = |x: f64| k * (vw[0] as f64 * x + vb[0] as f64);
    let (mut obj, mut closs, mut dw, mut db) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let mut xs = vec![starts[0][i] as f64];
        let (mut soft, mut vals) = (Vec::new(), vec![0.0]);
        for (tau, e) in eps.iter().enumerate() {
            let x = xs[tau];
            let loc = aw[0] as f64 * x + ab[0] as f64;
            let scale = softplus(aw[1] as f64 * x + ab[1] as f64) + 0.01;
            let a = loc + scale * e[i];
            // KL(N(loc, scale) ‖ N(0, 1)).
            let kl = -scale.ln() + (scale * scale + loc * loc) / 2.0 - 0.5;
            soft.push(-x * x - 0.1 * a * a - alpha * kl);
            let next = 0.9 * x + 0.2 * a;
            vals.push(v(next));
            xs.push(next);
        }
        let mut ret = vec![0.0; h + 1];
        ret[h] = vals[h];
        for tau in (0..h).rev() {
            ret[tau] = soft[tau] + gamma * ((1.0 - lambda) * vals[tau + 1] + lambda * ret[tau + 1]);
        }
        obj += ret[0];
        for tau in 0..h {
            let err = v(xs[tau]) - ret[tau];
            closs += 0.5 * err * err;
            dw += k * err * xs[tau];
            db += k * err;
        }
    }
    let nn = n as f64;
    close("α·R^λ_1", st.objective, obj / nn, 1e-4, 1e-5);
    close("critic loss", st.critic_loss, closs / nn, 1e-4, 1e-5);
    for (&p, g) in bh.critic_params.iter().zip(&gc) {
        let want = if s.names[p].ends_with(".w") { dw } else { db } / nn;
        close(&s.names[p], g[0] as f64, want, 1e-4, 1e-5);
    }
    assert!(st.objective.abs() > 1e-3, "a non-trivial objective");
}

#[test]
fn the_actors_gradient_matches_finite_differences_through_the_known_pendulum() {
    let n = 4;
    let mut s = setup(&pendulum_src(6, 5));
    let im = s.program.elbo.imagination.clone().expect("imagination");
    let mut bh = Behaviour::new(&s.program, &im, &s.index, n, 1, BehaviourConfig::default())
        .expect("compiles");
    let mut sampler = Sampler::new(&s.program, &s.index, n).expect("sampler");
    let starts = sampler.draw(&mut rng::seeded(7));
    let seed = 9;
    let (st, ga, _) = bh
        .gradients(&starts, None, &s.values, &mut rng::seeded(seed))
        .expect("finite");
    assert!(st.actor_grad_norm > 1e-4, "a gradient to check");
    let ids = bh.actor_params.clone();
    let mut checked = 0;
    for (j, &p) in ids.iter().enumerate() {
        // Every weight of the small layers, every eighth of the larger ones.
        for (e, &g) in ga[j]
            .iter()
            .enumerate()
            .step_by(if ga[j].len() > 12 { 5 } else { 1 })
        {
            let x0 = s.values[p][e];
            let h = 1e-2f32;
            let mut at = |x: f32| {
                s.values[p][e] = x;
                let (st, _, _) = bh
                    .gradients(&starts, None, &s.values, &mut rng::seeded(seed))
                    .expect("finite");
                -st.objective
            };
            let fd = (at(x0 + h) - at(x0 - h)) / (2.0 * h as f64);
            s.values[p][e] = x0;
            let g = g as f64;
            let tol = 3e-3 + 3e-2 * fd.abs();
            assert!(
                (g - fd).abs() <= tol,
                "{}[{e}]: backward {g}, finite differences {fd}",
                s.names[p]
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "checked {checked} weights");
}

#[test]
fn start_states_are_drawn_from_the_initial_distribution() {
    let n = 40_000;
    let s = setup(&pendulum_src(4, 3));
    let m = &s.program.model;
    let vars: Vec<String> = (chain_vars(m).iter())
        .map(|&v| m.vars[v].name.clone())
        .collect();
    // p's order: θ̇_t first (θ_t reads it).
    assert_eq!(vars, ["thd", "th", "o"]);
    let mut sampler = Sampler::new(&s.program, &s.index, n).expect("sampler");
    let mut d = sampler.draw(&mut rng::seeded(1));
    d.swap(0, 1);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let th: Vec<f64> = d[0].iter().map(|&x| x as f64).collect();
    let thd: Vec<f64> = d[1].iter().map(|&x| x as f64).collect();
    // Uniform(−π, π) and Uniform(−1, 1): mean 0, variance π²/3 and 1/3, inside the bounds.
    let pi = std::f64::consts::PI;
    let se = |var: f64| 4.0 * (var / n as f64).sqrt();
    assert!(mean(&th).abs() < se(pi * pi / 3.0), "E θ = {}", mean(&th));
    assert!(mean(&thd).abs() < se(1.0 / 3.0), "E θ̇ = {}", mean(&thd));
    let v_th = mean(&th.iter().map(|x| x * x).collect::<Vec<_>>());
    let v_thd = mean(&thd.iter().map(|x| x * x).collect::<Vec<_>>());
    // Var of x² for U(−c, c) is 4c⁴/45.
    assert!(
        (v_th - pi * pi / 3.0).abs() < se(4.0 * pi.powi(4) / 45.0),
        "E θ² = {v_th}"
    );
    assert!((v_thd - 1.0 / 3.0).abs() < se(4.0 / 45.0), "E θ̇² = {v_thd}");
    assert!(th.iter().all(|x| x.abs() <= pi) && thd.iter().all(|x| x.abs() <= 1.0));
    // The observation o_1 = (cos θ_1, sin θ_1, θ̇_1), row by row.
    for i in 0..n {
        let o = &d[2][3 * i..3 * i + 3];
        close("cos θ", o[0] as f64, th[i].cos(), 1e-5, 1e-5);
        close("sin θ", o[1] as f64, th[i].sin(), 1e-5, 1e-5);
        close("θ̇", o[2] as f64, thd[i], 0.0, 0.0);
    }
    // A Normal prior: x_1 = x0 ~ N(0.5, 0.3).
    let s = setup(LINEAR);
    let mut sampler = Sampler::new(&s.program, &s.index, n).expect("sampler");
    let x: Vec<f64> = sampler.draw(&mut rng::seeded(2))[0]
        .iter()
        .map(|&x| x as f64)
        .collect();
    let m1 = mean(&x);
    let var = mean(&x.iter().map(|v| (v - m1).powi(2)).collect::<Vec<_>>());
    assert!((m1 - 0.5).abs() < se(0.09), "mean {m1}");
    assert!(
        (var - 0.09).abs() < 4.0 * 0.09 * (2.0 / n as f64).sqrt(),
        "variance {var}"
    );
}

#[test]
fn visited_states_follow_gyms_pendulum_dynamics() {
    // Rolled in the model's p, each state follows from the previous one by Gym's update,
    // whatever action the policy drew (recovered from θ̇ where the speed is not clamped).
    let rows = 5;
    let s = setup(&pendulum_src(8, 3));
    let mut sampler = Sampler::new(&s.program, &s.index, rows).expect("sampler");
    let mut roller = Roller::new(&s.program, &s.index, rows).expect("roller");
    let start = sampler.draw(&mut rng::seeded(4));
    let mut seen: Vec<Vec<Vec<f32>>> = Vec::new();
    // Chain order (θ̇, θ, o) → (θ, θ̇).
    let ret = roller.roll(&start, 60, &s.values, &mut rng::seeded(5), |st| {
        seen.push(vec![st[1].clone(), st[0].clone()])
    });
    assert_eq!(seen.len(), 60);
    assert_eq!(seen[0], [start[1].clone(), start[0].clone()]);
    let mut actions = 0;
    for w in seen.windows(2) {
        let (now, next) = (&w[0], &w[1]);
        for i in 0..rows {
            let (th, thd) = (now[0][i] as f64, now[1][i] as f64);
            let (th1, thd1) = (next[0][i] as f64, next[1][i] as f64);
            close("θ update", th1, th + thd1 * 0.05, 1e-5, 1e-5);
            if thd1.abs() < 7.99 {
                // u = 2a: θ̇' = θ̇ + (15 sin θ + 3u)·0.05 → a ∈ [−1, 1].
                let a = ((thd1 - thd) / 0.05 - 15.0 * th.sin()) / 6.0;
                assert!(a.abs() <= 1.0 + 1e-3, "action {a}");
                actions += 1;
            }
        }
    }
    assert!(actions > 200, "{actions} unclamped steps");
    assert!(ret.is_finite() && ret < 0.0);
}

fn known_cfg(updates: u64) -> KnownConfig {
    KnownConfig {
        updates,
        starts: 16,
        roll_every: 2,
        roll_episodes: 2,
        episode_steps: 20,
        buffer: 100,
        eval_every: 3,
        eval_episodes: 1,
        threads: 1,
        seed: 5,
        ..KnownConfig::default()
    }
}

fn program(src: &str) -> Program {
    let m = vic::compile(src, "known.vmodel").expect("compiles");
    Program::new(m.ir(), &m.elbo()).expect("lowers")
}

#[test]
fn a_resumed_run_continues_the_uninterrupted_one_exactly() {
    let src = pendulum_src(8, 4);
    let tmp = std::env::temp_dir().join(format!("vic_known_resume_{}", std::process::id()));
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    for d in [&a, &b] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).unwrap();
    }
    let mut env = vic::agent::open("pendulum").expect("built in");
    let spec = env.spec().clone();
    let mut whole = Known::new(program(&src), &spec, known_cfg(7), &a, false).expect("new");
    whole.run(env.as_mut(), &mut ()).expect("runs");
    let mut first = Known::new(program(&src), &spec, known_cfg(4), &b, false).expect("new");
    first.run(env.as_mut(), &mut ()).expect("runs");
    drop(first);
    let mut rest = Known::new(program(&src), &spec, known_cfg(7), &b, true).expect("resumes");
    assert_eq!(rest.progress.updates, 4);
    assert!(rest.changed.is_empty(), "{:?}", rest.changed);
    rest.run(env.as_mut(), &mut ()).expect("runs");
    assert_eq!(whole.progress.updates, 7);
    assert_eq!(rest.values, whole.values, "bit-identical parameters");
    assert_eq!(rest.visited.len(), whole.visited.len());
    assert_eq!(rest.trainer.adam.state, whole.trainer.adam.state);
    let evals = |d: &std::path::Path| std::fs::read_to_string(d.join("episodes.jsonl")).unwrap();
    assert_eq!(evals(&a), evals(&b));
    // The training changed the policy.
    let fresh = Known::new(program(&src), &spec, known_cfg(7), &tmp.join("c"), false).unwrap();
    assert_ne!(fresh.values, whole.values);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn an_observation_the_policy_cannot_read_is_a_coded_diagnostic() {
    // The policy reads θ and θ̇ (2 values); Pendulum-v1 observes 3.
    let src = pendulum_src(8, 4)
        .replace("actor(o[t])", "actor(th[t], thd[t])")
        .replace("mlp(3 -> H -> H -> 2", "mlp(2 -> H -> H -> 2");
    let p = program(&src);
    let e = policy_inputs(&p.model, 3).expect_err("2 ≠ 3");
    assert_eq!(e.code, Code::EnvSpace);
    assert!(e.message.contains("observes 3 values") && e.message.contains("`th` (1)"));
    assert!(e.help.contains("o[t] = concat"));
    let env = vic::agent::open("pendulum").expect("built in");
    let dir = std::env::temp_dir().join(format!("vic_known_obs_{}", std::process::id()));
    let err = Known::new(p, env.spec(), known_cfg(1), &dir, false)
        .err()
        .expect("refused");
    assert_eq!(err.code, Code::EnvSpace);
    // The policy reading a lag.
    let src = pendulum_src(8, 4).replace("actor(o[t])", "actor(o[t-1])");
    let e = policy_inputs(&program(&src).model, 3).expect_err("a lag");
    assert_eq!(e.code, Code::EnvSpace);
}

#[test]
fn the_cli_reports_faults_with_codes_and_help_and_never_panics() {
    let dir = std::env::temp_dir().join(format!("vic_known_cli_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("two_inputs.vmodel");
    std::fs::write(
        &bad,
        pendulum_src(8, 4)
            .replace("actor(o[t])", "actor(th[t], thd[t])")
            .replace("mlp(3 -> H -> H -> 2", "mlp(2 -> H -> H -> 2"),
    )
    .unwrap();
    let undeclared = dir.join("undeclared.vmodel");
    std::fs::write(
        &undeclared,
        pendulum_src(8, 4)
            .replace("net value", "net f = mlp(1 -> 1)\n  net value")
            .replace(
                "th[t] = th[t-1] + thd[t] * dt",
                "th[t] = th[t-1] + f(thd[t]) * dt",
            ),
    )
    .unwrap();
    for (file, code) in [(&bad, "vic::E302"), (&undeclared, "vic::E097")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vic"))
            .args(["agent", file.to_str().unwrap(), "--updates", "1", "--out"])
            .arg(dir.join("run"))
            .arg("--force")
            .env("NO_COLOR", "1")
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(code), "{code}: {err}");
        assert!(err.contains("help"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const COUNTER: &str = "model counter_known {
  input  a[t] : real
  latent x0   : real
  state  x[t] : real
  state  k[t] : real
  state  o[t] : real[2]
  net actor = mlp(2 -> 2)
  net value = mlp(2 -> 1)
  p {
    x0 ~ Normal(0, 1)
    x[1] = x0
    k[1] = 0 * x0
    x[t] = x[t-1] + a[t-1]
    k[t] = k[t-1] + 1
    o[t] = concat(x[t], k[t])
  }
  imagine {
    policy a[t] ~ TanhNormal.split(actor(o[t]))
    prior  a[t] ~ Uniform(-1, 1)
    reward   = -square(x[t] + a[t])
    alpha    = 0.1
    critic   = value(o[t])
    horizon  = 3
    start    = prior
  }
}";

#[test]
fn acting_through_the_bridge_reads_the_observation_into_the_policys_inputs() {
    // The bridge's fake environment (observation (x, t), x′ = x + clip(a, −1, 1), reward −x′²,
    // 5 steps, reset x = seed) is exactly counter_known's p: the policy's mode, acted through
    // the bridge, against the same policy evaluated by hand on the observations.
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "python3 is required under CI");
        eprintln!("skipped: no python3");
        return;
    }
    let mut env = vic::agent::open("gym:fake:Counter-v0").expect("the fake environment");
    let spec = env.spec().clone();
    let dir = std::env::temp_dir().join(format!("vic_known_bridge_{}", std::process::id()));
    let mut k = Known::new(program(COUNTER), &spec, known_cfg(1), &dir, false).expect("new");
    let got = k.evaluate_in(env.as_mut(), 3, 0).expect("acts");
    let s = setup(COUNTER);
    let i = |name: &str| s.names.iter().position(|n| n == name).expect(name);
    let (w, b) = (
        &k.values[i("net.actor.l0.w")],
        &k.values[i("net.actor.l0.b")],
    );
    for (seed, &ret) in got.iter().enumerate() {
        let mut x = seed as f64;
        let mut want = 0.0;
        for t in 0..5 {
            let loc = w[0] as f64 * x + w[2] as f64 * t as f64 + b[0] as f64;
            x += loc.tanh().clamp(-1.0, 1.0);
            want -= x * x;
        }
        close(&format!("return from x = {seed}"), ret, want, 1e-5, 1e-4);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
