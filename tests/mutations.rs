//! The mutation corpus (issue 11): deterministic mutants of every shipped model, of their data
//! files and of their checkpoints, run in-process through the whole pipeline — `vic::compile`,
//! the derivation and its renderings, `Program::new_spanned`, the data loader, `Trainer::new`,
//! an evaluation, a training step, `simulate`, and checkpoint loading — each under
//! `catch_unwind`. Every mutant must end in success or in a coded error:
//!
//! - no panic;
//! - no backend fault on a checked model (`TrainError::Runtime`, which `vic` reports as
//!   `vic::E204`, "a fault in vic"): the checker is meant to prove every shape first;
//! - no non-finite estimate passed off as a result (a NaN evaluation must be refused, which the
//!   CLI does with `vic::E201`; here it is counted, and a step must return `NonFinite`);
//! - no mutated checkpoint with other parameters accepted.
//!
//! `cargo test` runs a bounded slice (`VIC_MUTANTS`, default 300 model mutants plus half as
//! many data and checkpoint mutants each, a few seconds); `VIC_MUTANTS=10000 cargo test --test
//! mutations mutants_of -- --nocapture` is the big run (20,000 mutants, about 2.5 minutes in
//! the test profile), which prints the tally; `VIC_MUTANTS_SEED` draws another corpus. A
//! failing mutant's source is kept in `$TMPDIR/vic-mutants-corpus-<pid>/failed-<n>-<model>`
//! for reproduction.
//!
//! Aborts (an allocation failure, a stack overflow) cannot be caught in-process: every mutant's
//! estimated memory is checked against a budget before anything is allocated
//! (`vic::limits::run_bytes`), as `vic run` does (E202), and `cli_mutants_exit_with_coded_diagnostics`
//! runs mutants through the `vic` binary as subprocesses (`VIC_CLI_MUTANTS`, default 24), where
//! an abort or a signal is a failed exit status, and every failure must print a `vic::E…` code
//! and a help line.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use vic::data::{self, Dataset};
use vic::lower::Program;
use vic::train::{TrainConfig, TrainError, Trainer};

// ------------------------------------------------------------------------ deterministic PRNG

/// SplitMix64: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

// ------------------------------------------------------------------------------ the tally

#[derive(Default)]
struct Tally {
    cases: BTreeMap<&'static str, usize>,
    /// Outcome → count: "ok", a code (`vic::E050`), "skipped (memory budget)", ….
    outcomes: BTreeMap<String, usize>,
    panics: Vec<String>,
    backend: Vec<String>,
    nan_results: usize,
    nan_unrefused: Vec<String>,
    accepted_checkpoints: Vec<String>,
}

impl Tally {
    fn count(&mut self, what: impl Into<String>) {
        *self.outcomes.entry(what.into()).or_default() += 1;
    }
    fn failures(&self) -> usize {
        self.panics.len()
            + self.backend.len()
            + self.nan_unrefused.len()
            + self.accepted_checkpoints.len()
    }
    fn report(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.cases {
            s += &format!("{k}: {v} mutants\n");
        }
        s += &format!(
            "panics {}, backend faults (E204) {}, NaN results {} (refused: E201), NaN passed as success {}, mutated checkpoints accepted {}\n",
            self.panics.len(),
            self.backend.len(),
            self.nan_results,
            self.nan_unrefused.len(),
            self.accepted_checkpoints.len()
        );
        for (k, v) in &self.outcomes {
            s += &format!("  {k}: {v}\n");
        }
        for p in self.panics.iter().take(20) {
            s += &format!("PANIC {p}\n");
        }
        for p in self.backend.iter().take(20) {
            s += &format!("BACKEND {p}\n");
        }
        for p in self.nan_unrefused.iter().take(20) {
            s += &format!("NAN {p}\n");
        }
        for p in self.accepted_checkpoints.iter().take(20) {
            s += &format!("CHECKPOINT {p}\n");
        }
        s
    }
}

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Panics are recorded, not printed (thousands of mutants).
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = format!("{msg} at {at}"));
        }));
    });
}

fn guarded(t: &mut Tally, case: &str, f: impl FnOnce(&mut Tally)) {
    let mut local = Tally::default();
    match catch_unwind(AssertUnwindSafe(|| f(&mut local))) {
        Ok(()) => {
            for (k, v) in local.outcomes {
                *t.outcomes.entry(k).or_default() += v;
            }
            t.backend.extend(local.backend);
            t.nan_results += local.nan_results;
            t.nan_unrefused.extend(local.nan_unrefused);
            t.accepted_checkpoints.extend(local.accepted_checkpoints);
        }
        Err(_) => {
            let msg = LAST_PANIC.with(|p| p.borrow().clone());
            t.panics.push(format!("{case}: {msg}"));
        }
    }
}

// ------------------------------------------------------------------------------ the models

struct Shipped {
    name: String,
    src: String,
    /// The model's `data "…"`, resolved against `models/`.
    data: Option<PathBuf>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped() -> Vec<Shipped> {
    let dir = root().join("models");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "vmodel"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let src = std::fs::read_to_string(&p).unwrap();
            let m = vic::compile(&src, "m").expect("shipped models compile");
            Shipped {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                data: m.ir().data.as_ref().map(|d| dir.join(d)),
                // Mutations of comments are wasted: drop comment-only lines.
                src: src
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vic-mutants-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ------------------------------------------------------------------------ source mutations

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    Ident,
    Number,
    Punct,
}

fn tokens(src: &str) -> Vec<(Tok, std::ops::Range<usize>)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident, start..i));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                i += 1;
                if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push((Tok::Number, start..i));
        } else if c.is_ascii_whitespace() || c >= 0x80 {
            i += 1;
            // Non-ASCII characters (in strings) are skipped whole.
            while i < b.len() && !src.is_char_boundary(i) {
                i += 1;
            }
        } else {
            i += 1;
            out.push((Tok::Punct, start..i));
        }
    }
    out
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "0.5",
    "-0",
    "1e38",
    "3.5e38",
    "1e300",
    "-1e300",
    "1e-45",
    "1e-320",
    "99999999",
    "2147483648",
    "4294967297",
    "18446744073709551616",
    "1000000",
    "1000001",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "0.0000001",
];

const SNIPPETS: &[&str] = &[
    "[t-1]",
    "[t+1]",
    "[t]",
    "[1]",
    "[0]",
    "[-1]",
    "[t-1000000]",
    "~",
    "=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "*",
    "@",
    "-",
    ".",
    " via enumerate",
    " via score_function",
    " via straight_through",
    "Flat",
    "Normal(0, 1)",
    "Bernoulli(0.5)",
    "Categorical(zeros(4))",
    "TanhNormal(0, 1)",
    "Laplace(0, 1)",
    "LogNormal(0, 1)",
    "StudentT(3, 0, 1)",
    "Gamma(2, 1)",
    "Beta(2, 2)",
    "Poisson(1)",
    "Categorical(probs = ones(4))",
    "MultivariateNormal(0, scale_tril = eye(2))",
    "Uniform(0, 1)",
    "softplus(",
    "exp(",
    "log(",
    "onehot[3]",
    "binary[2]",
    "real[1000000]",
    "unit",
    "iwae = 1000000",
    "horizon = 1000000",
    "batch = 1000000",
    "free_nats = -1",
    "overshooting = 2",
    "init s[0] = 0",
    "optimal O[t] : reward = r(s[t], a[t])",
    " = uniform(-1e308, 1e308)",
    " = normal(0, 1e300)",
    "clamp(1, 0, ",
    "const late = later\n  const later = 1\n",
    "free_nats = 1e39",
];

fn mutate_source(src: &str, rng: &mut Rng, idents: &[String]) -> String {
    let mut s = src.to_string();
    // Mostly one mutation: most of two or three are syntax errors, which stop at the parser.
    let count = [1, 1, 1, 1, 1, 1, 1, 2, 2, 3][rng.below(10)];
    for _ in 0..count {
        let toks = tokens(&s);
        let lines: Vec<std::ops::Range<usize>> = {
            let mut v = Vec::new();
            let mut at = 0;
            for l in s.split_inclusive('\n') {
                v.push(at..at + l.len());
                at += l.len();
            }
            v
        };
        if toks.is_empty() || lines.is_empty() {
            break;
        }
        // Weighted: numbers and names keep a model parseable, so they reach the backend.
        let op = [0, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 7, 7, 7, 8, 9, 9][rng.below(17)];
        match op {
            // Line deletion, duplication, swap.
            0 => {
                let l = rng.pick(&lines).clone();
                s.replace_range(l, "");
            }
            1 => {
                let l = rng.pick(&lines).clone();
                let text = s[l.clone()].to_string();
                s.insert_str(l.start, &text);
            }
            2 => {
                let i = rng.below(lines.len().saturating_sub(1));
                if i + 1 < lines.len() {
                    let (a, b) = (lines[i].clone(), lines[i + 1].clone());
                    let (ta, tb) = (s[a.clone()].to_string(), s[b.clone()].to_string());
                    s.replace_range(a.start..b.end, &(tb + &ta));
                }
            }
            // Token swap with its neighbour, token deletion.
            3 => {
                let i = rng.below(toks.len().saturating_sub(1));
                if i + 1 < toks.len() {
                    let (a, b) = (toks[i].1.clone(), toks[i + 1].1.clone());
                    let (ta, tb) = (s[a.clone()].to_string(), s[b.clone()].to_string());
                    s.replace_range(b, &ta);
                    s.replace_range(a, &tb);
                }
            }
            4 => {
                let (_, r) = rng.pick(&toks).clone();
                s.replace_range(r, "");
            }
            // Number changes.
            5 => {
                let nums: Vec<_> = toks.iter().filter(|t| t.0 == Tok::Number).collect();
                if let Some((_, r)) = (!nums.is_empty()).then(|| *rng.pick(&nums)) {
                    let n = rng.pick(NUMBERS).to_string();
                    s.replace_range(r.clone(), &n);
                }
            }
            // Identifier mutations: another name of the file, or a typo.
            7 => {
                let ids: Vec<_> = toks.iter().filter(|t| t.0 == Tok::Ident).collect();
                if !ids.is_empty() {
                    let (_, r) = rng.pick(&ids);
                    let r = r.clone();
                    let new = match rng.below(3) {
                        0 => rng.pick(idents).clone(),
                        1 => format!("{}x", &s[r.clone()]),
                        _ => s[r.clone()][..r.len().saturating_sub(1)].to_string(),
                    };
                    s.replace_range(r, &new);
                }
            }
            // Bracket damage: delete one, or insert a stray one.
            8 => {
                let brackets: Vec<_> = toks
                    .iter()
                    .filter(|t| t.0 == Tok::Punct && "()[]{}".contains(&s[t.1.clone()]))
                    .collect();
                if !brackets.is_empty() && rng.below(2) == 0 {
                    let (_, r) = rng.pick(&brackets);
                    s.replace_range(r.clone(), "");
                } else {
                    let (_, r) = rng.pick(&toks);
                    let b = rng.pick(&["(", ")", "[", "]", "{", "}"]).to_string();
                    s.insert_str(r.start, &b);
                }
            }
            // A snippet inserted after a token.
            _ => {
                let (_, r) = rng.pick(&toks).clone();
                let snip = rng.pick(SNIPPETS).to_string();
                s.insert_str(r.end, &snip);
            }
        }
    }
    s
}

// --------------------------------------------------------------------- running the pipeline

/// Memory a mutant may take in this test (the CLI's own limit is the machine's memory).
const BUDGET_BYTES: u128 = 256 << 20;
/// Rows × steps a mutant may run (keeps the debug-profile slice fast).
const BUDGET_WORK: u64 = 4096;

fn train_outcome(t: &mut Tally, case: &str, e: &TrainError) {
    match e {
        TrainError::NonFinite { .. } => t.count("vic::E201 (step)"),
        TrainError::Unsupported(_) => t.count("vic::E200 (fused)"),
        TrainError::Checkpoint(_) => t.count("vic::E093"),
        TrainError::Distributed(_) => t.count("vic::E200 (distributed)"),
        TrainError::Runtime(r) => {
            t.count("vic::E204");
            t.backend.push(format!("{case}: {r}"));
        }
    }
}

/// A small slice of the data (the first rows), so that evaluations stay cheap.
fn small(d: &Dataset) -> Dataset {
    let idx: Vec<usize> = (0..d.n.min(4)).collect();
    d.gather(&idx)
}

/// Everything after lowering: set up, evaluate, one step, draws. Returns the trainer.
fn exercise(
    t: &mut Tally,
    case: &str,
    program: Program,
    data: Option<Dataset>,
    steps: bool,
) -> Option<Trainer> {
    let m = &program.model;
    let k = m.objective.iwae.max(1) as u64;
    let rows = data.as_ref().map_or(2, |d| d.n as u64) * k;
    let len = data
        .as_ref()
        .map_or(m.objective.horizon.unwrap_or(4) as u64, |d| {
            d.t.unwrap_or(1) as u64
        });
    if vic::limits::run_bytes(m, rows.max(2), len.max(1)) > BUDGET_BYTES
        || rows.saturating_mul(len) > BUDGET_WORK
    {
        t.count("skipped (over this test's budget; E202 in vic run)");
        return None;
    }
    let cfg = TrainConfig {
        batch: 2,
        holdout: 0.0,
        horizon: Some(4),
        ..TrainConfig::default()
    };
    let mut tr = match Trainer::new(program, data, cfg) {
        Ok(tr) => tr,
        Err(e) => {
            train_outcome(t, case, &e);
            return None;
        }
    };
    match tr.evaluate(None, 1, 0) {
        Ok(r) if r.non_finite().is_some() => {
            // `vic eval` and `vic run` refuse it (E201): counted, not a failure.
            t.nan_results += 1;
            t.count("vic::E201 (evaluation)");
        }
        Ok(r) => {
            if !r.elbo.is_finite() {
                t.nan_unrefused
                    .push(format!("{case}: ELBO {} with finite terms", r.elbo));
            }
            t.count("ok (evaluated)");
        }
        Err(e) => {
            train_outcome(t, case, &e);
            return None;
        }
    }
    if steps {
        match tr.step() {
            Ok(s) if !s.elbo.is_finite() || s.terms.iter().any(|x| !x.is_finite()) => {
                t.nan_unrefused
                    .push(format!("{case}: step returned ELBO {}", s.elbo));
            }
            Ok(_) => t.count("ok (stepped)"),
            Err(e) => train_outcome(t, case, &e),
        }
        let flat = tr.program.model.factors.iter().any(|f| {
            f.block == vic::ir::Block::P
                && matches!(&f.body, vic::ir::FactorBody::Sample(d) if d.family == vic::ir::Family::Flat)
        });
        if flat {
            t.count("vic::E203");
        } else {
            let batch = match &tr.train {
                Some(d) => {
                    let idx: Vec<usize> = (0..2).map(|i| i % d.n).collect();
                    vic::train::data_batch(&tr.program, d, &idx, 1)
                }
                None => vic::train::control_batch(&tr.program, 2, tr.horizon()),
            };
            let mut rng = vic::runtime::rng::seeded(0);
            match tr.program.simulate(&tr.store, &batch, 0, &mut rng) {
                Ok(_) => t.count("ok (sampled)"),
                Err(e) => {
                    t.count("vic::E204 (simulate)");
                    t.backend.push(format!("{case}: simulate: {e}"));
                }
            }
        }
    }
    Some(tr)
}

/// One model source through compile → derive → render → lower → data → train.
fn run_model(t: &mut Tally, case: &str, src: &str, data: Option<&Path>) {
    let m = match vic::compile(src, "mutant.vmodel") {
        Ok(m) => m,
        Err(f) => {
            let first = f.reports.first().map(|r| r.diag.code.as_str());
            t.count(first.unwrap_or("compile error without diagnostics"));
            if f.reports.is_empty() {
                t.backend
                    .push(format!("{case}: a failure with no diagnostic"));
            }
            // Rendering is part of reporting.
            for r in f.reports.iter().take(3) {
                let _ = vic::diag::render_plain(r);
            }
            return;
        }
    };
    for w in m.warnings().iter().take(3) {
        let _ = vic::diag::render_plain(w);
    }
    let elbo = m.elbo();
    let _ = m.render_elbo(vic::render::Format::Text, true);
    let _ = m.render_elbo(vic::render::Format::Json, false);
    let _ = m.render_elbo(vic::render::Format::Latex, false);
    let _ = m.graph();
    let program = match Program::new_spanned(m.ir(), &elbo, &m.checked.spans) {
        Ok(p) => p,
        Err(ds) => {
            t.count(ds[0].code.as_str());
            return;
        }
    };
    let needs = m
        .ir()
        .vars
        .iter()
        .any(|v| matches!(v.role, vic::ir::Role::Observed | vic::ir::Role::Input));
    let dataset = if needs {
        let Some(path) = data else {
            t.count("vic::E092 (no data file)");
            return;
        };
        let min_len = program.plan.max_lag as usize + 1;
        match data::load(path, &vic::train::specs_of(&program), min_len) {
            Ok(d) => Some(small(&d)),
            Err(e) => {
                t.count(e.code());
                return;
            }
        }
    } else {
        None
    };
    exercise(t, case, program, dataset, true);
}

// --------------------------------------------------------------------------- data mutations

/// Writes a mutated data file for `model` into `dir`; returns its path.
fn mutate_data(
    rng: &mut Rng,
    dir: &Path,
    n: usize,
    original: &Path,
    d: &Dataset,
    specs: &[vic::data::VarSpec],
) -> PathBuf {
    let bytes = std::fs::read(original).unwrap();
    match rng.below(6) {
        // Raw damage to the npz: truncate, flip bytes, append garbage.
        0 => {
            let p = dir.join(format!("d{n}.npz"));
            let mut b = bytes.clone();
            match rng.below(3) {
                0 => b.truncate(rng.below(b.len())),
                1 => {
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                }
                _ => b.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            }
            std::fs::write(&p, b).unwrap();
            p
        }
        // A rewritten npz: shapes, dtypes, values, names, masks.
        1 | 2 => {
            let p = dir.join(format!("d{n}.npz"));
            write_npz(rng, &p, d, specs);
            p
        }
        // A single .npy of the first observed array, or a damaged header.
        3 | 4 => {
            let p = dir.join(format!("d{n}.npy"));
            let spec = &specs[0];
            let arr = d.array(&spec.name).unwrap_or(&[]).to_vec();
            let shape = if spec.timed {
                vec![d.n, d.t.unwrap_or(1), spec.size]
            } else {
                vec![d.n, spec.size]
            };
            let a = ndarray::ArrayD::from_shape_vec(shape, arr).unwrap();
            ndarray_npy::write_npy(&p, &a).unwrap();
            let mut b = std::fs::read(&p).unwrap();
            let header_end = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
            match rng.below(5) {
                0 => b.truncate(rng.below(b.len())),
                1 => {
                    let i = rng.below(header_end.max(1));
                    b[i] ^= 1 << rng.below(8);
                }
                2 => {
                    let h = String::from_utf8_lossy(&b[..header_end]).into_owned();
                    const DTYPES: &[&str] = &[
                        "'<f8'", "'>f4'", "'<i8'", "'|u1'", "'|b1'", "'<c8'", "'|O'", "'<U3'",
                        "'<f2'",
                    ];
                    let to: &str = DTYPES[rng.below(DTYPES.len())];
                    let new = h.replace("'<f4'", to);
                    let mut nb = new.into_bytes();
                    nb.extend_from_slice(&b[header_end..]);
                    b = nb;
                }
                3 => {
                    let h = String::from_utf8_lossy(&b[..header_end]).into_owned();
                    let at = h.find("'shape': (").map(|i| i + 10).unwrap_or(0);
                    let mut new = h.clone();
                    let ins = rng.pick(&[
                        "99999999999, ",
                        "0, ",
                        "1, ",
                        "18446744073709551615, ",
                        "-1, ",
                    ]);
                    new.insert_str(at, ins);
                    let mut nb = new.into_bytes();
                    nb.extend_from_slice(&b[header_end..]);
                    b = nb;
                }
                _ => {
                    let h = String::from_utf8_lossy(&b[..header_end]).into_owned();
                    let mut nb = h.replace("False", "True").into_bytes();
                    nb.extend_from_slice(&b[header_end..]);
                    b = nb;
                }
            }
            std::fs::write(&p, b).unwrap();
            p
        }
        // A CSV of the static arrays, damaged.
        _ => {
            let p = dir.join(format!("d{n}.csv"));
            let mut header = Vec::new();
            let mut cols: Vec<Vec<f32>> = Vec::new();
            for s in specs.iter().filter(|s| !s.timed) {
                let a = d.array(&s.name).unwrap_or(&[]);
                for j in 0..s.size {
                    header.push(if s.size == 1 {
                        s.name.clone()
                    } else {
                        format!("{}.{j}", s.name)
                    });
                    cols.push(
                        (0..d.n)
                            .map(|i| a.get(i * s.size + j).copied().unwrap_or(0.0))
                            .collect(),
                    );
                }
            }
            let mut lines = vec![header.join(",")];
            for i in 0..d.n.min(50) {
                lines.push(
                    cols.iter()
                        .map(|c| c[i].to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            // Mostly one mutation: most of two or three are syntax errors, which stop at the parser.
            let count = [1, 1, 1, 1, 1, 1, 1, 2, 2, 3][rng.below(10)];
            for _ in 0..count {
                let i = rng.below(lines.len());
                match rng.below(8) {
                    0 => lines[i].push_str(",1"),
                    1 => {
                        let l = lines[i]
                            .rsplit_once(',')
                            .map(|x| x.0.to_string())
                            .unwrap_or_default();
                        lines[i] = l;
                    }
                    2 => lines[i] = lines[i].replacen(|c: char| c.is_ascii_digit(), "x", 1),
                    3 => {
                        lines[i] = rng
                            .pick(&[
                                "nan", "inf", "1e39", "-1e39", "", " ", "\"1\"", "0x10", "1,5",
                            ])
                            .to_string()
                    }
                    4 => {
                        lines.truncate(i.max(1));
                    }
                    5 => lines[0] = lines[0].replacen('x', "y", 1),
                    6 => lines[i] = format!("\u{feff}{}", lines[i]),
                    _ => lines.insert(i, String::new()),
                }
            }
            let sep = if rng.below(4) == 0 { "\r\n" } else { "\n" };
            std::fs::write(&p, lines.join(sep)).unwrap();
            p
        }
    }
}

fn write_npz(rng: &mut Rng, path: &Path, d: &Dataset, specs: &[vic::data::VarSpec]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = ndarray_npy::NpzWriter::new(f);
    let target = rng.below(specs.len() + 1);
    let op = rng.below(10);
    let n = d.n;
    let t = d.t.unwrap_or(1);
    for (i, s) in specs.iter().enumerate() {
        let mut vals = d.array(&s.name).unwrap_or(&[]).to_vec();
        let mut shape = if s.timed {
            vec![n, t, s.size]
        } else {
            vec![n, s.size]
        };
        let mut name = s.name.clone();
        if i == target {
            match op {
                0 => continue, // missing array
                1 => name.push('_'),
                2 => {
                    // One fewer feature.
                    let last = shape.len() - 1;
                    if shape[last] > 1 {
                        let size = shape[last];
                        vals = vals
                            .chunks(size)
                            .flat_map(|c| c[..size - 1].to_vec())
                            .collect();
                        shape[last] -= 1;
                    }
                }
                3 => {
                    // Drop the time axis (or add one).
                    if s.timed {
                        vals.truncate(n * s.size);
                        shape = vec![n, s.size];
                    } else {
                        shape = vec![n, 1, s.size];
                    }
                }
                4 => {
                    // Poisoned values.
                    let v =
                        *rng.pick(&[f32::NAN, f32::INFINITY, 3e38, -3e38, 1e30, -1.0, 2.0, 0.5]);
                    for _ in 0..1 + rng.below(4) {
                        if !vals.is_empty() {
                            let j = rng.below(vals.len());
                            vals[j] = v;
                        }
                    }
                }
                5 => {
                    // Fewer rows than the others (or none).
                    let keep = rng.below(n);
                    vals.truncate(keep * vals.len() / n.max(1));
                    shape[0] = keep;
                }
                6 => {
                    // Another dtype.
                    let a = ndarray::ArrayD::from_shape_vec(shape.clone(), vals.clone()).unwrap();
                    match rng.below(4) {
                        0 => w.add_array(name.as_str(), &a.mapv(f64::from)).unwrap(),
                        1 => w.add_array(name.as_str(), &a.mapv(|x| x as i64)).unwrap(),
                        2 => w.add_array(name.as_str(), &a.mapv(|x| x as u8)).unwrap(),
                        _ => w.add_array(name.as_str(), &a.mapv(|x| x != 0.0)).unwrap(),
                    }
                    continue;
                }
                7 if s.timed => {
                    // Shorter sequences (down to one step).
                    let keep = 1 + rng.below(t);
                    vals = vals
                        .chunks(t * s.size)
                        .flat_map(|c| c[..keep * s.size].to_vec())
                        .collect();
                    shape[1] = keep;
                }
                _ => {}
            }
        }
        let a = ndarray::ArrayD::from_shape_vec(shape, vals).unwrap();
        w.add_array(name.as_str(), &a).unwrap();
    }
    // A mask, sometimes wrong.
    if d.t.is_some() && op >= 8 {
        let mut mask = vec![1.0f32; n * t];
        let mut shape = vec![n, t];
        match rng.below(4) {
            0 => mask[..t].iter_mut().for_each(|m| *m = 0.0),
            1 => mask[rng.below(n * t)] = *rng.pick(&[2.0, -1.0, f32::NAN, 0.5]),
            2 => {
                shape = vec![n, t + 1];
                mask.extend(vec![1.0; n]);
            }
            _ => mask.iter_mut().skip(1).step_by(2).for_each(|m| *m = 0.0),
        }
        let a = ndarray::ArrayD::from_shape_vec(shape, mask).unwrap();
        w.add_array("mask", &a).unwrap();
    }
    w.finish().unwrap();
}

fn run_data(t: &mut Tally, case: &str, program: &Program, path: &Path) {
    let min_len = program.plan.max_lag as usize + 1;
    match data::load(path, &vic::train::specs_of(program), min_len) {
        Ok(d) => {
            t.count("ok (data loaded)");
            exercise(t, case, program.clone(), Some(small(&d)), false);
        }
        Err(e) => t.count(e.code()),
    }
}

// --------------------------------------------------------------------- checkpoint mutations

fn mutate_checkpoint(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let header = 8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    match rng.below(6) {
        0 => b.truncate(rng.below(b.len())),
        1 => {
            // Flip bits anywhere.
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            // Flip one bit in the tensor data.
            let i = header + rng.below(b.len().saturating_sub(header));
            if i < b.len() {
                b[i] ^= 1 << rng.below(8);
            }
        }
        3 | 4 => {
            // Edit the header JSON, keeping its length: a digit, a dtype, a key, a shape.
            let h = String::from_utf8_lossy(&b[8..header.min(b.len())]).into_owned();
            let edits: &[(&str, &str)] = &[
                ("\"F32\"", "\"F64\""),
                ("\"F32\"", "\"I32\""),
                ("step", "stap"),
                ("\"format\"", "\"formaT\""),
                ("model_hash", "model_hasH"),
                ("checksum", "checksuM"),
                ("param/", "param_"),
                ("adam.m/", "adam.M/"),
                ("\"shape\":[", "\"shape\":[9,"),
                ("\"data_offsets\":[0,", "\"data_offsets\":[4,"),
            ];
            let (from, to) = *rng.pick(edits);
            let mut new = h.replacen(from, to, 1);
            if rng.below(2) == 0 {
                // A digit anywhere in the header.
                let digits: Vec<usize> = new
                    .bytes()
                    .enumerate()
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(i, _)| i)
                    .collect();
                if !digits.is_empty() {
                    let i = *rng.pick(&digits);
                    let d = b"0123456789"[rng.below(10)] as char;
                    new.replace_range(i..i + 1, &d.to_string());
                }
            }
            let mut nb = (new.len() as u64).to_le_bytes().to_vec();
            nb.extend_from_slice(new.as_bytes());
            nb.extend_from_slice(&b[header.min(b.len())..]);
            b = nb;
        }
        _ => {
            // A header length that lies.
            let lie = *rng.pick(&[0u64, 1, 7, u64::MAX, u32::MAX as u64, b.len() as u64]);
            b[..8].copy_from_slice(&lie.to_le_bytes());
        }
    }
    b
}

// ---------------------------------------------------------------------------- the corpus

fn corpus(model_mutants: usize) -> Tally {
    quiet_panics();
    let models = shipped();
    let idents: Vec<String> = {
        let mut v: Vec<String> = models
            .iter()
            .flat_map(|m| {
                tokens(&m.src)
                    .into_iter()
                    .filter(|t| t.0 == Tok::Ident)
                    .map(|t| m.src[t.1].to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let dir = scratch("corpus");
    let mut t = Tally::default();
    let seed = std::env::var("VIC_MUTANTS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let mut rng = Rng::new(seed);

    // Model sources.
    for i in 0..model_mutants {
        let m = &models[i % models.len()];
        let src = mutate_source(&m.src, &mut rng, &idents);
        let case = format!("model #{i} of {}", m.name);
        *t.cases.entry("model mutants").or_default() += 1;
        let data = m.data.clone();
        let before = t.failures();
        guarded(&mut t, &case, |t| {
            run_model(t, &case, &src, data.as_deref())
        });
        if t.failures() > before {
            // Kept for reproduction: `vic run <file> --data models/data/…`.
            let p = dir.join(format!("failed-{i}-{}", m.name));
            let _ = std::fs::write(&p, &src);
        }
    }

    // Data files and checkpoints, per model that lowers and sets up.
    let data_mutants = model_mutants / 2;
    let ckpt_mutants = model_mutants / 2;
    let mut lowered = Vec::new();
    for m in &models {
        let model = vic::compile(&m.src, &m.name).unwrap();
        let Ok(program) = Program::new(model.ir(), &model.elbo()) else {
            continue;
        };
        let d = m.data.as_ref().map(|p| {
            data::load(
                p,
                &vic::train::specs_of(&program),
                program.plan.max_lag as usize + 1,
            )
            .expect("shipped data loads")
        });
        lowered.push((m, program, d));
    }
    let with_data: Vec<_> = lowered.iter().filter(|x| x.2.is_some()).collect();
    for i in 0..data_mutants {
        let (m, program, d) = with_data[i % with_data.len()];
        let d = d.as_ref().unwrap();
        let specs = vic::train::specs_of(program);
        let path = mutate_data(&mut rng, &dir, i, m.data.as_ref().unwrap(), d, &specs);
        let case = format!("data #{i} for {} ({})", m.name, path.display());
        *t.cases.entry("data mutants").or_default() += 1;
        let before = t.failures();
        guarded(&mut t, &case, |t| run_data(t, &case, program, &path));
        if t.failures() == before {
            let _ = std::fs::remove_file(&path);
        }
    }

    // Checkpoints: one written per lowered model, then mutated.
    let mut written = Vec::new();
    for (m, program, d) in &lowered {
        let cfg = TrainConfig {
            batch: 2,
            holdout: 0.0,
            horizon: Some(4),
            ..TrainConfig::default()
        };
        let Ok(tr) = Trainer::new(program.clone(), d.as_ref().map(small), cfg) else {
            continue;
        };
        let p = dir.join(format!("{}.safetensors", m.name));
        tr.save(&p).expect("a checkpoint is written");
        written.push((m, program, d, std::fs::read(&p).unwrap()));
    }
    for i in 0..ckpt_mutants {
        let (m, program, d, bytes) = &written[i % written.len()];
        let mutated = mutate_checkpoint(&mut rng, bytes);
        let path = dir.join(format!("c{i}.safetensors"));
        std::fs::write(&path, &mutated).unwrap();
        let case = format!("checkpoint #{i} of {}", m.name);
        *t.cases.entry("checkpoint mutants").or_default() += 1;
        let same = &mutated == bytes;
        guarded(&mut t, &case, |t| {
            let cfg = TrainConfig {
                batch: 2,
                holdout: 0.0,
                horizon: Some(4),
                ..TrainConfig::default()
            };
            let mut tr = Trainer::new((*program).clone(), d.as_ref().map(small), cfg)
                .expect("the shipped model sets up");
            let before: Vec<(String, Vec<f32>)> = snapshot(&tr.store);
            let r = if i % 2 == 0 {
                tr.load_params(&path).map(|_| ())
            } else {
                tr.resume(&path).map(|_| ())
            };
            match r {
                Ok(()) => {
                    t.count("ok (checkpoint loaded)");
                    if !same && snapshot(&tr.store) != before {
                        t.accepted_checkpoints
                            .push(format!("{case}: other parameters were loaded"));
                    }
                }
                Err(e) => train_outcome(t, &case, &e),
            }
        });
        let _ = std::fs::remove_file(&path);
    }
    if t.failures() == 0 {
        let _ = std::fs::remove_dir_all(&dir);
    }
    t
}

fn snapshot(s: &vic::runtime::nets::params::ParamStore) -> Vec<(String, Vec<f32>)> {
    s.iter().map(|(n, p)| (n.clone(), p.to_host())).collect()
}

fn mutants_requested() -> Option<usize> {
    std::env::var("VIC_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The bounded slice `cargo test` runs (or `VIC_MUTANTS` model mutants, with half as many
/// data and checkpoint mutants each).
#[test]
fn mutants_of_models_data_and_checkpoints_end_in_coded_errors() {
    let n = mutants_requested().unwrap_or(300);
    let t = corpus(n);
    let report = t.report();
    println!("{report}");
    assert_eq!(t.failures(), 0, "{report}");
}

/// The same mutants through the `vic` binary (`vic run … --steps 1`): every failure is a coded
/// diagnostic (`vic::E…`) with a help line, never a panic or a bare `error:` line, and exit 0
/// never comes with a non-finite report. `VIC_CLI_MUTANTS` sets the count (default 24).
#[test]
fn cli_mutants_exit_with_coded_diagnostics() {
    let n: usize = std::env::var("VIC_CLI_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let models = shipped();
    let idents: Vec<String> = models
        .iter()
        .flat_map(|m| {
            tokens(&m.src)
                .into_iter()
                .filter(|t| t.0 == Tok::Ident)
                .map(|t| m.src[t.1].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let dir = scratch("cli");
    let seed = std::env::var("VIC_MUTANTS_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(1111, |s| s + 1100);
    let mut rng = Rng::new(seed);
    let mut bad = Vec::new();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..n {
        let m = &models[i % models.len()];
        let src = mutate_source(&m.src, &mut rng, &idents);
        let file = dir.join(format!("m{i}.vmodel"));
        std::fs::write(&file, &src).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vic"));
        cmd.args(["run", "--steps", "1", "--batch", "2", "--samples", "1"])
            .arg(&file)
            .arg("--out")
            .arg(dir.join(format!("out{i}")))
            // Mutants the corpus would skip as too large are refused (E202), not run.
            .env("VIC_MEMORY_BYTES", (1u64 << 30).to_string());
        if let Some(d) = &m.data {
            cmd.arg("--data").arg(d);
        }
        let out = cmd.output().expect("vic runs");
        let err = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let code = out.status.code();
        let first = err
            .split_whitespace()
            .find(|w| w.starts_with("vic::E"))
            .map(|w| {
                w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_string()
            });
        *codes
            .entry(first.clone().unwrap_or_else(|| format!("exit {code:?}")))
            .or_default() += 1;
        let bare = err.lines().any(|l| l.starts_with("error:"));
        let ok = match code {
            Some(0) => !stdout
                .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
                .any(|w| w.parse::<f64>().is_ok_and(|x| !x.is_finite())),
            Some(1) | Some(2) => first.is_some() && err.contains("help:") && !bare,
            _ => false,
        };
        if !ok || err.contains("panicked") {
            bad.push(format!(
                "{} (mutant of {}): exit {code:?}\n{err}",
                file.display(),
                m.name
            ));
        }
    }
    println!("{codes:?}");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
