//! Names the relay must not read (the alliance's and cohorts' names,
//! members' pseudonyms) sit in the membership log sealed to the alliance
//! scope: a standard age file to its current epoch recipient.

use crate::envelope::{decrypt, encrypt};
use crate::error::Error;
use crate::keys::{AgeIdentity, Recipient};
use crate::membership::Membership;
use crate::reader::Reader;

/// Seals `name` to the alliance scope's recipient.
pub(crate) fn seal_name(name: &str, alliance_recipient: &str) -> Result<Vec<u8>, Error> {
    let recipient = Recipient::parse(alliance_recipient)?;
    encrypt(name.as_bytes(), &[&recipient])
}

/// Opens a sealed name with any alliance-scope key the reader holds.
pub(crate) fn open_name(sealed: &[u8], membership: &Membership, reader: &Reader) -> Option<String> {
    if sealed.is_empty() {
        return None;
    }
    let scope = membership.alliance_scope()?;
    let identities: Vec<&AgeIdentity> = reader
        .epoch_keys()
        .iter()
        .filter(|k| k.scope == scope)
        .map(|k| &k.identity)
        .collect();
    let plain = decrypt(sealed, &identities).ok()?;
    String::from_utf8(plain).ok()
}
