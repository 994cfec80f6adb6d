//! Kinds of writing, and what a batch of each may change.
//!
//! Every batch names the kind of document it writes to. The reader checks
//! each change against the kind's schema before applying it, so a changed
//! client cannot slip other fields (an `author`, say) into a document. Who
//! wrote is never read from a document: it is the signing device's member.

use automerge::ObjType;
use automerge::legacy::{Key, ObjectId, OpType};
use serde::{Deserialize, Serialize};

use crate::ids::ContributionId;

/// The kind of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Kind {
    /// A member's reflections in one scope: a map of items by id, each with
    /// its `text` and `created_at`.
    Reflection,
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
    match kind {
        Kind::Reflection => changes
            .iter()
            .flat_map(|change| change.decode().operations)
            .try_for_each(|op| reflection_op(&op, schema)),
    }
}

/// A reflection document: at the root, items keyed by a contribution id
/// (made as maps, or deleted); inside an item, its text and time (put or
/// deleted). Nothing else: no lists, no counters, no nested objects.
fn reflection_op(op: &automerge::legacy::Op, schema: Schema) -> Result<(), OffSchema> {
    let Key::Map(key) = &op.key else {
        return Err(OffSchema);
    };
    if op.insert {
        return Err(OffSchema);
    }
    match (&op.obj, &op.action) {
        (ObjectId::Root, OpType::Make(ObjType::Map) | OpType::Delete) => key
            .parse::<ContributionId>()
            .map(|_| ())
            .map_err(|_| OffSchema),
        (ObjectId::Id(_), OpType::Delete) => item_field(key, schema),
        (ObjectId::Id(_), OpType::Put(value)) => {
            item_field(key, schema)?;
            let fits = match key.as_str() {
                "created_at" => matches!(value, automerge::ScalarValue::Timestamp(_)),
                _ => matches!(value, automerge::ScalarValue::Str(_)),
            };
            fits.then_some(()).ok_or(OffSchema)
        }
        _ => Err(OffSchema),
    }
}

fn item_field(key: &str, schema: Schema) -> Result<(), OffSchema> {
    match (key, schema) {
        ("text" | "created_at", _) | ("author", Schema::Legacy) => Ok(()),
        _ => Err(OffSchema),
    }
}
