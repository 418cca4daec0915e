//! The compiler never panics and never overflows the stack, whatever the input.
//!
//! (a) every prefix of every model file; (b) random mutations of the models (proptest, fixed
//! seed); (c) deeply nested and very long expressions. For every failed compilation, every
//! diagnostic must carry a code and a primary label whose span lies inside the source and on
//! char boundaries, and must render with `vic::diag::render_plain` without panicking.
//!
//! The deep-nesting cases run in a child process (this test binary re-executed) on a thread
//! with a 2 MiB stack, the size of a spawned thread's or a test thread's default stack, so a
//! stack overflow shows up as a failed test naming the case instead of aborting every test in
//! this binary.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// ------------------------------------------------------------------------------- helpers

struct ModelFile {
    name: String,
    src: String,
}

fn models() -> &'static [ModelFile] {
    static MODELS: OnceLock<Vec<ModelFile>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("models/ is readable")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "vmodel"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no models in {}", dir.display());
        paths
            .into_iter()
            .map(|p| ModelFile {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                src: std::fs::read_to_string(&p).expect("model is UTF-8"),
            })
            .collect()
    })
}

/// Checks what every diagnostic must satisfy; returns the violations as text.
fn diagnostic_violations(src: &str, reports: &[vic::diag::Report]) -> Vec<String> {
    let mut bad = Vec::new();
    for r in reports {
        let d = &r.diag;
        let code = d.code.as_str();
        if !(code.starts_with("vic::E") || code.starts_with("vic::W")) || code.len() < 8 {
            bad.push(format!("malformed code {code:?} on {:?}", d.message));
        }
        match d.primary_span() {
            None => {
                if d.is_error() {
                    bad.push(format!("{code} {:?} has no primary label", d.message));
                }
            }
            Some(s) => {
                if s.lo > s.hi || s.hi > src.len() {
                    bad.push(format!(
                        "{code} {:?}: primary span {}..{} outside the source (len {})",
                        d.message,
                        s.lo,
                        s.hi,
                        src.len()
                    ));
                } else if !src.is_char_boundary(s.lo) || !src.is_char_boundary(s.hi) {
                    bad.push(format!(
                        "{code} {:?}: primary span {}..{} not on a char boundary",
                        d.message, s.lo, s.hi
                    ));
                }
            }
        }
        for l in &d.labels {
            if l.span.hi > src.len() || l.span.lo > l.span.hi {
                bad.push(format!(
                    "{code} {:?}: label span {}..{} outside the source (len {})",
                    d.message,
                    l.span.lo,
                    l.span.hi,
                    src.len()
                ));
            }
        }
        if catch_quiet(|| vic::diag::render_plain(r)).is_err() {
            bad.push(format!("{code} {:?}: render_plain panicked", d.message));
        }
    }
    bad
}

/// Compiles `src`; Err(text) if the compiler panicked or a diagnostic broke an invariant.
fn compile_checked(src: &str) -> Result<(), String> {
    let result = catch_quiet(|| vic::compile(src, "fuzz.vmodel"))
        .map_err(|e| format!("vic::compile panicked: {}", panic_text(&e)))?;
    let bad = match &result {
        Ok(model) => diagnostic_violations(src, &model.warnings()),
        Err(failure) => {
            let mut bad = diagnostic_violations(src, &failure.reports);
            if !failure.diagnostics().any(|d| d.is_error()) {
                bad.push("compilation failed without an error diagnostic".into());
            }
            bad
        }
    };
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic>".into()
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `catch_unwind`, with the panic message silenced on this thread while `f` runs (we report
/// caught panics ourselves); other panics, such as failing assertions, keep the default hook.
fn catch_quiet<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r
}

// ------------------------------------------------------------------------- (a) prefixes

/// All char-boundary prefixes of a file up to 4 KiB; beyond that, every 7th boundary plus
/// every line end (keeps the runtime bounded if models grow).
fn prefixes(src: &str) -> Vec<usize> {
    let all: Vec<usize> = (0..=src.len())
        .filter(|&i| src.is_char_boundary(i))
        .collect();
    if src.len() <= 4096 {
        return all;
    }
    all.into_iter()
        .enumerate()
        .filter(|&(k, i)| k % 7 == 0 || i == src.len() || src[..i].ends_with('\n'))
        .map(|(_, i)| i)
        .collect()
}

#[test]
fn every_prefix_of_every_model_compiles_without_panicking() {
    let mut panics = Vec::new();
    for m in models() {
        for cut in prefixes(&m.src) {
            let prefix = &m.src[..cut];
            if let Err(e) = catch_quiet(|| vic::compile(prefix, &m.name)) {
                panics.push(format!(
                    "{} cut at byte {cut}: {}\n  tail: {:?}",
                    m.name,
                    panic_text(&e),
                    &prefix[prefix.len().saturating_sub(60)..]
                ));
            }
        }
    }
    assert!(panics.is_empty(), "{} panic(s):\n{}", panics.len(), {
        panics.truncate(20);
        panics.join("\n")
    });
}

#[test]
fn every_prefix_of_every_model_gives_well_formed_diagnostics() {
    let mut bad = Vec::new();
    for m in models() {
        for cut in prefixes(&m.src) {
            let prefix = &m.src[..cut];
            if let Err(e) = compile_checked(prefix) {
                bad.push((prefix.len(), format!("{} cut at byte {cut}: {e}", m.name)));
            }
        }
    }
    // A summary by code and kind of fault, then the shortest (most minimal) witnesses.
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for (_, text) in &bad {
        for line in text.lines() {
            let code = line.split_whitespace().find(|w| w.starts_with("vic::"));
            let kind = [
                "outside the source",
                "not on a char boundary",
                "no primary label",
                "panicked",
            ]
            .into_iter()
            .find(|k| line.contains(k))
            .unwrap_or("other");
            *kinds
                .entry(format!("{} {kind}", code.unwrap_or("?")))
                .or_default() += 1;
        }
    }
    bad.sort();
    let n = bad.len();
    let shown: Vec<String> = bad.into_iter().take(12).map(|(_, s)| s).collect();
    assert!(
        n == 0,
        "{n} prefix(es) with bad diagnostics; faults by kind: {kinds:?}\nshortest first:\n{}",
        shown.join("\n")
    );
}

/// Minimal witnesses of the syntax-error span fault the prefix and mutation tests find.
// FAILS as of this writing: `parse::syntax_error` turns pest's `InputLocation::Pos(p)` into
// `Span::new(p, p + 1)`, which runs past the end at end of input and splits a multi-byte char.
// The fix belongs in src/parse (clamp to the source, extend to the char's UTF-8 length).
#[test]
fn syntax_error_spans_stay_in_the_source() {
    let mut bad = Vec::new();
    for src in [
        "",
        "model m {",
        "model m { p {",
        "é",
        "model é",
        "model m { dim X = é }",
    ] {
        if let Err(e) = compile_checked(src) {
            bad.push(format!("{src:?}: {e}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ------------------------------------------------------------------------ (b) mutations

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokKind {
    Ident,
    Number,
}

/// Identifier and number tokens of a source: (kind, byte range).
fn tokens(src: &str) -> Vec<(TokKind, std::ops::Range<usize>)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((TokKind::Ident, s..i));
        } else if c.is_ascii_digit() {
            let s = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push((TokKind::Number, s..i));
        } else {
            i += 1;
        }
    }
    out
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "1e400",
    "1e-400",
    "2.5",
    "0.0",
    "-0",
    "99999999999999999999999999",
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775808",
    "-9223372036854775808",
    "4294967296",
    "1e308",
    "1.7976931348623157e308",
    "1e18",
    "65",
    "10000000",
];

const GARBAGE: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "~",
    "=",
    "->",
    ",",
    ".",
    ".0",
    ".99999999999999999999",
    "@",
    "*",
    "/",
    "-",
    "+",
    ":",
    "t",
    "[t]",
    "[t-1]",
    "[t+1]",
    "[t-99999999999999999999]",
    "[t+18446744073709551615]",
    "[-1]",
    "[0]",
    "[99999999999]",
    "[t:]",
    "[:t]",
    "é",
    "∑",
    "\u{0}",
    "\u{feff}",
    "🦀",
    "//",
    "/*",
    "*/",
    "\"",
    "via",
    "via enumerate",
    "p {",
    "q {",
    "model m {",
    "objective {",
    "init x[0] = 0",
    "init x[-1] = 0",
    "dim Z = 0",
    "dim Z = -1",
    "dim Z = 1e400",
    "dim Z = 99999999999999999999",
    "dim Z = 4294967296",
    "latent q2[t] : real[0]",
    "latent big : real[99999999999]",
    "latent oh[t] : onehot[0, 0]",
    "net n = mlp(0 -> 0)",
    "net n = gru(1 -> 99999999999)",
    "optimality O[t] : r = 1, alpha = 0",
    "param w : real[2, 2] = [[1, 2], [3]]",
    "const c = [1, 2, 3]",
    "Normal.split(",
    "Categorical()",
    "Normal(0, 0)",
    "sg(",
    "concat()",
    "dot(1)",
    "eye(0)",
    "zeros(99999999999)",
    ".99",
    "x.18446744073709551615",
];

const KEYWORDS: &[&str] = &[
    "model",
    "dim",
    "const",
    "param",
    "observed",
    "latent",
    "input",
    "state",
    "net",
    "init",
    "optimality",
    "data",
    "objective",
    "via",
    "p",
    "q",
    "t",
    "real",
    "binary",
    "unit",
    "onehot",
    "Normal",
    "Bernoulli",
    "Categorical",
    "Uniform",
    "Flat",
    "TanhNormal",
    "Laplace",
    "LogNormal",
    "StudentT",
    "Gamma",
    "Beta",
    "Poisson",
    "probs",
    "MultivariateNormal",
    "scale_tril",
    "split",
    "mlp",
    "gru",
    "rnn",
    "relu",
    "reverse",
    "exp",
    "log",
    "softplus",
    "tanh",
    "sg",
    "concat",
    "dot",
    "sum",
    "clamp",
    "alpha",
    "r",
    "kl_weight",
    "free_nats",
    "kl_balance",
    "iwae",
    "scale",
    "min",
];

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    IdentFromFile(Index, Index),
    IdentRandom(Index, String),
    Number(Index, Index),
    InsertBytes(Index, Vec<u8>),
    InsertGarbage(Index, Index),
    DeleteRange(Index, usize),
}

fn line_ranges(src: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in src.char_indices() {
        if c == '\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < src.len() {
        out.push(start..src.len());
    }
    out
}

/// The char boundary at or before `i`.
fn floor_boundary(src: &str, mut i: usize) -> usize {
    i = i.min(src.len());
    while !src.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(src: &str, m: &Mutation) -> String {
    let lines = line_ranges(src);
    let toks = tokens(src);
    let idents: Vec<_> = toks.iter().filter(|t| t.0 == TokKind::Ident).collect();
    let numbers: Vec<_> = toks.iter().filter(|t| t.0 == TokKind::Number).collect();
    let splice = |r: std::ops::Range<usize>, with: &str| {
        let mut s = String::with_capacity(src.len() + with.len());
        s.push_str(&src[..r.start]);
        s.push_str(with);
        s.push_str(&src[r.end..]);
        s
    };
    match m {
        Mutation::DeleteLine(i) if !lines.is_empty() => splice(i.get(&lines).clone(), ""),
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let r = i.get(&lines).clone();
            splice(r.end..r.end, &src[r])
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => {
            let (mut a, mut b) = (a.index(lines.len()), b.index(lines.len()));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            if a == b {
                return src.to_string();
            }
            let (ra, rb) = (lines[a].clone(), lines[b].clone());
            let la = src[ra.clone()].trim_end_matches('\n');
            let lb = src[rb.clone()].trim_end_matches('\n');
            let mut s = String::new();
            s.push_str(&src[..ra.start]);
            s.push_str(lb);
            s.push_str(&src[ra.start + la.len()..rb.start]);
            s.push_str(la);
            s.push_str(&src[rb.start + lb.len()..]);
            s
        }
        Mutation::IdentFromFile(a, b) if !idents.is_empty() => {
            let target = a.get(&idents).1.clone();
            let with = &src[b.get(&idents).1.clone()];
            splice(target, with)
        }
        Mutation::IdentRandom(a, name) if !idents.is_empty() => {
            splice(a.get(&idents).1.clone(), name)
        }
        Mutation::Number(a, b) if !numbers.is_empty() => {
            let n: &&str = b.get(NUMBERS);
            splice(a.get(&numbers).1.clone(), n)
        }
        Mutation::InsertBytes(at, bytes) => {
            let at = floor_boundary(src, at.index(src.len() + 1));
            splice(at..at, &String::from_utf8_lossy(bytes))
        }
        Mutation::InsertGarbage(at, g) => {
            let at = floor_boundary(src, at.index(src.len() + 1));
            let g: &&str = g.get(GARBAGE);
            splice(at..at, g)
        }
        Mutation::DeleteRange(at, len) => {
            let lo = floor_boundary(src, at.index(src.len() + 1));
            let hi = floor_boundary(src, lo + len);
            splice(lo..hi, "")
        }
        _ => src.to_string(),
    }
}

fn model_index() -> impl Strategy<Value = usize> {
    0..models().len()
}

fn random_ident() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        any::<Index>().prop_map(|i| i.get(KEYWORDS).to_string()),
        Just("t".to_string()),
        Just("_".to_string()),
    ]
}

fn line_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::DeleteLine),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn ident_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::IdentFromFile(a, b)),
        (any::<Index>(), random_ident()).prop_map(|(a, s)| Mutation::IdentRandom(a, s)),
    ]
}

fn number_mutation() -> impl Strategy<Value = Mutation> {
    (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Number(a, b))
}

fn garbage_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(a, b)| Mutation::InsertBytes(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, g)| Mutation::InsertGarbage(a, g)),
        (any::<Index>(), 1usize..40).prop_map(|(a, n)| Mutation::DeleteRange(a, n)),
    ]
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        line_mutation(),
        ident_mutation(),
        number_mutation(),
        garbage_mutation()
    ]
}

fn config(seed: u64) -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

fn mutate(file: usize, ms: &[Mutation]) -> String {
    let mut src = models()[file].src.clone();
    for m in ms {
        src = apply(&src, m);
    }
    src
}

/// The full property: no panic, and well-formed, renderable diagnostics.
fn check_mutated(file: usize, ms: &[Mutation]) -> Result<(), TestCaseError> {
    let src = mutate(file, ms);
    compile_checked(&src).map_err(|e| {
        TestCaseError::fail(format!("{e}\n--- mutated {}:\n{src}", models()[file].name))
    })
}

/// The weaker property on its own (so a diagnostic-span fault cannot hide a panic): neither
/// `vic::compile` nor rendering its diagnostics panics.
fn check_mutated_no_panic(file: usize, ms: &[Mutation]) -> Result<(), TestCaseError> {
    let src = mutate(file, ms);
    let outcome = catch_quiet(|| match vic::compile(&src, "fuzz.vmodel") {
        Ok(m) => m
            .warnings()
            .iter()
            .for_each(|r| drop(vic::diag::render_plain(r))),
        Err(f) => f
            .reports
            .iter()
            .for_each(|r| drop(vic::diag::render_plain(r))),
    });
    outcome.map_err(|e| {
        TestCaseError::fail(format!(
            "panicked: {}\n--- mutated {}:\n{src}",
            panic_text(&e),
            models()[file].name
        ))
    })
}

macro_rules! mutation_tests {
    ($($strict:ident, $lenient:ident, $seed:literal, $strategy:expr, $max:literal;)*) => {$(
        proptest! {
            #![proptest_config(config($seed))]
            #[test]
            fn $strict(file in model_index(), ms in prop::collection::vec($strategy, 1..$max)) {
                check_mutated(file, &ms)?;
            }
            #[test]
            fn $lenient(file in model_index(), ms in prop::collection::vec($strategy, 1..$max)) {
                check_mutated_no_panic(file, &ms)?;
            }
        }
    )*};
}

mutation_tests! {
    mutated_lines, mutated_lines_no_panic, 0x5eed_0001, line_mutation(), 4;
    mutated_identifiers, mutated_identifiers_no_panic, 0x5eed_0002, ident_mutation(), 4;
    mutated_numbers, mutated_numbers_no_panic, 0x5eed_0003, number_mutation(), 4;
    mutated_garbage, mutated_garbage_no_panic, 0x5eed_0004, garbage_mutation(), 4;
    mutated_mixed, mutated_mixed_no_panic, 0x5eed_0005, any_mutation(), 8;
}

// ------------------------------------------------------------------ (c) deep and long input

/// A small valid model with `EXPR` in the likelihood's location.
fn with_expr(expr: &str) -> String {
    format!(
        "model deep {{\n  observed x : real\n  latent z : real\n  \
         p {{\n    z ~ Normal(0, 1)\n    x ~ Normal({expr}, 1)\n  }}\n  \
         q {{\n    z ~ Normal(0, 1)\n  }}\n}}\n"
    )
}

fn deep_source(case: &str) -> String {
    match case {
        "parens" => with_expr(&format!("{}z{}", "(".repeat(10_000), ")".repeat(10_000))),
        "brackets" => with_expr(&format!("{}z{}", "[".repeat(10_000), "]".repeat(10_000))),
        "unary_minus" => with_expr(&format!("{}z", "- ".repeat(10_000))),
        "unary_minus_nospace" => with_expr(&format!("{}z", "-".repeat(10_000))),
        "long_sum" => with_expr(&vec!["z"; 100_000].join(" + ")),
        "long_product" => with_expr(&vec!["z"; 100_000].join(" * ")),
        "long_selects" => with_expr(&format!("z{}", ".0".repeat(10_000))),
        "many_lines" => {
            // 20,000 statements: long but flat.
            let mut s = String::from("model many {\n  observed x : real\n  latent z : real\n");
            for i in 0..20_000 {
                s.push_str(&format!("  const c{i} = {i}\n"));
            }
            s.push_str(
                "  p { z ~ Normal(0, 1)\n x ~ Normal(z, 1) }\n  q { z ~ Normal(0, 1) }\n}\n",
            );
            s
        }
        other => panic!("unknown deep case {other}"),
    }
}

/// The stack of the thread the compiler runs on in the child: a spawned thread's default.
const STACK: usize = 2 << 20;
const CHILD_ENV: &str = "VIC_ROBUSTNESS_DEEP_CASE";

/// The child side: does nothing unless re-executed by [`run_deep_case`].
#[test]
fn deep_case_child() {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return;
    };
    let src = deep_source(&case);
    let outcome = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            // Compile, render any diagnostics, dump the IR on success, and drop it all on this
            // thread (dropping a deep tree is recursive too).
            match vic::compile(&src, "deep.vmodel") {
                Ok(m) => {
                    let dump = m.ir().dump();
                    format!("ok ({} bytes of IR)", dump.len())
                }
                Err(f) => {
                    let bad = diagnostic_violations(&src, &f.reports);
                    assert!(bad.is_empty(), "{}", bad.join("\n"));
                    let codes: Vec<&str> = f.diagnostics().map(|d| d.code.as_str()).collect();
                    format!("error {codes:?}")
                }
            }
        })
        .expect("spawn")
        .join()
        .expect("the compiler thread panicked");
    println!("DEEP-CASE-RESULT {case}: {outcome}");
}

/// Re-executes this test binary on `deep_case_child` with `case`, and fails with the child's
/// output unless it finished normally (a stack overflow aborts the child with SIGABRT).
fn run_deep_case(case: &str) {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "deep_case_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, case)
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = |s: &str| s[floor_boundary(s, s.len().saturating_sub(2000))..].to_string();
    assert!(
        out.status.success() && stdout.contains("DEEP-CASE-RESULT"),
        "deep case {case:?} crashed on a {} MiB stack (status {:?}{})\nstdout:\n{}\nstderr:\n{}",
        STACK >> 20,
        out.status.code(),
        signal_of(&out.status),
        tail(&stdout),
        tail(&stderr)
    );
    for line in stdout.lines().filter(|l| l.contains("DEEP-CASE-RESULT")) {
        eprintln!("{line}");
    }
}

#[cfg(unix)]
fn signal_of(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
        .map(|n| format!(", signal {n}"))
        .unwrap_or_default()
}
#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> String {
    String::new()
}

#[test]
fn ten_thousand_parentheses() {
    run_deep_case("parens");
}

#[test]
fn ten_thousand_brackets() {
    run_deep_case("brackets");
}

// FAILS as of this writing (stack overflow in the checker, then in dropping the AST): see the
// report on deep expressions; the fix belongs in src/parse (bound the expression tree's depth).
#[test]
fn ten_thousand_unary_minus_signs() {
    run_deep_case("unary_minus");
}

// FAILS as of this writing (stack overflow in the checker, then in dropping the AST): see the
// report on deep expressions; the fix belongs in src/parse (bound the expression tree's depth).
#[test]
fn ten_thousand_unary_minus_signs_unspaced() {
    run_deep_case("unary_minus_nospace");
}

// FAILS as of this writing (stack overflow in the checker, then in dropping the AST): see the
// report on deep expressions; the fix belongs in src/parse (bound the expression tree's depth).
#[test]
fn hundred_thousand_term_sum() {
    run_deep_case("long_sum");
}

// FAILS as of this writing (stack overflow in the checker, then in dropping the AST): see the
// report on deep expressions; the fix belongs in src/parse (bound the expression tree's depth).
#[test]
fn hundred_thousand_factor_product() {
    run_deep_case("long_product");
}

// FAILS as of this writing (stack overflow in the checker, then in dropping the AST): see the
// report on deep expressions; the fix belongs in src/parse (bound the expression tree's depth).
#[test]
fn ten_thousand_element_selects() {
    run_deep_case("long_selects");
}

#[test]
fn twenty_thousand_declarations() {
    run_deep_case("many_lines");
}
