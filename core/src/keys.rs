//! Device keys and epoch keys. Secret types have no `Debug`, `Display` or
//! `Serialize`; they leave memory only through the explicit `export_secret`
//! methods, and zeroize on drop.

use age::secrecy::ExposeSecret;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;
use crate::ids::{DeviceId, ScopeId};

const AGE_SECRET_HRP: bech32::Hrp = bech32::Hrp::parse_unchecked("AGE-SECRET-KEY-");

/// An age X25519 identity (`AGE-SECRET-KEY-1...`).
#[derive(Clone)]
pub struct AgeIdentity(age::x25519::Identity);

impl AgeIdentity {
    /// A new identity from the caller's random source.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        Self::from_secret_bytes(&secret)
    }

    /// The identity whose X25519 secret scalar is these 32 bytes.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        // age parses identities only from their Bech32 text, so go through it.
        let mut text = bech32::encode::<bech32::Bech32>(AGE_SECRET_HRP, secret)
            .expect("32 bytes always fit in Bech32");
        text.make_ascii_uppercase();
        let identity = text.parse().expect("a freshly encoded identity parses");
        text.zeroize();
        Self(identity)
    }

    /// Parses an identity file's text: blank lines and `#` comments are skipped,
    /// the first key line is used.
    pub fn parse(text: &str) -> Result<Self, Error> {
        text.lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .ok_or(Error::InvalidIdentity)?
            .parse()
            .map(Self)
            .map_err(|_| Error::InvalidIdentity)
    }

    /// The identity's standard text form, for writing to a file the user keeps.
    pub fn export_secret(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.to_string().expose_secret().to_owned())
    }

    /// The 32-byte secret scalar, for wrapping inside an encrypted payload.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let text = self.export_secret();
        let (_, bytes) = bech32::decode(&text).expect("our own identity decodes");
        let bytes = Zeroizing::new(bytes);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&bytes);
        out
    }

    /// The matching public recipient.
    pub fn recipient(&self) -> Recipient {
        Recipient(self.0.to_public())
    }

    pub(crate) fn as_age(&self) -> &age::x25519::Identity {
        &self.0
    }
}

/// An age X25519 recipient (`age1...`). Public.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient(age::x25519::Recipient);

impl Recipient {
    /// Parses `age1...`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        text.parse()
            .map(Self)
            .map_err(|_| Error::InvalidRecipient(text.to_owned()))
    }

    pub(crate) fn as_age(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.0)
    }
}

/// A device's own keys: Ed25519 to sign what it writes and requests it makes,
/// and an age identity that others wrap epoch keys to.
pub struct DeviceKeys {
    signing: SigningKey,
    decryption: AgeIdentity,
}

impl DeviceKeys {
    /// New keys from the caller's random source.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self {
            signing: SigningKey::generate(rng),
            decryption: AgeIdentity::generate(rng),
        }
    }

    /// This device's id: its Ed25519 verifying key.
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.signing.verifying_key().to_bytes())
    }

    /// The recipient that epoch keys are wrapped to for this device.
    pub fn recipient(&self) -> Recipient {
        self.decryption.recipient()
    }

    /// The device's age identity.
    pub fn identity(&self) -> &AgeIdentity {
        &self.decryption
    }

    /// Signs `message` (callers add their own domain separation).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The 64 secret bytes (signing seed, then X25519 scalar), for the device's
    /// own protected state file.
    pub fn export_secret(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(self.decryption.secret_bytes().as_ref());
        out
    }

    /// The inverse of [`DeviceKeys::export_secret`].
    pub fn import_secret(bytes: &[u8]) -> Result<Self, Error> {
        let (sign, age) = bytes
            .split_at_checked(32)
            .filter(|(_, age)| age.len() == 32)
            .ok_or(Error::CorruptState("device keys"))?;
        let sign: &[u8; 32] = sign.try_into().expect("split at 32");
        let age: &[u8; 32] = age.try_into().expect("checked length");
        Ok(Self {
            signing: SigningKey::from_bytes(sign),
            decryption: AgeIdentity::from_secret_bytes(age),
        })
    }
}

/// A recipient's fingerprint, for people to compare by eye with the one
/// an institution published ("who can read this"): the first 16 bytes of
/// the SHA-256 of its text, as eight groups of four hex digits.
pub fn fingerprint(recipient: &str) -> String {
    let digest = Sha256::digest(recipient.trim().as_bytes());
    digest[..16]
        .chunks(2)
        .map(|pair| format!("{:02x}{:02x}", pair[0], pair[1]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks an Ed25519 signature made by `device`.
pub fn verify(device: &DeviceId, message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(&device.0) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &signature).is_ok()
}

/// The key for one epoch of one readable scope.
#[derive(Clone)]
pub struct EpochKey {
    /// The scope it opens.
    pub scope: ScopeId,
    /// Which epoch of that scope.
    pub epoch: u32,
    /// The age identity; content is encrypted to its recipient.
    pub identity: AgeIdentity,
}

impl EpochKey {
    /// A fresh key for `scope` at `epoch`.
    pub fn generate(scope: ScopeId, epoch: u32, rng: &mut impl CryptoRngCore) -> Self {
        Self {
            scope,
            epoch,
            identity: AgeIdentity::generate(rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn device_keys_survive_export_and_import() {
        let keys = DeviceKeys::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let again = DeviceKeys::import_secret(&keys.export_secret()).unwrap();
        assert_eq!(again.device_id(), keys.device_id());
        assert_eq!(again.recipient(), keys.recipient());
        let sig = keys.sign(b"hello");
        assert!(verify(&keys.device_id(), b"hello", &sig));
        assert!(!verify(&keys.device_id(), b"hellO", &sig));
    }

    #[test]
    fn identities_are_standard_age_text() {
        let id = AgeIdentity::generate(&mut ChaCha20Rng::seed_from_u64(2));
        let text = id.export_secret();
        assert!(text.starts_with("AGE-SECRET-KEY-1"));
        let parsed = AgeIdentity::parse(&format!("# created: now\n{}\n", *text)).unwrap();
        assert_eq!(parsed.recipient(), id.recipient());
        assert!(id.recipient().to_string().starts_with("age1"));
    }
}
