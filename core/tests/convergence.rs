//! Property: contributions from several devices, delivered in any order and
//! with duplicates, converge to the same state on every reader.
//!
//! The relay's part in joining is played in-process here (the test hands the
//! published package back, as the relay would); the real relay is exercised
//! by the end-to-end tests in `tests/`.

use std::sync::OnceLock;

use kith_core::api::{PublishInvite, Redeemed};
use kith_core::{
    BlobRecord, Client, ContributionView, HttpResponse, Joining, NewAlliance, Role, StoreOp,
    Timestamp,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Fixture {
    observer_state: Vec<u8>,
    blobs: Vec<BlobRecord>,
    expected: Vec<ContributionView>,
}

fn join(steward: &Client, name: &str, rng: &mut ChaCha20Rng) -> (Client, Vec<u8>) {
    let (invite, publish) = steward
        .create_invite(Role::Member, 60_000, Timestamp(1), rng)
        .unwrap();
    let published: PublishInvite = serde_json::from_slice(&publish.body).unwrap();
    let joining = Joining::new(&invite.link(), name, rng).unwrap();
    let answer = Redeemed {
        alliance_id: steward.profile().alliance,
        package: published.package,
    };
    let (client, ops) = joining
        .finish(HttpResponse {
            status: 200,
            body: serde_json::to_vec(&answer).unwrap(),
        })
        .unwrap();
    let state = ops
        .into_iter()
        .find_map(|op| match op {
            StoreOp::PutState(s) => Some(s.to_vec()),
            StoreOp::PutBlob(_) => None,
        })
        .unwrap();
    (client, state)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let (mut steward, _) = Client::create_alliance(
            NewAlliance {
                name: "Alliance".into(),
                relay: "http://relay.invalid".into(),
                pseudonym: "Steward".into(),
                researchers: vec![],
            },
            &mut rng,
        )
        .unwrap();
        let (_, observer_state) = join(&steward, "Observer", &mut rng);
        let mut writers: Vec<Client> = (0..3)
            .map(|i| join(&steward, &format!("M{i}"), &mut rng).0)
            .collect();
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
                        Timestamp(1000 + round * 10 + i as u64),
                        &mut rng,
                    )
                    .unwrap();
                blobs.extend(ops.into_iter().filter_map(|op| match op {
                    StoreOp::PutBlob(b) => Some(b),
                    StoreOp::PutState(_) => None,
                }));
            }
        }
        let (all, _) = Client::load(&observer_state, blobs.clone()).unwrap();
        let expected = all.contributions();
        assert_eq!(expected.len(), 12);
        Fixture {
            observer_state,
            blobs,
            expected,
        }
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
        let (reader, refused) = Client::load(&f.observer_state, delivered).unwrap();
        prop_assert_eq!(refused, 0);
        prop_assert_eq!(reader.contributions(), f.expected.clone());
    }

    #[test]
    fn a_prefix_shows_exactly_what_arrived_and_the_rest_catches_up(cut in 0..12usize) {
        let f = fixture();
        let (partial, _) = Client::load(&f.observer_state, f.blobs[..cut].to_vec()).unwrap();
        prop_assert!(partial.contributions().len() <= cut);
        prop_assert!(partial.contributions().iter().all(|c| f.expected.contains(c)));
        let (full, _) = Client::load(&f.observer_state, f.blobs.iter().rev().cloned().collect()).unwrap();
        prop_assert_eq!(full.contributions(), f.expected.clone());
    }
}
