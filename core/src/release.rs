//! Signed releases of the app.
//!
//! Every app build writes `kith-release.json`: each file with its SHA-256
//! (`web/app/scripts/release-manifest.mjs`). Whoever keeps the alliance's
//! release key signs those exact bytes (`kith release sign`), and the
//! steward pins the key's public half in the membership log
//! ([`crate::membership::Action::PinReleaseKey`]), so every device learns it
//! from the log it pinned at join. The installed app offers an update only
//! when the update's service worker is the file a manifest signed with the
//! pinned key names; that service worker pins every other file by its hash.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The manifest's file name, beside `index.html`.
pub const MANIFEST_FILE: &str = "kith-release.json";
/// The signature's file name, beside the manifest.
pub const SIGNATURE_FILE: &str = "kith-release.sig";

/// Domain separation for release signatures.
const LABEL: &[u8] = b"kith/release/v1\n";
const PUBLIC_PREFIX: &str = "kith-release-key:";
const SECRET_PREFIX: &str = "KITH-RELEASE-SECRET-KEY:";
const MANIFEST_FORMAT: &str = "kith-release/1";
const SIGNATURE_FORMAT: &str = "kith-release-signature/1";

/// Why a release key, manifest or signature was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReleaseError {
    /// A public release key in text form could not be read.
    #[error(
        "this is not a release key; it should look like kith-release-key: followed by 64 hex digits (kith release keygen prints one)"
    )]
    BadPublicKey,
    /// A secret release key file could not be read.
    #[error(
        "this is not a release signing key; it should hold one line starting KITH-RELEASE-SECRET-KEY: (kith release keygen writes one)"
    )]
    BadSecretKey,
    /// There is no signature, or it is not a signature file.
    #[error("the release is not signed (no readable {SIGNATURE_FILE})")]
    NotSigned,
    /// Signed, but with a key the alliance has not pinned.
    #[error("the release is signed with a key this alliance has not pinned")]
    OtherKey,
    /// The signature does not match the manifest.
    #[error("the release's signature does not match its manifest")]
    BadSignature,
    /// The manifest is not one a Kith build writes.
    #[error("the release manifest could not be read ({0})")]
    BadManifest(String),
}

/// The public half of a release key, as the membership log pins it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseKey(pub [u8; 32]);

impl ReleaseKey {
    /// Reads `kith-release-key:` followed by 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, ReleaseError> {
        let hex_part = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or(ReleaseError::BadPublicKey)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| ReleaseError::BadPublicKey)?;
        Self::from_bytes(bytes)
    }

    /// A key from its 32 bytes, if they are an Ed25519 public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, ReleaseError> {
        VerifyingKey::from_bytes(&bytes).map_err(|_| ReleaseError::BadPublicKey)?;
        Ok(Self(bytes))
    }

    /// Checks `signature` over `manifest`.
    fn verifies(&self, manifest: &[u8], signature: &[u8]) -> bool {
        let (Ok(key), Ok(signature)) = (
            VerifyingKey::from_bytes(&self.0),
            Signature::from_slice(signature),
        ) else {
            return false;
        };
        key.verify(&[LABEL, manifest].concat(), &signature).is_ok()
    }
}

impl std::fmt::Display for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", hex::encode(self.0))
    }
}

/// The secret half, kept by whoever signs releases (never on a phone).
pub struct ReleaseSigningKey(SigningKey);

impl std::fmt::Debug for ReleaseSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReleaseSigningKey({})", self.public())
    }
}

impl ReleaseSigningKey {
    /// A new key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(SigningKey::generate(rng))
    }

    /// Reads a key file as [`ReleaseSigningKey::export`] writes it.
    pub fn parse(text: &str) -> Result<Self, ReleaseError> {
        let hex_part = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(ReleaseError::BadSecretKey)?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_part, bytes.as_mut()).map_err(|_| ReleaseError::BadSecretKey)?;
        Ok(Self(SigningKey::from_bytes(&bytes)))
    }

    /// The key file's text.
    pub fn export(&self) -> Zeroizing<String> {
        use std::fmt::Write;
        let secret = Zeroizing::new(self.0.to_bytes());
        // Written straight into a zeroized string: no copy of the hex is left behind.
        let mut text = Zeroizing::new(String::with_capacity(SECRET_PREFIX.len() + 65));
        text.push_str(SECRET_PREFIX);
        for byte in secret.iter() {
            let _ = write!(text, "{byte:02x}");
        }
        text.push('\n');
        text
    }

    /// Its public half.
    pub fn public(&self) -> ReleaseKey {
        ReleaseKey(self.0.verifying_key().to_bytes())
    }

    /// The text of `kith-release.sig` for these exact manifest bytes.
    pub fn sign(&self, manifest: &[u8]) -> String {
        let signature = self.0.sign(&[LABEL, manifest].concat());
        let file = SignatureFile {
            format: SIGNATURE_FORMAT.into(),
            key: self.public().to_string(),
            signature: hex::encode(signature.to_bytes()),
        };
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `kith-release.sig`.
#[derive(Serialize, Deserialize)]
struct SignatureFile {
    format: String,
    key: String,
    signature: String,
}

/// `kith-release.json`: every file of one build of the app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseManifest {
    /// `kith-release/1`.
    pub format: String,
    /// The files, sorted by path.
    pub files: Vec<ReleaseFile>,
}

/// One file of a build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFile {
    /// Its path from the app's root, with `/` between folders.
    pub path: String,
    /// SHA-256 of its bytes, in lowercase hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

impl ReleaseManifest {
    /// Reads a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReleaseError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ReleaseError::BadManifest(e.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(ReleaseError::BadManifest(format!(
                "its format is {:?}, not {MANIFEST_FORMAT}",
                manifest.format
            )));
        }
        Ok(manifest)
    }

    /// The hash it gives for `path`.
    pub fn sha256_of(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.sha256.as_str())
    }
}

/// Checks that `signature_file` is a signature with `pinned` over exactly
/// `manifest`, and returns the manifest.
pub fn verify_release(
    pinned: &ReleaseKey,
    manifest: &[u8],
    signature_file: &[u8],
) -> Result<ReleaseManifest, ReleaseError> {
    let file: SignatureFile =
        serde_json::from_slice(signature_file).map_err(|_| ReleaseError::NotSigned)?;
    if file.format != SIGNATURE_FORMAT {
        return Err(ReleaseError::NotSigned);
    }
    if ReleaseKey::parse(&file.key).ok().as_ref() != Some(pinned) {
        return Err(ReleaseError::OtherKey);
    }
    let signature = hex::decode(&file.signature).map_err(|_| ReleaseError::BadSignature)?;
    if !pinned.verifies(manifest, &signature) {
        return Err(ReleaseError::BadSignature);
    }
    ReleaseManifest::parse(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const MANIFEST: &[u8] = br#"{
  "format": "kith-release/1",
  "files": [
    { "path": "index.html", "sha256": "aa", "bytes": 1 },
    { "path": "sw.js", "sha256": "bb", "bytes": 2 }
  ]
}
"#;

    #[test]
    fn a_signed_manifest_verifies_with_the_pinned_key() {
        let key = ReleaseSigningKey::generate(&mut OsRng);
        let signature = key.sign(MANIFEST);
        let manifest = verify_release(&key.public(), MANIFEST, signature.as_bytes()).unwrap();
        assert_eq!(manifest.sha256_of("sw.js"), Some("bb"));
        assert_eq!(manifest.sha256_of("other.js"), None);
    }

    #[test]
    fn keys_survive_their_text_forms() {
        let key = ReleaseSigningKey::generate(&mut OsRng);
        let again = ReleaseSigningKey::parse(&key.export()).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(
            ReleaseKey::parse(&key.public().to_string()).unwrap(),
            key.public()
        );
        assert_eq!(
            ReleaseKey::parse("age1qqqq"),
            Err(ReleaseError::BadPublicKey)
        );
        assert_eq!(
            ReleaseSigningKey::parse("kith-release-key:00").map(|_| ()),
            Err(ReleaseError::BadSecretKey)
        );
    }

    #[test]
    fn a_changed_manifest_or_another_key_is_refused() {
        let key = ReleaseSigningKey::generate(&mut OsRng);
        let other = ReleaseSigningKey::generate(&mut OsRng);
        let signature = key.sign(MANIFEST);
        let changed = String::from_utf8_lossy(MANIFEST).replace("bb", "cc");
        assert_eq!(
            verify_release(&key.public(), changed.as_bytes(), signature.as_bytes()),
            Err(ReleaseError::BadSignature)
        );
        assert_eq!(
            verify_release(&other.public(), MANIFEST, signature.as_bytes()),
            Err(ReleaseError::OtherKey)
        );
        // A signature file naming the pinned key but made by another.
        let forged = other
            .sign(MANIFEST)
            .replace(&other.public().to_string(), &key.public().to_string());
        assert_eq!(
            verify_release(&key.public(), MANIFEST, forged.as_bytes()),
            Err(ReleaseError::BadSignature)
        );
        // What a server answers for a file it does not have: the app's page.
        assert_eq!(
            verify_release(&key.public(), MANIFEST, b"<!doctype html>"),
            Err(ReleaseError::NotSigned)
        );
    }

    #[test]
    fn a_signature_from_another_domain_is_refused() {
        // The same key signing the bare bytes (as if for another purpose).
        let key = ReleaseSigningKey::generate(&mut OsRng);
        let bare = key.0.sign(MANIFEST);
        let file = SignatureFile {
            format: SIGNATURE_FORMAT.into(),
            key: key.public().to_string(),
            signature: hex::encode(bare.to_bytes()),
        };
        let text = serde_json::to_string(&file).unwrap();
        assert_eq!(
            verify_release(&key.public(), MANIFEST, text.as_bytes()),
            Err(ReleaseError::BadSignature)
        );
    }
}
