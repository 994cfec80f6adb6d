//! A joining device checks that the membership log the relay serves is the
//! alliance's own. A hostile relay (played here from core parts; the relay
//! cannot be made to lie otherwise) answers a redeem with a log of its own
//! making: its own steward and its own research-team key, the real scopes'
//! keys and a copy of the real invite entry, so the package's grants still
//! match. A device that accepted it would grant its research-only key to the
//! relay. The link pins the real log's first entry; and the invite entry
//! must be the inviter's own, with the inviter still in the alliance.

use kith_core::api::{PublishInvite, Redeemed};
use kith_core::membership::{Action, DeviceKeysPublic};
use kith_core::{
    AgeIdentity, Client, DeviceKeys, Error, HttpResponse, Invite, Joining, Membership, NewAlliance,
    Role, Timestamp,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: Timestamp = Timestamp(1_795_000_000_000);

/// The steward's alliance, an invite from it, and what publishing it sends.
fn alliance_with_invite(rng: &mut ChaCha20Rng) -> (Client, Invite, PublishInvite) {
    let (steward, _) = Client::create_alliance(
        NewAlliance {
            name: "Relations".into(),
            cohort: "Parents".into(),
            relay: "http://localhost:8080".into(),
            pseudonym: "Sam".into(),
            researchers: vec![AgeIdentity::generate(rng).recipient()],
            history: kith_core::History::FromJoin,
        },
        NOW,
        rng,
    )
    .unwrap();
    let (invite, request) = steward
        .create_invite(Role::Member, None, 60_000, NOW, rng)
        .unwrap();
    let published: PublishInvite = serde_json::from_slice(&request.body).unwrap();
    (steward, invite, published)
}

/// The relay's own log for the same alliance: its steward, its research
/// key, the real scopes' keys, and the real invite entry's fields.
fn forged_log(real: &Membership, invite_entry: &Action, rng: &mut ChaCha20Rng) -> Membership {
    let relay_device = DeviceKeys::generate(rng);
    let relay_research = AgeIdentity::generate(rng).recipient().to_string();
    let mut forged = Membership::new(real.alliance());
    for signed in real.entries() {
        let action = match signed.open().unwrap().action {
            Action::Create {
                steward,
                cohort,
                sealed_pseudonym,
                ..
            } => Action::Create {
                steward,
                device: DeviceKeysPublic {
                    device: relay_device.device_id(),
                    recipient: relay_device.recipient().to_string(),
                },
                cohort,
                research: vec![relay_research.clone()],
                sealed_pseudonym,
            },
            other => other,
        };
        forged.append(&relay_device, action, NOW).unwrap();
    }
    forged
        .append(&relay_device, invite_entry.clone(), NOW)
        .unwrap();
    forged
}

fn join_against(link: &str, log: &Membership, package: &[u8], rng: &mut ChaCha20Rng) -> Error {
    let mut joining = Joining::new(link, "Alex", rng).unwrap();
    joining.next_request(NOW, rng).expect("a redeem");
    let answer = Redeemed {
        alliance_id: log.alliance(),
        package: package.to_vec(),
        log: log.entries().to_vec(),
    };
    let response = HttpResponse {
        status: 200,
        body: serde_json::to_vec(&answer).unwrap(),
    };
    joining
        .receive(response, NOW, rng)
        .expect_err("the forged log was accepted")
}

#[test]
fn a_log_the_relay_made_itself_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (steward, invite, published) = alliance_with_invite(&mut rng);
    let invite_entry = published.entry.open().unwrap().action;
    let forged = forged_log(steward.membership(), &invite_entry, &mut rng);

    // A version 2 link pins the real first entry.
    let error = join_against(&invite.link(), &forged, &published.package, &mut rng);
    assert!(
        matches!(error, Error::InvalidInvite(why) if why.contains("not the alliance's")),
        "{error}"
    );

    // A version 1 link pins nothing, but the invite entry in the forged log
    // is not the inviter's own.
    let mut v1 = Invite::parse(&invite.link()).unwrap();
    v1.log_root = None;
    let error = join_against(&v1.link(), &forged, &published.package, &mut rng);
    assert!(
        matches!(error, Error::InvalidInvite(why) if why.contains("someone else made it")),
        "{error}"
    );

    // The real log, as the relay should serve it, is accepted.
    let mut real = steward.membership().clone();
    real.apply(&published.entry).unwrap();
    let mut joining = Joining::new(&invite.link(), "Alex", &mut rng).unwrap();
    joining.next_request(NOW, &mut rng).unwrap();
    let answer = Redeemed {
        alliance_id: real.alliance(),
        package: published.package.clone(),
        log: real.entries().to_vec(),
    };
    joining
        .receive(
            HttpResponse {
                status: 200,
                body: serde_json::to_vec(&answer).unwrap(),
            },
            NOW,
            &mut rng,
        )
        .expect("the alliance's own log is accepted");
}
