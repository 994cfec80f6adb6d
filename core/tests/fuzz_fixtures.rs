//! Runs the fuzz targets' bodies (fuzz/src/lib.rs, included below) on every
//! saved crash in `core/tests/fuzz-crashers/<target>/` and on the inputs
//! every test vector in `core/tests/vectors/` gives, and checks that each
//! returns without panicking. So a crash the fuzzer once found stays fixed,
//! in the normal `cargo test`, without nightly Rust or cargo-fuzz.
//!
//! Adding a crash: minimise it (`cargo fuzz tmin TARGET artifacts/...`),
//! then copy the file into `core/tests/fuzz-crashers/TARGET/` with a name
//! that says what it found. See docs/FUZZING.md.
//!
//! `write_seed_corpora` (ignored) writes the same inputs as seed corpora
//! for the fuzzer:
//!
//! ```text
//! cargo test -p kith-core --test fuzz_fixtures -- --ignored write_seed_corpora
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod harness;

fn core_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Files in a folder, sorted, leaving out READMEs and hidden files.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            p.is_file() && !name.starts_with('.') && !name.starts_with("README")
        })
        .collect();
    files.sort();
    files
}

/// Every (target, what, input) to feed: saved crashes, then vector inputs.
fn fixtures() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let crashers = core_dir().join("tests/fuzz-crashers");
    for dir in files_or_dirs(&crashers) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (target, _) = harness::TARGETS
            .iter()
            .find(|(t, _)| *t == name)
            .unwrap_or_else(|| panic!("fuzz-crashers/{name} is not a fuzz target"));
        for file in files_in(&dir) {
            let bytes = std::fs::read(&file).unwrap();
            out.push((*target, file.display().to_string(), bytes));
        }
    }
    for file in files_in(&core_dir().join("tests/vectors")) {
        let vector: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for (i, (target, input)) in harness::inputs_from_vector(&vector).into_iter().enumerate() {
            out.push((target, format!("{} (input {i})", file.display()), input));
        }
    }
    for (i, (target, input)) in harness::extra_seeds().into_iter().enumerate() {
        out.push((target, format!("extra seed {i}"), input));
    }
    out
}

/// The sub-folders of a folder, sorted.
fn files_or_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = read
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_crash_and_vector_input_returns_without_panicking() {
    let fixtures = fixtures();
    let mut panicked = Vec::new();
    for (target, what, input) in &fixtures {
        let run = harness::target(target).unwrap();
        if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
            panicked.push(format!("{target}: {what}"));
        }
    }
    assert!(
        panicked.is_empty(),
        "these inputs panicked:\n{}",
        panicked.join("\n")
    );
}

#[test]
fn every_target_gets_inputs_from_the_vectors() {
    let fixtures = fixtures();
    for (target, _) in harness::TARGETS {
        assert!(
            fixtures.iter().any(|(t, _, _)| t == target),
            "no vector feeds {target}"
        );
    }
}

/// Writes every fixture as a seed: `fuzz/corpus/TARGET/seed-NNNN`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand before a fuzzing campaign"]
fn write_seed_corpora() {
    let corpus = core_dir().join("../fuzz/corpus");
    for (i, (target, _, input)) in fixtures().into_iter().enumerate() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{i:04}")), input).unwrap();
    }
}
