//! The Rust target the app's wasm is built for, installed from the repository alone.
//!
//! The default path is `rustup target add`. An offline machine may name a
//! `rust-std` archive for its exact rustc in `KITH_RUST_STD_ARCHIVE`; that is
//! an opt-in, never tried unless the variable is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;

const TARGET: &str = "wasm32-unknown-unknown";
const ARCHIVE_VAR: &str = "KITH_RUST_STD_ARCHIVE";

/// Makes sure rustc can build for wasm32-unknown-unknown, installing the target if needed.
pub fn ensure_wasm_target() -> Result {
    if target_installed()? {
        return Ok(());
    }
    match std::env::var_os(ARCHIVE_VAR) {
        Some(archive) => install_from_archive(Path::new(&archive))?,
        None => install_with_rustup()?,
    }
    if target_installed()? && rustc_builds_for_target() {
        eprintln!("xtask: installed the Rust target {TARGET}");
        Ok(())
    } else {
        Err(format!(
            "the Rust target {TARGET} is still not usable by {}; \
             run `rustup target add {TARGET}` and try again",
            rustc_version()
        ))
    }
}

/// True when the target's standard library is in rustc's library folder for it.
fn target_installed() -> Result<bool> {
    let libdir = target_libdir()?;
    let Ok(entries) = std::fs::read_dir(&libdir) else {
        return Ok(false);
    };
    Ok(entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("libstd-") && name.ends_with(".rlib")
    }))
}

fn target_libdir() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|e| {
            format!("cannot run rustc ({e}); install Rust with rustup from https://rustup.rs")
        })?;
    if !out.status.success() {
        return Err(format!(
            "{} does not know the target {TARGET}; install Rust with rustup from https://rustup.rs",
            rustc_version()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn install_with_rustup() -> Result {
    let has_rustup = Command::new("rustup")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_rustup {
        return Err(format!(
            "Kith's app needs the Rust target {TARGET}, which only rustup can add to this Rust \
             ({}): install Rust with rustup from https://rustup.rs and run this command again",
            rustc_version()
        ));
    }
    eprintln!("xtask: $ rustup target add {TARGET}");
    let out = Command::new("rustup")
        .args(["target", "add", TARGET])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let last = said
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!(
        "`rustup target add {TARGET}` failed ({}); check that this machine can reach \
         static.rust-lang.org, or set {ARCHIVE_VAR} to a rust-std archive for {}",
        last.trim(),
        rustc_version()
    ))
}

/// Unpacks a `rust-std-<version>-wasm32-unknown-unknown` archive (its
/// `wasm32-unknown-unknown/lib` folder) into rustc's sysroot.
fn install_from_archive(archive: &Path) -> Result {
    if !archive.is_file() {
        return Err(format!(
            "{ARCHIVE_VAR} names {}, which is not a file; unset it to use rustup instead",
            archive.display()
        ));
    }
    let rustlib = sysroot()?.join("lib/rustlib");
    std::fs::create_dir_all(&rustlib)
        .map_err(|e| format!("cannot create {}: {e}", rustlib.display()))?;
    eprintln!(
        "xtask: unpacking {} into {} ({ARCHIVE_VAR})",
        archive.display(),
        rustlib.display()
    );
    // GNU tar recognises gzip, xz and zstd archives by their contents.
    let status = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&rustlib)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !status.success() {
        return Err(format!(
            "could not unpack {} ({status}); it should be a tar archive of {TARGET}/lib",
            archive.display()
        ));
    }
    if !rustc_builds_for_target() {
        return Err(format!(
            "the archive in {ARCHIVE_VAR} was unpacked, but {} cannot build with it \
             (it must come from this exact rustc); use `rustup target add {TARGET}` instead",
            rustc_version()
        ));
    }
    Ok(())
}

/// Compiles an empty library for the target: proves the installed standard
/// library belongs to this rustc.
fn rustc_builds_for_target() -> bool {
    let out = std::env::temp_dir().join(format!("kith-xtask-probe-{}.rmeta", std::process::id()));
    let mut child = match Command::new("rustc")
        .args(["--target", TARGET, "--crate-type=lib", "--crate-name=probe"])
        .args(["--emit=metadata", "-o"])
        .arg(&out)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => return false,
    };
    drop(child.stdin.take()); // an empty crate
    let ok = child.wait().is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&out);
    ok
}

fn sysroot() -> Result<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn rustc_version() -> String {
    Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "rustc".into())
}
