//! The command line is a thin client of the library, and its modules form a tree: no module
//! of `src/cli` imports (through `super::`) a module that imports it, and `src/bench` imports
//! nothing of `src/cli` (what both need is in the library or in `src/exit.rs`). Read from the
//! sources, so a new circle fails here rather than in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The text of a module without its `#[cfg(test)] mod tests` (which may `use super::*`).
fn code(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap();
    match s.find("#[cfg(test)]") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The sibling modules `src/cli/*.rs` names as `super::<module>`.
fn cli_imports() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    let names: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rs").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names
        .iter()
        .filter(|n| *n != "mod")
        .map(|n| {
            let text = code(&dir.join(format!("{n}.rs")));
            let mut deps = BTreeSet::new();
            for (i, _) in text.match_indices("super::") {
                let rest = &text[i + "super::".len()..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // `super::{a, b}` lists names; each must be a sibling or it is mod.rs's.
                let listed: Vec<String> = if rest.starts_with('{') {
                    rest[1..rest.find('}').unwrap()]
                        .split(',')
                        .map(|w| w.trim().split("::").next().unwrap().to_string())
                        .collect()
                } else {
                    vec![word]
                };
                for w in listed {
                    deps.insert(w);
                }
            }
            (n.clone(), deps)
        })
        .collect()
}

#[test]
fn cli_modules_import_no_module_that_imports_them() {
    let graph = cli_imports();
    let mut circles = Vec::new();
    for (m, deps) in &graph {
        for d in deps {
            match graph.get(d) {
                // A sibling: it must not reach back to `m`, directly or through others.
                Some(_) => {
                    let mut seen = BTreeSet::new();
                    let mut stack = vec![d.clone()];
                    while let Some(x) = stack.pop() {
                        if x == *m {
                            circles.push(format!("{m} → {d} → … → {m}"));
                            break;
                        }
                        if seen.insert(x.clone()) {
                            stack.extend(graph.get(&x).into_iter().flatten().cloned());
                        }
                    }
                }
                // Anything else is a name defined in cli/mod.rs, which imports every module.
                None => circles.push(format!("{m} → mod.rs (`super::{d}`) → {m}")),
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles in src/cli:\n{}",
        circles.join("\n")
    );
    // The check sees the imports it guards.
    assert!(graph["sample"].contains("predictive"), "{graph:?}");
}

#[test]
fn bench_imports_nothing_of_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let text = code(&p);
        assert!(
            !text.contains("crate::cli") && !text.contains("super::cli"),
            "{} imports src/cli",
            p.display()
        );
    }
}
