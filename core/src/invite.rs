//! Invites. A link carries, after `#join=` (a URL fragment, never sent to a
//! server): the relay, the alliance, the invite id, the inviter's device, a
//! one-time token, an age identity made for this invite and an Ed25519 key
//! made for it. The relay holds only the token's hash and the invite
//! package, encrypted to that identity. The membership log names the
//! invite's public key; the joining device proves it holds the link by
//! signing its join with it, so not even the relay can add a device.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use ed25519_dalek::{Signer, SigningKey};

use crate::error::Error;
use crate::ids::{AllianceId, DeviceId, InviteId, MemberId, ScopeId};
use crate::keys::AgeIdentity;
use crate::payload::{Grant, SecretKeyBytes};
use crate::role::Role;

/// Codes made before links pinned the log (still read).
const CODE_PREFIX_V1: &str = "kith1";
/// Codes that also pin the alliance's log (the hash of its first entry).
const CODE_PREFIX: &str = "kith2";
const LINK_MARKER: &str = "#join=";

/// What an invite link holds.
pub struct Invite {
    /// The relay's base URL.
    pub relay: String,
    /// The alliance.
    pub alliance: AllianceId,
    /// The invite.
    pub invite: InviteId,
    /// The device that made the invite; the package must be signed by it.
    pub inviter: DeviceId,
    /// The hash of the alliance's first membership entry: the joining
    /// device accepts only a log that starts with it (`None` in codes made
    /// before version 2).
    pub log_root: Option<[u8; 32]>,
    token: Zeroizing<[u8; 32]>,
    identity: AgeIdentity,
    signing: SigningKey,
}

#[derive(Serialize, Deserialize)]
struct InviteWire {
    relay: String,
    alliance: AllianceId,
    invite: InviteId,
    inviter: DeviceId,
    token: SecretKeyBytes,
    identity: SecretKeyBytes,
    signing: SecretKeyBytes,
}

/// Version 2: version 1 and the log's root.
#[derive(Serialize, Deserialize)]
struct InviteWireV2 {
    v1: InviteWire,
    log_root: [u8; 32],
}

impl Invite {
    /// A new invite with a fresh token and identity.
    pub fn generate(
        relay: &str,
        alliance: AllianceId,
        inviter: DeviceId,
        log_root: [u8; 32],
        rng: &mut impl CryptoRngCore,
    ) -> Self {
        let mut token = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(token.as_mut());
        Self {
            relay: relay.trim_end_matches('/').to_owned(),
            alliance,
            invite: InviteId::random(rng),
            inviter,
            log_root: Some(log_root),
            token,
            identity: AgeIdentity::generate(rng),
            signing: SigningKey::generate(rng),
        }
    }

    /// The invite as a code (`kith2...`, or `kith1...` for one read from a
    /// version 1 code).
    pub fn code(&self) -> Zeroizing<String> {
        let v1 = InviteWire {
            relay: self.relay.clone(),
            alliance: self.alliance,
            invite: self.invite,
            inviter: self.inviter,
            token: SecretKeyBytes(self.token.clone()),
            identity: SecretKeyBytes(self.identity.secret_bytes()),
            signing: SecretKeyBytes(Zeroizing::new(self.signing.to_bytes())),
        };
        // The code is the one place an invite's secrets are written out:
        // it is the link's fragment, given to the one person invited.
        let (prefix, bytes) = crate::sealing::sealing(|| match self.log_root {
            Some(log_root) => (
                CODE_PREFIX,
                postcard::to_allocvec(&InviteWireV2 { v1, log_root }),
            ),
            None => (CODE_PREFIX_V1, postcard::to_allocvec(&v1)),
        });
        let bytes = Zeroizing::new(bytes.expect("encodes"));
        Zeroizing::new(format!("{prefix}{}", BASE64URL.encode(&*bytes)))
    }

    /// The invite as a link that opens the app served by the relay.
    pub fn link(&self) -> Zeroizing<String> {
        self.link_at(&self.relay)
    }

    /// The link to an app served at `app` (apart from the relay, which the
    /// code still names).
    pub fn link_at(&self, app: &str) -> Zeroizing<String> {
        let app = app.trim_end_matches('/');
        Zeroizing::new(format!("{app}/{LINK_MARKER}{}", *self.code()))
    }

    /// Reads a link or a bare code.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let code = match text.find(LINK_MARKER) {
            Some(at) => &text[at + LINK_MARKER.len()..],
            None => text,
        };
        let (encoded, version) = match code.strip_prefix(CODE_PREFIX) {
            Some(rest) => (rest, 2),
            None => (
                code.strip_prefix(CODE_PREFIX_V1)
                    .ok_or(Error::InvalidInvite("it does not start with kith2"))?,
                1,
            ),
        };
        let damaged = || Error::InvalidInvite("it was cut short or changed");
        let bytes = Zeroizing::new(BASE64URL.decode(encoded).map_err(|_| damaged())?);
        let (wire, log_root) = if version == 2 {
            let (v2, rest) =
                postcard::take_from_bytes::<InviteWireV2>(&bytes).map_err(|_| damaged())?;
            if !rest.is_empty() {
                return Err(damaged());
            }
            (v2.v1, Some(v2.log_root))
        } else {
            let wire: InviteWire = postcard::from_bytes(&bytes).map_err(|_| damaged())?;
            (wire, None)
        };
        Ok(Self {
            log_root,
            relay: wire.relay,
            alliance: wire.alliance,
            invite: wire.invite,
            inviter: wire.inviter,
            token: wire.token.0,
            identity: AgeIdentity::from_secret_bytes(&wire.identity.0),
            signing: SigningKey::from_bytes(&wire.signing.0),
        })
    }

    /// The token, as the joining device sends it to the relay (hex).
    pub fn token_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.token))
    }

    /// The token's SHA-256 (hex), which is all the relay keeps.
    pub fn token_sha256(&self) -> String {
        hex::encode(Sha256::digest(*self.token))
    }

    /// The identity the package is encrypted to.
    pub fn identity(&self) -> &AgeIdentity {
        &self.identity
    }

    /// The invite's public Ed25519 key, as the membership log names it.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Signs a join with the invite key.
    pub fn prove(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).to_bytes().to_vec()
    }
}

/// What a new device learns from its invite: signed by the inviter, encrypted
/// to the invite's identity.
#[derive(Serialize, Deserialize)]
pub struct InvitePackage {
    /// The alliance.
    pub alliance: AllianceId,
    /// Its name.
    pub alliance_name: String,
    /// The invite this package belongs to.
    pub invite: InviteId,
    /// The member the new device belongs to.
    pub member: MemberId,
    /// The member's role.
    pub role: Role,
    /// The member's cohort.
    pub cohort: Option<ScopeId>,
    /// For a device added to an existing member: their pseudonym.
    pub pseudonym: Option<String>,
    /// Epoch keys the new device may hold (the research team reads with its own keys).
    pub grants: Vec<Grant>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn links_and_codes_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut invite = Invite::generate(
            "http://localhost:8080/",
            AllianceId([1; 16]),
            DeviceId([2; 32]),
            [3; 32],
            &mut rng,
        );
        for text in [invite.link(), invite.code()] {
            let back = Invite::parse(&text).unwrap();
            assert_eq!(back.relay, "http://localhost:8080");
            assert_eq!(back.invite, invite.invite);
            assert_eq!(back.log_root, Some([3; 32]));
            assert_eq!(back.token_sha256(), invite.token_sha256());
            assert_eq!(back.identity().recipient(), invite.identity().recipient());
        }
        assert!(
            invite
                .link()
                .starts_with("http://localhost:8080/#join=kith2")
        );
        // A version 1 code (no pinned log) still reads, as itself.
        invite.log_root = None;
        let v1 = invite.code();
        assert!(v1.starts_with("kith1"));
        let back = Invite::parse(&v1).unwrap();
        assert_eq!(back.log_root, None);
        assert_eq!(back.code().as_str(), v1.as_str());
        // A version 1 body under the version 2 prefix is damaged, not read.
        assert!(Invite::parse(&v1.replacen("kith1", "kith2", 1)).is_err());
        assert!(Invite::parse("kith1abc").is_err());
        assert!(Invite::parse("hello").is_err());
    }
}
