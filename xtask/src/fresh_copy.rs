//! Proves the set-up needs nothing outside the repository.
//!
//! CI's own clone has other folders beside it, so a check run in place could
//! lean on them unnoticed. This copies the tracked files into a new temporary
//! folder, alone in its parent, and runs `xtask wasm` there: the wasm target,
//! the wasm-bindgen CLI and the wasm build.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, execute, root, target_dir};

pub fn check() -> Result {
    let parent = std::env::temp_dir().join(format!("kith-fresh-copy-{}", std::process::id()));
    let copy = parent.join("kith");
    let result = copy_tracked_files(&copy).and_then(|()| setup_in(&copy));
    match &result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&parent);
        }
        Err(_) => eprintln!("xtask: the copy is kept for a look at {}", copy.display()),
    }
    result
}

/// The working tree's version of every tracked file (uncommitted edits included).
fn copy_tracked_files(copy: &Path) -> Result {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run git ls-files: {e}"))?;
    if !out.status.success() {
        return Err("git ls-files failed: run this from a git clone of Kith".into());
    }
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name);
        let from = root().join(&*name);
        if !from.exists() {
            continue; // deleted in the working tree, not yet committed
        }
        let to = copy.join(&*name);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::copy(&from, &to).map_err(|e| format!("cannot copy {name}: {e}"))?;
    }
    Ok(())
}

/// Runs the copy's own xtask. Its build artefacts share this clone's target
/// folder (so the wasm dependencies are not built twice), but the xtask binary
/// itself is built apart, so the running one is never overwritten.
fn setup_in(copy: &Path) -> Result {
    let xtask_target: PathBuf = target_dir().join("fresh-copy-xtask");
    let mut build = Command::new("cargo");
    build.current_dir(copy);
    let target = xtask_target.to_string_lossy();
    execute(
        build,
        "cargo",
        &["build", "--quiet", "-p", "xtask", "--target-dir", &target],
    )?;

    let mut wasm = Command::new(xtask_target.join("debug/xtask"));
    wasm.current_dir(copy).env("CARGO_TARGET_DIR", target_dir());
    execute(wasm, "xtask (in the copy)", &["wasm"])?;

    let built = copy.join("web/app/src/wasm/pkg/kith_wasm_bg.wasm");
    if built.is_file() {
        Ok(())
    } else {
        Err(format!(
            "xtask wasm in the copy did not write {}",
            built.display()
        ))
    }
}
