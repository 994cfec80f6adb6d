//! Signed, then encrypted: every blob, key wrap and invite package is a
//! standard age v1 file whose plaintext is
//!
//! ```text
//! label (ASCII, ends in '\n') || postcard(Signed { body, signer, signature })
//! ```
//!
//! where `body` is the postcard encoding of the payload and `signature` is
//! Ed25519 by `signer` over `label || body`. The label separates kinds of
//! payload, so a signature made for one kind never verifies as another.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::ids::DeviceId;
use crate::keys::{AgeIdentity, DeviceKeys, Recipient, verify};

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

/// Signs `body` with `keys`, then encrypts to `recipients`. Returns the age
/// file and the SHA-256 of the signed body.
pub fn seal<T: Serialize>(
    label: &[u8],
    body: &T,
    keys: &DeviceKeys,
    recipients: &[&Recipient],
) -> Result<(Vec<u8>, [u8; 32]), Error> {
    let body = postcard::to_allocvec(body).map_err(|_| Error::Encrypt)?;
    let body_hash = Sha256::digest(&body).into();
    let signature = keys.sign(&signing_message(label, &body)).to_vec();
    let signed = Signed {
        body,
        signer: keys.device_id(),
        signature,
    };
    let mut plaintext = label.to_vec();
    plaintext.extend(postcard::to_allocvec(&signed).map_err(|_| Error::Encrypt)?);
    Ok((encrypt(&plaintext, recipients)?, body_hash))
}

/// Decrypts with the first of `identities` that fits, then checks the signature.
pub fn open<T: DeserializeOwned>(
    label: &[u8],
    ciphertext: &[u8],
    identities: &[&AgeIdentity],
) -> Result<Opened<T>, OpenError> {
    let plaintext = decrypt(ciphertext, identities)?;
    let signed_bytes = plaintext
        .strip_prefix(label)
        .ok_or(OpenError::BadSignature)?;
    let signed: Signed = postcard::from_bytes(signed_bytes).map_err(|_| OpenError::BadSignature)?;
    if !verify(
        &signed.signer,
        &signing_message(label, &signed.body),
        &signed.signature,
    ) {
        return Err(OpenError::BadSignature);
    }
    let body = postcard::from_bytes(&signed.body).map_err(|_| OpenError::BadSignature)?;
    Ok(Opened {
        signer: signed.signer,
        body_hash: Sha256::digest(&signed.body).into(),
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
        let forged = encrypt(&plaintext, &[&reader.recipient()]).unwrap();
        assert_eq!(
            open::<String>(BLOB_LABEL, &forged, &[&reader]).err(),
            Some(OpenError::BadSignature)
        );
    }
}
