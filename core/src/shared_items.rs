//! Who may change which item of a shared document.
//!
//! In a shared kind every member of a scope adds items to one document, so
//! a signed batch proves only who wrote the change, not that they may touch
//! what it changes. Automerge names every object by the operation that made
//! it (a counter and the maker's actor, which is a device), and every
//! overwrite or delete names the operations it replaces. So each operation
//! can be checked on its own: it may only touch objects, and replace
//! values, that devices of the signer's own member made.

use std::collections::HashSet;

use automerge::ActorId;
use automerge::legacy::{ObjectId, OpType};

use crate::ids::MemberId;

/// A batch changes something another member wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotTheirs;

/// What a check needs to know about the people writing.
pub(crate) trait Writers {
    /// The member whose device `actor` is (`None`: no known device).
    fn member_of(&self, actor: &ActorId) -> Option<MemberId>;
    /// Whether `member` may remove others' items (the kind allows it and
    /// their role runs the group).
    fn may_remove_others(&self, member: MemberId) -> bool;
}

/// Checks `changes`, all signed by a device of `signer`, against a document
/// whose items (by key) are `existing`: a new item must use a key not in
/// use; anything else must touch only the signer's own items, except that
/// a moderator may remove another's item whole.
pub(crate) fn check(
    changes: &[automerge::Change],
    signer: MemberId,
    existing: &dyn Fn(&str) -> bool,
    writers: &impl Writers,
) -> Result<(), NotTheirs> {
    let own = |actor: &ActorId| writers.member_of(actor) == Some(signer);
    for change in changes {
        for op in change.decode().operations {
            let replaces_only_own = op.pred.iter().all(|pred| own(pred.actor()));
            let allowed = match (&op.obj, &op.action) {
                (ObjectId::Root, OpType::Make(_)) if op.pred.is_empty() => {
                    !existing(key_of(&op.key))
                }
                (ObjectId::Root, OpType::Delete) => {
                    replaces_only_own || writers.may_remove_others(signer)
                }
                (ObjectId::Root, _) => replaces_only_own,
                (ObjectId::Id(item), _) => own(item.actor()) && replaces_only_own,
            };
            if !allowed {
                return Err(NotTheirs);
            }
        }
    }
    Ok(())
}

/// Checks every change of a whole shared document (a checkpoint's copy), in
/// order, each as if its own device had sent it.
pub(crate) fn check_history(
    changes: &[automerge::Change],
    writers: &impl Writers,
) -> Result<(), NotTheirs> {
    let mut keys: HashSet<String> = HashSet::new();
    for change in changes {
        let signer = writers.member_of(change.actor_id()).ok_or(NotTheirs)?;
        check(
            std::slice::from_ref(change),
            signer,
            &|key| keys.contains(key),
            writers,
        )?;
        for op in change.decode().operations {
            if op.obj == ObjectId::Root {
                match op.action {
                    OpType::Delete => keys.remove(key_of(&op.key)),
                    _ => keys.insert(key_of(&op.key).to_owned()),
                };
            }
        }
    }
    Ok(())
}

fn key_of(key: &automerge::legacy::Key) -> &str {
    match key {
        automerge::legacy::Key::Map(name) => name.as_str(),
        automerge::legacy::Key::Seq(_) => "",
    }
}

#[cfg(test)]
mod tests {
    use automerge::{AutoCommit, ROOT, ReadDoc, transaction::Transactable};

    use super::*;

    const ITEM: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";

    fn actor(n: u8) -> ActorId {
        ActorId::from(&[n; 32][..])
    }

    /// Devices 1 and 2 are member 1's; device 3 is member 3's, a moderator
    /// (with `moderators`; without, nobody moderates).
    struct Cohort {
        moderators: bool,
    }

    impl Writers for Cohort {
        fn member_of(&self, actor: &ActorId) -> Option<MemberId> {
            match actor.to_bytes()[0] {
                1 | 2 => Some(MemberId([1; 16])),
                3 => Some(MemberId([3; 16])),
                _ => None,
            }
        }

        fn may_remove_others(&self, member: MemberId) -> bool {
            self.moderators && member == MemberId([3; 16])
        }
    }

    fn writers() -> Cohort {
        Cohort { moderators: true }
    }

    /// A document where device 1 made an item; and the changes `then`
    /// makes on a copy as `device`.
    fn after(
        device: u8,
        then: impl FnOnce(&mut AutoCommit, automerge::ObjId),
    ) -> Vec<automerge::Change> {
        let mut doc = AutoCommit::new();
        doc.set_actor(actor(1));
        let item = doc.put_object(ROOT, ITEM, automerge::ObjType::Map).unwrap();
        doc.put(&item, "text", "mine").unwrap();
        let heads = doc.get_heads();
        doc.set_actor(actor(device));
        then(&mut doc, item);
        crate::document::parse_changes(&doc.save_after(&heads)).unwrap()
    }

    fn check_as(member: u8, changes: &[automerge::Change]) -> Result<(), NotTheirs> {
        check(
            changes,
            MemberId([member; 16]),
            &|key| key == ITEM,
            &writers(),
        )
    }

    #[test]
    fn a_member_changes_their_own_item_from_any_of_their_devices() {
        let edit = after(2, |doc, item| doc.put(&item, "text", "changed").unwrap());
        assert_eq!(check_as(1, &edit), Ok(()));
        let remove = after(2, |doc, _| doc.delete(ROOT, ITEM).unwrap());
        assert_eq!(check_as(1, &remove), Ok(()));
    }

    #[test]
    fn nobody_changes_another_members_words() {
        let edit = after(3, |doc, item| doc.put(&item, "text", "yours now").unwrap());
        assert_eq!(check_as(3, &edit), Err(NotTheirs), "even a moderator");
        let unknown = after(9, |doc, item| doc.put(&item, "text", "x").unwrap());
        assert_eq!(
            check(&unknown, MemberId([9; 16]), &|_| true, &writers()),
            Err(NotTheirs)
        );
    }

    #[test]
    fn only_a_moderator_removes_another_members_item() {
        let remove = after(3, |doc, _| doc.delete(ROOT, ITEM).unwrap());
        assert_eq!(check_as(3, &remove), Ok(()));
        let unmoderated = Cohort { moderators: false };
        assert_eq!(
            check(&remove, MemberId([3; 16]), &|_| true, &unmoderated),
            Err(NotTheirs),
            "a kind without moderation"
        );
    }

    #[test]
    fn an_item_cannot_be_replaced_under_its_key() {
        let overwrite = after(3, |doc, _| {
            doc.put_object(ROOT, ITEM, automerge::ObjType::Map).unwrap();
        });
        assert_eq!(
            check_as(3, &overwrite),
            Err(NotTheirs),
            "replaces device 1's item"
        );
        // A "concurrent" new item under a key in use, made without looking.
        let mut doc = AutoCommit::new();
        doc.set_actor(actor(3));
        doc.put_object(ROOT, ITEM, automerge::ObjType::Map).unwrap();
        let blind = crate::document::parse_changes(&doc.save_after(&[])).unwrap();
        assert_eq!(check_as(3, &blind), Err(NotTheirs));
        assert_eq!(
            check(&blind, MemberId([3; 16]), &|_| false, &writers()),
            Ok(()),
            "a fresh key is fine"
        );
    }

    #[test]
    fn a_whole_history_is_checked_change_by_change() {
        let mut doc = AutoCommit::new();
        doc.set_actor(actor(1));
        let item = doc.put_object(ROOT, ITEM, automerge::ObjType::Map).unwrap();
        doc.put(&item, "text", "mine").unwrap();
        doc.set_actor(actor(3));
        doc.delete(ROOT, ITEM).unwrap();
        let fair = doc.get_changes(&[]);
        assert_eq!(check_history(&fair, &writers()), Ok(()));
        let mut doc = AutoCommit::new();
        doc.set_actor(actor(1));
        let item = doc.put_object(ROOT, ITEM, automerge::ObjType::Map).unwrap();
        doc.set_actor(actor(3));
        doc.put(&item, "text", "not mine").unwrap();
        assert!(doc.get(&item, "text").unwrap().is_some());
        let unfair = doc.get_changes(&[]);
        assert_eq!(check_history(&unfair, &writers()), Err(NotTheirs));
    }
}
