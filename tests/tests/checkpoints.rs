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
