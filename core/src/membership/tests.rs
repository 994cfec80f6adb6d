//! The membership rules, one refusal at a time.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::keys::AgeIdentity;

struct World {
    rng: ChaCha20Rng,
    log: Membership,
    steward: DeviceKeys,
    cohort: ScopeId,
    other_cohort: ScopeId,
}

const T: Timestamp = Timestamp(1);

fn recipient(rng: &mut ChaCha20Rng) -> String {
    AgeIdentity::generate(rng).recipient().to_string()
}

fn public(keys: &DeviceKeys) -> DeviceKeysPublic {
    DeviceKeysPublic {
        device: keys.device_id(),
        recipient: keys.recipient().to_string(),
    }
}

impl World {
    /// A steward's alliance with its cohort and a second cohort.
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let steward = DeviceKeys::generate(&mut rng);
        let (cohort, other_cohort) = (ScopeId::random(&mut rng), ScopeId::random(&mut rng));
        let mut log = Membership::new(AllianceId::random(&mut rng));
        let create = Action::Create {
            steward: MemberId::random(&mut rng),
            device: public(&steward),
            cohort,
            research: vec![],
            sealed_pseudonym: vec![],
        };
        log.append(&steward, create, T).unwrap();
        for (scope, kind) in [
            (ScopeId::random(&mut rng), ScopeKind::Alliance),
            (cohort, ScopeKind::Cohort),
            (other_cohort, ScopeKind::Cohort),
        ] {
            let open = Action::OpenScope {
                scope,
                kind,
                recipient: recipient(&mut rng),
                sealed_name: vec![],
            };
            log.append(&steward, open, T).unwrap();
        }
        Self {
            rng,
            log,
            steward,
            cohort,
            other_cohort,
        }
    }

    /// `inviter` invites a new member; returns the invite's key and id.
    fn invite(
        &mut self,
        inviter: &DeviceKeys,
        role: Role,
        cohort: Option<ScopeId>,
    ) -> Result<(ed25519_dalek::SigningKey, InviteId, MemberId), LogError> {
        let key = ed25519_dalek::SigningKey::generate(&mut self.rng);
        let (invite, member) = (
            InviteId::random(&mut self.rng),
            MemberId::random(&mut self.rng),
        );
        let action = Action::Invite {
            invite,
            key: key.verifying_key().to_bytes(),
            member,
            role,
            cohort,
            recipient: recipient(&mut self.rng),
            expires_at: Timestamp(1_000),
        };
        self.log.append(inviter, action, T)?;
        Ok((key, invite, member))
    }

    /// A new device joins with `key`'s proof.
    fn join(
        &mut self,
        key: &ed25519_dalek::SigningKey,
        invite: InviteId,
    ) -> Result<DeviceKeys, LogError> {
        use ed25519_dalek::Signer;
        let device = DeviceKeys::generate(&mut self.rng);
        let message = join_proof_message(self.log.alliance(), invite, &public(&device));
        let action = Action::Join {
            invite,
            device: public(&device),
            proof: key.sign(&message).to_bytes().to_vec(),
            sealed_pseudonym: vec![],
        };
        self.log.append(&device, action, T)?;
        Ok(device)
    }

    /// A member of `cohort`, joined.
    fn member(&mut self, role: Role, cohort: ScopeId) -> (DeviceKeys, MemberId) {
        let steward = self.steward_keys();
        let (key, invite, member) = self.invite(&steward, role, Some(cohort)).unwrap();
        (self.join(&key, invite).unwrap(), member)
    }

    fn steward_keys(&self) -> DeviceKeys {
        DeviceKeys::import_secret(&self.steward.export_secret()).unwrap()
    }

    fn remove(
        &mut self,
        by: &DeviceKeys,
        devices: Vec<DeviceId>,
        whole: bool,
    ) -> Result<(), LogError> {
        let action = Action::Remove {
            devices,
            whole_member: whole,
            cutoffs: vec![],
        };
        self.log.append(by, action, T).map(|_| ())
    }
}

#[test]
fn only_stewards_and_facilitators_invite_and_facilitators_only_into_their_cohort() {
    let mut w = World::new();
    let (alex, _) = w.member(Role::Member, w.cohort);
    let (fran, _) = w.member(Role::Facilitator, w.cohort);
    assert!(matches!(
        w.invite(&alex, Role::Member, Some(w.cohort)),
        Err(LogError::Unauthorised(_))
    ));
    assert!(matches!(
        w.invite(&fran, Role::Member, Some(w.other_cohort)),
        Err(LogError::Unauthorised(_))
    ));
    assert!(w.invite(&fran, Role::Member, Some(w.cohort)).is_ok());
    let steward = w.steward_keys();
    assert!(matches!(
        w.invite(&fran, Role::Steward, Some(w.cohort)),
        Err(LogError::Unauthorised(_))
    ));
    assert!(matches!(
        w.invite(&steward, Role::Steward, None),
        Err(LogError::Invalid(_))
    ));
    assert!(
        w.invite(&steward, Role::Steward, Some(w.other_cohort))
            .is_ok()
    );
    assert!(matches!(
        w.invite(&steward, Role::Researcher, Some(w.cohort)),
        Err(LogError::Invalid(_))
    ));
}

#[test]
fn a_join_needs_the_invite_key_and_works_once() {
    let mut w = World::new();
    let steward = w.steward_keys();
    let (key, invite, _) = w.invite(&steward, Role::Member, Some(w.cohort)).unwrap();
    let forger = ed25519_dalek::SigningKey::generate(&mut w.rng);
    assert!(matches!(
        w.join(&forger, invite),
        Err(LogError::Unauthorised(_))
    ));
    assert!(w.join(&key, invite).is_ok());
    assert!(matches!(w.join(&key, invite), Err(LogError::Invalid(_))));
}

#[test]
fn a_refused_entry_changes_nothing_and_order_and_signatures_are_checked() {
    let mut w = World::new();
    let (alex, _) = w.member(Role::Member, w.cohort);
    let (len, entries) = (w.log.len(), w.log.entries().to_vec());
    assert!(w.invite(&alex, Role::Member, Some(w.cohort)).is_err());
    assert_eq!(w.log.len(), len);
    assert_eq!(w.log.entries(), &entries[..]);

    // Replaying the log elsewhere gives the same membership.
    let again = Membership::replay(w.log.alliance(), &entries).unwrap();
    assert_eq!(again.len(), len);

    // An entry signed for the last place, sent again: out of order.
    let last = entries.last().unwrap().clone();
    assert!(matches!(
        w.log.apply(&last),
        Err(LogError::OutOfOrder { .. })
    ));
    // A signature over other bytes.
    let mut forged = last.clone();
    forged.body[0] ^= 1;
    assert!(matches!(
        Membership::replay(w.log.alliance(), &[entries[0].clone(), forged]),
        Err(LogError::BadSignature | LogError::Malformed)
    ));
    // A log for another alliance.
    assert_eq!(
        Membership::replay(AllianceId([9; 16]), &entries[..1]).err(),
        Some(LogError::WrongAlliance)
    );
}

#[test]
fn removal_rules_and_the_rotation_they_oblige() {
    let mut w = World::new();
    let steward = w.steward_keys();
    let (alex, alex_id) = w.member(Role::Member, w.cohort);
    let (blake, _) = w.member(Role::Member, w.cohort);
    let (casey, _) = w.member(Role::Member, w.other_cohort);
    // A member removes no one else; nobody removes the steward.
    assert!(matches!(
        w.remove(&alex, vec![blake.device_id()], true),
        Err(LogError::Unauthorised(_))
    ));
    assert!(w.remove(&alex, vec![steward.device_id()], true).is_err());
    // A member's only device cannot be unlinked: remove the member instead.
    assert!(matches!(
        w.remove(&steward, vec![alex.device_id()], false),
        Err(LogError::Invalid(_))
    ));
    w.remove(&steward, vec![alex.device_id()], true).unwrap();
    assert!(w.log.member(&alex_id).unwrap().removed);
    assert_eq!(w.log.active_role(&alex.device_id()), None);
    // The scopes Alex read must get new keys, from a device that reads them.
    let stale = w.log.stale_scopes_read_by(&blake.device_id());
    assert!(stale.contains(&w.cohort));
    assert!(!stale.contains(&w.other_cohort));
    let rotate = |epoch| Action::Rotate {
        scope: w.cohort,
        epoch,
        recipient: AgeIdentity::generate(&mut ChaCha20Rng::seed_from_u64(3))
            .recipient()
            .to_string(),
    };
    let (rotate_by_outsider, rotate_by_reader, rotate_wrong_epoch) =
        (rotate(1), rotate(1), rotate(5));
    assert!(matches!(
        w.log.append(&casey, rotate_by_outsider, T),
        Err(LogError::Unauthorised(_))
    ));
    assert!(matches!(
        w.log.append(&blake, rotate_wrong_epoch, T),
        Err(LogError::Invalid(_))
    ));
    w.log.append(&blake, rotate_by_reader, T).unwrap();
    assert_eq!(w.log.current_epoch(&w.cohort), Some(1));
    let stale = w.log.stale_scopes_read_by(&blake.device_id());
    assert!(!stale.contains(&w.cohort));
    assert_eq!(
        stale,
        vec![w.log.alliance_scope().unwrap()],
        "the alliance scope is still owed"
    );
    // A removed device writes nothing more to the log.
    assert!(matches!(
        w.invite(&alex, Role::Member, Some(w.cohort)),
        Err(LogError::Unauthorised(_))
    ));
}

#[test]
fn a_cohort_opened_by_a_steward_outside_it_waits_for_its_first_reader_to_rekey() {
    let mut w = World::new();
    assert!(w.log.scope(&w.other_cohort).unwrap().stale);
    assert!(!w.log.scope(&w.cohort).unwrap().stale);
    let (casey, _) = w.member(Role::Member, w.other_cohort);
    assert_eq!(
        w.log.stale_scopes_read_by(&casey.device_id()),
        vec![w.other_cohort]
    );
    assert!(w.log.may_checkpoint(&w.steward.device_id(), &w.cohort));
    assert!(!w.log.may_checkpoint(&casey.device_id(), &w.other_cohort));
}

#[test]
fn a_removed_devices_unused_invites_are_cancelled_and_refuse_to_join() {
    let mut w = World::new();
    let steward = w.steward_keys();
    let (facilitator, _) = w.member(Role::Facilitator, w.cohort);
    let (used_key, used, _) = w
        .invite(&facilitator, Role::Member, Some(w.cohort))
        .unwrap();
    let alex_device = w.join(&used_key, used).unwrap();
    let (key, invite, _) = w
        .invite(&facilitator, Role::Member, Some(w.cohort))
        .unwrap();
    let (steward_key, steward_invite, _) =
        w.invite(&steward, Role::Member, Some(w.cohort)).unwrap();
    let scope = w.cohort;
    assert_eq!(w.log.pending_invite_recipients(scope, T).len(), 2);

    w.remove(&steward, vec![facilitator.device_id()], true)
        .unwrap();
    let info = w.log.invite(&invite).unwrap();
    assert!(
        info.cancelled && !info.is_open(T),
        "the facilitator's unused invite"
    );
    assert!(
        !w.log.invite(&used).unwrap().cancelled,
        "a used one stays as it was"
    );
    assert!(
        !w.log.invite(&steward_invite).unwrap().cancelled,
        "others' invites stay open"
    );
    assert_eq!(
        w.log.pending_invite_recipients(scope, T).len(),
        1,
        "new keys are not granted to the cancelled invite"
    );
    assert!(matches!(
        w.join(&key, invite),
        Err(LogError::Invalid("this invite was cancelled"))
    ));
    assert!(w.log.device(&alex_device.device_id()).unwrap().active);
    w.join(&steward_key, steward_invite).unwrap();
}

#[test]
fn an_invite_is_cancelled_by_its_maker_a_steward_or_its_facilitator_only() {
    let mut w = World::new();
    let steward = w.steward_keys();
    let (facilitator, _) = w.member(Role::Facilitator, w.cohort);
    let (other_facilitator, _) = w.member(Role::Facilitator, w.other_cohort);
    let (member, _) = w.member(Role::Member, w.cohort);
    let cancel = |invite| Action::CancelInvite { invite };

    let (_, by_steward, _) = w.invite(&steward, Role::Member, Some(w.cohort)).unwrap();
    for outsider in [&member, &other_facilitator] {
        assert!(matches!(
            w.log.append(outsider, cancel(by_steward), T),
            Err(LogError::Unauthorised(_))
        ));
    }
    w.log.append(&facilitator, cancel(by_steward), T).unwrap();
    assert!(
        w.log.append(&steward, cancel(by_steward), T).is_err(),
        "once"
    );

    let (key, own, _) = w
        .invite(&facilitator, Role::Member, Some(w.cohort))
        .unwrap();
    w.log.append(&facilitator, cancel(own), T).unwrap();
    assert!(w.join(&key, own).is_err());
    let (key, used, _) = w.invite(&steward, Role::Member, Some(w.cohort)).unwrap();
    w.join(&key, used).unwrap();
    assert!(
        w.log.append(&steward, cancel(used), T).is_err(),
        "a used invite stays used"
    );
}

#[test]
fn only_a_steward_changes_the_research_team_and_every_key_then_changes() {
    let mut w = World::new();
    let (facilitator, _) = w.member(Role::Facilitator, w.cohort);
    let team = vec![recipient(&mut w.rng)];
    let change = |recipients: Vec<String>| Action::ResearchTeam { recipients };

    let refused = w.log.append(&facilitator, change(team.clone()), T);
    assert!(
        matches!(refused, Err(LogError::Unauthorised(_))),
        "{refused:?}"
    );
    let twice = vec![team[0].clone(), team[0].clone()];
    let refused = w.log.append(&w.steward_keys(), change(twice), T);
    assert!(matches!(refused, Err(LogError::Invalid(_))), "{refused:?}");
    let refused = w
        .log
        .append(&w.steward_keys(), change(vec!["age1nope".into()]), T);
    assert!(refused.is_err());

    assert!(!w.log.research_team_changed_since(&w.cohort));
    w.log
        .append(&w.steward_keys(), change(team.clone()), T)
        .unwrap();
    assert_eq!(w.log.research_recipients(), team.as_slice());
    assert!(w.log.scope(&w.cohort).unwrap().stale);
    assert!(w.log.research_team_changed_since(&w.cohort));
    // The same team again changes nothing, so it is refused.
    let refused = w.log.append(&w.steward_keys(), change(team), T);
    assert!(matches!(refused, Err(LogError::Invalid(_))), "{refused:?}");
}

#[test]
fn only_a_steward_pins_the_release_key() {
    use crate::release::ReleaseSigningKey;
    let mut w = World::new();
    let (facilitator, _) = w.member(Role::Facilitator, w.cohort);
    let key = ReleaseSigningKey::generate(&mut w.rng).public();
    let pin = |key: Option<[u8; 32]>| Action::PinReleaseKey { key };

    let refused = w.log.append(&facilitator, pin(Some(key.0)), T);
    assert!(
        matches!(refused, Err(LogError::Unauthorised(_))),
        "{refused:?}"
    );
    // Not a point on the curve: refused, so no device pins a key nothing matches.
    let mut not_a_key = [0u8; 32];
    not_a_key[0] = 2;
    let not_a_key = [not_a_key, [0xff; 32]]
        .into_iter()
        .find(|bytes| crate::release::ReleaseKey::from_bytes(*bytes).is_err())
        .expect("one of these is not an Ed25519 key");
    let refused = w.log.append(&w.steward_keys(), pin(Some(not_a_key)), T);
    assert!(matches!(refused, Err(LogError::Invalid(_))), "{refused:?}");
    assert_eq!(w.log.release_key(), None);

    w.log
        .append(&w.steward_keys(), pin(Some(key.0)), T)
        .unwrap();
    assert_eq!(w.log.release_key(), Some(key));
    let refused = w.log.append(&w.steward_keys(), pin(Some(key.0)), T);
    assert!(matches!(refused, Err(LogError::Invalid(_))), "{refused:?}");
    // A steward may stop the check again.
    w.log.append(&w.steward_keys(), pin(None), T).unwrap();
    assert_eq!(w.log.release_key(), None);
}

#[test]
fn a_steward_removes_another_but_never_the_last() {
    let mut w = World::new();
    let first = w.steward_keys();
    let first_member = w.log.device(&first.device_id()).unwrap().member;
    let (fran, _) = w.member(Role::Facilitator, w.cohort);
    // Alone, the steward cannot leave, and no facilitator removes them.
    assert!(matches!(
        w.remove(&first, vec![first.device_id()], true),
        Err(LogError::Invalid(_))
    ));
    assert!(matches!(
        w.remove(&fran, vec![first.device_id()], true),
        Err(LogError::Unauthorised(_))
    ));
    // A second steward (a stolen phone, say, is then no administrator for good).
    let (second, _) = w.member(Role::Steward, w.other_cohort);
    assert!(matches!(
        w.remove(&fran, vec![second.device_id()], true),
        Err(LogError::Unauthorised(_))
    ));
    w.remove(&second, vec![first.device_id()], true).unwrap();
    assert!(w.log.member(&first_member).unwrap().removed);
    // Now the second is the last.
    assert!(matches!(
        w.remove(&second, vec![second.device_id()], true),
        Err(LogError::Invalid(_))
    ));
}

impl World {
    /// The steward opens a cohort whose newcomers read only what comes
    /// after them.
    fn cohort_read_from_join(&mut self) -> ScopeId {
        let cohort = ScopeId::random(&mut self.rng);
        let open = Action::OpenCohort {
            scope: cohort,
            recipient: recipient(&mut self.rng),
            sealed_name: vec![],
            history: History::FromJoin,
        };
        let steward = self.steward_keys();
        self.log.append(&steward, open, T).unwrap();
        cohort
    }

    fn new_chapter(&mut self, by: &DeviceKeys, cohort: ScopeId) -> Result<ScopeId, LogError> {
        let scope = ScopeId::random(&mut self.rng);
        let action = Action::NewChapter {
            cohort,
            scope,
            recipient: recipient(&mut self.rng),
        };
        self.log.append(by, action, T).map(|_| scope)
    }
}

#[test]
fn a_newcomer_to_a_cohort_read_from_join_reads_only_the_chapters_opened_after() {
    let mut w = World::new();
    let cohort = w.cohort_read_from_join();
    // An invite into it carries none of its keys, and no key reaches it later.
    let (key, invite, _) = w
        .invite(&w.steward_keys(), Role::Member, Some(cohort))
        .unwrap();
    assert_eq!(
        w.log.scopes_for_invite(&invite),
        w.log.alliance_scope().into_iter().collect::<Vec<_>>()
    );
    assert!(w.log.pending_invite_recipients(cohort, T).is_empty());
    let ada = w.join(&key, invite).unwrap();
    let ada_member = w.log.device(&ada.device_id()).unwrap().member;
    assert!(!w.log.member_reads(&ada_member, &cohort));
    assert!(w.log.chapter_owed(&cohort));
    assert_eq!(w.log.chapter_owed_by(&ada.device_id()), Some(cohort));
    assert_eq!(w.log.cohort_scopes_read_by(&ada_member), vec![]);

    // Only a member of the cohort opens its chapter, and only when owed.
    let (outsider, _) = w.member(Role::Member, w.cohort);
    assert!(matches!(
        w.new_chapter(&outsider, cohort),
        Err(LogError::Unauthorised(_))
    ));
    let first = w.new_chapter(&ada, cohort).unwrap();
    assert!(matches!(
        w.new_chapter(&ada, cohort),
        Err(LogError::Invalid(_))
    ));
    assert!(matches!(
        w.new_chapter(&ada, w.cohort),
        Err(LogError::Unauthorised(_))
    ));
    assert_eq!(w.log.cohort_scopes_read_by(&ada_member), vec![first]);
    assert_eq!(w.log.cohort_of(&first), Some(cohort));
    assert_eq!(w.log.cohorts().filter(|(id, _)| **id == first).count(), 0);

    // Ben is invited: a chapter is owed at once, and Ada's device opens it
    // before he joins. Ada and Ben read it; Ben not the first.
    let (key, invite, _) = w
        .invite(&w.steward_keys(), Role::Member, Some(cohort))
        .unwrap();
    assert_eq!(w.log.chapter_owed_by(&ada.device_id()), Some(cohort));
    let second = w.new_chapter(&ada, cohort).unwrap();
    let ben = w.join(&key, invite).unwrap();
    let ben_member = w.log.device(&ben.device_id()).unwrap().member;
    assert!(!w.log.chapter_owed(&cohort));
    assert!(w.log.member_reads(&ada_member, &first));
    assert!(!w.log.member_reads(&ben_member, &first));
    assert!(w.log.member_reads(&ben_member, &second));
    let readers: Vec<DeviceId> = w.log.readers(second).into_iter().map(|(d, _)| d).collect();
    assert!(readers.contains(&ada.device_id()) && readers.contains(&ben.device_id()));
    assert_eq!(
        w.log.cohort_scopes_written_by(&ada_member),
        vec![first, second]
    );
    assert_eq!(w.log.cohort_scopes_written_by(&ben_member), vec![second]);

    // Removing Ada makes every chapter she read stale, as for any scope.
    let steward = w.steward_keys();
    w.remove(&steward, vec![ada.device_id()], true).unwrap();
    assert!(w.log.scope(&first).unwrap().stale && w.log.scope(&second).unwrap().stale);
    let bens = w.log.stale_scopes_read_by(&ben.device_id());
    assert!(bens.contains(&second) && !bens.contains(&first));
}

#[test]
fn a_cohort_kept_whole_hands_its_keys_to_newcomers_and_owes_no_chapter() {
    let mut w = World::new();
    let (key, invite, _) = w
        .invite(&w.steward_keys(), Role::Member, Some(w.cohort))
        .unwrap();
    assert!(w.log.scopes_for_invite(&invite).contains(&w.cohort));
    assert!(!w.log.pending_invite_recipients(w.cohort, T).is_empty());
    let ada = w.join(&key, invite).unwrap();
    assert!(!w.log.chapter_owed(&w.cohort));
    assert!(matches!(
        w.new_chapter(&ada, w.cohort),
        Err(LogError::Invalid(_))
    ));
}
