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
    let (blake, blake_joined) = world.join("blake", "Blake", &[]);
    let blake_device = blake_joined["device_id"].as_str().unwrap().to_owned();
    let (casey, _) = world.join("casey", "Casey", &["--cohort", "Young people"]);
    let (lee, _) = world.join("lee", "Dr Lee", &["--role", "researcher"]);
    // Each device hears who else came (cohorts are read from join on).
    sync(&alex);
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
    // The phone as it was, kept aside: a copy that has not synced since.
    let offline_phone = world.dir("alex-phone-offline");
    copy_folder(Path::new(&phone), Path::new(&offline_phone));
    let refused = kith_raw(&["sync", "--data-dir", &phone]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("removed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        !Path::new(&phone).join("state.kith").exists(),
        "an unlinked phone is wiped"
    );
    copy_blobs(Path::new(&alex), Path::new(&offline_phone));
    assert_eq!(
        shown(&offline_phone),
        both,
        "nothing written after unlinking"
    );
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
    // A copy of Blake's device as it was, for a device that has not synced
    // since (below).
    let synced_blake = blake;
    let blake = world.dir("blake-offline");
    copy_folder(Path::new(&synced_blake), Path::new(&blake));
    // Blake's device syncs: the signed log shows its removal, so it deletes
    // its keys and everything it read, and says so.
    let refused = kith_raw(&["sync", "--data-dir", &synced_blake]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("This device was removed from") && said.contains("for a new invite"),
        "{said}"
    );
    for gone in ["state.kith", "replica.kith", "blobs"] {
        assert!(
            !Path::new(&synced_blake).join(gone).exists(),
            "{gone} stayed"
        );
    }
    let listed = kith_raw(&["list", "--data-dir", &synced_blake]);
    assert!(String::from_utf8_lossy(&listed.stderr).contains("This device was removed"));
    copy_blobs(Path::new(&alex), Path::new(&blake));
    assert!(!shown(&blake).contains(&"alex after blake left".to_owned()));
    // Blake's device still thinks it belongs, and writes with the old key.
    let before = stored_blobs(Path::new(&blake));
    write(&blake, "blake after leaving", "cohort");
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

/// The device kept in folder `kept`, opened in this process with every
/// blob `relay` holds copied in: what it could read if it got them all.
fn with_every_relay_blob(kept: &Path, relay: &Relay) -> kith_core::Client {
    let blobs = kept.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in RelayDb::open(relay).all_blobs() {
        let file = blobs.join(format!("{}.blob", blob.id));
        std::fs::write(file, kith_core::encode_blob(&blob)).unwrap();
    }
    let state = std::fs::read(kept.join("state.kith")).unwrap();
    let replica = std::fs::read(kept.join("replica.kith")).ok();
    let (device, _) =
        kith_core::Client::open(&state, replica.as_deref(), stored_blobs(kept)).unwrap();
    device
}

/// Copies a data folder (a device as it was at that moment).
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_folder(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
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

/// A relay that answers every request 403, saying the device was removed:
/// what a hostile or broken relay could send. Serves until dropped.
fn refusing_relay(port: u16) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { return };
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let body = r#"{"error":"forbidden","message":"this device was removed from the alliance; ask a steward for a new invite"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

/// A device deletes what it holds only when the signed membership log shows
/// its removal: a relay that merely answers "removed" (403) cannot make a
/// member's device wipe itself.
#[test]
fn a_relays_refusal_alone_does_not_wipe_a_device() {
    let base = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(base.path());
    let study = kith_tests::Study::start(base.path(), &relay);
    let alex = study.dir("alex");
    study.member("Alex", "alex");
    write(&alex, "kept by alex", "cohort");
    sync(&alex);

    let port: u16 = relay.url().rsplit(':').next().unwrap().parse().unwrap();
    relay.kill();
    let _fake = refusing_relay(port);
    let refused = kith_raw(&["sync", "--data-dir", &alex]);
    assert!(!refused.status.success());
    assert!(
        Path::new(&alex).join("state.kith").exists(),
        "the device was wiped"
    );
    assert!(!Path::new(&alex).join("removed.txt").exists());
    assert_eq!(shown(&alex), vec!["kept by alex".to_owned()]);
}

/// Someone leaves, and a member wrote before the key that replaces theirs
/// reached them: that writing stays on the member's device until it can be
/// sealed to the new key, so the one who left, keeping every key they had
/// and handed every blob the relay holds, cannot read it. The others can.
#[test]
fn writing_waits_on_the_device_for_the_key_that_replaces_a_leavers() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = kith_tests::Study::start(base.path(), &relay);
    study.member("Alex", "alex");
    study.member("Blake", "blake");
    let (alex, blake) = (study.dir("alex"), study.dir("blake"));
    sync(&alex);
    sync(&blake);
    // Blake's device as it is now, keys and all.
    let kept = base.path().join("blake-kept");
    copy_folder(Path::new(&blake), &kept);

    kith(&[
        "member",
        "remove",
        "--data-dir",
        &study.steward,
        "--member",
        "Blake",
    ]);
    // Alex has not heard: writes offline, with the key Blake holds too.
    let text = "alex wrote this before hearing that blake left";
    write(&alex, text, "cohort");
    let report = kith(&["sync", "--data-dir", &alex]);
    // Sent in the same sync, once the new key came.
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(report["kept"], 0, "{report}");

    let leaver = with_every_relay_blob(&kept, &relay);
    let read: Vec<String> = leaver.contributions().into_iter().map(|c| c.text).collect();
    assert!(!read.contains(&text.to_owned()), "Blake reads it: {read:?}");

    sync(&study.steward);
    sync(&study.researcher);
    assert!(shown(&study.steward).contains(&text.to_owned()));
    assert!(researcher_sees(&study.researcher, &study.key).contains(&text.to_owned()));
}

/// A steward replaces the research team's key (a lost laptop, say). The key
/// taken off, kept with every key its holder had and handed every blob the
/// relay holds, reads nothing written from then on; the new key does. Every
/// member can list the team's keys with their fingerprints.
#[test]
fn a_key_taken_off_the_research_team_reads_nothing_written_after() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = kith_tests::Study::start(base.path(), &relay);
    study.member("Alex", "alex");
    let alex = study.dir("alex");
    write(&alex, "before the change", "research");
    sync(&alex);
    sync(&study.researcher);
    // The lost laptop: the researcher's device as it was, and the old key.
    let kept = base.path().join("lee-kept");
    copy_folder(Path::new(&study.researcher), &kept);

    let new_key = study.dir("new.agekey");
    let new_recipient = kith(&["keygen", "--out", &new_key])["recipient"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_recipient = kith(&["research-team", "list", "--data-dir", &study.steward])
        ["research_team"][0]["recipient"]
        .as_str()
        .unwrap()
        .to_owned();
    kith(&[
        "research-team",
        "add",
        "--data-dir",
        &study.steward,
        "--recipient",
        &new_recipient,
    ]);
    let removed = kith(&[
        "research-team",
        "remove",
        "--data-dir",
        &study.steward,
        "--recipient",
        &kith_core::fingerprint(&old_recipient),
    ]);
    let team = removed["research_team"].as_array().unwrap();
    assert_eq!(team.len(), 1, "{removed}");
    assert_eq!(team[0]["recipient"], new_recipient.as_str());

    // A member sees the same team, and can compare the fingerprint.
    let seen = kith(&["research-team", "list", "--data-dir", &alex]);
    assert_eq!(seen["research_team"], removed["research_team"]);
    assert_eq!(
        seen["research_team"][0]["fingerprint"],
        kith_core::fingerprint(&new_recipient).as_str()
    );

    write(&alex, "after the change, research only", "research");
    write(&alex, "after the change, to the cohort", "cohort");
    let report = kith(&["sync", "--data-dir", &alex]);
    assert_eq!(report["sent"], 2, "{report}");
    sync(&study.steward);
    let read = researcher_sees(&study.researcher, &new_key);
    // The new key reads what came before too: the scopes' older keys
    // were granted to it with the new ones.
    for text in [
        "before the change",
        "after the change, research only",
        "after the change, to the cohort",
    ] {
        assert!(read.contains(&text.to_owned()), "{text} missing: {read:?}");
    }

    // The old key with everything the relay holds.
    let device = with_every_relay_blob(&kept, &relay);
    let old_key = std::fs::read_to_string(&study.key).unwrap();
    let old_key = old_key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let view = device
        .into_research_view(kith_core::AgeIdentity::parse(old_key).unwrap())
        .unwrap();
    let old_reads: Vec<String> = view.contributions().into_iter().map(|c| c.text).collect();
    assert!(
        old_reads.contains(&"before the change".to_owned()),
        "{old_reads:?}"
    );
    for text in [
        "after the change, research only",
        "after the change, to the cohort",
    ] {
        assert!(
            !old_reads.contains(&text.to_owned()),
            "the old key reads {text}"
        );
    }
}

/// Two stewards: the second removes the first (a phone in the wrong
/// hands), whose device is then wiped; the last steward cannot leave.
#[test]
fn a_second_steward_removes_the_first_but_the_last_stays() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = kith_tests::Study::start(base.path(), &relay);
    let second = study.dir("second");
    invite_and_join(&study.steward, &second, "Robin", &["--role", "steward"]);
    sync(&study.steward);

    kith(&["member", "remove", "--data-dir", &second, "--member", "Sam"]);
    let refused = kith_raw(&["sync", "--data-dir", &study.steward]);
    assert!(!refused.status.success());
    assert!(Path::new(&study.steward).join("removed.txt").exists());
    assert!(!Path::new(&study.steward).join("state.kith").exists());

    let last = kith_raw(&[
        "member",
        "remove",
        "--data-dir",
        &second,
        "--member",
        "Robin",
    ]);
    assert!(!last.status.success());
    let said = String::from_utf8_lossy(&last.stderr);
    assert!(said.contains("last steward"), "{said}");
    // Robin still runs the alliance.
    invite_and_join(&second, &study.dir("alex"), "Alex", &[]);
}
