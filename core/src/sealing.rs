//! Secret bytes leave only through Kith's own encoders. Keys inside grants,
//! invite links and the device's state record serialize only while one of
//! those encoders runs: the envelope that encrypts a blob or an invite
//! package, the invite code (a secret by design, carried in the link's
//! fragment), and the state record (kept where only this app reads it).
//! Anywhere else (a log line, a JSON dump, a debugging `serde_json`) they
//! refuse, so a key cannot leave by accident.

use std::cell::Cell;

use serde::{Serialize, Serializer};

thread_local! {
    /// How many encoders that may write secrets are running on this thread.
    static SEALING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `encode`, during which secret bytes may serialize.
pub(crate) fn sealing<T>(encode: impl FnOnce() -> T) -> T {
    struct Open;
    impl Drop for Open {
        fn drop(&mut self) {
            SEALING.with(|c| c.set(c.get() - 1));
        }
    }
    SEALING.with(|c| c.set(c.get() + 1));
    let _open = Open;
    encode()
}

/// Serializes `secret` as it is (so encodings do not change) if an encoder
/// that may write secrets is running; otherwise refuses.
pub(crate) fn serialize_secret<T, S>(secret: &T, s: S) -> Result<S::Ok, S::Error>
where
    T: Serialize + ?Sized,
    S: Serializer,
{
    if SEALING.with(Cell::get) == 0 {
        return Err(serde::ser::Error::custom(
            "secret key bytes are written only by Kith's encrypted encoders",
        ));
    }
    secret.serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Secret;
    impl serde::Serialize for Secret {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_secret(&[7u8; 4], s)
        }
    }

    #[test]
    fn secrets_serialize_only_inside_an_encoder() {
        let refused = serde_json::to_string(&Secret).unwrap_err().to_string();
        assert!(
            refused.contains("only by Kith's encrypted encoders"),
            "{refused}"
        );
        assert!(sealing(|| postcard::to_allocvec(&Secret)).is_ok());
        // Nested, then closed again, even when the encoder panics.
        assert!(sealing(|| sealing(|| postcard::to_allocvec(&Secret))).is_ok());
        let _ = std::panic::catch_unwind(|| sealing(|| panic!("encoder failed")));
        assert!(postcard::to_allocvec(&Secret).is_err());
    }
}
