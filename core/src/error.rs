//! The core's one error type. Messages are written for the person who will
//! read them; decryption failures are kept deliberately coarse.

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id in text form was not the right shape.
    #[error(transparent)]
    InvalidId(#[from] crate::ids::InvalidId),
    /// An invite code or link could not be read.
    #[error("this invite is not valid ({0}); ask for a new invite link")]
    InvalidInvite(&'static str),
    /// An age recipient (`age1...`) could not be parsed.
    #[error("'{0}' is not an age recipient; it should start with age1")]
    InvalidRecipient(String),
    /// An age identity (`AGE-SECRET-KEY-1...`) could not be parsed.
    #[error("this is not an age identity; it should start with AGE-SECRET-KEY-1")]
    InvalidIdentity,
    /// A contribution's text was empty.
    #[error("the text is empty; write something first")]
    EmptyText,
    /// A contribution's text was longer than allowed.
    #[error("the text is too long ({len} bytes; at most {max})")]
    TextTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Encryption failed (age refused its input).
    #[error("could not encrypt")]
    Encrypt,
    /// Something we stored ourselves could not be read back.
    #[error("the saved data on this device could not be read ({0})")]
    CorruptState(&'static str),
    /// A blob from the relay failed a check; it was not applied.
    #[error("a blob from the relay was refused: {0}")]
    Rejected(#[from] crate::rejection::Rejection),
    /// The relay answered with an error.
    #[error("the relay refused the request ({status}): {message}")]
    Relay {
        /// HTTP status.
        status: u16,
        /// The relay's message.
        message: String,
    },
    /// The relay's answer was not what the protocol allows.
    #[error("the relay's answer could not be understood ({0})")]
    BadResponse(&'static str),
    /// A driver asked for a protocol step in the wrong order (a bug in the
    /// app or command line, not something a member did).
    #[error("{0}")]
    OutOfOrder(&'static str),
    /// This member's role does not allow it.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// This device was removed (or unlinked) from the alliance.
    #[error("this device was removed from the alliance; it can no longer write or change anything")]
    Removed,
    /// Something a sync brings (a key, a space, the relay's answer to an
    /// earlier change) is not here yet.
    #[error("{0}")]
    SyncFirst(&'static str),
    /// Researchers are not in a cohort, so cannot write to one.
    #[error("{0}")]
    NoCohort(&'static str),
    /// A member, device or other thing named is not in the alliance.
    #[error("{0}")]
    NotFound(&'static str),
    /// An argument is not acceptable (a name too long, one already taken).
    #[error("{0}")]
    Invalid(&'static str),
    /// A membership entry was refused.
    #[error("the alliance's membership log was refused: {0}")]
    Membership(#[from] crate::log_error::LogError),
    /// The relay showed a membership history other than the one seen before.
    #[error(
        "the relay now shows a different membership history from the one this device saw before; \
         nothing was changed here. Tell your steward: the relay may have been tampered with"
    )]
    LogFork,
    /// Another member of the alliance already goes by this pseudonym.
    #[error(
        "someone in this alliance already goes by \"{0}\"; choose another name \
         (add an initial or a number, say) and try again"
    )]
    NameTaken(String),
    /// An edit or delete named an item that is not this member's own.
    #[error(
        "there is no writing of yours with the id {0}; you can change only your own, \
         and `kith list` shows the ids"
    )]
    NotYourItem(crate::ids::ContributionId),
    /// A response named a question this device has not got.
    #[error(
        "there is no question with the id {0} here; sync first, and `kith list` shows \
         questions with their ids"
    )]
    NoSuchQuestion(crate::ids::ContributionId),
    /// An export's identity is not one of the research team's keys.
    #[error(
        "this key is not one of the alliance's research team keys; use the identity file whose \
         public key (age1...) the steward named with --researcher"
    )]
    NotAResearchKey,
    /// An Automerge operation failed.
    #[error("document error: {0}")]
    Document(String),
}

impl Error {
    /// Whether the relay refused this device for good: it was removed, is
    /// not known, or its requests are not accepted. Trying again cannot help.
    pub fn is_refused_for_good(&self) -> bool {
        matches!(
            self,
            Error::Removed
                | Error::Relay {
                    status: 401 | 403 | 404,
                    ..
                }
        )
    }

    /// A stable code for programs to branch on (the app's TypeScript gets it
    /// beside the message); the message is for people and may be reworded.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidId(_) => "invalid_id",
            Error::InvalidInvite(_) => "invalid_invite",
            Error::InvalidRecipient(_) => "invalid_recipient",
            Error::InvalidIdentity => "invalid_identity",
            Error::EmptyText => "empty_text",
            Error::TextTooLong { .. } => "text_too_long",
            Error::Encrypt => "encrypt",
            Error::CorruptState(_) => "corrupt_state",
            Error::Rejected(_) => "rejected",
            Error::Relay { .. } => "relay",
            Error::BadResponse(_) => "bad_response",
            Error::OutOfOrder(_) => "out_of_order",
            Error::NotAllowed(_) => "not_allowed",
            Error::Removed => "removed",
            Error::SyncFirst(_) => "sync_first",
            Error::NoCohort(_) => "no_cohort",
            Error::NotFound(_) => "not_found",
            Error::Invalid(_) => "invalid",
            Error::Membership(_) => "membership",
            Error::LogFork => "log_fork",
            Error::NameTaken(_) => "name_taken",
            Error::NotYourItem(_) => "not_your_item",
            Error::NoSuchQuestion(_) => "no_such_question",
            Error::NotAResearchKey => "not_a_research_key",
            Error::Document(_) => "document",
        }
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Document(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_snake_case() {
        let id = crate::ids::ContributionId([0; 16]);
        let all = [
            Error::InvalidId(crate::ids::InvalidId {
                what: "x",
                expected_hex_digits: 2,
            }),
            Error::InvalidInvite("x"),
            Error::InvalidRecipient("x".into()),
            Error::InvalidIdentity,
            Error::EmptyText,
            Error::TextTooLong { len: 2, max: 1 },
            Error::Encrypt,
            Error::CorruptState("x"),
            Error::Rejected(crate::rejection::Rejection::Damaged(crate::ids::BlobId(
                [0; 16],
            ))),
            Error::Relay {
                status: 500,
                message: "x".into(),
            },
            Error::BadResponse("x"),
            Error::OutOfOrder("x"),
            Error::NotAllowed("x"),
            Error::Removed,
            Error::SyncFirst("x"),
            Error::NoCohort("x"),
            Error::NotFound("x"),
            Error::Invalid("x"),
            Error::LogFork,
            Error::NameTaken("x".into()),
            Error::NotYourItem(id),
            Error::NoSuchQuestion(id),
            Error::NotAResearchKey,
            Error::Document("x".into()),
        ];
        let codes: std::collections::BTreeSet<&str> = all.iter().map(Error::code).collect();
        // Every variant but `Membership` (it wraps a log error; its code is
        // "membership", not among these).
        assert_eq!(codes.len(), all.len(), "one code per variant");
        assert!(!codes.contains("membership"));
        assert!(
            codes
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        );
    }
}
