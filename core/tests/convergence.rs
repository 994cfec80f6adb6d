//! Property: contributions from several devices, delivered in any order and
//! with duplicates, converge to the same state on every reader.
//!
//! The relay's part in joining is played in-process here (the test hands the
//! published package back, as the relay would); the real relay is exercised
//! by the end-to-end tests in `tests/`.

use std::sync::OnceLock;

use kith_core::api::{AppendLog, PublishInvite, Redeemed};
use kith_core::{
    BlobRecord, Client, ContributionView, HttpResponse, Joining, NewAlliance, Role, StoreOp,
    Timestamp, WriteScope,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Fixture {
    observer_state: Vec<u8>,
    /// What the observer stored when it joined (its own key grant, waiting to be sent).
    observer_own: Vec<BlobRecord>,
    blobs: Vec<BlobRecord>,
    expected: Vec<ContributionView>,
}

fn ok(status: u16, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse {
        status,
        body: serde_json::to_vec(body).unwrap(),
    }
}

/// A member joins: the steward's invite and the new device's join go into
/// the membership log, as the relay would append them.
fn join(
    steward: &mut Client,
    name: &str,
    rng: &mut ChaCha20Rng,
) -> (Client, Vec<u8>, Vec<BlobRecord>) {
    let now = Timestamp(1);
    let (invite, publish) = steward
        .create_invite(Role::Member, None, 60_000, now, rng)
        .unwrap();
    let published: PublishInvite = serde_json::from_slice(&publish.body).unwrap();
    steward
        .apply_membership_entries(&[published.entry])
        .unwrap();
    let mut joining = Joining::new(&invite.link(), name, rng).unwrap();
    joining.next_request(now, rng).unwrap();
    let redeemed = Redeemed {
        alliance_id: steward.profile().alliance,
        package: published.package,
        log: steward.membership().entries().to_vec(),
    };
    joining.receive(ok(200, &redeemed), now, rng).unwrap();
    let append = joining.next_request(now, rng).unwrap();
    let entries: AppendLog = serde_json::from_slice(&append.body).unwrap();
    steward.apply_membership_entries(&entries.entries).unwrap();
    joining.receive(ok(201, &()), now, rng).unwrap();
    assert!(joining.next_request(now, rng).is_none());
    let (client, ops) = joining.finish(now, rng).unwrap();
    let mut state = Vec::new();
    let mut own = Vec::new();
    for op in ops {
        match op {
            StoreOp::PutState(s) => state = s.to_vec(),
            StoreOp::PutBlob(b) => own.push(b),
            StoreOp::PutReplica(_) | StoreOp::DeleteBlob(_) => {}
        }
    }
    (client, state, own)
}

impl Fixture {
    /// The observer, restored with `delivered` (and what it stored itself).
    fn observer(&self, delivered: Vec<BlobRecord>) -> (Client, usize) {
        let mut blobs = self.observer_own.clone();
        blobs.extend(delivered);
        Client::load(&self.observer_state, blobs).unwrap()
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let (mut steward, _) = Client::create_alliance(
            NewAlliance {
                name: "Alliance".into(),
                cohort: "Cohort".into(),
                relay: "http://relay.invalid".into(),
                pseudonym: "Steward".into(),
                researchers: vec![],
                history: kith_core::History::Whole,
            },
            Timestamp(0),
            &mut rng,
        )
        .unwrap();
        let mut writers: Vec<Client> = (0..3)
            .map(|i| join(&mut steward, &format!("M{i}"), &mut rng).0)
            .collect();
        // The observer joins last, so its log names every writer.
        let (_, observer_state, observer_own) = join(&mut steward, "Observer", &mut rng);
        let mut blobs = Vec::new();
        // Interleaved writes: every device writes several batches, each
        // depending on its previous one.
        for round in 0..3u64 {
            for (i, w) in writers
                .iter_mut()
                .chain(std::iter::once(&mut steward))
                .enumerate()
            {
                let (_, ops) = w
                    .contribute(
                        &format!("round {round} from {i}"),
                        WriteScope::Cohort,
                        Timestamp(1000 + round * 10 + i as u64),
                        &mut rng,
                    )
                    .unwrap();
                blobs.extend(ops.into_iter().filter_map(|op| match op {
                    StoreOp::PutBlob(b) => Some(b),
                    _ => None,
                }));
            }
        }
        let mut fixture = Fixture {
            observer_state,
            observer_own,
            blobs: blobs.clone(),
            expected: Vec::new(),
        };
        let (all, refused) = fixture.observer(blobs);
        assert_eq!(refused, 0);
        fixture.expected = all.contributions();
        assert_eq!(fixture.expected.len(), 12);
        fixture
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_order_with_duplicates_converges(
        order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        duplicates in proptest::collection::vec(0..12usize, 0..12),
    ) {
        let f = fixture();
        let mut delivered: Vec<BlobRecord> = order.iter().map(|&i| f.blobs[i].clone()).collect();
        for (at, &i) in duplicates.iter().enumerate() {
            delivered.insert(at * 2 % (delivered.len() + 1), f.blobs[i].clone());
        }
        let (reader, refused) = f.observer(delivered);
        prop_assert_eq!(refused, 0);
        prop_assert_eq!(reader.contributions(), f.expected.clone());
    }

    #[test]
    fn a_prefix_shows_exactly_what_arrived_and_the_rest_catches_up(cut in 0..12usize) {
        let f = fixture();
        let (partial, _) = f.observer(f.blobs[..cut].to_vec());
        prop_assert!(partial.contributions().len() <= cut);
        prop_assert!(partial.contributions().iter().all(|c| f.expected.contains(c)));
        let (full, _) = f.observer(f.blobs.iter().rev().cloned().collect());
        prop_assert_eq!(full.contributions(), f.expected.clone());
    }
}
