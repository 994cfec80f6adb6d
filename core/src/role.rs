//! The roles people hold in an alliance. A low module: the membership log,
//! the kinds of writing and the relay's API all name them.

use serde::{Deserialize, Serialize};

/// A device's role, as the relay knows it (for authorisation only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Created the alliance; manages membership.
    Steward,
    /// Runs a cohort; may invite.
    Facilitator,
    /// A member of a cohort.
    Member,
    /// On the research team.
    Researcher,
}

impl Role {
    /// Whether this role may publish invites.
    pub fn may_invite(self) -> bool {
        matches!(self, Role::Steward | Role::Facilitator)
    }

    /// Whether this role runs a group: puts questions to it and may remove
    /// what others added to its shared documents.
    pub fn may_moderate(self) -> bool {
        matches!(self, Role::Steward | Role::Facilitator)
    }

    /// The role's name in lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Steward => "steward",
            Role::Facilitator => "facilitator",
            Role::Member => "member",
            Role::Researcher => "researcher",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "steward" => Ok(Role::Steward),
            "facilitator" => Ok(Role::Facilitator),
            "member" => Ok(Role::Member),
            "researcher" => Ok(Role::Researcher),
            other => Err(format!(
                "unknown role '{other}': use member, facilitator or researcher"
            )),
        }
    }
}
