//! Many long contributions written offline go up in as many requests as
//! the relay's size limit needs, never one it refuses. Real relay process.

use kith_core::{MAX_TEXT_BYTES, Role};
use kith_tests::Relay;
use kith_tests::device::Device;

#[test]
fn a_backlog_of_long_texts_is_sent_in_requests_the_relay_accepts() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let mut steward = Device::steward(&relay.url(), Vec::new());
    let mut writer = Device::invited(&mut steward, "Writer", Role::Member);
    // 40 texts of the longest kind: about 2.7 MB of ciphertext, more than
    // one request may carry (2 MiB).
    for n in 0..40 {
        let text = format!("{n} {}", "a long reflection. ".repeat(MAX_TEXT_BYTES / 18));
        writer.write_text(&text[..MAX_TEXT_BYTES]);
    }
    let report = writer.sync();
    assert_eq!(report.sent, 40);
    assert_eq!(writer.client.pending_uploads(), 0);
    steward.sync();
    assert_eq!(steward.client.contributions().len(), 40);
}
