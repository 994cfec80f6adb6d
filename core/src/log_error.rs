//! Why the membership log refuses an entry. Its own low module: errors
//! (`error`) wrap it, and the log (`membership`) makes it.

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The bytes are not an entry.
    #[error("the membership entry cannot be read")]
    Malformed,
    /// The signature does not match.
    #[error("the membership entry's signature does not match")]
    BadSignature,
    /// It belongs to another alliance.
    #[error("the membership entry belongs to another alliance")]
    WrongAlliance,
    /// It does not follow the current last entry.
    #[error(
        "the membership changed meanwhile (expected entry {expected}, got {got}); fetch it and try again"
    )]
    OutOfOrder {
        /// The index the log expects next.
        expected: u64,
        /// The index the entry has.
        got: u64,
    },
    /// Its author may not make this change.
    #[error("not allowed: {0}")]
    Unauthorised(&'static str),
    /// The change makes no sense in the current state.
    #[error("not valid: {0}")]
    Invalid(&'static str),
}
