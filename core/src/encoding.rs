//! Byte strings in serde formats: base64 text in JSON, raw bytes in binary
//! formats. A low module: the membership log and the relay's API use it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serializer};

/// Bytes as standard base64 in JSON and other text formats; plain bytes in
/// binary ones (postcard), so signed bodies carry no text encoding.
pub mod base64_bytes {
    use super::*;

    /// Serialize as base64 text, or as bytes in a binary format.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&BASE64.encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    /// The inverse of [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            BASE64
                .decode(text.as_bytes())
                .map_err(|_| serde::de::Error::custom("not valid base64"))
        } else {
            <Vec<u8>>::deserialize(d)
        }
    }
}
