//! Names the relay must not read (the alliance's and cohorts' names,
//! members' pseudonyms) sit in the membership log sealed to the alliance
//! scope: a standard age file to its current epoch recipient. Each is padded
//! to one size first, so a sealed name's length says nothing of the name
//! ("Parents" and "Young people" look alike).

use std::collections::HashMap;

use crate::envelope::{decrypt, encrypt};
use crate::error::Error;
use crate::ids::MemberId;
use crate::keys::{AgeIdentity, EpochKey, Recipient};
use crate::membership::Membership;

/// The most bytes a name may have: 64 characters of up to 4 bytes each.
const MAX_NAME_BYTES: usize = 256;
/// Marks a padded name: no UTF-8 text starts with this byte, so names sealed
/// before padding (plain UTF-8) still open.
const PADDED: u8 = 0xff;
/// Every padded name's size: the marker, the length (2 bytes), the room.
const PADDED_LEN: usize = 1 + 2 + MAX_NAME_BYTES;

/// Seals `name` to the alliance scope's recipient, padded to one size.
pub(crate) fn seal_name(name: &str, alliance_recipient: &str) -> Result<Vec<u8>, Error> {
    let recipient = Recipient::parse(alliance_recipient)?;
    encrypt(&pad_name(name)?, &[&recipient])
}

fn pad_name(name: &str) -> Result<Vec<u8>, Error> {
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NAME_BYTES {
        return Err(Error::Invalid("the name must be 1 to 64 characters"));
    }
    let mut padded = Vec::with_capacity(PADDED_LEN);
    padded.push(PADDED);
    padded.extend_from_slice(
        &u16::try_from(bytes.len())
            .expect("at most 256")
            .to_be_bytes(),
    );
    padded.extend_from_slice(bytes);
    padded.resize(PADDED_LEN, 0);
    Ok(padded)
}

/// A name from what a sealed name holds: padded, or (sealed before padding)
/// plain UTF-8.
fn unpad_name(plain: &[u8]) -> Option<String> {
    let text = match plain.split_first() {
        Some((&PADDED, rest)) => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            if plain.len() != PADDED_LEN || len > MAX_NAME_BYTES {
                return None;
            }
            &rest[..len]
        }
        _ => plain,
    };
    String::from_utf8(text.to_vec()).ok()
}

/// Opens a sealed name with any alliance-scope key among `keys`.
pub(crate) fn open_name(
    sealed: &[u8],
    membership: &Membership,
    keys: &[EpochKey],
) -> Option<String> {
    if sealed.is_empty() {
        return None;
    }
    let scope = membership.alliance_scope()?;
    let identities: Vec<&AgeIdentity> = keys
        .iter()
        .filter(|k| k.scope == scope)
        .map(|k| &k.identity)
        .collect();
    unpad_name(&decrypt(sealed, &identities).ok()?)
}

/// Whether a member of `membership` already goes by `name` (compared as
/// [`comparable`]), as far as the alliance-scope keys in `keys` can tell.
pub(crate) fn taken(name: &str, membership: &Membership, keys: &[EpochKey]) -> bool {
    let Some(scope) = membership.alliance_scope() else {
        return false;
    };
    let identities: Vec<&AgeIdentity> = keys
        .iter()
        .filter(|k| k.scope == scope)
        .map(|k| &k.identity)
        .collect();
    let wanted = comparable(name);
    membership.members().any(|(_, info)| {
        !info.sealed_pseudonym.is_empty()
            && decrypt(&info.sealed_pseudonym, &identities)
                .ok()
                .and_then(|plain| unpad_name(&plain))
                .is_some_and(|theirs| comparable(&theirs) == wanted)
    })
}

/// A pseudonym as compared for uniqueness: Unicode compatibility
/// normalisation (NFKC), then lower case, with runs of spaces made one. So
/// "Alex", "ALEX", "Ａｌｅｘ" and "alex " are the same name.
pub(crate) fn comparable(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = name.nfkc().flat_map(char::to_lowercase).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The names shown for members, opened from the membership log in the order
/// members joined. Pseudonyms are unique (a join with a taken name is
/// refused), but a changed client could skip that check: a later member whose
/// name matches an earlier one's is shown as "Alex (2)", so no one can pass
/// for someone else. A name this reader cannot open is shown as "a member".
pub(crate) struct ShownNames {
    names: HashMap<MemberId, String>,
}

impl ShownNames {
    pub(crate) fn of(membership: &Membership, keys: &[EpochKey]) -> Self {
        Self::from_join_order(
            membership
                .members_in_join_order()
                .into_iter()
                .map(|(member, info)| {
                    (member, open_name(&info.sealed_pseudonym, membership, keys))
                }),
        )
    }

    /// From each member's name (if it could be opened), in join order.
    fn from_join_order(members: impl Iterator<Item = (MemberId, Option<String>)>) -> Self {
        let mut names = HashMap::new();
        let mut taken: HashMap<String, usize> = HashMap::new();
        for (member, name) in members {
            let Some(name) = name else { continue };
            let seen = taken.entry(comparable(&name)).or_insert(0);
            *seen += 1;
            let shown = if *seen == 1 {
                name
            } else {
                format!("{} ({seen})", name.trim())
            };
            names.insert(member, shown);
        }
        Self { names }
    }

    /// The name to show for `member`.
    pub(crate) fn of_member(&self, member: &MemberId) -> String {
        self.get(member).unwrap_or_else(|| "a member".to_owned())
    }

    /// Every name this reader could open.
    pub(crate) fn to_map(&self) -> HashMap<MemberId, String> {
        self.names.clone()
    }

    /// The name to show for `member`, if this reader could open it.
    pub(crate) fn get(&self, member: &MemberId) -> Option<String> {
        self.names.get(member).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_after_normalising_case_and_spaces() {
        assert_eq!(comparable("Alex"), comparable("ALEX"));
        assert_eq!(comparable("Alex"), comparable("  alex "));
        assert_eq!(comparable("Alex"), comparable("Ａｌｅｘ")); // full-width letters
        assert_eq!(comparable("Jo Ann"), comparable("jo   ann"));
        assert_ne!(comparable("Alex"), comparable("Alexa"));
    }

    #[test]
    fn a_later_member_with_a_taken_name_is_shown_apart() {
        let [a, b, c, d] = [1, 2, 3, 4].map(|n| MemberId([n; 16]));
        let shown = ShownNames::from_join_order(
            [
                (a, Some("Alex".to_owned())),
                (b, Some("alex".to_owned())),
                (c, None),
                (d, Some("ALEX ".to_owned())),
            ]
            .into_iter(),
        );
        assert_eq!(shown.of_member(&a), "Alex");
        assert_eq!(shown.of_member(&b), "alex (2)");
        assert_eq!(shown.of_member(&c), "a member");
        assert_eq!(shown.of_member(&d), "ALEX (3)");
    }

    #[test]
    fn every_sealed_name_has_one_size_and_opens_to_itself() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let identity = AgeIdentity::generate(&mut rng);
        let recipient = identity.recipient().to_string();
        let names = [
            "P",
            "Parents",
            "Young people",
            "家族と親族",
            &"é".repeat(64),
            &"𝔸".repeat(64),
        ];
        let sealed: Vec<Vec<u8>> = names
            .iter()
            .map(|n| seal_name(n, &recipient).unwrap())
            .collect();
        for (name, sealed) in names.iter().zip(&sealed) {
            let plain = decrypt(sealed, &[&identity]).unwrap();
            assert_eq!(unpad_name(&plain).as_deref(), Some(*name));
        }
        // age varies each file's header on purpose (a random "grease"
        // stanza); what follows it, the encrypted name, has one size: a
        // 16-byte nonce and the padded name with its 16-byte tag.
        let payload_len = |file: &[u8]| {
            let mac_line = file.windows(5).position(|w| w == b"\n--- ").unwrap() + 1;
            let end = mac_line + file[mac_line..].iter().position(|b| *b == b'\n').unwrap();
            file.len() - end - 1
        };
        for file in &sealed {
            assert_eq!(payload_len(file), 16 + PADDED_LEN + 16);
        }
        // Sealed before padding: plain UTF-8 still opens.
        let old = encrypt(b"Parents", &[&identity.recipient()]).unwrap();
        assert_eq!(
            unpad_name(&decrypt(&old, &[&identity]).unwrap()).as_deref(),
            Some("Parents")
        );
        // Too long to pad, and padding that lies about its length.
        assert!(seal_name(&"x".repeat(257), &recipient).is_err());
        let mut lying = pad_name("Alex").unwrap();
        lying[1..3].copy_from_slice(&300u16.to_be_bytes());
        assert_eq!(unpad_name(&lying), None);
        assert_eq!(unpad_name(&lying[..10]), None);
    }
}
