//! Why a reader refused a blob. Its own low module: errors (`error`) wrap
//! it, and the reader, which names most of the core, makes it.

use crate::ids::BlobId;

/// Why a blob was refused. Named so the person running sync knows what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The age file is damaged or was altered.
    #[error("blob {0} is damaged or was altered")]
    Damaged(BlobId),
    /// It opened, but the signature does not match.
    #[error("blob {0} has a signature that does not match its content")]
    BadSignature(BlobId),
    /// The signed ids differ from the ones the relay showed.
    #[error("blob {0} was moved or relabelled by the relay")]
    Relabelled(BlobId),
    /// The signed alliance is another alliance.
    #[error("blob {0} belongs to another alliance")]
    WrongAlliance(BlobId),
    /// A batch was encrypted with a key other than the one it names.
    #[error("blob {0} is encrypted with a key other than the one it names")]
    WrongKey(BlobId),
    /// A key grant whose key is not the one the membership log names.
    #[error("blob {0} hands out a key that the alliance's membership does not name")]
    UntrustedGrant(BlobId),
    /// A batch for a shared document changes what another member wrote.
    #[error("blob {0} changes or removes something someone else wrote")]
    NotTheirs(BlobId),
    /// A checkpoint from a device not trusted to write one for its scope.
    #[error("blob {0} is a summary of a space written by someone not allowed to write one")]
    UntrustedCheckpoint(BlobId),
    /// Signed by a device the membership log does not know (yet).
    #[error("blob {0} was written by a device that is not in the alliance's membership")]
    UnknownDevice(BlobId),
    /// Written to a scope its author's member does not belong to.
    #[error("blob {0} was written by someone who does not belong to the space it is in")]
    NotAWriter(BlobId),
    /// Written by a removed device after the point its removal fixed.
    #[error("blob {0} was written by a device after it was removed")]
    AfterRemoval(BlobId),
    /// The changes inside do not decode.
    #[error("blob {0} holds changes that cannot be applied")]
    BadChanges(BlobId),
    /// A batch for a document that is not its signer's own.
    #[error("blob {0} tries to write into someone else's writing")]
    NotOwnDocument(BlobId),
    /// A change inside is labelled as made by a device other than the signer.
    #[error("blob {0} holds changes that claim to come from another device")]
    ForeignActor(BlobId),
    /// Its writer may not write this kind of document in this space.
    #[error("blob {0} is a kind of writing its writer may not write in that space")]
    KindNotAllowed(BlobId),
    /// A change inside does not fit what its kind of document may hold.
    #[error("blob {0} holds changes that its kind of writing does not allow")]
    OffSchema(BlobId),
    /// A second, different batch from one device under a number it already
    /// used, or one that does not link to the batch before it.
    #[error(
        "blob {0} contradicts what its device wrote before (two different batches with one number); \
         that device's key may be in someone else's hands"
    )]
    Forked(BlobId),
    /// A summary of a space that disagrees with what this device already
    /// read there: it adds to, or changes, writing the device holds, or
    /// claims more than it holds.
    #[error(
        "blob {0} is a summary of a space that contradicts what this device already read there; \
         whoever wrote it may have changed what others wrote"
    )]
    CheckpointContradicts(BlobId),
    /// A batch a summary claimed to hold, but did not: shown anyway.
    #[error(
        "blob {0} was left out of a summary that claimed to hold it (it is shown all the same); \
         whoever wrote that summary may have changed what others wrote"
    )]
    LeftOutOfCheckpoint(BlobId),
}

impl Rejection {
    /// Whether the relay could still serve this blob intact (it was damaged,
    /// moved, or came before the log that names its writer), so it is worth
    /// fetching again. A signed blob refused by the membership's rules stays
    /// refused.
    pub fn may_be_repaired(&self) -> bool {
        matches!(
            self,
            Rejection::Damaged(_)
                | Rejection::BadSignature(_)
                | Rejection::Relabelled(_)
                | Rejection::WrongAlliance(_)
                | Rejection::WrongKey(_)
                | Rejection::UnknownDevice(_)
        )
    }

    /// The blob refused.
    pub fn blob(&self) -> BlobId {
        match self {
            Rejection::Damaged(b)
            | Rejection::BadSignature(b)
            | Rejection::Relabelled(b)
            | Rejection::WrongAlliance(b)
            | Rejection::WrongKey(b)
            | Rejection::UntrustedGrant(b)
            | Rejection::UnknownDevice(b)
            | Rejection::UntrustedCheckpoint(b)
            | Rejection::NotAWriter(b)
            | Rejection::AfterRemoval(b)
            | Rejection::BadChanges(b)
            | Rejection::NotOwnDocument(b)
            | Rejection::ForeignActor(b)
            | Rejection::OffSchema(b)
            | Rejection::KindNotAllowed(b)
            | Rejection::NotTheirs(b)
            | Rejection::Forked(b)
            | Rejection::CheckpointContradicts(b)
            | Rejection::LeftOutOfCheckpoint(b) => *b,
        }
    }
}
