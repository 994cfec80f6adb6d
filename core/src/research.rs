//! What the research team reads, on a device that holds one of its keys
//! for a moment (an export): the device's own reader, which already holds
//! everything the device read, plus the researcher's identity to open the
//! key grants made for the research team. Each stored blob is opened once,
//! and nothing of the researcher's key is ever stored.

use crate::client::Client;
use crate::document::ContributionView;
use crate::error::Error;
use crate::keys::AgeIdentity;
use crate::membership::Membership;
use crate::reader::{Reader, Rejection};

/// A device's reader, widened with a research-team identity.
pub struct ResearchView {
    reader: Reader,
    membership: Membership,
    refused: Vec<Rejection>,
}

impl Client {
    /// Reads as the research team with `identity`, which must be one of the
    /// research-team keys the alliance names. Takes the device: nothing it
    /// learns with the researcher's key can then be saved by it.
    pub fn into_research_view(self, identity: AgeIdentity) -> Result<ResearchView, Error> {
        let recipient = identity.recipient().to_string();
        if !self.membership.research_recipients().contains(&recipient) {
            return Err(Error::NotAResearchKey);
        }
        let Client {
            mut reader,
            membership,
            ..
        } = self;
        let refused = reader.add_grant_identity(identity, &membership);
        Ok(ResearchView {
            reader,
            membership,
            refused,
        })
    }
}

impl ResearchView {
    /// Everything the research team reads here, oldest first; authors as
    /// the membership log names them.
    pub fn contributions(&self) -> Vec<ContributionView> {
        self.reader.contributions(&self.membership)
    }

    /// Batches still missing (later ones arrived).
    pub fn gaps(&self) -> Vec<crate::chain::Gap> {
        self.reader.gaps()
    }

    /// Blobs refused once the research team's grants opened them.
    pub fn refused(&self) -> &[Rejection] {
        &self.refused
    }
}
