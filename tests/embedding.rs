//! The library carries its engine: a crate outside this workspace that depends on vic by path
//! (as the README says to embed it) resolves the vendored, patched dfdx and the one gemm the
//! `vic` binary builds with — not crates.io's dfdx 0.13.0, whose `slice` backward assigns
//! instead of adding (an embedded trainer then followed wrong gradients: −903,130 where the CLI
//! reached −691 on the same model and seed). A `[patch.crates-io]` in vic's own Cargo.toml is
//! seen by this workspace only; a path dependency is seen by every dependent.
//!
//! Resolution decides what cargo builds, so the test asks cargo to resolve the out-of-tree
//! crate (`cargo metadata`, from vic's own lock file, offline first) rather than compiling
//! it all again.

use std::path::Path;
use std::process::Command;

mod common;

#[test]
fn an_out_of_tree_crate_resolves_the_vendored_dfdx() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = common::tmp("embed");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"embeds-vic\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nvic = {{ path = {:?} }}\n\n[workspace]\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() { let _ = vic::compile(\"\", \"x\"); }\n",
    )
    .unwrap();
    // vic's own lock file: the same versions as the binary, resolvable offline.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = |offline: bool| {
        let mut c = Command::new(&cargo);
        c.args(["metadata", "--format-version", "1"])
            .current_dir(&dir)
            .env_remove("CARGO_TARGET_DIR");
        if offline {
            c.arg("--offline");
        }
        c.output().expect("cargo runs")
    };
    let mut out = metadata(true);
    if !out.status.success() {
        out = metadata(false);
    }
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let packages = meta["packages"].as_array().expect("packages");
    let named = |name: &str| -> Vec<&serde_json::Value> {
        packages.iter().filter(|p| p["name"] == name).collect()
    };
    let dfdx = named("dfdx");
    assert_eq!(dfdx.len(), 1, "one dfdx in the build: {dfdx:#?}");
    let manifest = dfdx[0]["manifest_path"].as_str().unwrap();
    let vendored = root.join("vendor/dfdx/Cargo.toml");
    assert_eq!(
        Path::new(manifest).canonicalize().unwrap(),
        vendored.canonicalize().unwrap(),
        "the embedding crate builds dfdx from {manifest}, not vic's vendored copy"
    );
    assert!(dfdx[0]["source"].is_null(), "dfdx from a registry");
    let gemm: Vec<&str> = named("gemm")
        .iter()
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(gemm.len(), 1, "one gemm in the build: {gemm:?}");
    assert!(gemm[0].starts_with("0.19"), "gemm {gemm:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
