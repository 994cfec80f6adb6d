//! A member's contributions in one scope, as one Automerge document.
//!
//! Each contribution is a map at the root, keyed by its id. Ids are random,
//! so concurrent writers (two devices of one member) never race for a key.

use automerge::{
    ActorId, AutoCommit, Change, ChangeHash, ObjType, ReadDoc, ScalarValue, Value,
    transaction::Transactable,
};
use serde::Serialize;

use crate::error::Error;
use crate::ids::{ContributionId, DeviceId};
use crate::time::Timestamp;

/// A contribution as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContributionView {
    /// Its id.
    pub id: ContributionId,
    /// The author's pseudonym, as the membership log names the member whose
    /// device signed it (empty when read straight from a document).
    pub author: String,
    /// What they wrote.
    pub text: String,
    /// When, by the author's clock, in UTC (RFC 3339).
    pub created_at: String,
    /// Whether only the research team (and the author's own devices) may
    /// read it, rather than the author's cohort too.
    pub research_only: bool,
    /// The scope it was written in.
    #[serde(skip)]
    pub scope: Option<crate::ids::ScopeId>,
    /// The member who wrote it (whose device signed it).
    #[serde(skip)]
    pub member: Option<crate::ids::MemberId>,
    /// What kind of writing it is (a reflection, a prompt...).
    pub kind: crate::kinds::Kind,
    /// Whether it is this device's member's own (they may edit or delete it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
    /// The question it answers, for a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<ContributionId>,
    /// The device that made it (the actor of the change that created it).
    #[serde(skip)]
    pub device: Option<DeviceId>,
}

/// One document of contributions.
pub struct ContributionDoc {
    doc: AutoCommit,
    flushed: Vec<ChangeHash>,
}

impl Default for ContributionDoc {
    fn default() -> Self {
        Self {
            doc: AutoCommit::new(),
            flushed: Vec::new(),
        }
    }
}

impl ContributionDoc {
    /// A document from its whole save ([`ContributionDoc::save`]).
    pub fn load(saved: &[u8]) -> Result<Self, Error> {
        let doc = AutoCommit::load(saved)?;
        Ok(Self {
            doc,
            flushed: Vec::new(),
        })
    }
    /// Applies changes received from anyone (in any order; duplicates are harmless).
    pub fn apply(&mut self, changes: &[u8]) -> Result<(), Error> {
        self.doc.load_incremental(changes)?;
        Ok(())
    }

    /// Adds a contribution written on `device` and returns the changes to send.
    pub fn contribute(
        &mut self,
        device: &DeviceId,
        id: ContributionId,
        text: &str,
        created_at: Timestamp,
    ) -> Result<Vec<u8>, Error> {
        self.add_item(device, id, text, created_at, None)
    }

    /// Adds a response to question `prompt` (written on `device`) and
    /// returns the changes to send.
    pub fn respond(
        &mut self,
        device: &DeviceId,
        id: ContributionId,
        text: &str,
        created_at: Timestamp,
        prompt: ContributionId,
    ) -> Result<Vec<u8>, Error> {
        self.add_item(device, id, text, created_at, Some(prompt))
    }

    fn add_item(
        &mut self,
        device: &DeviceId,
        id: ContributionId,
        text: &str,
        created_at: Timestamp,
        prompt: Option<ContributionId>,
    ) -> Result<Vec<u8>, Error> {
        self.flushed = self.doc.get_heads();
        self.doc.set_actor(ActorId::from(&device.0[..]));
        let entry = self
            .doc
            .put_object(automerge::ROOT, id.to_string(), ObjType::Map)?;
        self.doc.put(&entry, "text", text)?;
        self.doc.put(
            &entry,
            "created_at",
            ScalarValue::Timestamp(i64::try_from(created_at.millis()).unwrap_or(i64::MAX)),
        )?;
        if let Some(prompt) = prompt {
            self.doc.put(&entry, "prompt", prompt.to_string())?;
        }
        Ok(self.flush())
    }

    /// Replaces the text of contribution `id` (edited on `device`); returns
    /// the changes to send, or `None` if this document has no such item.
    pub fn edit(
        &mut self,
        device: &DeviceId,
        id: ContributionId,
        text: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some(entry) = self.item(id) else {
            return Ok(None);
        };
        self.flushed = self.doc.get_heads();
        self.doc.set_actor(ActorId::from(&device.0[..]));
        self.doc.put(&entry, "text", text)?;
        Ok(Some(self.flush()))
    }

    /// Deletes contribution `id` (on `device`); returns the changes to send,
    /// or `None` if this document has no such item.
    pub fn delete(
        &mut self,
        device: &DeviceId,
        id: ContributionId,
    ) -> Result<Option<Vec<u8>>, Error> {
        if self.item(id).is_none() {
            return Ok(None);
        }
        self.flushed = self.doc.get_heads();
        self.doc.set_actor(ActorId::from(&device.0[..]));
        self.doc.delete(automerge::ROOT, id.to_string())?;
        Ok(Some(self.flush()))
    }

    /// The changes since the last flush.
    fn flush(&mut self) -> Vec<u8> {
        let changes = self.doc.save_after(&self.flushed);
        self.flushed = self.doc.get_heads();
        changes
    }

    /// Whether the document holds contribution `id`.
    pub fn has(&self, id: ContributionId) -> bool {
        self.item(id).is_some()
    }

    /// Whether the document holds an item under map key `key` (a reader
    /// checking that a new item in a shared document takes no one's place).
    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.doc
            .get_all(automerge::ROOT, key)
            .is_ok_and(|values| !values.is_empty())
    }

    /// The device that made contribution `id`.
    pub fn maker(&self, id: ContributionId) -> Option<DeviceId> {
        self.item(id).as_ref().and_then(maker_of)
    }

    /// The whole history, oldest first (a reader checking a shared
    /// document's copy in a checkpoint).
    pub(crate) fn history(&mut self) -> Vec<Change> {
        self.doc.get_changes(&[])
    }

    fn item(&self, id: ContributionId) -> Option<automerge::ObjId> {
        match self.doc.get(automerge::ROOT, id.to_string()).ok()?? {
            (Value::Object(ObjType::Map), obj) => Some(obj),
            _ => None,
        }
    }

    /// Every readable contribution, oldest first.
    pub fn contributions(&self) -> Vec<ContributionView> {
        let mut out: Vec<(i64, ContributionView)> = self
            .doc
            .map_range(automerge::ROOT, ..)
            .filter_map(|item| {
                let id = item.key.parse().ok()?;
                let automerge::ValueRef::Object(ObjType::Map) = item.value else {
                    return None;
                };
                let entry = item.id();
                let millis = match self.scalar(&entry, "created_at")? {
                    ScalarValue::Timestamp(ms) => ms,
                    _ => return None,
                };
                let text_of = |key| match self.scalar(&entry, key) {
                    Some(ScalarValue::Str(s)) => Some(s.to_string()),
                    _ => None,
                };
                let prompt = text_of("prompt").and_then(|id| id.parse().ok());
                Some((
                    millis,
                    ContributionView {
                        id,
                        author: String::new(),
                        text: text_of("text")?,
                        created_at: rfc3339(millis),
                        research_only: false,
                        scope: None,
                        member: None,
                        kind: crate::kinds::Kind::Reflection,
                        mine: false,
                        prompt,
                        device: maker_of(&entry),
                    },
                ))
            })
            .collect();
        out.sort_by_key(|a| (a.0, a.1.id));
        out.into_iter().map(|(_, view)| view).collect()
    }

    /// Merges another copy of this document (a checkpoint's) into this one.
    pub(crate) fn merge(&mut self, other: &mut Self) -> Result<(), Error> {
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    /// How many changes each actor (device) made in the document.
    pub(crate) fn changes_per_actor(&mut self) -> std::collections::HashMap<ActorId, u64> {
        let mut counts = std::collections::HashMap::new();
        for change in self.doc.get_changes_meta(&[]) {
            *counts.entry(change.actor.into_owned()).or_default() += 1;
        }
        counts
    }

    /// The actors of the changes `other` holds and this document does not;
    /// `None` when this document holds changes still waiting for ones they
    /// depend on (those look missing here, though they arrived).
    pub(crate) fn actors_missing_from_here(&mut self, other: &mut Self) -> Option<Vec<ActorId>> {
        if !self.doc.get_missing_deps(&[]).is_empty() {
            return None;
        }
        let added = self.doc.get_changes_added(&mut other.doc);
        Some(added.iter().map(|c| c.actor_id().clone()).collect())
    }

    /// Whether every one of `changes` is in the document.
    pub(crate) fn holds_all(&mut self, changes: &[Change]) -> bool {
        changes
            .iter()
            .all(|c| self.doc.get_change_meta_by_hash(&c.hash()).is_some())
    }

    /// The actor of every change in the document: the devices that wrote it.
    pub(crate) fn writers(&mut self) -> std::collections::BTreeSet<ActorId> {
        self.doc
            .get_changes(&[])
            .iter()
            .map(|change| change.actor_id().clone())
            .collect()
    }

    /// The whole document, saved (compressed), for a checkpoint.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The document's current heads (for convergence checks).
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        let mut heads = self.doc.get_heads();
        heads.sort();
        heads
    }

    fn scalar(&self, obj: &automerge::ObjId, key: &str) -> Option<ScalarValue> {
        match self.doc.get(obj, key).ok()?? {
            (Value::Scalar(s), _) => Some(s.into_owned()),
            _ => None,
        }
    }
}

/// The device whose change made object `obj`.
fn maker_of(obj: &automerge::ObjId) -> Option<DeviceId> {
    match obj {
        automerge::ObjId::Id(_, actor, _) => {
            <[u8; 32]>::try_from(actor.to_bytes()).ok().map(DeviceId)
        }
        automerge::ObjId::Root => None,
    }
}

/// The changes in a batch, one by one: a batch holds change chunks only (a
/// whole saved document is refused), each of which must decode.
pub(crate) fn parse_changes(bytes: &[u8]) -> Option<Vec<Change>> {
    let mut changes = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = chunk_len(rest)?;
        let (chunk, after) = rest.split_at(len);
        changes.push(Change::try_from(chunk).ok()?);
        rest = after;
    }
    Some(changes)
}

/// The length of the Automerge chunk at the start of `bytes`: magic (4),
/// checksum (4), type (1), body length (LEB128), body.
fn chunk_len(bytes: &[u8]) -> Option<usize> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    if bytes.get(..4)? != MAGIC {
        return None;
    }
    let mut body_len: u64 = 0;
    let mut at = 9;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(at)?;
        at += 1;
        body_len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let end = at.checked_add(usize::try_from(body_len).ok()?)?;
            return (end <= bytes.len()).then_some(end);
        }
    }
    None
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (proleptic Gregorian, UTC).
pub fn rfc3339(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_contribution_reaches_another_copy() {
        let device = DeviceId([1; 32]);
        let mut mine = ContributionDoc::default();
        let id = ContributionId([2; 16]);
        let changes = mine
            .contribute(&device, id, "it went well", Timestamp(5))
            .unwrap();
        let mut theirs = ContributionDoc::default();
        theirs.apply(&changes).unwrap();
        theirs.apply(&changes).unwrap();
        let seen = theirs.contributions();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].text, "it went well");
        assert_eq!(mine.heads(), theirs.heads());
    }

    #[test]
    fn edits_and_deletes_reach_another_copy() {
        let device = DeviceId([1; 32]);
        let mut mine = ContributionDoc::default();
        let (kept, gone) = (ContributionId([2; 16]), ContributionId([3; 16]));
        let mut theirs = ContributionDoc::default();
        for id in [kept, gone] {
            let changes = mine.contribute(&device, id, "first", Timestamp(5)).unwrap();
            theirs.apply(&changes).unwrap();
        }
        let edit = mine.edit(&device, kept, "second").unwrap().unwrap();
        let delete = mine.delete(&device, gone).unwrap().unwrap();
        assert_eq!(mine.delete(&device, gone).unwrap(), None, "already gone");
        assert_eq!(
            mine.edit(&device, ContributionId([9; 16]), "x").unwrap(),
            None
        );
        theirs.apply(&delete).unwrap();
        theirs.apply(&edit).unwrap();
        let seen: Vec<_> = theirs
            .contributions()
            .into_iter()
            .map(|c| (c.id, c.text))
            .collect();
        assert_eq!(seen, vec![(kept, "second".to_owned())]);
    }
}
