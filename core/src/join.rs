//! Joining from an invite: make this device's keys, redeem the one-time token
//! with a request signed by the new key, then open the package.

use rand_core::CryptoRngCore;

use crate::api::{self, HttpRequest, HttpResponse, RedeemInvite, Redeemed};
use crate::client::{Client, check_name, json};
use crate::envelope::{INVITE_LABEL, open};
use crate::error::Error;
use crate::invite::{Invite, InvitePackage};
use crate::keys::DeviceKeys;
use crate::state::{Profile, StoreOp};
use crate::sync::relay_error;
use crate::time::Timestamp;

/// A device on its way into an alliance.
pub struct Joining {
    invite: Invite,
    keys: DeviceKeys,
    pseudonym: String,
}

impl Joining {
    /// Reads the invite (a link or a code) and makes this device's keys.
    pub fn new(invite: &str, pseudonym: &str, rng: &mut impl CryptoRngCore) -> Result<Self, Error> {
        Ok(Self {
            invite: Invite::parse(invite)?,
            keys: DeviceKeys::generate(rng),
            pseudonym: check_name(pseudonym, "pseudonym")?,
        })
    }

    /// The relay named in the invite.
    pub fn relay(&self) -> &str {
        &self.invite.relay
    }

    /// The request that redeems the invite.
    pub fn request(&self, now: Timestamp, rng: &mut impl CryptoRngCore) -> HttpRequest {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let body = RedeemInvite {
            token: self.invite.token_hex().to_string(),
        };
        api::signed_request(
            &self.keys,
            "POST",
            api::paths::redeem(self.invite.invite),
            json(&body),
            now,
            nonce,
        )
    }

    /// Opens the package from the relay's answer: the device is now a member.
    pub fn finish(self, response: HttpResponse) -> Result<(Client, Vec<StoreOp>), Error> {
        if !(200..300).contains(&response.status) {
            return Err(relay_error(&response));
        }
        let redeemed: Redeemed = serde_json::from_slice(&response.body)
            .map_err(|_| Error::BadResponse("unexpected body"))?;
        let opened =
            open::<InvitePackage>(INVITE_LABEL, &redeemed.package, &[self.invite.identity()])
                .map_err(|_| Error::InvalidInvite("its package could not be opened"))?;
        let package = opened.body;
        if opened.signer != self.invite.inviter
            || package.invite != self.invite.invite
            || package.alliance != self.invite.alliance
            || redeemed.alliance_id != self.invite.alliance
        {
            return Err(Error::InvalidInvite(
                "its package was not made for this invite",
            ));
        }
        let profile = Profile {
            alliance: package.alliance,
            alliance_name: package.alliance_name,
            relay: self.invite.relay.clone(),
            pseudonym: self.pseudonym,
            role: package.role,
            cohort: package.cohort,
            steward: package.steward,
            research_recipients: package.research_recipients,
        };
        let epoch_keys = package.grants.iter().map(|g| g.epoch_key()).collect();
        let client = Client::assemble(self.keys, profile, epoch_keys);
        let ops = vec![StoreOp::PutState(client.saved().encode())];
        Ok((client, ops))
    }
}
