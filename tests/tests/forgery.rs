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

use automerge::{ActorId, AutoCommit, ROOT, ReadDoc, ScalarValue, transaction::Transactable};
use kith_core::kinds::Kind;
use kith_core::payload::Checkpoint;
use kith_core::{ContributionDoc, ContributionId, DeviceId, DocId, MemberId, Role};
use kith_tests::device::{Device, Http, now};
use kith_tests::{
    Relay, Study, TestDatabase, authored_texts_of, invite_and_join, kith, kith_plain, kith_raw,
    open_device,
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
    Device {
        client: open_device(Path::new(dir)),
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
        // Each refusal names whose app broke the rules; none blames the relay.
        for n in [1, 2, 3, 5] {
            let named = format!("signed by a device of Mallory {n},");
            assert!(said.contains(&named), "{reader}: {named:?} not in {said}");
        }
        assert!(
            !said.contains("tampered"),
            "{reader}: a false alarm: {said}"
        );
        assert_eq!(
            authored_texts_of(&kith(&["list", "--data-dir", reader])),
            expected
        );
    }
    let exported = study.export();
    assert_eq!(authored_texts_of(&exported), expected);
}

#[test]
fn shared_agenda_items_stay_their_makers_on_sqlite() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    shared_agenda_items_stay_their_makers(&relay, base.path());
}

#[test]
fn shared_agenda_items_stay_their_makers_on_postgres() {
    let db = TestDatabase::create();
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start_postgres(base.path(), &db.url);
    shared_agenda_items_stay_their_makers(&relay, base.path());
}

/// A changed client's changes to a shared document: given its copy (its
/// actor set to the forger's device) and the key of the item it targets.
type Forgery = fn(&mut AutoCommit, &str) -> Vec<u8>;

/// The agenda items of a listing, as (author, text), sorted.
fn agenda_of(listing: &serde_json::Value) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = listing["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "agenda")
        .map(|c| {
            (
                c["author"].as_str().unwrap().to_owned(),
                c["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    items.sort();
    items
}

/// The agenda is one document the whole cohort writes into. Each item
/// stays its maker's: only their devices change it, and a facilitator or
/// steward may take it off the agenda but not reword it. Changed clients
/// that reach into someone else's item are refused by every reader.
fn shared_agenda_items_stay_their_makers(relay: &Relay, base: &Path) {
    // The forgers join later and must see Alex's item to reach for it.
    let study = Study::start_keeping_history(base, relay);
    let steward = study.steward.clone();
    let (alex, blair) = (study.dir("alex"), study.dir("blair"));
    study.member("Alex", "alex");
    study.member("Blair", "blair");
    // Alex's device hears that Blair came (Parents is read from join on).
    kith(&["sync", "--data-dir", &alex]);
    let suggest = |dir: &str, text: &str| {
        let made = kith(&["suggest", "--data-dir", dir, "--text", text]);
        made["contribution_id"].as_str().unwrap().to_owned()
    };
    let alex_item = suggest(&alex, "Talking to schools");
    let blair_item = suggest(&blair, "Childcare during meetings");
    for dir in [&alex, &blair, &steward, &alex] {
        kith(&["sync", "--data-dir", dir]);
    }
    let both = vec![
        ("Alex".to_owned(), "Talking to schools".to_owned()),
        ("Blair".to_owned(), "Childcare during meetings".to_owned()),
    ];
    assert_eq!(agenda_of(&kith(&["list", "--data-dir", &alex])), both);
    let shown = kith_plain(&["list", "--data-dir", &alex]);
    assert!(
        shown.contains("For the next meeting, from Blair"),
        "{shown}"
    );

    // Alex rewords their own item, and cannot touch Blair's.
    let reworded = "Talking to schools about support";
    kith(&[
        "edit",
        "--data-dir",
        &alex,
        "--id",
        &alex_item,
        "--text",
        reworded,
    ]);
    let not_yours = |args: &[&str]| {
        let refused = kith_raw(args);
        assert!(!refused.status.success(), "{args:?} was accepted");
        let said = String::from_utf8(refused.stderr).unwrap();
        assert!(said.contains("no writing of yours"), "{said}");
    };
    not_yours(&[
        "edit",
        "--data-dir",
        &alex,
        "--id",
        &blair_item,
        "--text",
        "x",
    ]);
    not_yours(&["delete", "--data-dir", &alex, "--id", &blair_item]);
    // The steward runs the group: takes Blair's item off, but cannot reword it.
    not_yours(&[
        "edit",
        "--data-dir",
        &steward,
        "--id",
        &blair_item,
        "--text",
        "x",
    ]);
    kith(&["delete", "--data-dir", &steward, "--id", &blair_item]);
    for dir in [&alex, &steward, &alex, &blair] {
        kith(&["sync", "--data-dir", dir]);
    }
    let agreed = vec![("Alex".to_owned(), reworded.to_owned())];
    for reader in [&alex, &blair, &steward] {
        assert_eq!(agenda_of(&kith(&["list", "--data-dir", reader])), agreed);
    }

    // Four members with changed clients, one forgery each on Alex's item,
    // built on their own synced copy of the agenda.
    // Each gets the forger's copy (its actor set to the forger's device)
    // and returns the changes it sends.
    let forgeries: [(&str, Forgery); 4] = [
        ("rewords it", |doc, key| {
            let heads = doc.get_heads();
            let Some((_, item)) = doc.get(ROOT, key).unwrap() else {
                panic!("the forger's copy has Alex's item");
            };
            doc.put(&item, "text", "FORGED: reworded").unwrap();
            doc.save_after(&heads)
        }),
        ("removes it", |doc, key| {
            let heads = doc.get_heads();
            doc.delete(ROOT, key).unwrap();
            doc.save_after(&heads)
        }),
        ("replaces it under its key", |doc, key| {
            let heads = doc.get_heads();
            let item = doc.put_object(ROOT, key, automerge::ObjType::Map).unwrap();
            doc.put(&item, "text", "FORGED: replaced").unwrap();
            doc.put(&item, "created_at", created_now()).unwrap();
            doc.save_after(&heads)
        }),
        (
            "makes a new one under its key, without looking",
            |doc, key| {
                let mut blind = AutoCommit::new();
                blind.set_actor(doc.get_actor().clone());
                let item = blind
                    .put_object(ROOT, key, automerge::ObjType::Map)
                    .unwrap();
                blind.put(&item, "text", "FORGED: blind").unwrap();
                blind.put(&item, "created_at", created_now()).unwrap();
                blind.save_after(&[])
            },
        ),
    ];
    for (n, (what, forge)) in forgeries.into_iter().enumerate() {
        let folder = study.dir(&format!("mallory-{n}"));
        invite_and_join(&steward, &folder, &format!("Mallory {n}"), &[]);
        kith(&["sync", "--data-dir", &folder]);
        let mut device = take_over(&folder, relay);
        let saved = device.client.saved_document(Kind::Agenda).unwrap();
        let mut doc = AutoCommit::load(&saved).unwrap();
        doc.set_actor(ActorId::from(&device.client.device_id().0[..]));
        let changes = forge(&mut doc, &alex_item);
        assert!(!changes.is_empty(), "{what}: no changes");
        let own = device.client.profile().member;
        device
            .client
            .forge_batch(own, Some(Kind::Agenda), changes, now(), &mut OsRng)
            .unwrap();
        device.sync();
        assert_eq!(
            device.client.pending_uploads(),
            0,
            "{what}: the relay stored it"
        );
    }

    for reader in [&alex, &blair, &steward] {
        let synced = kith_raw(&["sync", "--data-dir", reader]);
        assert_eq!(
            synced.status.code(),
            Some(3),
            "kith sync names the forgeries"
        );
        let said = String::from_utf8(synced.stderr).unwrap();
        // The steward synced while inviting each forger, so it has
        // already named the first three.
        let expected = if *reader == steward { 1 } else { 4 };
        assert_eq!(
            said.matches("changes or removes something someone else wrote")
                .count(),
            expected,
            "{reader}: {said}"
        );
        assert_eq!(agenda_of(&kith(&["list", "--data-dir", reader])), agreed);
    }
    assert_eq!(agenda_of(&study.export()), agreed);
}

/// The texts `device` shows, each with its author, sorted.
fn shown_by(device: &Device) -> Vec<(String, String)> {
    let mut shown: Vec<(String, String)> = device
        .client
        .contributions()
        .into_iter()
        .map(|c| (c.author, c.text))
        .collect();
    shown.sort();
    shown
}

/// Whether a sync's report names a refusal whose message holds `says`.
fn reported(report: &kith_core::SyncReport, says: &str) -> bool {
    report.rejected.iter().any(|r| r.to_string().contains(says))
}

/// A steward with a changed client writes false checkpoints of its cohort
/// (review finding 7). A member's device that already read the cohort
/// refuses each one that contradicts what it read, and says so; writing a
/// checkpoint left out is still shown, and its writer's later writing still
/// links. Runs on SQLite only: no storage is involved in what readers check.
#[test]
fn false_checkpoints_do_not_rewrite_what_a_device_read() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut steward = Device::steward(&relay.url(), vec![]);
    let mut alex = Device::invited(&mut steward, "Alex", Role::Member);
    let mut bo = Device::invited(&mut steward, "Bo", Role::Member);
    let (alex_device, bo_device) = (alex.client.device_id(), bo.client.device_id());
    let alex_member = alex.client.profile().member;
    let cohort = alex.cohort();
    let alex_doc = kith_core::kinds::document(Kind::Reflection, alex_member, cohort);
    let bo_doc = kith_core::kinds::document(Kind::Reflection, bo.client.profile().member, cohort);
    alex.write_text("Alex one");
    alex.write_text("Alex two");
    alex.sync();
    bo.write_text("Bo one");
    bo.sync();
    bo.sync();
    steward.sync();
    let before = shown_by(&bo);
    assert_eq!(before.len(), 3, "{before:?}");

    // Adds an item by `actor` to document `doc` of a checkpoint.
    let add_item = |checkpoint: &mut Checkpoint, doc: DocId, actor: DeviceId, text: &str| {
        let (_, saved) = checkpoint.docs.iter_mut().find(|(d, _)| *d == doc).unwrap();
        let mut copy = ContributionDoc::load(saved).unwrap();
        copy.contribute(&actor, ContributionId::random(&mut OsRng), text, now())
            .unwrap();
        *saved = copy.save();
    };
    let head_of = |checkpoint: &mut Checkpoint, device: DeviceId| {
        checkpoint.heads.iter().position(|h| h.0 == device).unwrap()
    };
    const SAYS: &str = "contradicts what this device already read";

    // 1. It claims Alex's chain runs to 2^63, which would hide every later
    //    batch of Alex's device.
    steward
        .client
        .forge_checkpoint(
            |c| {
                let at = head_of(c, alex_device);
                c.heads[at].1 = 1 << 63;
            },
            &mut OsRng,
        )
        .unwrap();
    // 2. It adds an item to what Alex wrote, at the place in Alex's chain
    //    Bo already read.
    steward
        .client
        .forge_checkpoint(
            |c| {
                add_item(
                    c,
                    alex_doc,
                    alex_device,
                    "FORGED 2: added to Alex's writing",
                )
            },
            &mut OsRng,
        )
        .unwrap();
    // 3. It moves Bo's own chain on, with an item to back the claim.
    steward
        .client
        .forge_checkpoint(
            |c| {
                add_item(c, bo_doc, bo_device, "FORGED 3: in Bo's own writing");
                let at = head_of(c, bo_device);
                c.heads[at].1 += 1;
                c.heads[at].2 = [9; 32];
            },
            &mut OsRng,
        )
        .unwrap();
    steward.sync();
    let report = bo.sync();
    let contradicted = report
        .rejected
        .iter()
        .filter(|r| r.to_string().contains(SAYS))
        .count();
    assert_eq!(contradicted, 3, "{:?}", report.rejected);
    assert_eq!(shown_by(&bo), before, "nothing of the forgeries is shown");

    // Alex's later writing still reaches Bo (1. hid nothing).
    alex.write_text("Alex three");
    alex.sync();
    bo.sync();
    assert!(shown_by(&bo).contains(&("Alex".into(), "Alex three".into())));

    // 4. Alex writes offline; meanwhile a checkpoint claims Alex's next
    //    batch, holding a false item in its place. Bo, who has not seen
    //    that batch, cannot tell yet. When the real one comes, Bo says the
    //    checkpoint left it out, and Alex's chain goes on from the real
    //    batch, not the false one (no fork is reported, nothing is missing).
    //    What the false item displaced stays unshown on Bo's device: the
    //    threat model says so.
    alex.write_text("Alex four");
    steward.sync();
    steward
        .client
        .forge_checkpoint(
            |c| {
                // Only Alex's writing (the steward's own copy of Bo's took
                // in forgery 3, which Bo would see).
                c.docs.retain(|(doc, _)| *doc == alex_doc);
                c.heads.retain(|head| head.0 == alex_device);
                add_item(c, alex_doc, alex_device, "FORGED 4: in place of Alex four");
                let at = head_of(c, alex_device);
                c.heads[at].1 += 1;
                c.heads[at].2 = [7; 32];
            },
            &mut OsRng,
        )
        .unwrap();
    steward.sync();
    assert!(bo.sync().rejected.is_empty());
    assert!(shown_by(&bo).contains(&("Alex".into(), "FORGED 4: in place of Alex four".into())));
    alex.sync();
    alex.write_text("Alex five");
    alex.sync();
    let report = bo.sync();
    assert!(
        reported(&report, "left out of a summary that claimed to hold it"),
        "{:?}",
        report.rejected
    );
    assert!(!reported(
        &report,
        "contradicts what its device wrote before"
    ));
    let shown = shown_by(&bo);
    for text in ["Alex one", "Alex two", "Alex three"] {
        assert!(
            shown.contains(&("Alex".into(), text.into())),
            "{text} not in {shown:?}"
        );
    }
    assert!(bo.client.gaps().is_empty(), "{:?}", bo.client.gaps());
}

/// A member's changed client replaces its cohort's key when no one has
/// left: every reader would fetch and keep new keys, over and over. The
/// relay refuses it and the log stays as it was; a rotation someone owes
/// (after a removal) still goes through.
#[test]
fn a_rotation_no_one_owes_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut steward = Device::steward(&relay.url(), Vec::new());
    let mut alex = Device::invited(&mut steward, "Alex", Role::Member);
    let blake = Device::invited(&mut steward, "Blake", Role::Member);
    alex.sync();
    let log_before = alex.client.membership().len();

    let forged = alex.client.forge_rotation(now(), &mut OsRng).unwrap();
    let answer = alex.http.send(&forged);
    assert_eq!(answer.status, 409);
    assert!(
        String::from_utf8_lossy(&answer.body).contains("does not need replacing"),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    alex.sync();
    assert_eq!(alex.client.membership().len(), log_before, "nothing added");

    // Blake leaves: the steward's removal replaces the key at once.
    let (removal, _) = steward
        .client
        .remove_member(blake.client.profile().member, now(), &mut OsRng)
        .unwrap();
    assert_eq!(steward.http.send(&removal).status, 201);
    steward.client.change_accepted().unwrap();
    alex.sync();
    let cohort = alex.cohort();
    assert_eq!(alex.client.membership().current_epoch(&cohort), Some(1));
}
