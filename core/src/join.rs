//! Joining from an invite: make this device's keys, redeem the one-time
//! token (the relay answers with the invite package and the membership
//! log), check both, then append this device's `Join` entry, signed by the
//! new device and proven with the invite's key. If someone else changed the
//! membership meanwhile, the relay refuses the entry and joining starts over
//! from the redeem, which the relay answers again for the same device.
//!
//! The driver loops: `next_request` -> send -> `receive`, until
//! `next_request` returns `None`; then `finish`.

use rand_core::CryptoRngCore;

use crate::admin::{device_public_keys, new_chapter};
use crate::api::{self, AppendLog, HttpRequest, HttpResponse, RedeemInvite, Redeemed};
use crate::api::{json, relay_error};
use crate::client::{Client, check_name};
use crate::envelope::{INVITE_LABEL, open};
use crate::error::Error;
use crate::invite::{Invite, InvitePackage};
use crate::keys::{DeviceKeys, EpochKey};
use crate::membership::{Action, Membership, ScopeKind, SignedEntry, join_proof_message};
use crate::names::{seal_name, taken};
use crate::state::{Profile, StoreOp};
use crate::time::Timestamp;

/// How often joining starts over because the membership moved meanwhile.
const MAX_ATTEMPTS: u32 = 5;

/// A device on its way into an alliance.
pub struct Joining {
    invite: Invite,
    keys: DeviceKeys,
    /// The pseudonym a new member picked (none when adding a device).
    pseudonym: Option<String>,
    step: Step,
    attempts: u32,
    /// The last join sent: if its answer was lost, the log shows it landed.
    sent: Option<Box<Accepted>>,
}

enum Step {
    Redeem,
    AwaitRedeem,
    Append(Box<Accepted>),
    AwaitAppend(Box<Accepted>),
    Done(Box<Accepted>),
}

/// A checked package and log, with the entries this device adds.
struct Accepted {
    package: InvitePackage,
    membership: Membership,
    entries: Vec<SignedEntry>,
    keys: Vec<EpochKey>,
    pseudonym: String,
}

impl Joining {
    /// Reads the invite (a link or a code) and makes this device's keys.
    pub fn new(invite: &str, pseudonym: &str, rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        Ok(Self {
            invite: Invite::parse(invite)?,
            keys: DeviceKeys::generate(rng),
            pseudonym: Some(check_name(pseudonym, "pseudonym")?),
            step: Step::Redeem,
            attempts: 0,
            sent: None,
        })
    }

    /// Adds this device to an existing member, from the code their other
    /// device showed (`kith device link`).
    pub fn add_device(code: &str, rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        Ok(Self {
            invite: Invite::parse(code)?,
            keys: DeviceKeys::generate(rng),
            pseudonym: None,
            step: Step::Redeem,
            attempts: 0,
            sent: None,
        })
    }

    /// A join that failed part-way (no answer, or a name already taken),
    /// started again with the same device keys: the relay answers the same
    /// device as before, so the invite is not lost.
    pub fn resume(invite: &str, pseudonym: &str, device_secret: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            invite: Invite::parse(invite)?,
            keys: DeviceKeys::import_secret(device_secret)?,
            pseudonym: Some(check_name(pseudonym, "pseudonym")?),
            step: Step::Redeem,
            attempts: 0,
            sent: None,
        })
    }

    /// The joining device's secret keys, for [`Joining::resume`]. Keep them
    /// as carefully as a device's state.
    pub fn device_secret(&self) -> zeroize::Zeroizing<Vec<u8>> {
        self.keys.export_secret()
    }

    /// Chooses another pseudonym for a join that has not gone in yet (one
    /// someone else has, say). The same device asks again.
    pub fn rename(&mut self, pseudonym: &str) -> Result<(), Error> {
        if self.pseudonym.is_none() {
            return Err(Error::Invalid(
                "a device added to a member keeps their name",
            ));
        }
        if !matches!(self.step, Step::Redeem | Step::AwaitRedeem) || self.sent.is_some() {
            return Err(Error::OutOfOrder(
                "this join has gone in; its name cannot change now",
            ));
        }
        self.pseudonym = Some(check_name(pseudonym, "pseudonym")?);
        self.step = Step::Redeem;
        Ok(())
    }

    /// The relay named in the invite (or the address given instead).
    pub fn relay(&self) -> &str {
        &self.invite.relay
    }

    /// Reaches the invite's relay at another address (the same relay by
    /// another name: inside a private network, or another instance on the
    /// same database), from joining on. Safe to allow: the link pins the
    /// alliance's log, so another relay cannot pass off a log of its own.
    pub fn reach_relay_at(&mut self, relay: &str) {
        self.invite.relay = relay.trim_end_matches('/').to_owned();
    }

    /// The next request to send, or `None` when joined (call `finish`).
    /// After a failed send, call it again to retry the same step.
    pub fn next_request(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Option<HttpRequest> {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        // A step still waiting for its answer is asked again: the answer
        // was lost, and the relay answers the same device the same way.
        match std::mem::replace(&mut self.step, Step::Redeem) {
            Step::Redeem | Step::AwaitRedeem => {
                self.step = Step::AwaitRedeem;
                let body = RedeemInvite {
                    token: self.invite.token_hex().to_string(),
                };
                Some(api::signed_request(
                    &self.keys,
                    "POST",
                    api::paths::redeem(self.invite.invite),
                    json(&body),
                    now,
                    nonce,
                ))
            }
            Step::Append(accepted) | Step::AwaitAppend(accepted) => {
                let body = AppendLog {
                    entries: accepted.entries.clone(),
                };
                self.step = Step::AwaitAppend(accepted);
                Some(api::signed_request(
                    &self.keys,
                    "POST",
                    api::paths::log(self.invite.alliance),
                    json(&body),
                    now,
                    nonce,
                ))
            }
            other => {
                self.step = other;
                None
            }
        }
    }

    /// Feeds the relay's answer to the last request.
    pub fn receive(
        &mut self,
        response: HttpResponse,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), Error> {
        match std::mem::replace(&mut self.step, Step::Redeem) {
            Step::AwaitRedeem => {
                if !(200..300).contains(&response.status) {
                    // Asking again may work (a relay that was busy, say).
                    self.step = Step::AwaitRedeem;
                    return Err(relay_error(&response));
                }
                let redeemed: Redeemed = serde_json::from_slice(&response.body)
                    .map_err(|_| Error::BadResponse("unexpected body"))?;
                if let Some(sent) = self.sent.take() {
                    let membership = Membership::replay(self.invite.alliance, &redeemed.log)?;
                    if membership.device(&self.keys.device_id()).is_some() {
                        // The join went in; only the relay's answer was lost.
                        let sent = *sent;
                        self.step = Step::Done(Box::new(Accepted { membership, ..sent }));
                        return Ok(());
                    }
                }
                let accepted = self.accept(redeemed, now, rng)?;
                self.step = Step::Append(Box::new(accepted));
                Ok(())
            }
            Step::AwaitAppend(accepted) => {
                if response.status == 409 && self.attempts + 1 < MAX_ATTEMPTS {
                    // The membership moved on meanwhile (or this very join
                    // went in and its answer was lost): start over and see.
                    self.attempts += 1;
                    self.sent = Some(accepted);
                    return Ok(());
                }
                if !(200..300).contains(&response.status) {
                    self.step = Step::AwaitAppend(accepted);
                    return Err(relay_error(&response));
                }
                self.step = Step::Done(accepted);
                Ok(())
            }
            other => {
                self.step = other;
                Err(Error::OutOfOrder("no request is waiting for an answer"))
            }
        }
    }

    /// Checks the package and the log, and signs this device's join.
    fn accept(
        &self,
        redeemed: Redeemed,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Accepted, Error> {
        let invalid = |why| Error::InvalidInvite(why);
        if redeemed.alliance_id != self.invite.alliance {
            return Err(invalid("its package was not made for this invite"));
        }
        if redeemed.package.is_empty() {
            // The relay deletes a package once its device synced as a member.
            return Err(invalid(
                "this device already joined with it, and its keys are no longer on the relay; ask for a new invite",
            ));
        }
        let opened =
            open::<InvitePackage>(INVITE_LABEL, &redeemed.package, &[self.invite.identity()])
                .map_err(|_| invalid("its package could not be opened"))?;
        let package = opened.body;
        if opened.signer != self.invite.inviter
            || package.invite != self.invite.invite
            || package.alliance != self.invite.alliance
        {
            return Err(invalid("its package was not made for this invite"));
        }
        let mut membership = Membership::replay(self.invite.alliance, &redeemed.log)?;
        // The relay could serve a log of its own making (with its own
        // research key, say): the link pins the real one's first entry, and
        // the invite must be in it, written by the device that made the link,
        // which must still belong.
        if self
            .invite
            .log_root
            .is_some_and(|root| membership.root() != Some(root))
        {
            return Err(invalid(
                "the relay served a membership that is not the alliance's",
            ));
        }
        let named = membership
            .invite(&self.invite.invite)
            .ok_or(invalid("the alliance's membership does not list it"))?;
        if named.made_by != self.invite.inviter {
            return Err(invalid(
                "the alliance's membership says someone else made it",
            ));
        }
        if !membership
            .device(&self.invite.inviter)
            .is_some_and(|d| d.active)
        {
            return Err(invalid(
                "the person who made it no longer belongs to the alliance; ask for a new one",
            ));
        }
        if named.key != self.invite.public_key()
            || named.member != package.member
            || named.role != package.role
            || named.cohort != package.cohort
        {
            return Err(invalid(
                "its package does not match the alliance's membership",
            ));
        }
        if named.used_by.is_some_and(|d| d != self.keys.device_id()) {
            return Err(invalid("it was already used"));
        }
        let keys: Vec<EpochKey> = package.grants.iter().map(|g| g.epoch_key()).collect();
        for key in &keys {
            let expected = membership.epoch_recipient(&key.scope, key.epoch);
            if expected != Some(key.identity.recipient().to_string().as_str()) {
                return Err(invalid("it hands out a key the membership does not name"));
            }
        }
        let new_member = membership.member(&package.member).is_none();
        let pseudonym = match (&package.pseudonym, &self.pseudonym, new_member) {
            (Some(theirs), None, false) => theirs.clone(),
            (None, Some(mine), true) => mine.clone(),
            (_, _, true) => return Err(invalid("it is for a new member; use kith join")),
            (_, _, false) => return Err(invalid("it adds a device; use kith device add")),
        };
        if new_member && taken(&pseudonym, &membership, &keys) {
            return Err(Error::NameTaken(pseudonym));
        }
        let sealed_pseudonym = if new_member {
            let scope = membership
                .alliance_scope()
                .ok_or(invalid("the alliance has no alliance scope"))?;
            let epoch = membership.current_epoch(&scope).unwrap_or(0);
            let recipient = membership
                .epoch_recipient(&scope, epoch)
                .ok_or(invalid("the alliance has no alliance key"))?;
            seal_name(&pseudonym, recipient)?
        } else {
            Vec::new()
        };
        let device = device_public_keys(&self.keys);
        let proof = self.invite.prove(&join_proof_message(
            self.invite.alliance,
            self.invite.invite,
            &device,
        ));
        let mut entries = vec![membership.append(
            &self.keys,
            Action::Join {
                invite: self.invite.invite,
                device,
                proof,
                sealed_pseudonym,
            },
            now,
        )?];
        let mut new_keys = keys;
        if new_member {
            // A new member opens their own research-only scope.
            let key = EpochKey::generate(crate::ids::ScopeId::random(rng), 0, rng);
            entries.push(membership.append(
                &self.keys,
                Action::OpenScope {
                    scope: key.scope,
                    kind: ScopeKind::Research(package.member),
                    recipient: key.identity.recipient().to_string(),
                    sealed_name: Vec::new(),
                },
                now,
            )?);
            new_keys.push(key);
        }
        if let Some(cohort) = membership.chapter_owed_by(&self.keys.device_id()) {
            // A cohort read from join on: the newcomer opens the chapter
            // they and everyone now in it read (`membership/history.rs`).
            let (entry, key) = new_chapter(&mut membership, &self.keys, cohort, now, rng)?;
            entries.push(entry);
            new_keys.push(key);
        }
        Ok(Accepted {
            package,
            membership,
            entries,
            keys: new_keys,
            pseudonym,
        })
    }

    /// The device, once joined: the grant of its research-only key to the
    /// research team waits in the outbox.
    pub fn finish(
        self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Client, Vec<StoreOp>), Error> {
        let Step::Done(accepted) = self.step else {
            return Err(Error::OutOfOrder("joining has not finished"));
        };
        let Accepted {
            package,
            membership,
            keys,
            pseudonym,
            ..
        } = *accepted;
        let profile = Profile {
            alliance: package.alliance,
            alliance_name: package.alliance_name,
            relay: self.invite.relay.clone(),
            pseudonym,
            member: package.member,
        };
        let invite_identity = Some(self.invite.identity().clone());
        let granted: Vec<_> = package.grants.iter().map(|g| (g.scope, g.epoch)).collect();
        let mut client = Client::assemble(
            self.keys,
            profile,
            membership,
            keys.clone(),
            invite_identity,
        );
        // Keys this device made (a new member's research-only key) go to the
        // research team.
        let made: Vec<EpochKey> = keys
            .into_iter()
            .filter(|k| !granted.contains(&(k.scope, k.epoch)))
            .collect();
        let mut ops = client.grant_new_keys(&made, now, rng)?;
        ops.push(StoreOp::PutState(client.saved().encode()));
        Ok((client, ops))
    }
}
