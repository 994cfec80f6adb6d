//! Signed app releases from the command line, end to end: a real relay
//! process and real `kith` commands. Signing refuses a build folder that is
//! not what its manifest lists; checking refuses a folder signed with
//! another key, or changed after signing; only a steward pins the key, and
//! every device learns it from the membership log (the app's side is
//! `web/app/tests/release.test.mjs`).

use std::fs;
use std::path::Path;

use kith_tests::{Relay, Study, kith, kith_raw};

/// A small build folder and its manifest, as `release-manifest.mjs` writes it.
fn build(dir: &Path) {
    use sha2::{Digest, Sha256};
    fs::create_dir_all(dir.join("assets")).unwrap();
    let files = [
        ("index.html", "<!doctype html><title>Kith</title>"),
        ("sw.js", "self.addEventListener('install', () => {});"),
        ("assets/app.js", "console.log('kith');"),
    ];
    let mut listed = Vec::new();
    for (path, text) in files {
        fs::write(dir.join(path), text).unwrap();
        listed.push(serde_json::json!({
            "path": path,
            "sha256": hex::encode(Sha256::digest(text.as_bytes())),
            "bytes": text.len(),
        }));
    }
    listed.sort_by_key(|f| f["path"].as_str().unwrap().to_owned());
    let manifest = serde_json::json!({ "format": "kith-release/1", "files": listed });
    fs::write(
        dir.join("kith-release.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

fn refusal(args: &[&str]) -> String {
    let out = kith_raw(args);
    assert!(!out.status.success(), "kith {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn signing_checks_the_build_and_checking_refuses_what_was_not_signed() {
    let base = tempfile::tempdir().unwrap();
    let dist = base.path().join("dist");
    build(&dist);
    let (key_file, other_file) = (
        base.path().join("release.key"),
        base.path().join("other.key"),
    );
    let key_file = key_file.to_str().unwrap();
    let other_file = other_file.to_str().unwrap();
    let dir = dist.to_str().unwrap();
    let key = kith(&["release", "keygen", "--out", key_file])["release_key"]
        .as_str()
        .unwrap()
        .to_owned();
    kith(&["release", "keygen", "--out", other_file]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is the owner's only");
    }
    let again = refusal(&["release", "keygen", "--out", key_file]);
    assert!(again.contains("must not exist yet"), "{again}");

    // Not signed yet: checking says so.
    let unsigned = refusal(&["release", "verify", "--key", &key, "--dir", dir]);
    assert!(unsigned.contains("not signed"), "{unsigned}");

    let signed = kith(&["release", "sign", "--key", key_file, "--dir", dir]);
    assert_eq!(signed["files"], 3);
    assert_eq!(signed["release_key"], key.as_str());
    kith(&["release", "verify", "--key", &key, "--dir", dir]);

    // A file changed after signing, or one the manifest does not list.
    fs::write(dist.join("assets/app.js"), "console.log('changed');").unwrap();
    let changed = refusal(&["release", "verify", "--key", &key, "--dir", dir]);
    assert!(
        changed.contains("assets/app.js is not the file"),
        "{changed}"
    );
    let changed = refusal(&["release", "sign", "--key", key_file, "--dir", dir]);
    assert!(
        changed.contains("assets/app.js is not the file"),
        "{changed}"
    );
    build(&dist);
    fs::write(dist.join("extra.js"), "steal()").unwrap();
    let extra = refusal(&["release", "sign", "--key", key_file, "--dir", dir]);
    assert!(extra.contains("extra.js is in"), "{extra}");
    fs::remove_file(dist.join("extra.js")).unwrap();

    // Signed with another key: refused against the pinned one.
    kith(&["release", "sign", "--key", other_file, "--dir", dir]);
    let other = refusal(&["release", "verify", "--key", &key, "--dir", dir]);
    assert!(other.contains("has not pinned"), "{other}");

    // A manifest edited after signing (say, to list a swapped file).
    kith(&["release", "sign", "--key", key_file, "--dir", dir]);
    let manifest = fs::read_to_string(dist.join("kith-release.json")).unwrap();
    fs::write(dist.join("kith-release.json"), format!("{manifest} ")).unwrap();
    let edited = refusal(&["release", "verify", "--key", &key, "--dir", dir]);
    assert!(edited.contains("does not match its manifest"), "{edited}");

    let bad_key = refusal(&["release", "verify", "--key", "age1abc", "--dir", dir]);
    assert!(bad_key.contains("kith-release-key:"), "{bad_key}");
    let bad_file = refusal(&["release", "sign", "--key", dir, "--dir", dir]);
    assert!(bad_file.contains("cannot read the key file"), "{bad_file}");
}

#[test]
fn only_a_steward_pins_the_release_key_and_every_device_learns_it() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    study.member("Alex", "alex");
    let alex = study.dir("alex");
    let key_file = base.path().join("release.key");
    let key = kith(&["release", "keygen", "--out", key_file.to_str().unwrap()])["release_key"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        kith(&["release", "show", "--data-dir", &alex])["release_key"],
        serde_json::Value::Null
    );
    let refused = refusal(&["release", "pin", "--data-dir", &alex, "--key", &key]);
    assert!(refused.contains("only a steward"), "{refused}");

    let pinned = kith(&[
        "release",
        "pin",
        "--data-dir",
        &study.steward,
        "--key",
        &key,
    ]);
    assert_eq!(pinned["release_key"], key.as_str());
    assert_eq!(
        kith(&["release", "show", "--data-dir", &alex])["release_key"],
        key.as_str(),
        "a member's device learns the key from the log"
    );
    study.member("Blake", "blake");
    assert_eq!(
        kith(&["release", "show", "--data-dir", &study.dir("blake")])["release_key"],
        key.as_str(),
        "a device that joins later learns it at join"
    );

    kith(&["release", "unpin", "--data-dir", &study.steward]);
    assert_eq!(
        kith(&["release", "show", "--data-dir", &alex])["release_key"],
        serde_json::Value::Null
    );
}
