//! A member edits and deletes their own writing, offline, from the command
//! line; after a sync every reader (a member of the cohort and the
//! researcher's export) shows the current text, and a deleted item is gone.
//! No one can change another member's writing.

use kith_tests::{Relay, Study, kith, kith_raw};
use serde_json::Value;

/// (text, mine) of every item a listing holds, sorted.
fn listed(dir: &str) -> Vec<(String, bool)> {
    texts(&kith(&["list", "--data-dir", dir]))
}

fn texts(listing: &Value) -> Vec<(String, bool)> {
    let mut all: Vec<(String, bool)> = listing["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["text"].as_str().unwrap().to_owned(),
                c["mine"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn members_edit_and_delete_their_own_writing_only() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    let (alex, blake) = (study.dir("alex"), study.dir("blake"));
    study.member("Alex", "alex");
    study.member("Blake", "blake");
    // Alex's device hears that Blake came: Parents is read from join on,
    // and what Alex writes before hearing stays where Blake does not read.
    kith(&["sync", "--data-dir", &alex]);

    let write = |who: &str, text: &str| {
        kith(&["contribute", "--data-dir", who, "--text", text])["contribution_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let typo = write(&alex, "The meeting fel safe.");
    let regret = write(&alex, "Something I should not have shared.");
    let research = kith(&[
        "contribute",
        "--data-dir",
        &alex,
        "--text",
        "Only for the researchers.",
        "--scope",
        "research",
    ])["contribution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let blakes = write(&blake, "Blake's words.");
    for who in [&alex, &blake, &alex] {
        kith(&["sync", "--data-dir", who]);
    }

    // Offline, then synced.
    kith(&[
        "edit",
        "--data-dir",
        &alex,
        "--id",
        &typo,
        "--text",
        "The meeting felt safe.",
    ]);
    kith(&["delete", "--data-dir", &alex, "--id", &regret]);
    kith(&[
        "edit",
        "--data-dir",
        &alex,
        "--id",
        &research,
        "--text",
        "Only for you, Dr Lee.",
    ]);
    assert_eq!(
        listed(&alex),
        vec![
            ("Blake's words.".to_owned(), false),
            ("Only for you, Dr Lee.".to_owned(), true),
            ("The meeting felt safe.".to_owned(), true),
        ]
    );

    // Not someone else's: refused with a sentence, and nothing changes.
    let refused = kith_raw(&[
        "edit",
        "--data-dir",
        &alex,
        "--id",
        &blakes,
        "--text",
        "Mine now.",
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8(refused.stderr).unwrap();
    assert!(said.contains("you can change only your own"), "{said}");
    let refused = kith_raw(&["delete", "--data-dir", &alex, "--id", "not-an-id"]);
    assert!(
        String::from_utf8(refused.stderr)
            .unwrap()
            .contains("is not a contribution id")
    );

    kith(&["sync", "--data-dir", &alex]);
    kith(&["sync", "--data-dir", &blake]);
    assert_eq!(
        listed(&blake),
        vec![
            ("Blake's words.".to_owned(), true),
            ("The meeting felt safe.".to_owned(), false),
        ]
    );
    let exported = study.export();
    assert_eq!(
        texts(&exported),
        vec![
            ("Blake's words.".to_owned(), false),
            ("Only for you, Dr Lee.".to_owned(), false),
            ("The meeting felt safe.".to_owned(), false),
        ]
    );
}
