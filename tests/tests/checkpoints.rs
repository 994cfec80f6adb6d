//! Checkpoints keep what a new device downloads bounded as history grows:
//! it starts from the newest checkpoint of each scope it reads, plus the
//! batches after it. Real relay process; kith-core devices driven in this
//! process (hundreds of writes through `kith` processes would be slow).
//! Figures for larger histories are in docs/BENCHMARKS.md.

use kith_core::Role;
use kith_tests::Relay;
use kith_tests::device::Device;

#[test]
fn a_new_device_starts_from_the_newest_checkpoint() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut steward = Device::steward(&relay.url(), Vec::new());
    let mut writer = Device::invited(&mut steward, "Writer", Role::Member);
    let cohort = steward.cohort();

    writer.write(600, "first");
    assert_eq!(writer.sync().sent, 600);
    // The steward reads the cohort and may summarise it: its sync applies
    // the 600 batches and leaves a checkpoint of them on the relay.
    let report = steward.sync();
    assert!(report.is_clean());
    assert_eq!(steward.client.contributions().len(), 600);

    let history = steward.whole_history_bytes(cohort);
    let mut newcomer = Device::invited(&mut steward, "Newcomer", Role::Member);
    assert_eq!(
        newcomer.client.contributions().len(),
        600,
        "all of it, from the checkpoint"
    );
    let downloaded = newcomer.http.received;
    eprintln!("new device downloaded {downloaded} bytes; the whole history is {history} bytes");
    assert!(
        downloaded * 4 < history,
        "a new device downloaded {downloaded} bytes; the whole history is {history}"
    );

    // After the checkpoint: new writing arrives as the tail, on top of it.
    writer.write(50, "later");
    writer.sync();
    let mut late = Device::invited(&mut steward, "Late", Role::Member);
    assert_eq!(late.client.contributions().len(), 650);
    assert!(late.sync().is_clean());
    // ...and the devices that read it all before see the same.
    newcomer.sync();
    assert_eq!(newcomer.client.contributions(), late.client.contributions());

    // A device that was already up to date does not fetch the checkpoint again.
    let before = newcomer.http.received;
    newcomer.sync();
    assert!(newcomer.http.received - before < 2_000);
}

/// The relay deletes batches a checkpoint superseded (here at once, by the
/// operator's command; by itself after a retention period). A device that
/// was offline meanwhile finds them in the checkpoint: nothing is lost.
#[test]
fn a_device_offline_while_superseded_batches_were_deleted_loses_nothing() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut steward = Device::steward(&relay.url(), Vec::new());
    let mut writer = Device::invited(&mut steward, "Writer", Role::Member);
    let mut offline = Device::invited(&mut steward, "Offline", Role::Member);
    writer.write(10, "early");
    writer.sync();
    assert!(offline.sync().is_clean());
    assert_eq!(offline.client.contributions().len(), 10);

    // While one member is offline: 300 more, and the steward's checkpoint.
    writer.write(300, "while away");
    writer.sync();
    assert!(steward.sync().is_clean());
    let purge = std::process::Command::new(kith_tests::bin("kith-server"))
        .arg("--data-dir")
        .arg(&relay.data_dir)
        .args(["purge-superseded", "--older-than-days", "0"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&purge.stdout);
    assert!(
        purge.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&purge.stderr)
    );
    let deleted: u64 = said
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the purge says how many it deleted: {said}"));
    assert!(deleted >= 256, "{said}");

    // Back online: the first run may find batches missing (deleted), the
    // next starts from the checkpoint (`kith sync` runs it at once).
    let first = offline.sync();
    let report = if first.missing.is_empty() {
        first
    } else {
        offline.sync()
    };
    assert!(report.is_clean(), "{:?}", report.missing);
    assert_eq!(offline.client.contributions().len(), 310);
    assert_eq!(
        offline.client.contributions(),
        steward.client.contributions()
    );
    // A newcomer too.
    let newcomer = Device::invited(&mut steward, "Newcomer", Role::Member);
    assert_eq!(newcomer.client.contributions().len(), 310);
}

/// A member's changed client stores a blob in its cohort that no key of the
/// cohort opens (a real age file, sealed to a stranger's key). It is not
/// anyone's writing: it must not stop the cohort's summaries for ever.
#[test]
fn a_blob_no_key_opens_does_not_hold_summaries_back() {
    use kith_core::api::{self, AppendBlobs, BlobRecord, CheckpointList};
    use kith_core::envelope::encrypt;
    use kith_tests::device::now;
    use rand_core::OsRng;

    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut steward = Device::steward(&relay.url(), Vec::new());
    let mut writer = Device::invited(&mut steward, "Writer", Role::Member);
    let cohort = steward.cohort();
    let alliance = steward.client.profile().alliance;

    let stranger = kith_core::AgeIdentity::generate(&mut OsRng).recipient();
    let junk = BlobRecord {
        id: kith_core::BlobId([7; 16]),
        doc: kith_core::DocId([7; 16]),
        scope: cohort,
        covers: None,
        seq: Some(1),
        data: encrypt(b"nothing anyone can read", &[&stranger]).unwrap(),
    };
    let body = serde_json::to_vec(&AppendBlobs { blobs: vec![junk] }).unwrap();
    let request =
        writer
            .client
            .sign_request("POST", api::paths::blobs(alliance), body, now(), &mut OsRng);
    assert_eq!(writer.http.send(&request).status, 200);

    writer.write(300, "after the junk");
    assert_eq!(writer.sync().sent, 300);
    steward.sync();
    assert_eq!(steward.client.contributions().len(), 300);

    let path = api::paths::checkpoints(alliance, &[(cohort, 0)]);
    let request = steward
        .client
        .sign_request("GET", path, Vec::new(), now(), &mut OsRng);
    let answer = steward.http.send(&request);
    assert_eq!(answer.status, 200);
    let list: CheckpointList = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        list.checkpoints.len(),
        1,
        "the steward summarised the cohort"
    );
}
