//! Signed, then encrypted: every blob, key wrap and invite package is a
//! standard age v1 file whose plaintext is
//!
//! ```text
//! label (ASCII, ends in '\n') || postcard(Signed { body, signer, signature }) || zeros
//! ```
//!
//! where `body` is the postcard encoding of the payload and `signature` is
//! Ed25519 by `signer` over `label || body`. The label separates kinds of
//! payload, so a signature made for one kind never verifies as another.
//!
//! The zero bytes pad the whole plaintext to [`padded_len`] of its length
//! (PADMÉ, at least 1024 bytes), so the size of the age file says little
//! about the size of what is inside. Postcard delimits `Signed` itself; on
//! opening, what follows it must be exactly that padding, all zeros, or the
//! envelope is refused, so each signed payload has one valid plaintext.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::ids::DeviceId;
use crate::keys::{AgeIdentity, DeviceKeys, Recipient, verify};
use crate::padding;
use zeroize::Zeroizing;

pub use crate::padding::padded_len;

/// The label of relay blobs (change batches and epoch grants).
pub const BLOB_LABEL: &[u8] = b"kith/blob/v1\n";
/// The label of invite packages.
pub const INVITE_LABEL: &[u8] = b"kith/invite/v1\n";

#[derive(Serialize, Deserialize)]
struct Signed {
    body: Vec<u8>,
    signer: DeviceId,
    signature: Vec<u8>,
}

/// A payload that was opened and whose signature checked out.
pub struct Opened<T> {
    /// The device that signed it.
    pub signer: DeviceId,
    /// The payload.
    pub body: T,
    /// SHA-256 of the signed body bytes; links a device's batches into a chain.
    pub body_hash: [u8; 32],
}

/// Why an envelope could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// None of the given identities can open it. Not an attack by itself:
    /// blobs of scopes this device is not in look like this.
    #[error("not readable with the keys on this device")]
    NotForUs,
    /// It is not an age file, or its ciphertext or header was changed.
    #[error("the encrypted data is damaged or was altered")]
    Damaged,
    /// It opened, but the signature does not match, or the payload is malformed.
    #[error("the signature does not match its content")]
    BadSignature,
}

/// Signs `body` with `keys`, pads, then encrypts to `recipients`. Returns
/// the age file and the SHA-256 of the signed body.
pub fn seal<T: Serialize>(
    label: &[u8],
    body: &T,
    keys: &DeviceKeys,
    recipients: &[&Recipient],
) -> Result<(Vec<u8>, [u8; 32]), Error> {
    seal_with(label, body, keys, recipients, Padding::Padme)
}

/// Decrypts with the first of `identities` that fits, then checks the
/// padding and the signature.
pub fn open<T: DeserializeOwned>(
    label: &[u8],
    ciphertext: &[u8],
    identities: &[&AgeIdentity],
) -> Result<Opened<T>, OpenError> {
    open_with(label, ciphertext, identities, Padding::Padme)
}

/// [`seal`] without the padding: the format before padding, kept only as
/// the baseline the envelope benchmark measures against. Not for use.
#[doc(hidden)]
pub fn seal_unpadded<T: Serialize>(
    label: &[u8],
    body: &T,
    keys: &DeviceKeys,
    recipients: &[&Recipient],
) -> Result<(Vec<u8>, [u8; 32]), Error> {
    seal_with(label, body, keys, recipients, Padding::None)
}

/// [`open`] for what [`seal_unpadded`] makes; the benchmark's baseline only.
/// [`open`] refuses such envelopes.
#[doc(hidden)]
pub fn open_unpadded<T: DeserializeOwned>(
    label: &[u8],
    ciphertext: &[u8],
    identities: &[&AgeIdentity],
) -> Result<Opened<T>, OpenError> {
    open_with(label, ciphertext, identities, Padding::None)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    Padme,
    None,
}

fn seal_with<T: Serialize>(
    label: &[u8],
    body: &T,
    keys: &DeviceKeys,
    recipients: &[&Recipient],
    mode: Padding,
) -> Result<(Vec<u8>, [u8; 32]), Error> {
    // Payloads can hold keys (grants, invite packages): every plaintext
    // copy is wiped when dropped.
    // The body may hold keys (a grant, an invite package): it is encrypted next.
    let body = Zeroizing::new(
        crate::sealing::sealing(|| postcard::to_allocvec(body)).map_err(|_| Error::Encrypt)?,
    );
    let body_hash = Sha256::digest(&*body).into();
    let signature = keys.sign(&signing_message(label, &body)).to_vec();
    let signed = Signed {
        body: body.to_vec(),
        signer: keys.device_id(),
        signature,
    };
    let signed_bytes = Zeroizing::new(postcard::to_allocvec(&signed).map_err(|_| Error::Encrypt)?);
    drop(Zeroizing::new(signed.body));
    let content_len = label.len() + signed_bytes.len();
    let mut plaintext = Vec::with_capacity(match mode {
        Padding::Padme => padded_len(content_len),
        Padding::None => content_len,
    });
    plaintext.extend_from_slice(label);
    plaintext.extend_from_slice(&signed_bytes);
    if mode == Padding::Padme {
        plaintext = padding::pad(plaintext);
    }
    let plaintext = Zeroizing::new(plaintext);
    Ok((encrypt(&plaintext, recipients)?, body_hash))
}

fn open_with<T: DeserializeOwned>(
    label: &[u8],
    ciphertext: &[u8],
    identities: &[&AgeIdentity],
    mode: Padding,
) -> Result<Opened<T>, OpenError> {
    let plaintext = Zeroizing::new(decrypt(ciphertext, identities)?);
    let signed_bytes = plaintext
        .strip_prefix(label)
        .ok_or(OpenError::BadSignature)?;
    let (signed, rest): (Signed, &[u8]) =
        postcard::take_from_bytes(signed_bytes).map_err(|_| OpenError::BadSignature)?;
    let content_len = plaintext.len() - rest.len();
    let canonical = match mode {
        Padding::Padme => padding::unpad(&plaintext, content_len).is_some(),
        Padding::None => rest.is_empty(),
    };
    if !canonical {
        return Err(OpenError::BadSignature);
    }
    if !verify(
        &signed.signer,
        &signing_message(label, &signed.body),
        &signed.signature,
    ) {
        return Err(OpenError::BadSignature);
    }
    let body = postcard::from_bytes(&signed.body).map_err(|_| OpenError::BadSignature)?;
    let body_hash = Sha256::digest(&signed.body).into();
    drop(Zeroizing::new(signed.body));
    Ok(Opened {
        signer: signed.signer,
        body_hash,
        body,
    })
}

fn signing_message(label: &[u8], body: &[u8]) -> Vec<u8> {
    [label, body].concat()
}

/// Encrypts to each recipient as a standard age v1 file.
pub fn encrypt(plaintext: &[u8], recipients: &[&Recipient]) -> Result<Vec<u8>, Error> {
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_age() as &dyn age::Recipient),
    )
    .map_err(|_| Error::Encrypt)?;
    let mut out = Vec::with_capacity(plaintext.len() + 200 * recipients.len());
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|_| Error::Encrypt)?;
    writer.write_all(plaintext).map_err(|_| Error::Encrypt)?;
    writer.finish().map_err(|_| Error::Encrypt)?;
    Ok(out)
}

/// Decrypts a standard age v1 file with the first identity that fits.
pub fn decrypt(ciphertext: &[u8], identities: &[&AgeIdentity]) -> Result<Vec<u8>, OpenError> {
    let decryptor = age::Decryptor::new(ciphertext).map_err(|_| OpenError::Damaged)?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_age() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => OpenError::NotForUs,
            _ => OpenError::Damaged,
        })?;
    let mut plaintext = Vec::new();
    reader
        .read_to_end(&mut plaintext)
        .map_err(|_| OpenError::Damaged)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn sealed_payloads_open_only_for_their_recipient_and_detect_changes() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let author = DeviceKeys::generate(&mut rng);
        let reader = AgeIdentity::generate(&mut rng);
        let stranger = AgeIdentity::generate(&mut rng);
        let (sealed, _) = seal(
            BLOB_LABEL,
            &"hello".to_string(),
            &author,
            &[&reader.recipient()],
        )
        .unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1\n"));

        let opened: Opened<String> = open(BLOB_LABEL, &sealed, &[&reader]).unwrap();
        assert_eq!(opened.body, "hello");
        assert_eq!(opened.signer, author.device_id());

        assert_eq!(
            open::<String>(BLOB_LABEL, &sealed, &[&stranger]).err(),
            Some(OpenError::NotForUs)
        );
        assert_eq!(
            open::<String>(INVITE_LABEL, &sealed, &[&reader]).err(),
            Some(OpenError::BadSignature)
        );
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(
            open::<String>(BLOB_LABEL, &altered, &[&reader]).err(),
            Some(OpenError::Damaged)
        );
    }

    /// The length of an age file after its header. age (rage) adds a
    /// "grease" stanza of random length to every header, so the size of the
    /// whole file varies by up to about 200 bytes from one sealing to the
    /// next, whatever it holds; what follows the header depends only on the
    /// plaintext length.
    fn payload_len(age_file: &[u8]) -> usize {
        let mac_line = age_file
            .windows(5)
            .position(|w| w == b"\n--- ")
            .expect("an age header")
            + 1;
        let header_end = mac_line
            + age_file[mac_line..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap()
            + 1;
        age_file.len() - header_end
    }

    #[test]
    fn short_bodies_of_different_lengths_seal_to_the_same_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let author = DeviceKeys::generate(&mut rng);
        let reader = AgeIdentity::generate(&mut rng);
        let seal_len = |body: &str, padded: bool| {
            let body = body.to_string();
            let recipients = [&reader.recipient()];
            let (sealed, _) = if padded {
                seal(BLOB_LABEL, &body, &author, &recipients)
            } else {
                seal_unpadded(BLOB_LABEL, &body, &author, &recipients)
            }
            .unwrap();
            let opened: Opened<String> = if padded {
                open(BLOB_LABEL, &sealed, &[&reader])
            } else {
                open_unpadded(BLOB_LABEL, &sealed, &[&reader])
            }
            .unwrap();
            assert_eq!(opened.body, body);
            payload_len(&sealed)
        };

        let short = ["", "ok", &"x".repeat(100), &"y".repeat(800)];
        let padded: Vec<usize> = short.iter().map(|b| seal_len(b, true)).collect();
        assert!(padded.iter().all(|&n| n == padded[0]), "{padded:?}");
        // The minimum plaintext, 1024 bytes, plus age's nonce and tag.
        assert_eq!(padded[0], 1024 + 16 + 16);
        let unpadded: Vec<usize> = short.iter().map(|b| seal_len(b, false)).collect();
        assert!(unpadded.windows(2).all(|w| w[0] < w[1]), "{unpadded:?}");

        // Longer bodies fall into PADMÉ's buckets: 1000 and 1010 bytes of body
        // look alike; the unpadded format told them apart.
        let (a, b) = ("z".repeat(1000), "z".repeat(1010));
        assert_eq!(seal_len(&a, true), seal_len(&b, true));
        assert_ne!(seal_len(&a, false), seal_len(&b, false));
    }

    /// Encrypts `label || postcard(signed) || padding` as it is, the way a
    /// sender with its own code could.
    fn sealed_with_padding(
        author: &DeviceKeys,
        reader: &AgeIdentity,
        padding: impl FnOnce(&mut Vec<u8>),
    ) -> Vec<u8> {
        let body = postcard::to_allocvec(&"hello".to_string()).unwrap();
        let signature = author.sign(&signing_message(BLOB_LABEL, &body)).to_vec();
        let mut plaintext = BLOB_LABEL.to_vec();
        plaintext.extend(
            postcard::to_allocvec(&Signed {
                body,
                signer: author.device_id(),
                signature,
            })
            .unwrap(),
        );
        padding(&mut plaintext);
        encrypt(&plaintext, &[&reader.recipient()]).unwrap()
    }

    #[test]
    fn padding_must_be_exactly_the_zeros_seal_adds() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let author = DeviceKeys::generate(&mut rng);
        let reader = AgeIdentity::generate(&mut rng);
        let check = |sealed: &[u8]| open::<String>(BLOB_LABEL, sealed, &[&reader]).err();

        let canonical = sealed_with_padding(&author, &reader, |p| {
            p.resize(padded_len(p.len()), 0);
        });
        assert_eq!(check(&canonical), None);

        let non_zero = sealed_with_padding(&author, &reader, |p| {
            p.resize(padded_len(p.len()), 0);
            *p.last_mut().unwrap() = 1;
        });
        assert_eq!(check(&non_zero), Some(OpenError::BadSignature));

        let too_long = sealed_with_padding(&author, &reader, |p| {
            p.resize(padded_len(p.len()) + 1, 0);
        });
        assert_eq!(check(&too_long), Some(OpenError::BadSignature));

        let too_short = sealed_with_padding(&author, &reader, |p| {
            p.resize(padded_len(p.len()) - 1, 0);
        });
        assert_eq!(check(&too_short), Some(OpenError::BadSignature));

        let unpadded = sealed_with_padding(&author, &reader, |_| {});
        assert_eq!(check(&unpadded), Some(OpenError::BadSignature));
        assert!(open_unpadded::<String>(BLOB_LABEL, &unpadded, &[&reader]).is_ok());
    }

    #[test]
    fn anyone_with_the_recipient_can_encrypt_but_not_forge_a_signature() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let author = DeviceKeys::generate(&mut rng);
        let reader = AgeIdentity::generate(&mut rng);
        // A forger re-encrypts a signed payload with one byte of the body changed.
        let body = postcard::to_allocvec(&"pay 10".to_string()).unwrap();
        let signature = author.sign(&signing_message(BLOB_LABEL, &body)).to_vec();
        let mut forged_body = body.clone();
        *forged_body.last_mut().unwrap() = b'9';
        let mut plaintext = BLOB_LABEL.to_vec();
        plaintext.extend(
            postcard::to_allocvec(&Signed {
                body: forged_body,
                signer: author.device_id(),
                signature,
            })
            .unwrap(),
        );
        plaintext.resize(padded_len(plaintext.len()), 0);
        let forged = encrypt(&plaintext, &[&reader.recipient()]).unwrap();
        assert_eq!(
            open::<String>(BLOB_LABEL, &forged, &[&reader]).err(),
            Some(OpenError::BadSignature)
        );
    }
}
