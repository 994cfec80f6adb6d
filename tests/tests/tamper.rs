//! A dishonest relay, played by editing the real relay's SQLite database
//! directly while it runs: blobs dropped, reordered, altered, substituted
//! and replayed under a new id. Each time a device that joins afterwards
//! must say exactly what is wrong (`kith sync` exits 3), show nothing that
//! was altered, and catch up once the relay serves the true blobs again.

use std::process::Output;

use kith_tests::{Relay, RelayDb, invite_and_join, kith, kith_raw};
use serde_json::Value;

struct Alliance {
    base: tempfile::TempDir,
    steward: String,
    joined: usize,
}

impl Alliance {
    fn dir(&self, name: &str) -> String {
        self.base.path().join(name).to_str().unwrap().to_owned()
    }

    /// A new member device that joins now (its join runs a first sync).
    /// Returns its data folder and its device id.
    fn newcomer(&mut self) -> (String, String) {
        self.joined += 1;
        let name = format!("Newcomer {}", self.joined);
        let dir = self.dir(&format!("newcomer-{}", self.joined));
        let joined = invite_and_join(&self.steward, &dir, &name, &[]);
        (dir, joined["device_id"].as_str().unwrap().to_owned())
    }

    /// The same, returning what its join said (its first sync's warnings).
    fn newcomer_saying(&mut self) -> (String, String) {
        self.joined += 1;
        let name = format!("Newcomer {}", self.joined);
        let dir = self.dir(&format!("newcomer-{}", self.joined));
        let invite = kith(&["invite", "--data-dir", &self.steward]);
        let link = invite["invite"].as_str().unwrap();
        let out = kith_raw(&[
            "join",
            "--data-dir",
            &dir,
            "--invite",
            link,
            "--name",
            &name,
        ]);
        assert!(out.status.success(), "{out:?}");
        (dir, String::from_utf8(out.stderr).unwrap())
    }
}

fn sync(dir: &str) -> (Option<i32>, String) {
    let Output { status, stderr, .. } = kith_raw(&["sync", "--data-dir", dir]);
    (status.code(), String::from_utf8(stderr).unwrap())
}

fn listed(dir: &str) -> Vec<String> {
    let listing: Value = kith(&["list", "--data-dir", dir]);
    listing["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(mut texts: Vec<String>) -> Vec<String> {
    texts.sort();
    texts
}

#[test]
fn a_relay_that_drops_reorders_alters_substitutes_or_replays_is_caught() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut alliance = Alliance {
        steward: base.path().join("steward").to_str().unwrap().to_owned(),
        base,
        joined: 0,
    };
    kith(&[
        "init",
        "--data-dir",
        &alliance.steward,
        "--relay",
        &relay.url(),
        "--alliance",
        "Tamper study",
        "--name",
        "Sam",
        // Later devices read the history the relay tampers with.
        "--history",
        "all",
    ]);
    let (alex, alex_id) = alliance.newcomer();
    let written = ["first thoughts", "second thoughts", "third thoughts"];
    for text in written {
        kith(&["contribute", "--data-dir", &alex, "--text", text]);
        assert_eq!(kith(&["sync", "--data-dir", &alex])["sent"], 1);
    }
    let all: Vec<String> = sorted(written.iter().map(|t| t.to_string()).collect());
    let (early, _) = alliance.newcomer();
    assert_eq!(sorted(listed(&early)), all);

    let db = RelayDb::open(&relay);
    let rows: Vec<_> = db
        .blobs_of(&alex_id)
        .into_iter()
        .filter(|row| row.batch_seq.is_some())
        .collect();
    assert_eq!(rows.len(), 3, "one batch per contribution");
    let (first, second, third) = (rows[0].clone(), rows[1].clone(), rows[2].clone());

    // Dropped: the middle blob is deleted. The gap shows as soon as the third arrives.
    db.delete(second.seq);
    let (late, _) = alliance.newcomer();
    let (code, stderr) = sync(&late);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("missing:"), "{stderr}");
    assert!(stderr.contains("(numbers 2 to 2)"), "{stderr}");
    assert_eq!(listed(&late), vec!["first thoughts"], "nothing after a gap");
    // The relay puts it back where it was (before this device's cursor): fetched again.
    db.insert(&second, &second.blob_id, Some(second.seq));
    let (code, stderr) = sync(&late);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sorted(listed(&late)), all);

    // Reordered: the third is served before the first. Harmless.
    let spare = 1_000_000;
    db.move_to(first.seq, spare);
    db.move_to(third.seq, first.seq);
    db.move_to(spare, third.seq);
    let (reordered, _) = alliance.newcomer();
    let (code, stderr) = sync(&reordered);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sorted(listed(&reordered)), all);
    db.move_to(third.seq, spare);
    db.move_to(first.seq, third.seq);
    db.move_to(spare, first.seq);

    // Altered: one byte of the second blob's ciphertext flipped.
    let mut altered = second.data.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x40;
    db.set_data(&second, &altered);
    // Its join's first sync names it; later syncs name only the gap it leaves.
    let (victim, said) = alliance.newcomer_saying();
    assert!(said.contains("damaged or was altered"), "{said}");
    let (code, stderr) = sync(&victim);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("missing:"), "{stderr}");
    assert!(!stderr.contains("damaged"), "said once: {stderr}");
    assert_eq!(listed(&victim), vec!["first thoughts"]);
    db.set_data(&second, &second.data);
    let (code, stderr) = sync(&victim);
    assert_eq!(
        code,
        Some(0),
        "once the relay serves the true blob: {stderr}"
    );
    assert_eq!(sorted(listed(&victim)), all);

    // Substituted: the second blob's row holds the first blob's bytes.
    db.set_data(&second, &first.data);
    let (fooled, said) = alliance.newcomer_saying();
    assert!(said.contains("moved or relabelled"), "{said}");
    let (code, stderr) = sync(&fooled);
    assert_eq!(code, Some(3), "the gap it leaves: {stderr}");
    assert_eq!(listed(&fooled), vec!["first thoughts"]);
    db.set_data(&second, &second.data);
    assert_eq!(sync(&fooled).0, Some(0));
    assert_eq!(sorted(listed(&fooled)), all);

    // Replayed: the first blob stored again under a new id.
    db.insert(&first, &[0xee; 16], None);
    let (replayed, said) = alliance.newcomer_saying();
    assert!(said.contains("moved or relabelled"), "{said}");
    let (code, stderr) = sync(&replayed);
    assert_eq!(code, Some(0), "said once, and no gap: {stderr}");
    assert_eq!(sorted(listed(&replayed)), all, "each contribution once");
    db.exec("DELETE FROM blobs WHERE blob_id = ?", &[&[0xee; 16]], &[]);
    assert_eq!(sync(&replayed).0, Some(0), "clean once the copy is gone");

    // Altered and left so, the writer's last blob: named once, then quiet.
    // Each later sync does not fetch everything again to say it once more.
    let mut broken = third.data.clone();
    let middle = broken.len() / 2;
    broken[middle] ^= 0x40;
    db.set_data(&third, &broken);
    let (stuck, said) = alliance.newcomer_saying();
    assert!(said.contains("damaged or was altered"), "{said}");
    for _ in 0..2 {
        let (code, stderr) = sync(&stuck);
        assert_eq!(code, Some(0), "said once is enough: {stderr}");
        assert!(!stderr.contains("damaged"), "{stderr}");
    }
    assert_eq!(
        sorted(listed(&stuck)),
        vec!["first thoughts".to_owned(), "second thoughts".to_owned()]
    );
    // The relay puts it right; the device reads it once a later blob from
    // the same writer shows the gap it left.
    db.set_data(&third, &third.data);
    kith(&[
        "contribute",
        "--data-dir",
        &alex,
        "--text",
        "fourth thoughts",
    ]);
    assert_eq!(sync(&alex).0, Some(0));
    assert_eq!(sync(&stuck).0, Some(0));
    let mut four = all.clone();
    four.push("fourth thoughts".to_owned());
    four.sort();
    assert_eq!(sorted(listed(&stuck)), four);
    let all = four;

    // A device that read everything before the tampering still shows exactly it.
    for device in [&early, &alex] {
        assert_eq!(sync(device).0, Some(0));
        assert_eq!(sorted(listed(device)), all);
    }
}
