//! Cohorts, scopes, linked devices, unlinking and removal, end to end: a
//! real relay process and real `kith` commands.
//!
//! Who may read what is checked the hard way: besides what each device lists
//! after a sync, every blob another device holds is copied into the device's
//! own folder (as a relay that served it everything would), and the device
//! still must not show what it may not read.

use std::path::Path;

use kith_tests::{
    Relay, RelayDb, copy_blobs, invite_and_join, kith, kith_raw, shown, stored_blobs, texts_of,
};
use serde_json::Value;

struct World {
    base: tempfile::TempDir,
    relay: Relay,
    steward: String,
}

impl World {
    fn dir(&self, name: &str) -> String {
        self.base.path().join(name).to_str().unwrap().to_owned()
    }

    /// Invites and joins a member; returns their data folder and join output.
    fn join(&self, folder: &str, name: &str, extra: &[&str]) -> (String, Value) {
        let dir = self.dir(folder);
        let joined = invite_and_join(&self.steward, &dir, name, extra);
        (dir, joined)
    }
}

fn write(dir: &str, text: &str, scope: &str) {
    kith(&[
        "contribute",
        "--data-dir",
        dir,
        "--text",
        text,
        "--scope",
        scope,
    ]);
}

fn sync(dir: &str) {
    kith(&["sync", "--data-dir", dir]);
}

/// `texts`, sorted, to compare with what a device shows.
fn sorted(texts: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    out.sort();
    out
}

fn researcher_sees(dir: &str, key: &str) -> Vec<String> {
    texts_of(&kith(&[
        "export",
        "--data-dir",
        dir,
        "--identity",
        key,
        "--format",
        "json",
    ]))
}

#[test]
fn cohorts_scopes_linked_devices_unlinking_and_removal() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let steward = base.path().join("steward").to_str().unwrap().to_owned();
    let world = World {
        base,
        relay,
        steward,
    };
    let key = world.dir("lee.agekey");
    let recipient = kith(&["keygen", "--out", &key])["recipient"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = kith(&[
        "init",
        "--data-dir",
        &world.steward,
        "--relay",
        &world.relay.url(),
        "--alliance",
        "Relations study",
        "--cohort",
        "Parents",
        "--name",
        "Sam",
        "--researcher",
        &recipient,
    ]);
    let alliance_id = created["alliance_id"].as_str().unwrap().to_owned();
    let created = kith(&[
        "cohort",
        "create",
        "--data-dir",
        &world.steward,
        "--name",
        "Young people",
    ]);
    assert_eq!(created["name"], "Young people");
    let cohorts = kith(&["cohort", "list", "--data-dir", &world.steward]);
    let mut names: Vec<&str> = cohorts["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Parents", "Young people"]);

    let (alex, _) = world.join("alex", "Alex", &[]);
    let (blake, _) = world.join("blake", "Blake", &[]);
    let (casey, _) = world.join("casey", "Casey", &["--cohort", "Young people"]);
    let (lee, _) = world.join("lee", "Dr Lee", &["--role", "researcher"]);
    sync(&casey);
    let members = kith(&["member", "list", "--data-dir", &casey]);
    let who: Vec<(String, String)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["pseudonym"].as_str().unwrap_or("?").to_owned(),
                m["cohort"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    for expected in [
        ("Alex", "Parents"),
        ("Casey", "Young people"),
        ("Dr Lee", "-"),
        ("Sam", "Parents"),
    ] {
        assert!(
            who.contains(&(expected.0.into(), expected.1.into())),
            "{who:?}"
        );
    }

    // Scopes: the cohort, or the research team only.
    write(&alex, "alex to parents", "cohort");
    write(&alex, "alex to research only", "research");
    write(&casey, "casey to young people", "cohort");
    for dir in [&alex, &casey] {
        sync(dir);
    }
    for dir in [&alex, &blake, &casey, &world.steward] {
        sync(dir);
    }
    assert_eq!(
        shown(&alex),
        sorted(&["alex to parents", "alex to research only"])
    );
    assert_eq!(shown(&blake), sorted(&["alex to parents"]));
    assert_eq!(shown(&world.steward), sorted(&["alex to parents"]));
    assert_eq!(shown(&casey), sorted(&["casey to young people"]));
    // Even holding every blob Alex's device holds, Casey and Blake read no more.
    copy_blobs(Path::new(&alex), Path::new(&casey));
    copy_blobs(Path::new(&alex), Path::new(&blake));
    assert_eq!(shown(&casey), sorted(&["casey to young people"]));
    assert_eq!(shown(&blake), sorted(&["alex to parents"]));
    assert_eq!(
        researcher_sees(&lee, &key),
        sorted(&[
            "alex to parents",
            "alex to research only",
            "casey to young people"
        ])
    );

    // A linked device: Alex's phone reads and writes as Alex does.
    let code = kith(&["device", "link", "--data-dir", &alex])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone = world.dir("alex-phone");
    let added = kith(&["device", "add", "--data-dir", &phone, "--code", &code]);
    let phone_id = added["device_id"].as_str().unwrap().to_owned();
    write(&phone, "alex from the phone", "research");
    sync(&phone);
    sync(&alex);
    let both = sorted(&[
        "alex to parents",
        "alex to research only",
        "alex from the phone",
    ]);
    assert_eq!(shown(&alex), both);
    assert_eq!(shown(&phone), both);
    let again = kith_raw(&[
        "device",
        "add",
        "--data-dir",
        &world.dir("x"),
        "--code",
        &code,
    ]);
    assert!(!again.status.success(), "a link code works once");

    // Unlinking the phone: it can no longer sync, and what Alex writes from
    // now on is closed to it, in both of Alex's scopes.
    kith(&[
        "device",
        "unlink",
        "--data-dir",
        &alex,
        "--device",
        &phone_id[..12],
    ]);
    write(&alex, "alex after unlinking, research", "research");
    write(&alex, "alex after unlinking, parents", "cohort");
    sync(&alex);
    let refused = kith_raw(&["sync", "--data-dir", &phone]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("removed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    copy_blobs(Path::new(&alex), Path::new(&phone));
    assert_eq!(shown(&phone), both, "nothing written after unlinking");
    sync(&blake);
    assert!(shown(&blake).contains(&"alex after unlinking, parents".to_owned()));

    // Removing Blake: the same, and a relay that replays what Blake writes
    // afterwards is caught by everyone else.
    kith(&[
        "member",
        "remove",
        "--data-dir",
        &world.steward,
        "--member",
        "Blake",
    ]);
    // Once Alex's device has heard of the removal (a device that has not
    // synced since still writes with the key it has: see the threat model).
    sync(&alex);
    write(&alex, "alex after blake left", "cohort");
    sync(&alex);
    let refused = kith_raw(&["sync", "--data-dir", &blake]);
    assert!(!refused.status.success());
    copy_blobs(Path::new(&alex), Path::new(&blake));
    assert!(!shown(&blake).contains(&"alex after blake left".to_owned()));
    // Blake's device still thinks it belongs, and writes with the old key.
    let before = stored_blobs(Path::new(&blake));
    write(&blake, "blake after leaving", "cohort");
    let blake_device = device_of(&blake);
    let written = stored_blobs(Path::new(&blake))
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect::<Vec<_>>();
    assert_eq!(written.len(), 1, "one new batch");
    let db = RelayDb::open(&world.relay);
    for blob in &written {
        db.insert_blob(&alliance_id, &blake_device, blob);
    }
    let caught = kith_raw(&["sync", "--data-dir", &alex]);
    assert_eq!(caught.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&caught.stderr);
    assert!(stderr.contains("after it was removed"), "{stderr}");
    assert!(!shown(&alex).contains(&"blake after leaving".to_owned()));

    // The research team reads everything members wrote while they belonged.
    let read = researcher_sees(&lee, &key);
    for text in [
        "alex after unlinking, research",
        "alex after unlinking, parents",
        "alex from the phone",
        "alex after blake left",
    ] {
        assert!(read.contains(&text.to_owned()), "{text} missing: {read:?}");
    }
    assert!(!read.contains(&"blake after leaving".to_owned()));
}

/// A device's own id, from `kith device list`.
fn device_of(dir: &str) -> String {
    let devices = kith(&["device", "list", "--data-dir", dir]);
    devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["this"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A removal names, for each scope, the last batch the remover has seen from
/// the removed device. If that device's later writing already reached the
/// relay, the relay refuses the removal until the remover has seen it, so no
/// write the relay acknowledged is refused by the others afterwards.
#[test]
fn a_removal_waits_for_writing_the_relay_already_acknowledged() {
    use kith_core::Role;
    use kith_tests::device::{Device, now};
    use rand_core::OsRng;

    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut steward = Device::steward(&relay.url(), Vec::new());
    let mut alex = Device::invited(&mut steward, "Alex", Role::Member);
    alex.write(1, "just before leaving");
    assert_eq!(alex.sync().sent, 1);

    // The steward has not synced since: its removal is behind the relay.
    let member = alex.client.profile().member;
    let (removal, _) = steward
        .client
        .remove_member(member, now(), &mut OsRng)
        .unwrap();
    let answer = steward.http.send(&removal);
    assert_eq!(answer.status, 409);
    assert!(String::from_utf8_lossy(&answer.body).contains("not seen yet"));
    steward.client.change_refused();

    steward.sync();
    let (removal, _) = steward
        .client
        .remove_member(member, now(), &mut OsRng)
        .unwrap();
    assert_eq!(steward.http.send(&removal).status, 201);
    steward.client.change_accepted().unwrap();
    steward.sync();

    // Everyone keeps what Alex wrote before leaving.
    let mut later = Device::invited(&mut steward, "Later", Role::Member);
    assert!(later.sync().is_clean());
    let texts: Vec<String> = later
        .client
        .contributions()
        .into_iter()
        .map(|c| c.text)
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].starts_with("just before leaving"));
}
