//! Kinds of writing, and what a batch of each may change.
//!
//! Every batch names the kind of document it writes to. The reader checks
//! each change against the kind's schema before applying it, so a changed
//! client cannot slip other fields (an `author`, say) into a document. Who
//! wrote is never read from a document: it is the signing device's member.

use automerge::ObjType;
use automerge::legacy::{Key, ObjectId, OpType};
use serde::{Deserialize, Serialize};

use crate::ids::{ContributionId, DocId, MemberId, ScopeId};
use crate::membership::ScopeKind;
use crate::role::Role;

/// The kind of a document. Adding one: a variant here, its schema in
/// [`check`], who may write it where in [`may_write`], its document id in
/// [`document`]; sync, envelopes, chains, the relay and storage stay as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Kind {
    /// A member's reflections in one scope: a map of items by id, each with
    /// its `text` and `created_at`.
    Reflection,
    /// Questions a facilitator or steward puts to their cohort: items with
    /// `text`, `created_at` and, optionally, `closes_at` (when answers close).
    Prompt,
    /// A member's answers to questions: items with `text`, `created_at` and
    /// `prompt`, the id of the question answered (a link to another document).
    Response,
    /// What a cohort would like to talk about when it next meets: one
    /// document the whole cohort writes into (see [`Sharing::Shared`]).
    Agenda,
}

/// Who writes into a kind's documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Each member has their own document per scope; only their devices
    /// write it.
    Own,
    /// One document per scope that every member who writes the scope adds
    /// items to. An item may be changed only by devices of the member who
    /// made it.
    Shared {
        /// Whether a facilitator or steward may remove anyone's item (but
        /// never change its words).
        moderators_remove: bool,
    },
}

impl Kind {
    /// Every kind, for readers that must find a document's kind from its id.
    pub const ALL: [Kind; 4] = [Kind::Reflection, Kind::Prompt, Kind::Response, Kind::Agenda];

    fn name(self) -> &'static str {
        match self {
            Kind::Reflection => "reflection",
            Kind::Prompt => "prompt",
            Kind::Response => "response",
            Kind::Agenda => "agenda",
        }
    }

    /// Who writes into this kind's documents.
    pub fn sharing(self) -> Sharing {
        match self {
            Kind::Reflection | Kind::Prompt | Kind::Response => Sharing::Own,
            Kind::Agenda => Sharing::Shared {
                moderators_remove: true,
            },
        }
    }
}

/// The document holding `member`'s own writing of `kind` in `scope` (for a
/// shared kind, the scope's one document, whoever writes). Every reader
/// derives it, so a batch can only be for its signer's own document or a
/// shared one.
pub fn document(kind: Kind, member: MemberId, scope: ScopeId) -> DocId {
    match kind {
        Kind::Reflection => DocId::own(member, scope),
        _ => shared_document(kind, scope)
            .unwrap_or_else(|| DocId::own_of_kind(kind.name(), member, scope)),
    }
}

/// The scope's one document of `kind`, if the kind is shared.
pub fn shared_document(kind: Kind, scope: ScopeId) -> Option<DocId> {
    match kind.sharing() {
        Sharing::Own => None,
        Sharing::Shared { .. } => Some(DocId::shared_of_kind(kind.name(), scope)),
    }
}

/// Whether a member with `role` may write `kind` in a scope of `scope`
/// (on top of the membership's rule that they write that scope at all).
pub(crate) fn may_write(kind: Kind, role: Role, scope: &ScopeKind) -> bool {
    match kind {
        Kind::Reflection | Kind::Response => true,
        Kind::Prompt => role.may_moderate() && *scope == ScopeKind::Cohort,
        Kind::Agenda => *scope == ScopeKind::Cohort,
    }
}

/// Which version of a kind's schema a batch was written under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// Batches written before kinds existed (`Content::Batch`): reflections
    /// whose items also carried an `author` name. It is allowed, and never read.
    Legacy,
    /// The current schema of the batch's kind.
    Current,
}

/// A change does not fit its kind's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffSchema;

/// Checks every operation of `changes` against `kind`'s schema.
pub(crate) fn check(
    kind: Kind,
    schema: Schema,
    changes: &[automerge::Change],
) -> Result<(), OffSchema> {
    let fields: &[(&str, Field)] = match (kind, schema) {
        (Kind::Reflection, Schema::Legacy) => &[
            ("text", Field::Text),
            ("created_at", Field::Time),
            ("author", Field::Text),
        ],
        (Kind::Reflection, Schema::Current) => {
            &[("text", Field::Text), ("created_at", Field::Time)]
        }
        (Kind::Prompt, _) => &[
            ("text", Field::Text),
            ("created_at", Field::Time),
            ("closes_at", Field::Time),
        ],
        (Kind::Response, _) => &[
            ("text", Field::Text),
            ("created_at", Field::Time),
            ("prompt", Field::Link),
        ],
        (Kind::Agenda, _) => &[("text", Field::Text), ("created_at", Field::Time)],
    };
    changes
        .iter()
        .flat_map(|change| change.decode().operations)
        .try_for_each(|op| item_op(&op, fields))
}

/// What an item's field holds.
#[derive(Clone, Copy)]
enum Field {
    Text,
    Time,
    /// Another item, by its id (as text).
    Link,
}

/// A document of items: at the root, items keyed by a contribution id (made
/// as maps, or deleted); inside an item, the kind's fields (put or deleted).
/// Nothing else: no lists, no counters, no nested objects.
fn item_op(op: &automerge::legacy::Op, fields: &[(&str, Field)]) -> Result<(), OffSchema> {
    let Key::Map(key) = &op.key else {
        return Err(OffSchema);
    };
    if op.insert {
        return Err(OffSchema);
    }
    let field = || {
        fields
            .iter()
            .find(|(name, _)| *name == key.as_str())
            .map(|(_, field)| *field)
            .ok_or(OffSchema)
    };
    match (&op.obj, &op.action) {
        (ObjectId::Root, OpType::Make(ObjType::Map) | OpType::Delete) => key
            .parse::<ContributionId>()
            .map(|_| ())
            .map_err(|_| OffSchema),
        (ObjectId::Id(_), OpType::Delete) => field().map(|_| ()),
        (ObjectId::Id(_), OpType::Put(value)) => {
            let fits = match field()? {
                Field::Time => matches!(value, automerge::ScalarValue::Timestamp(_)),
                Field::Text => matches!(value, automerge::ScalarValue::Str(_)),
                Field::Link => matches!(value, automerge::ScalarValue::Str(id)
                    if id.parse::<ContributionId>().is_ok()),
            };
            fits.then_some(()).ok_or(OffSchema)
        }
        _ => Err(OffSchema),
    }
}

#[cfg(test)]
mod tests {
    use automerge::{AutoCommit, ROOT, ScalarValue, transaction::Transactable};

    use super::*;

    /// The changes of one item with `fields`, parsed as a reader parses a batch.
    fn item(fields: &[(&str, ScalarValue)]) -> Vec<automerge::Change> {
        let mut doc = AutoCommit::new();
        let obj = doc
            .put_object(
                ROOT,
                "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0",
                automerge::ObjType::Map,
            )
            .unwrap();
        for (key, value) in fields {
            doc.put(&obj, *key, value.clone()).unwrap();
        }
        crate::document::parse_changes(&doc.save_after(&[])).unwrap()
    }

    fn text() -> (&'static str, ScalarValue) {
        ("text", "hi".into())
    }

    fn time(key: &str) -> (&str, ScalarValue) {
        (key, ScalarValue::Timestamp(5))
    }

    #[test]
    fn each_kind_allows_its_own_fields_only() {
        let reflection = item(&[text(), time("created_at")]);
        assert_eq!(
            check(Kind::Reflection, Schema::Current, &reflection),
            Ok(())
        );
        let named = item(&[text(), time("created_at"), ("author", "Alex".into())]);
        assert_eq!(
            check(Kind::Reflection, Schema::Current, &named),
            Err(OffSchema)
        );
        assert_eq!(check(Kind::Reflection, Schema::Legacy, &named), Ok(()));
        let prompt = item(&[text(), time("created_at"), time("closes_at")]);
        assert_eq!(check(Kind::Prompt, Schema::Current, &prompt), Ok(()));
        assert_eq!(
            check(Kind::Reflection, Schema::Current, &prompt),
            Err(OffSchema)
        );
        let text_as_time = item(&[time("text")]);
        assert_eq!(
            check(Kind::Prompt, Schema::Current, &text_as_time),
            Err(OffSchema)
        );
    }

    #[test]
    fn lists_counters_and_odd_keys_are_refused() {
        let mut doc = AutoCommit::new();
        doc.put_object(ROOT, "not-an-id", automerge::ObjType::Map)
            .unwrap();
        let odd_key = crate::document::parse_changes(&doc.save_after(&[])).unwrap();
        assert_eq!(
            check(Kind::Reflection, Schema::Current, &odd_key),
            Err(OffSchema)
        );
        let mut doc = AutoCommit::new();
        let id = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
        let obj = doc.put_object(ROOT, id, automerge::ObjType::Map).unwrap();
        doc.put_object(&obj, "text", automerge::ObjType::List)
            .unwrap();
        let nested = crate::document::parse_changes(&doc.save_after(&[])).unwrap();
        assert_eq!(
            check(Kind::Reflection, Schema::Current, &nested),
            Err(OffSchema)
        );
    }

    #[test]
    fn only_facilitators_and_stewards_put_prompts_and_only_to_cohorts() {
        assert!(may_write(
            Kind::Prompt,
            Role::Facilitator,
            &ScopeKind::Cohort
        ));
        assert!(may_write(Kind::Prompt, Role::Steward, &ScopeKind::Cohort));
        assert!(!may_write(Kind::Prompt, Role::Member, &ScopeKind::Cohort));
        let own = ScopeKind::Research(MemberId([1; 16]));
        assert!(!may_write(Kind::Prompt, Role::Facilitator, &own));
        assert!(may_write(Kind::Reflection, Role::Member, &own));
    }
}
