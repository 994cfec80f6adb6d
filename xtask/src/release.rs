//! Reproducible app builds: two builds of one commit give the same bytes,
//! so anyone can check that the app a server sends is the one built from
//! the published source (`docs/DEPLOYMENT.md`). The app build writes
//! `dist/kith-release.json`, every file with its SHA-256
//! (`web/app/scripts/release-manifest.mjs`); this compares two of them.

use std::path::{Path, PathBuf};

use crate::{Result, app_dir, root, sh_env, sh_in, step, web};

/// The wasm build's flags: the getrandom backend (as `.cargo/config.toml`
/// says, which these replace) and no path of this machine in the output,
/// so a build elsewhere gives the same bytes. Cargo's encoded form
/// (separated by 0x1f), so paths may hold spaces.
pub fn wasm_rustflags() -> String {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    [
        "--cfg".to_owned(),
        "getrandom_backend=\"wasm_js\"".to_owned(),
        "--remap-path-prefix".to_owned(),
        format!("{}=/kith", root().display()),
        "--remap-path-prefix".to_owned(),
        format!("{}=/cargo", cargo_home.display()),
    ]
    .join("\u{1f}")
}

fn manifest() -> Result<String> {
    let path = app_dir().join("dist/kith-release.json");
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Each line of `a` that `b` lacks: the files that differ.
fn differences(a: &str, b: &str) -> Vec<String> {
    let theirs: Vec<&str> = b.lines().collect();
    a.lines()
        .filter(|line| line.contains("\"path\"") || line.contains("\"sha256\""))
        .filter(|line| !theirs.contains(line))
        .map(|line| line.trim().to_owned())
        .collect()
}

fn same(what: &str, first: &str, second: &str) -> Result {
    let differ = differences(first, second);
    if differ.is_empty() {
        eprintln!("xtask: {what}: the two builds are byte for byte the same");
        Ok(())
    } else {
        Err(format!(
            "{what}: the two builds differ in {differ:?}; find what put time, order or a path into the build"
        ))
    }
}

/// CI's quick check: the app built again from the same wasm core gives
/// the same files (catches a bundler or service-worker step that writes
/// a time or a random name).
pub fn app_build_repeats() -> Result {
    step("app build repeats byte for byte", || {
        let first = manifest()?;
        sh_in(&app_dir(), "npm", &["run", "build"])?;
        same("app build", &first, &manifest()?)
    })
}

/// `cargo xtask reproduce`: builds the app, then builds it all again, the
/// wasm core from scratch in a second build folder, and compares.
pub fn reproduce() -> Result {
    web()?;
    let first = manifest()?;
    let fresh = root().join("target/reproduce");
    let _ = std::fs::remove_dir_all(&fresh);
    step("second build, from scratch", || {
        sh_env(
            &[(
                "CARGO_TARGET_DIR",
                fresh.to_str().ok_or("target path is not UTF-8")?,
            )],
            "cargo",
            &["xtask", "web"],
        )
    })?;
    same("app and wasm build", &first, &manifest()?)
}
