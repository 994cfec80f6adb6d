//! The walking skeleton, end to end: a real relay process, real `kith`
//! commands for a steward, two members and a researcher. One member writes
//! while the relay is down; the researcher's export holds exactly what was
//! written; no plaintext reaches the relay's files or its log.

use kith_tests::{
    Relay, authored_texts_of, encodings_of, files_containing, kith, kith_plain, kith_raw,
};
use serde_json::Value;

fn dir(base: &tempfile::TempDir, name: &str) -> String {
    base.path().join(name).to_str().unwrap().to_owned()
}

#[test]
fn a_reflection_written_offline_reaches_only_the_people_chosen() {
    let base = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(base.path());
    let (steward, alex, blake, researcher) = (
        dir(&base, "steward"),
        dir(&base, "alex"),
        dir(&base, "blake"),
        dir(&base, "researcher"),
    );
    let key = dir(&base, "researcher.agekey");
    let canary = format!("canary-{}", hex::encode(rand_bytes()));

    let recipient = kith(&["keygen", "--out", &key])["recipient"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(recipient.starts_with("age1"));
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("AGE-SECRET-KEY-1")
    );

    let created = kith(&[
        "init",
        "--data-dir",
        &steward,
        "--relay",
        &relay.url(),
        "--alliance",
        "Relations study",
        "--name",
        "Sam",
        "--researcher",
        &recipient,
    ]);
    let alliance = created["alliance_id"].as_str().unwrap().to_owned();

    for (who, name, role) in [
        (&alex, "Alex", "member"),
        (&blake, "Blake", "member"),
        (&researcher, "Dr Lee", "researcher"),
    ] {
        let invite = kith(&["invite", "--data-dir", &steward, "--role", role]);
        let link = invite["invite"].as_str().unwrap();
        assert!(link.starts_with(&format!("{}/#join=kith2", relay.url())));
        let joined = kith(&["join", "--data-dir", who, "--invite", link, "--name", name]);
        assert_eq!(joined["alliance_id"], alliance.as_str());
        assert_eq!(joined["device_id"].as_str().unwrap().len(), 64);
    }
    // Alex's device hears that Blake came: the cohort is read from join on,
    // and Alex writes to the people in it as her device knows them.
    kith(&["sync", "--data-dir", &alex]);

    kith(&[
        "contribute",
        "--data-dir",
        &alex,
        "--text",
        "The meeting felt safe.",
    ]);
    assert_eq!(kith(&["sync", "--data-dir", &alex])["sent"], 1);

    // The relay goes down. Blake writes anyway; sync fails with a clear message.
    relay.kill();
    let written = kith(&[
        "contribute",
        "--data-dir",
        &blake,
        "--text",
        &format!("Hard week. {canary}"),
    ]);
    assert_eq!(written["contribution_id"].as_str().unwrap().len(), 32);
    let offline = kith_raw(&["sync", "--data-dir", &blake]);
    assert!(!offline.status.success());
    assert!(offline.stdout.is_empty());
    assert!(String::from_utf8_lossy(&offline.stderr).contains("cannot reach the relay"));
    // Blake can still read what Blake wrote.
    assert_eq!(
        authored_texts_of(&kith(&["list", "--data-dir", &blake])),
        vec![("Blake".into(), format!("Hard week. {canary}"))]
    );

    relay.restart();
    let sent = kith(&["sync", "--data-dir", &blake]);
    // Received: Alex's reflection only (a device fetches only the spaces it
    // reads, so not, for example, the researcher's own key grant).
    assert_eq!(
        (sent["sent"].as_u64(), sent["received"].as_u64()),
        (Some(1), Some(1))
    );
    // A second sync sends nothing again: uploads happen exactly once.
    assert_eq!(kith(&["sync", "--data-dir", &blake])["sent"], 0);

    let expected = vec![
        ("Alex".to_owned(), "The meeting felt safe.".to_owned()),
        ("Blake".to_owned(), format!("Hard week. {canary}")),
    ];
    let export = kith(&[
        "export",
        "--data-dir",
        &researcher,
        "--identity",
        &key,
        "--format",
        "json",
    ]);
    assert_eq!(authored_texts_of(&export), expected);
    for c in export["contributions"].as_array().unwrap() {
        assert_eq!(c["id"].as_str().unwrap().len(), 32);
        assert!(c["created_at"].as_str().unwrap().ends_with('Z'));
    }

    // Without --out and without --json, --format still decides what stdout holds.
    let export_args = |format| {
        [
            "export",
            "--data-dir",
            researcher.as_str(),
            "--identity",
            key.as_str(),
            "--format",
            format,
        ]
    };
    let printed: Value = serde_json::from_str(&kith_plain(&export_args("json")))
        .expect("--format json prints JSON on stdout");
    assert_eq!(authored_texts_of(&printed), expected);
    let printed_csv = kith_plain(&export_args("csv"));
    assert!(printed_csv.starts_with("id,author,text,created_at,research_only,kind,answers\n"));
    assert!(printed_csv.contains(&canary));
    assert_eq!(printed_csv.lines().count(), 3, "a header and two rows");

    let csv_path = dir(&base, "export.csv");
    let wrote = kith(&[
        "export",
        "--data-dir",
        &researcher,
        "--identity",
        &key,
        "--format",
        "csv",
        "--out",
        &csv_path,
    ]);
    assert_eq!(wrote["count"], 2);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.starts_with("id,author,text,created_at,research_only,kind,answers\n"));
    assert!(csv.contains(&canary));

    // The researcher's device itself holds no key: without the identity it reads nothing.
    assert_eq!(
        authored_texts_of(&kith(&["list", "--data-dir", &researcher])),
        vec![]
    );
    // A member of the cohort reads both; so does the steward after syncing.
    kith(&["sync", "--data-dir", &alex]);
    assert_eq!(
        authored_texts_of(&kith(&["list", "--data-dir", &alex])),
        expected
    );
    kith(&["sync", "--data-dir", &steward]);
    assert_eq!(
        authored_texts_of(&kith(&["list", "--data-dir", &steward])),
        expected
    );

    // Someone else's age key is refused, saying which key to use.
    let stranger = dir(&base, "stranger.agekey");
    kith(&["keygen", "--out", &stranger]);
    let refused = kith_raw(&[
        "export",
        "--data-dir",
        &researcher,
        "--identity",
        &stranger,
        "--format",
        "json",
    ]);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty(), "nothing exported");
    let said = String::from_utf8(refused.stderr).unwrap();
    assert!(
        said.contains("not one of the alliance's research team keys"),
        "{said}"
    );

    relay.kill();
    let needles = encodings_of(&canary);
    assert_eq!(
        files_containing(&relay.data_dir, &needles),
        Vec::<std::path::PathBuf>::new(),
        "plaintext in the relay's storage"
    );
    assert_eq!(
        files_containing(&relay.log, &needles),
        Vec::<std::path::PathBuf>::new(),
        "plaintext in the relay's log"
    );
    for device in [&alex, &blake, &steward, &researcher] {
        let hits = files_containing(std::path::Path::new(device), &needles);
        assert!(hits.is_empty(), "plaintext at rest on a device: {hits:?}");
    }
    // The search itself works: the exported CSV does contain it.
    assert_eq!(
        files_containing(std::path::Path::new(&csv_path), &needles).len(),
        1
    );
}

fn rand_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes
}
