//! A member with a changed client tries to write as someone else. The
//! changed client is built from the core's own parts in this process
//! (`Client::forge_batch`, behind the `hostile-client` feature): it holds a
//! real member's device keys, so its batches are signed, encrypted and
//! chained as any other, and the relay (which cannot read them) stores them.
//! Every reader must refuse each forgery, `kith sync` must name it (exit 3),
//! and nothing of it may be shown or exported. Who wrote an item is always
//! the member whose device signed it, as the membership log names them.
//! Runs on the relay's SQLite and PostgreSQL storage alike.

use std::path::Path;

use automerge::{ActorId, AutoCommit, ROOT, ScalarValue, transaction::Transactable};
use kith_core::kinds::Kind;
use kith_core::{Client, ContributionDoc, ContributionId, DeviceId, MemberId};
use kith_tests::device::{Device, Http, now};
use kith_tests::{
    Relay, Study, TestDatabase, authored_texts_of, invite_and_join, kith, kith_raw, stored_blobs,
};
use rand_core::OsRng;

#[test]
fn forged_authorship_is_refused_on_sqlite() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    forged_authorship_is_refused(&relay, base.path());
}

#[test]
fn forged_authorship_is_refused_on_postgres() {
    let db = TestDatabase::create();
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start_postgres(base.path(), &db.url);
    forged_authorship_is_refused(&relay, base.path());
}

/// The device in a `kith` data folder, loaded into this process with a
/// connection of its own: the changed client.
fn take_over(dir: &str, relay: &Relay) -> Device {
    let state = std::fs::read(Path::new(dir).join("state.kith")).unwrap();
    let (client, _) = Client::load(&state, stored_blobs(Path::new(dir))).unwrap();
    Device {
        client,
        http: Http::new(&relay.url()),
    }
}

/// One reflection's changes, made by `actor`, with the fields a changed
/// client chooses.
fn item_changes(actor: DeviceId, fields: &[(&str, ScalarValue)]) -> Vec<u8> {
    let mut doc = AutoCommit::new();
    doc.set_actor(ActorId::from(&actor.0[..]));
    let id = ContributionId::random(&mut OsRng).to_string();
    let item = doc.put_object(ROOT, id, automerge::ObjType::Map).unwrap();
    for (key, value) in fields {
        doc.put(&item, *key, value.clone()).unwrap();
    }
    doc.save_after(&[])
}

fn created_now() -> ScalarValue {
    ScalarValue::Timestamp(i64::try_from(now().millis()).unwrap())
}

fn forged_authorship_is_refused(relay: &Relay, base: &Path) {
    let study = Study::start(base, relay);
    let dir = |name: &str| study.dir(name);
    let steward = study.steward.clone();
    let alex = dir("alex");
    let joined = invite_and_join(&steward, &alex, "Alex", &[]);
    let alex_member: MemberId = joined["member_id"].as_str().unwrap().parse().unwrap();
    let alex_device: DeviceId = joined["device_id"].as_str().unwrap().parse().unwrap();
    kith(&["contribute", "--data-dir", &alex, "--text", "My own words."]);
    kith(&["sync", "--data-dir", &alex]);

    // Pseudonyms are unique in the alliance, however they are typed. A
    // refused name does not lose the invite: the same device tries again.
    let invite = kith(&["invite", "--data-dir", &steward]);
    let invite = invite["invite"].as_str().unwrap();
    let copycat = dir("copycat");
    for taken in ["alex", " ALEX ", "Ａｌｅｘ"] {
        let refused = kith_raw(&[
            "join",
            "--data-dir",
            &copycat,
            "--invite",
            invite,
            "--name",
            taken,
        ]);
        assert!(!refused.status.success(), "{taken:?} was accepted");
        let said = String::from_utf8(refused.stderr).unwrap();
        assert!(
            said.contains("already goes by") && said.contains("choose another name"),
            "{said}"
        );
    }
    kith(&[
        "join",
        "--data-dir",
        &copycat,
        "--invite",
        invite,
        "--name",
        "Alexa",
    ]);
    assert!(
        !Path::new(&copycat).join("joining.kith").exists(),
        "forgotten once joined"
    );

    // Five members with changed clients, one forgery each (a refused batch
    // stops its device's chain, so each needs its own).
    let mut forgers: Vec<(String, Device)> = (1..=5)
        .map(|n| {
            let name = format!("Mallory {n}");
            let folder = dir(&format!("mallory-{n}"));
            invite_and_join(&steward, &folder, &name, &[]);
            (name, take_over(&folder, relay))
        })
        .collect();
    let actors: Vec<DeviceId> = forgers.iter().map(|(_, d)| d.client.device_id()).collect();
    let valid_item = |actor: DeviceId, text: &str| {
        ContributionDoc::default()
            .contribute(&actor, ContributionId::random(&mut OsRng), text, now())
            .unwrap()
    };
    // Each: whose document (None: the forger's own), which format (None:
    // the legacy reflection batch), and the changes.
    let forgeries: [(Option<MemberId>, Option<Kind>, Vec<u8>); 5] = [
        // 1. Writes into Alex's document (with its own actor, a valid item).
        (
            Some(alex_member),
            Some(Kind::Reflection),
            valid_item(actors[0], "FORGED 1: written into Alex's writing"),
        ),
        // 2. Its own document, but the item carries an author field.
        (
            None,
            Some(Kind::Reflection),
            item_changes(
                actors[1],
                &[
                    ("text", "FORGED 2: signed with an author field".into()),
                    ("created_at", created_now()),
                    ("author", "Alex".into()),
                ],
            ),
        ),
        // 3. Its own document, with changes labelled as Alex's device.
        (
            None,
            Some(Kind::Reflection),
            valid_item(alex_device, "FORGED 3: changes claiming Alex's device"),
        ),
        // 4. The legacy format, whose items carried a name: it may be read,
        //    but the name inside is not: the item shows as its signer's.
        (
            None,
            None,
            item_changes(
                actors[3],
                &[
                    ("text", "Legacy item naming Alex inside".into()),
                    ("created_at", created_now()),
                    ("author", "Alex".into()),
                ],
            ),
        ),
        // 5. A plain member puts a question to the cohort, which only
        //    facilitators and stewards may (into their own prompt document).
        (
            None,
            Some(Kind::Prompt),
            valid_item(
                actors[4],
                "FORGED 5: a question from someone who may not ask one",
            ),
        ),
    ];
    for ((_, device), (owner, kind, changes)) in forgers.iter_mut().zip(forgeries) {
        let owner = owner.unwrap_or(device.client.profile().member);
        device
            .client
            .forge_batch(owner, kind, changes, now(), &mut OsRng)
            .unwrap();
        assert_eq!(device.client.pending_uploads(), 1);
        device.sync();
        assert_eq!(device.client.pending_uploads(), 0, "the relay stored it");
    }

    let expected = vec![
        ("Alex".to_owned(), "My own words.".to_owned()),
        (
            "Mallory 4".to_owned(),
            "Legacy item naming Alex inside".to_owned(),
        ),
    ];
    for reader in [&alex, &steward] {
        let synced = kith_raw(&["sync", "--data-dir", reader]);
        assert_eq!(
            synced.status.code(),
            Some(3),
            "kith sync names the forgeries"
        );
        let said = String::from_utf8(synced.stderr).unwrap();
        for refusal in [
            "tries to write into someone else's writing",
            "its kind of writing does not allow",
            "claim to come from another device",
            "may not write in that space",
        ] {
            assert!(
                said.contains(refusal),
                "{reader}: {refusal:?} not in {said}"
            );
        }
        assert_eq!(
            authored_texts_of(&kith(&["list", "--data-dir", reader])),
            expected
        );
    }
    let exported = study.export();
    assert_eq!(authored_texts_of(&exported), expected);
}
