//! What a new device downloads as an alliance's history grows, with
//! checkpoints, against the whole history (what it downloaded before them),
//! measured in the same run. Real relay process; devices in this process.
//!
//! `cargo bench -p kith-tests --bench history` (add a number to change the
//! largest history, e.g. `-- 2000`). Prints a Markdown table for
//! docs/BENCHMARKS.md.

use std::time::Instant;

use kith_core::Role;
use kith_tests::Relay;
use kith_tests::device::Device;

fn main() {
    let largest: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(10_000);
    let sizes: Vec<usize> = [1_000, 5_000, 10_000]
        .into_iter()
        .filter(|n| *n <= largest)
        .chain((largest < 1_000).then_some(largest))
        .collect();
    println!(
        "| contributions | whole history (bytes) | new device downloads (bytes) | ratio | new device join + sync |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in sizes {
        let base = tempfile::tempdir().unwrap();
        let relay = Relay::start(base.path());
        let mut steward = Device::steward(&relay.url(), Vec::new());
        let mut writer = Device::invited(&mut steward, "Writer", Role::Member);
        let cohort = steward.cohort();
        let mut written = 0;
        while written < n {
            let round = (n - written).min(500);
            writer.write(round, "round");
            writer.sync();
            // The steward may summarise the cohort; its syncs leave checkpoints.
            steward.sync();
            written += round;
        }
        let history = steward.whole_history_bytes(cohort);
        let start = Instant::now();
        let newcomer = Device::invited(&mut steward, "Newcomer", Role::Member);
        let took = start.elapsed();
        assert_eq!(newcomer.client.contributions().len(), n);
        let downloaded = newcomer.http.received;
        println!(
            "| {n} | {history} | {downloaded} | {:.3} | {:.2} s |",
            downloaded as f64 / history as f64,
            took.as_secs_f64()
        );
    }
}
