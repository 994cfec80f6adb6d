//! What opening a device and exporting cost, against baselines measured in
//! the same run: a member's device that holds N contributions (another
//! member's, received through a real relay process) opened from its saved
//! replica, against decoding the same documents alone; and a researcher's
//! export of them, against the age crate alone decrypting the same blobs.
//! The way devices opened before replicas (every stored blob opened again)
//! is measured too, for comparison.
//!
//! `cargo bench -p kith-tests --bench open` (add a number to change N from
//! 10,000, e.g. `-- 2000`). Medians of interleaved samples; prints Markdown
//! for docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use kith_core::envelope::decrypt;
use kith_core::kinds::Kind;
use kith_core::{AgeIdentity, BlobId, BlobRecord, Client, ContributionDoc, Role, StoreOp};
use kith_tests::Relay;
use kith_tests::device::Device;
use rand_core::OsRng;

const SAMPLES: usize = 5;

/// A device's store, as a driver keeps it, plus every blob it was ever
/// handed (what a device kept before replicas).
#[derive(Default)]
struct Store {
    state: Vec<u8>,
    replica: Option<Vec<u8>>,
    blobs: BTreeMap<BlobId, BlobRecord>,
    every_blob: Vec<BlobRecord>,
}

impl Store {
    fn apply(&mut self, ops: Vec<StoreOp>) {
        for op in ops {
            match op {
                StoreOp::PutState(bytes) => self.state = bytes.to_vec(),
                StoreOp::PutReplica(bytes) => self.replica = Some(bytes),
                StoreOp::PutBlob(blob) => {
                    self.every_blob.push(blob.clone());
                    self.blobs.insert(blob.id, blob);
                }
                StoreOp::DeleteBlob(id) => {
                    self.blobs.remove(&id);
                }
            }
        }
    }

    fn open(&self) -> Client {
        let blobs = self.blobs.values().cloned().collect();
        Client::open(&self.state, self.replica.as_deref(), blobs)
            .unwrap()
            .0
    }

    fn open_every_blob(&self) -> Client {
        Client::load(&self.state, self.every_blob.clone())
            .unwrap()
            .0
    }
}

/// The median time of `SAMPLES` runs of each of `runs`, interleaved so all
/// see the same load.
fn medians<const N: usize>(runs: [&dyn Fn(); N]) -> [Duration; N] {
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::new());
    for run in &runs {
        run(); // warm-up
    }
    for _ in 0..SAMPLES {
        for (run, out) in runs.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            run();
            out.push(start.elapsed());
        }
    }
    times.map(|mut t| {
        t.sort();
        t[t.len() / 2]
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(10_000);
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let research = AgeIdentity::generate(&mut OsRng);
    let mut steward = Device::steward(&relay.url(), vec![research.recipient()]);
    let mut writer = Device::invited(&mut steward, "Writer", Role::Member);
    let mut member_store = Store::default();
    let mut member = Device::invited_keeping(&mut steward, "Member", Role::Member, &mut |ops| {
        member_store.apply(ops)
    });
    let mut research_store = Store::default();
    let mut researcher =
        Device::invited_keeping(&mut steward, "Researcher", Role::Researcher, &mut |ops| {
            research_store.apply(ops)
        });
    let mut written = 0;
    while written < n {
        let round = (n - written).min(500);
        writer.write(round, "round");
        writer.sync();
        written += round;
    }
    member.sync_keeping(&mut |ops| member_store.apply(ops));
    researcher.sync_keeping(&mut |ops| research_store.apply(ops));
    assert_eq!(member.client.contributions().len(), n);

    let saved_doc = writer.client.saved_document(Kind::Reflection).unwrap();
    let cohort_key = writer
        .client
        .epoch_keys()
        .iter()
        .find(|k| Some(k.scope) == writer.client.cohort())
        .unwrap()
        .identity
        .clone();
    // The blobs of writing (grants are sealed to devices, not the epoch key).
    let content: Vec<&BlobRecord> = research_store
        .every_blob
        .iter()
        .filter(|b| decrypt(&b.data, &[&cohort_key]).is_ok())
        .collect();

    let [decode_docs, open_replica, open_every] = medians([
        &|| {
            let doc = ContributionDoc::load(&saved_doc).unwrap();
            assert_eq!(black_box(doc.contributions()).len(), n);
        },
        &|| {
            let client = member_store.open();
            assert_eq!(black_box(client.contributions()).len(), n);
        },
        &|| {
            let client = member_store.open_every_blob();
            assert_eq!(black_box(client.contributions()).len(), n);
        },
    ]);
    let [age_alone, export] = medians([
        &|| {
            for blob in &content {
                black_box(decrypt(&blob.data, &[&cohort_key]).unwrap());
            }
        },
        &|| {
            let client = research_store.open();
            let view = client.into_research_view(research.clone()).unwrap();
            assert_eq!(black_box(view.contributions()).len(), n);
        },
    ]);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "{n} contributions; the member's device stores {} blob(s) and a {} KiB replica \
         (it was handed {} blobs); the researcher's device stores {} blobs.\n",
        member_store.blobs.len(),
        member_store.replica.as_ref().map_or(0, Vec::len) / 1024,
        member_store.every_blob.len(),
        research_store.blobs.len(),
    );
    println!("| measure | median | ratio to its baseline | budget |");
    println!("|---|---:|---:|---:|");
    println!(
        "| baseline: decode the saved document and list it | {} | 1.00 | |",
        ms(decode_docs)
    );
    println!(
        "| open the member's device from its replica, then list | {} | {:.2} | ≤ 1.5 |",
        ms(open_replica),
        ratio(open_replica, decode_docs)
    );
    println!(
        "| open it from every blob (before replicas), then list | {} | {:.2} | |",
        ms(open_every),
        ratio(open_every, decode_docs)
    );
    println!(
        "| baseline: the age crate alone decrypts the {} content blobs | {} | 1.00 | |",
        content.len(),
        ms(age_alone)
    );
    println!(
        "| researcher's export: open the device, add the team's key, list | {} | {:.2} | ≤ 2 |",
        ms(export),
        ratio(export, age_alone)
    );
}
