//! `cargo xtask`: the project's two front doors and their parts.
//!
//! - `cargo xtask run`  builds the app and runs the relay at http://localhost:8080
//! - `cargo xtask ci`   installs what is missing and runs every check and test
//! - `cargo xtask wasm` builds the core to wasm for the app
//! - `cargo xtask web`  builds the app (wasm included)
//! - `cargo xtask reproduce` builds the app twice, the second from scratch, and compares
//! - `cargo xtask fresh-copy` runs the wasm set-up in a copy with nothing beside it
//!
//! No dependencies: it only runs other programs, and says which one failed.

#![forbid(unsafe_code)]

mod fresh_copy;
mod release;
mod toolchain;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("ci") => ci(),
        Some("wasm") => setup_wasm().and_then(|()| wasm()),
        Some("web") => setup_wasm().and_then(|()| setup_npm()).and_then(|()| web()),
        Some("fresh-copy") => fresh_copy::check(),
        Some("reproduce") => setup_wasm()
            .and_then(|()| setup_npm())
            .and_then(|()| release::reproduce()),
        Some("bench-web") => bench_web(),
        _ => Err(
            "usage: cargo xtask run [relay flags] | ci | wasm | web | reproduce | fresh-copy | bench-web"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Cargo's build folder: `CARGO_TARGET_DIR` when set, else `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir), // an absolute path replaces the root
        None => root().join("target"),
    }
}

fn app_dir() -> PathBuf {
    root().join("web/app")
}

/// Runs a command in the workspace root; fails with its name if it fails.
fn sh(program: &str, args: &[&str]) -> Result {
    sh_in(&root(), program, args)
}

/// Runs a command in the workspace root with extra environment variables.
fn sh_env(env: &[(&str, &str)], program: &str, args: &[&str]) -> Result {
    let shown: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={} ", v.replace('\u{1f}', " ")))
        .collect();
    let mut command = Command::new(program);
    command.envs(env.iter().copied()).current_dir(root());
    execute(command, &format!("{}{program}", shown.concat()), args)
}

fn sh_in(dir: &Path, program: &str, args: &[&str]) -> Result {
    let mut command = Command::new(program);
    command.current_dir(dir);
    execute(command, program, args)
}

/// Runs `command` with `args`, naming it as `shown` if it fails.
fn execute(mut command: Command, shown: &str, args: &[&str]) -> Result {
    eprintln!("xtask: $ {shown} {}", args.join(" "));
    let status = command
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown} {}` failed ({status})", args.join(" ")))
    }
}

fn have(program: &str, version_arg: &str) -> Option<String> {
    let out = Command::new(program).arg(version_arg).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn step(name: &str, f: impl FnOnce() -> Result) -> Result {
    let start = Instant::now();
    eprintln!("\nxtask: == {name} ==");
    f()?;
    eprintln!("xtask: == {name}: done in {:.0?} ==", start.elapsed());
    Ok(())
}

/// The wasm-bindgen version in Cargo.lock; the CLI must match it exactly.
fn wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_owned());
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

/// The wasm target and the pinned wasm-bindgen CLI.
fn setup_wasm() -> Result {
    step("wasm tools", || {
        toolchain::ensure_wasm_target()?;
        let version = wasm_bindgen_version()?;
        if have("wasm-bindgen", "--version").is_none_or(|v| !v.ends_with(&version)) {
            sh(
                "cargo",
                &[
                    "install",
                    "--quiet",
                    "wasm-bindgen-cli",
                    "--version",
                    &version,
                ],
            )?;
        }
        Ok(())
    })
}

/// Debian packages; skipped with a note where apt cannot run (not root, say).
fn apt_install(packages: &[&str]) {
    let result = sh("apt-get", &["update", "-qq"]).and_then(|()| {
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend_from_slice(packages);
        sh("apt-get", &args)
    });
    if let Err(e) = result {
        eprintln!("xtask: could not install {packages:?} with apt ({e}); continuing without");
    }
}

/// Exactly the committed lock file.
fn setup_npm() -> Result {
    step("npm packages", || {
        sh_in(&app_dir(), "npm", &["ci", "--no-audit", "--no-fund"])
    })
}

/// Builds kith-wasm, runs wasm-bindgen into the app's source tree, shrinks it.
fn wasm() -> Result {
    step("wasm build", || {
        let flags = release::wasm_rustflags();
        sh_env(
            &[("CARGO_ENCODED_RUSTFLAGS", flags.as_str())],
            "cargo",
            &[
                "build",
                "--quiet",
                "-p",
                "kith-wasm",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                "wasm-release",
            ],
        )?;
        let out = app_dir().join("src/wasm/pkg");
        let input = target_dir().join("wasm32-unknown-unknown/wasm-release/kith_wasm.wasm");
        sh(
            "wasm-bindgen",
            &[
                "--target",
                "web",
                "--out-name",
                "kith_wasm",
                "--out-dir",
                out.to_str().unwrap(),
                input.to_str().unwrap(),
            ],
        )?;
        let wasm = out.join("kith_wasm_bg.wasm");
        let before = std::fs::metadata(&wasm).map_err(|e| e.to_string())?.len();
        optimise_wasm(&wasm)?;
        let after = std::fs::metadata(&wasm).map_err(|e| e.to_string())?.len();
        eprintln!(
            "xtask: kith_wasm_bg.wasm is {} KiB ({} KiB before wasm-opt)",
            after / 1024,
            before / 1024
        );
        Ok(())
    })
}

/// Shrinks the wasm in place with binaryen's wasm-opt, pinned in the app's
/// package.json (npm `binaryen`; Debian's binaryen 108 broke wasm-bindgen's
/// externref table, see docs/BENCHMARKS.md). The features named are the
/// ones Rust's wasm32 target emits; wasm-opt must not add others.
fn optimise_wasm(wasm: &Path) -> Result {
    let wasm_opt = app_dir().join("node_modules/.bin/wasm-opt");
    if !wasm_opt.is_file() {
        setup_npm()?;
    }
    let optimised = wasm.with_extension("opt.wasm");
    let result = sh(
        wasm_opt.to_str().ok_or("app path is not UTF-8")?,
        &[
            "-Oz",
            "--strip-debug",
            "--strip-producers",
            "--enable-reference-types",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-multivalue",
            wasm.to_str().ok_or("wasm path is not UTF-8")?,
            "-o",
            optimised.to_str().ok_or("wasm path is not UTF-8")?,
        ],
    );
    if let Err(e) = result {
        let _ = std::fs::remove_file(&optimised);
        return Err(e);
    }
    std::fs::rename(&optimised, wasm).map_err(|e| format!("cannot replace {}: {e}", wasm.display()))
}

fn web() -> Result {
    wasm()?;
    step("app build", || sh_in(&app_dir(), "npm", &["run", "build"]))
}

/// `cargo xtask bench-web`: the app's figures on the reference poor link
/// and unthrottled, in Chromium against a real relay (docs/BENCHMARKS.md).
fn bench_web() -> Result {
    setup_wasm()?;
    setup_npm()?;
    web()?;
    step("relay and command line (debug)", || {
        sh(
            "cargo",
            &["build", "--quiet", "-p", "kith-server", "-p", "kith"],
        )
    })?;
    step("browser benchmark", || {
        sh_in(&app_dir(), "node", &["scripts/bench-web.mjs"])
    })
}

/// `cargo xtask run`: build everything, then serve at http://localhost:8080.
fn run(relay_args: &[String]) -> Result {
    setup_wasm()?;
    setup_npm()?;
    web()?;
    step("relay build", || {
        sh(
            "cargo",
            &[
                "build",
                "--quiet",
                "--release",
                "-p",
                "kith-server",
                "-p",
                "kith",
            ],
        )
    })?;
    let mut args = vec![
        "--listen",
        "127.0.0.1:8080",
        "--data-dir",
        "kith-data",
        "--web-dir",
        "web/app/dist",
    ];
    let extra: Vec<&str> = relay_args.iter().map(String::as_str).collect();
    args.extend(extra);
    eprintln!(
        "\nxtask: Kith is starting at http://localhost:8080 (data in ./kith-data). Stop it with Ctrl+C."
    );
    let release = target_dir().join("release");
    eprintln!(
        "xtask: the kith command line is at {}",
        release.join("kith").display()
    );
    let relay = release.join("kith-server");
    let token = registration_token(&relay, &args)?;
    eprintln!(
        "xtask: to create an alliance here, give `kith init` this one-use registration token \
         (--registration-token - and paste it):\n\n    {token}\n\n\
         xtask: make more with `{} --data-dir kith-data registration-token`",
        relay.display()
    );
    sh(relay.to_str().unwrap(), &args)
}

/// A new one-use registration token from the relay's own command, on the
/// database `relay_args` name.
fn registration_token(relay: &Path, relay_args: &[&str]) -> Result<String> {
    let out = Command::new(relay)
        .args(relay_args)
        .arg("registration-token")
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", relay.display()))?;
    if !out.status.success() {
        return Err(format!(
            "could not make a registration token: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `cargo xtask ci`: every check and test, with everything they need installed.
fn ci() -> Result {
    let start = Instant::now();
    step("format", || sh("cargo", &["fmt", "--all", "--", "--check"]))?;
    step("lint (host)", || {
        sh(
            "cargo",
            &[
                "clippy",
                "--quiet",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        )
    })?;
    setup_wasm()?;
    step(
        "set-up from a copy with nothing beside it",
        fresh_copy::check,
    )?;
    step("lint (wasm)", || {
        sh(
            "cargo",
            &[
                "clippy",
                "--quiet",
                "-p",
                "kith-wasm",
                "-p",
                "kith-core",
                "--target",
                "wasm32-unknown-unknown",
                "--",
                "-D",
                "warnings",
            ],
        )
    })?;
    step("rust tests", || {
        sh("cargo", &["test", "--workspace", "--exclude", "kith-wasm"])
    })?;
    // The plain test run covers the simulation's first 200 seeds; thousands
    // more, built optimised, run here (a failing seed prints how to replay it).
    step("simulation sweep (seeds 200 to 2199)", || {
        sh_env(
            &[("KITH_SIM_FIRST_SEED", "200"), ("KITH_SIM_RUNS", "2000")],
            "cargo",
            &[
                "test",
                "--quiet",
                "--release",
                "-p",
                "kith-core",
                "--test",
                "simulation",
            ],
        )
    })?;
    if have("chromium", "--version").is_none() {
        step("chromium", || {
            apt_install(&["chromium"]);
            Ok(())
        })?;
    }
    setup_npm()?;
    web()?;
    release::app_build_repeats()?;
    step("browser tests", || {
        sh_in(&app_dir(), "npm", &["run", "test:browser"])
    })?;
    eprintln!("\nxtask: all checks passed in {:.0?}", start.elapsed());
    Ok(())
}
