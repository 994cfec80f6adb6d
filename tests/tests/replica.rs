//! A device's store shrinks: after a sync it saves a replica of what it has
//! read (sealed to its own key), deletes the blobs the replica holds, and
//! opens from the replica without opening those blobs again. An export on
//! such a device still gives the research team everything, and a replica
//! that is damaged costs nothing but a fresh fetch from the relay.

use std::path::Path;

use kith_tests::{Relay, Study, encodings_of, files_containing, kith, kith_raw, texts_of};
use serde_json::Value;

fn stored_blobs(dir: &str) -> usize {
    std::fs::read_dir(Path::new(dir).join("blobs"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[test]
fn a_device_keeps_a_sealed_replica_instead_of_every_blob() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    let steward = study.steward.clone();
    let alex = study.dir("alex");
    study.member("Alex", "alex");
    let mut written = Vec::new();
    for n in 0..12 {
        let text = format!("Replica canary {n}: the school run was hard");
        kith(&["contribute", "--data-dir", &alex, "--text", &text]);
        written.push(text);
    }
    let private = "Replica canary: for the research team only".to_owned();
    kith(&[
        "contribute",
        "--data-dir",
        &alex,
        "--text",
        &private,
        "--scope",
        "research",
    ]);
    kith(&["sync", "--data-dir", &alex]);
    let before = stored_blobs(&steward);
    kith(&["sync", "--data-dir", &steward]);
    written.sort();

    // The steward's device read Alex's 12 cohort reflections, kept a replica,
    // and kept none of their blobs; its list is whole.
    assert!(Path::new(&steward).join("replica.kith").exists());
    let after = stored_blobs(&steward);
    assert!(
        after <= before,
        "the store grew from {before} to {after} blobs though a replica holds them"
    );
    assert_eq!(texts_of(&kith(&["list", "--data-dir", &steward])), written);
    // Alex's own device sent its batches: they are gone from its store too.
    assert!(Path::new(&alex).join("replica.kith").exists());
    let mut alex_sees = written.clone();
    alex_sees.push(private.clone());
    alex_sees.sort();
    assert_eq!(texts_of(&kith(&["list", "--data-dir", &alex])), alex_sees);

    // The replica is sealed: no text in it, or anywhere in the folders.
    for dir in [&steward, &alex] {
        let found = files_containing(Path::new(dir), &encodings_of("Replica canary"));
        assert!(found.is_empty(), "plaintext at rest in {found:?}");
    }

    // An export from the steward's device, with the research team's key,
    // opens each blob once and gives what that device fetched (the spaces
    // it reads), saying that the researcher's device has the rest.
    let from_steward = kith_raw(&[
        "export",
        "--data-dir",
        &steward,
        "--identity",
        &study.key,
        "--format",
        "json",
    ]);
    assert!(from_steward.status.success());
    let warned = String::from_utf8(from_steward.stderr).unwrap();
    assert!(
        warned.contains("export from the researcher's device"),
        "{warned}"
    );
    let from_steward: Value = serde_json::from_slice(&from_steward.stdout).unwrap();
    assert_eq!(texts_of(&from_steward), written);
    // The researcher's device fetches everything: all of it, once each.
    assert_eq!(texts_of(&study.export()), alex_sees);
    assert_eq!(
        texts_of(&study.export()),
        alex_sees,
        "and again, from its replica"
    );
    // A key that is not the research team's is refused, saying which to use.
    let stranger = study.dir("stranger.agekey");
    kith(&["keygen", "--out", &stranger]);
    let refused = kith_raw(&[
        "export",
        "--data-dir",
        &steward,
        "--identity",
        &stranger,
        "--format",
        "json",
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8(refused.stderr).unwrap();
    assert!(
        said.contains("not one of the alliance's research team keys")
            && said.contains("--researcher"),
        "{said}"
    );

    // A damaged replica: the device opens with what is left, and its next
    // sync fetches everything from the relay again.
    let replica = Path::new(&steward).join("replica.kith");
    let mut bytes = std::fs::read(&replica).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&replica, bytes).unwrap();
    kith(&["list", "--data-dir", &steward]);
    kith(&["sync", "--data-dir", &steward]);
    assert_eq!(texts_of(&kith(&["list", "--data-dir", &steward])), written);
}
