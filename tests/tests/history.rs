//! What someone who joins a cohort later reads of what came before, end to
//! end: a real relay process and real `kith` commands.
//!
//! A cohort read from join on (the default) must give a newcomer no key to
//! anything written before they came: checked the hard way, by trying every
//! key their device holds on every blob the relay kept from before, and on
//! an edit made afterwards to something older. A cohort kept whole shows a
//! newcomer everything, as its steward chose.

use std::collections::HashSet;
use std::path::Path;

use kith_core::BlobRecord;
use kith_tests::{Relay, RelayDb, Study, invite_and_join, kith, kith_plain, open_device, shown};

fn write(dir: &str, text: &str) -> String {
    kith(&["contribute", "--data-dir", dir, "--text", text])["contribution_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn sync(dir: &str) {
    kith(&["sync", "--data-dir", dir]);
}

/// The blobs on the relay that hold writing (batches and checkpoints, not
/// key grants).
fn writing_on(relay: &Relay) -> Vec<BlobRecord> {
    RelayDb::open(relay)
        .all_blobs()
        .into_iter()
        .filter(|b| b.seq.is_some() || b.covers.is_some())
        .collect()
}

/// How many of `blobs` some key the device in `dir` holds opens.
fn opened_by(dir: &str, blobs: &[BlobRecord]) -> usize {
    let device = open_device(Path::new(dir));
    blobs
        .iter()
        .filter(|blob| {
            device
                .epoch_keys()
                .iter()
                .any(|key| kith_core::envelope::decrypt(&blob.data, &[&key.identity]).is_ok())
        })
        .count()
}

#[test]
fn a_newcomer_reads_only_what_is_written_after_they_join() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    study.member("Alex", "alex");
    let (alex, blake) = (study.dir("alex"), study.dir("blake"));
    let before = write(&alex, "alex, before blake came");
    // Sam's device learns that Alex came (and gets the chapter's key) first:
    // writing from a device that has not heard of a join yet stays where
    // the newcomer does not read it.
    sync(&study.steward);
    write(&study.steward, "sam, before blake came");
    sync(&alex);
    sync(&study.steward);
    let from_before = writing_on(&relay);
    assert!(from_before.len() >= 2, "{} blobs", from_before.len());

    study.member("Blake", "blake");
    sync(&alex);
    sync(&study.steward);
    let said = kith_plain(&["contribute", "--data-dir", &alex, "--text", "alex, after"]);
    assert!(
        said.contains("Someone invited to your group later will not"),
        "{said}"
    );
    // An edit, now, to something from before: it stays with the old key.
    sync(&alex);
    let known: HashSet<_> = writing_on(&relay).into_iter().map(|b| b.id).collect();
    kith(&[
        "edit",
        "--data-dir",
        &alex,
        "--id",
        &before,
        "--text",
        "alex, before blake came (edited)",
    ]);
    sync(&alex);
    let edit: Vec<BlobRecord> = writing_on(&relay)
        .into_iter()
        .filter(|b| !known.contains(&b.id))
        .collect();
    assert_eq!(edit.len(), 1, "the edit is one batch");
    sync(&blake);

    assert_eq!(shown(&blake), vec!["alex, after".to_owned()]);
    assert_eq!(
        opened_by(&blake, &from_before),
        0,
        "a key opens writing from before"
    );
    assert_eq!(
        opened_by(&blake, &edit),
        0,
        "a key opens the edit to older writing"
    );
    assert!(
        opened_by(&blake, &writing_on(&relay)) > 0,
        "Blake opens nothing at all"
    );

    // Those who were there read it all, the edit too; so does the research team.
    let alex_reads = shown(&alex);
    for text in [
        "alex, before blake came (edited)",
        "sam, before blake came",
        "alex, after",
    ] {
        assert!(
            alex_reads.contains(&text.to_owned()),
            "{text}: {alex_reads:?}"
        );
    }
    let exported = kith_tests::texts_of(&study.export());
    for text in [
        "alex, before blake came (edited)",
        "sam, before blake came",
        "alex, after",
    ] {
        assert!(exported.contains(&text.to_owned()), "{text}: {exported:?}");
    }

    // Blake writes; everyone in the cohort reads it.
    write(&blake, "blake, newly here");
    sync(&blake);
    sync(&alex);
    sync(&study.steward);
    assert!(shown(&alex).contains(&"blake, newly here".to_owned()));
    assert!(shown(&study.steward).contains(&"blake, newly here".to_owned()));
}

#[test]
fn a_cohort_kept_whole_shows_a_newcomer_what_came_before() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    kith(&[
        "cohort",
        "create",
        "--data-dir",
        &study.steward,
        "--name",
        "Carers",
        "--history",
        "all",
    ]);
    let listed = kith_plain(&["cohort", "list", "--data-dir", &study.steward]);
    assert!(
        listed.contains("Carers") && listed.contains("newcomers read everything from the start"),
        "{listed}"
    );
    let (casey, drew) = (study.dir("casey"), study.dir("drew"));
    // Casey's device replaces the key the steward made: she facilitates.
    let facilitate = ["--cohort", "Carers", "--role", "facilitator"];
    invite_and_join(&study.steward, &casey, "Casey", &facilitate);
    write(&casey, "casey, before drew came");
    sync(&casey);
    invite_and_join(&casey, &drew, "Drew", &[]);
    sync(&drew);
    assert_eq!(shown(&drew), vec!["casey, before drew came".to_owned()]);
    let said = kith_plain(&["contribute", "--data-dir", &drew, "--text", "drew"]);
    assert!(said.contains("will read it too"), "{said}");
}
