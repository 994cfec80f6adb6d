//! Identifiers. Random ids are 16 bytes shown as 32 lowercase hex digits; a
//! device is named by its Ed25519 public key (32 bytes, 64 hex digits).

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Ids are hex strings in JSON and raw bytes in binary formats.
macro_rules! hex_serde {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    Deserialize::deserialize(d).map(Self)
                }
            }
        }
    };
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 16]);

        hex_serde!($name);

        impl $name {
            /// A fresh id from the given random source.
            pub fn random(rng: &mut impl CryptoRngCore) -> Self {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                parse_hex(s, stringify!($name)).map(Self)
            }
        }
    };
}

random_id!(
    /// One learning alliance.
    AllianceId
);
random_id!(
    /// A readable scope: a set of people who share one epoch key.
    ScopeId
);
random_id!(
    /// One Automerge document (for example one member's contributions in one scope).
    DocId
);
random_id!(
    /// One encrypted blob; chosen by the client so retried uploads never duplicate.
    BlobId
);
random_id!(
    /// One contribution (a reflection or a response).
    ContributionId
);
random_id!(
    /// One invite.
    InviteId
);
random_id!(
    /// One member: a person, who may use several devices.
    MemberId
);

/// A device, named by its Ed25519 verifying key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(pub [u8; 32]);

hex_serde!(DeviceId);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl FromStr for DeviceId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        parse_hex(s, "DeviceId").map(Self)
    }
}

/// An id in text form was not the right shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not valid: expected {expected_hex_digits} hex digits")]
pub struct InvalidId {
    /// Which kind of id.
    pub what: &'static str,
    /// How many hex digits it should have.
    pub expected_hex_digits: usize,
}

fn parse_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], InvalidId> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| InvalidId {
        what,
        expected_hex_digits: N * 2,
    })?;
    Ok(out)
}

impl DocId {
    /// The document holding one member's own writing in one scope. Derived,
    /// so each of a member's devices writes to the same document, and every
    /// reader can tell whose document a batch is for.
    pub fn own(member: MemberId, scope: ScopeId) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest([b"kith/doc/v1\n".as_slice(), &member.0, &scope.0].concat());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        DocId(id)
    }

    /// The document holding one member's own writing of a named kind in one
    /// scope (for every kind after the first: reflections use [`DocId::own`]).
    pub fn own_of_kind(kind: &str, member: MemberId, scope: ScopeId) -> Self {
        use sha2::{Digest, Sha256};
        let label = format!("kith/doc/v2/{kind}\n");
        let digest = Sha256::digest([label.as_bytes(), &member.0, &scope.0].concat());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        DocId(id)
    }

    /// The one document of a shared kind in one scope, which every member
    /// who writes the scope adds to.
    pub fn shared_of_kind(kind: &str, scope: ScopeId) -> Self {
        use sha2::{Digest, Sha256};
        let label = format!("kith/doc/v2/shared/{kind}\n");
        let digest = Sha256::digest([label.as_bytes(), &scope.0].concat());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        DocId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex() {
        let id = BlobId([7; 16]);
        assert_eq!(id.to_string().parse::<BlobId>().unwrap(), id);
        assert!("zz".parse::<BlobId>().is_err());
        assert!("0707".parse::<BlobId>().is_err());
    }
}
