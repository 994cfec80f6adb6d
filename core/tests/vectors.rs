//! Test vectors for Kith's formats: the envelope (signed, padded age files
//! for relay blobs and invite packages), the key wrap (a `Grant` inside a
//! blob), the membership log, invite codes, padding lengths and the local
//! state record.
//!
//! Each file in `core/tests/vectors/` is one JSON object: fixed inputs and
//! the expected outcome, with bytes as lowercase hex. Its `kind` says how it
//! is checked, and its name says what it tests. age encryption is randomized,
//! so the envelope vectors are *decryption* vectors, in the style of age's
//! own test kit (C2SP age test vectors): an identity (`AGE-SECRET-KEY-1...`),
//! an age file, and either the decoded fields or the named error
//! (`NotForUs`, `Damaged`, `BadSignature`). Membership vectors are a list of
//! signed entries and either the replayed membership or the `LogError` of
//! the first refused entry.
//!
//! `every_vector_matches_the_current_code` checks every file against the
//! code as it is, so a change to any of these formats breaks it. The files
//! are committed; they were written once by the generator at the bottom of
//! this file:
//!
//! ```text
//! cargo test -p kith-core --test vectors -- --ignored generate
//! ```
//!
//! which rewrites every file (with new age files, since encryption is
//! randomized); with `KITH_VECTORS_ONLY=name,name` it writes only those.
//! Run it only for a deliberate format change, and say so in the commit:
//! the diff of the expected fields is the format change.
//!
//! Fixed keys are made of repeated bytes (see `device` and `identity`). The
//! Ed25519 seed of each signer is in the files (`signer_seed`), so anyone
//! can check the signer's id with another Ed25519 implementation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kith_core::api::Role;
use kith_core::envelope::{
    BLOB_LABEL, INVITE_LABEL, OpenError, decrypt, encrypt, open, padded_len, seal, seal_unpadded,
};
use kith_core::kinds::Kind;
use kith_core::membership::{
    Action, DeviceKeysPublic, Entry, History, LOG_LABEL, ScopeKind, join_proof_message,
};
use kith_core::payload::{Batch, BlobPayload, Content, Grant, Writing};
use kith_core::{
    AgeIdentity, AllianceId, BlobId, Client, ContributionDoc, ContributionId, DeviceId, DeviceKeys,
    DocId, EpochKey, Error, Invite, InvitePackage, LogError, MemberId, Membership, NewAlliance,
    Recipient, ScopeId, SignedEntry, StoreOp, Timestamp, WriteScope, decode_blob, encode_blob,
};
use serde_json::{Value, json};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every `.json` file in the vector folder, sorted.
fn vector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .expect("core/tests/vectors exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_vector_matches_the_current_code() {
    let mut failures = Vec::new();
    let files = vector_files();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let vector: Value = serde_json::from_str(&text).unwrap();
        if let Err(why) = check(&vector) {
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(files.len() >= REQUIRED.len());
}

/// The vectors the issue asks for; deleting one fails this test.
const REQUIRED: &[&str] = &[
    "envelope-blob-batch-valid",
    "envelope-blob-writing-valid",
    "envelope-blob-response-valid",
    "envelope-blob-grant-valid",
    "envelope-invite-package-valid",
    "envelope-blob-not-for-us",
    "envelope-blob-flipped-ciphertext-byte",
    "envelope-blob-flipped-header-mac",
    "envelope-blob-truncated",
    "envelope-not-an-age-file",
    "envelope-blob-signature-over-other-bytes",
    "envelope-blob-signer-swapped",
    "envelope-blob-non-zero-padding",
    "envelope-blob-padding-too-long",
    "envelope-blob-unpadded",
    "envelope-blob-wrong-label",
    "envelope-blob-body-not-a-payload",
    "membership-valid-log",
    "membership-bad-signature",
    "membership-out-of-order",
    "membership-wrong-prev",
    "membership-member-invites",
    "membership-stranger-writes",
    "membership-join-wrong-proof",
    "membership-join-used-invite",
    "membership-wrong-alliance",
    "membership-malformed-body",
    "membership-first-entry-not-create",
    "membership-chapters-and-research-team",
    "membership-chapter-not-owed",
    "invite-code-valid",
    "invite-link-valid",
    "invite-code-v2-valid",
    "invite-code-v1-body-under-v2-prefix",
    "invite-code-wrong-prefix",
    "invite-code-cut-short",
    "invite-code-not-base64url",
    "padding-lengths",
    "state-steward",
    "state-earlier-version",
];

#[test]
fn the_vector_set_is_complete() {
    let present: BTreeSet<String> = vector_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in REQUIRED {
        assert!(present.contains(*name), "missing vector {name}.json");
    }
}

// ---- Checking ----

fn check(vector: &Value) -> Result<(), String> {
    let got = match text(vector, "kind") {
        "envelope" => check_envelope(vector)?,
        "membership" => check_membership(vector)?,
        "invite" => run_invite(text(vector, "text"))?,
        "padding" => run_padding(vector),
        "state" => run_state(vector)?,
        other => return Err(format!("unknown kind {other}")),
    };
    let expected = &vector["expect"];
    if &got != expected {
        return Err(format!(
            "expected\n{}\ngot\n{}",
            serde_json::to_string_pretty(expected).unwrap(),
            serde_json::to_string_pretty(&got).unwrap()
        ));
    }
    Ok(())
}

fn check_envelope(vector: &Value) -> Result<Value, String> {
    let identity = AgeIdentity::parse(text(vector, "identity")).map_err(|e| e.to_string())?;
    if identity.recipient().to_string() != text(vector, "recipient") {
        return Err("the identity does not match its recipient".into());
    }
    let got = run_envelope(
        text(vector, "label"),
        text(vector, "payload"),
        &bytes(vector, "age_file"),
        &identity,
    );
    if let Some(signer) = got.get("signer") {
        let seed: [u8; 32] = bytes(vector, "signer_seed").try_into().unwrap();
        if signer != &json!(device_from_seed(seed)) {
            return Err("the signer is not the device of signer_seed".into());
        }
    }
    Ok(got)
}

/// Opens an age file as the named payload and describes the outcome.
fn run_envelope(label: &str, payload: &str, file: &[u8], identity: &AgeIdentity) -> Value {
    let label = label.as_bytes();
    let opened = match payload {
        "BlobPayload" => open::<BlobPayload>(label, file, &[identity])
            .map(|o| (o.signer, o.body_hash, describe_blob(&o.body))),
        "InvitePackage" => open::<InvitePackage>(label, file, &[identity])
            .map(|o| (o.signer, o.body_hash, describe_package(&o.body))),
        other => panic!("unknown payload type {other}"),
    };
    match opened {
        Ok((signer, body_hash, payload)) => json!({
            "signer": signer,
            "body_hash": hex::encode(body_hash),
            "payload": payload,
        }),
        Err(error) => json!({ "error": open_error(error) }),
    }
}

fn open_error(error: OpenError) -> &'static str {
    match error {
        OpenError::NotForUs => "NotForUs",
        OpenError::Damaged => "Damaged",
        OpenError::BadSignature => "BadSignature",
    }
}

fn describe_batch(batch: &Batch) -> Value {
    json!({
        "scope": batch.scope,
        "epoch": batch.epoch,
        "seq": batch.seq,
        "prev": hex::encode(batch.prev),
        "created_at": batch.created_at.millis(),
        "changes": hex::encode(&batch.changes),
        "contributions": contributions_in(&batch.changes),
    })
}

fn describe_blob(payload: &BlobPayload) -> Value {
    let content = match &payload.content {
        Content::Batch(batch) => json!({ "batch": describe_batch(batch) }),
        Content::Writing(Writing { kind, batch }) => json!({ "writing": {
            "kind": format!("{kind:?}"),
            "batch": describe_batch(batch),
        }}),
        Content::Grant(grant) => json!({ "grant": describe_grant(grant) }),
        Content::Checkpoint(checkpoint) => json!({ "checkpoint": {
            "scope": checkpoint.scope,
            "epoch": checkpoint.epoch,
            "covers": checkpoint.covers,
            "heads": checkpoint
                .heads
                .iter()
                .map(|(device, seq, hash)| json!([device, seq, hex::encode(hash)]))
                .collect::<Vec<_>>(),
            "docs": checkpoint
                .docs
                .iter()
                .map(|(doc, save)| json!([doc, hex::encode(save)]))
                .collect::<Vec<_>>(),
        }}),
    };
    json!({
        "alliance": payload.alliance,
        "blob": payload.blob,
        "doc": payload.doc,
        "content": content,
    })
}

/// What a batch's Automerge changes hold, applied to an empty document.
fn contributions_in(changes: &[u8]) -> Value {
    let mut doc = ContributionDoc::default();
    match doc.apply(changes) {
        Ok(()) => json!(doc.contributions()),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn describe_grant(grant: &Grant) -> Value {
    json!({
        "scope": grant.scope,
        "epoch": grant.epoch,
        "key": hex::encode(grant.key.expose_secret()),
        "recipient": grant.epoch_key().identity.recipient().to_string(),
    })
}

fn describe_package(package: &InvitePackage) -> Value {
    json!({
        "alliance": package.alliance,
        "alliance_name": package.alliance_name,
        "invite": package.invite,
        "member": package.member,
        "role": package.role,
        "cohort": package.cohort,
        "pseudonym": package.pseudonym,
        "grants": package.grants.iter().map(describe_grant).collect::<Vec<_>>(),
    })
}

fn check_membership(vector: &Value) -> Result<Value, String> {
    let alliance: AllianceId = text(vector, "alliance")
        .parse()
        .map_err(|_| "alliance id")?;
    let notes: Vec<&str> = vector["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| text(e, "action"))
        .collect();
    let entries = signed_entries(vector);
    // Every entry that opens is the action its note names, and is encoded
    // exactly as the current code would encode it.
    for (i, (entry, note)) in entries.iter().zip(notes).enumerate() {
        if let Ok(opened) = entry.open() {
            if action_name(&opened.action) != note {
                return Err(format!("entry {i} is not a {note}"));
            }
            if postcard::to_allocvec(&opened).unwrap() != entry.body {
                return Err(format!("entry {i} does not re-encode to its body"));
            }
        }
    }
    Ok(run_membership(alliance, &entries))
}

/// The entries of a membership vector.
fn signed_entries(vector: &Value) -> Vec<SignedEntry> {
    vector["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| SignedEntry {
            body: bytes(e, "body"),
            signature: bytes(e, "signature"),
        })
        .collect()
}

/// Applies entries in order: the membership they replay to, or the first refusal.
fn run_membership(alliance: AllianceId, entries: &[SignedEntry]) -> Value {
    let mut membership = Membership::new(alliance);
    for (at, entry) in entries.iter().enumerate() {
        if let Err(error) = membership.apply(entry) {
            assert_eq!(
                membership.len(),
                at as u64,
                "a refused entry changed nothing"
            );
            return json!({ "error": describe_log_error(at, &error) });
        }
    }
    describe_membership(&membership)
}

fn describe_log_error(at: usize, error: &LogError) -> Value {
    let debug = format!("{error:?}");
    let kind = debug.split(['(', ' ']).next().unwrap();
    let mut out = json!({ "at": at, "kind": kind });
    match error {
        LogError::OutOfOrder { expected, got } => {
            out["expected"] = json!(expected);
            out["got"] = json!(got);
        }
        LogError::Unauthorised(detail) | LogError::Invalid(detail) => {
            out["detail"] = json!(detail);
        }
        _ => {}
    }
    out
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Create { .. } => "Create",
        Action::OpenScope { .. } => "OpenScope",
        Action::Rotate { .. } => "Rotate",
        Action::Invite { .. } => "Invite",
        Action::Join { .. } => "Join",
        Action::Remove { .. } => "Remove",
        Action::CancelInvite { .. } => "CancelInvite",
        Action::ResearchTeam { .. } => "ResearchTeam",
        Action::OpenCohort { .. } => "OpenCohort",
        Action::NewChapter { .. } => "NewChapter",
        Action::PinReleaseKey { .. } => "PinReleaseKey",
    }
}

fn describe_membership(membership: &Membership) -> Value {
    let members: Vec<Value> = membership
        .members()
        .map(|(id, m)| {
            json!({
                "member": id,
                "role": m.role,
                "cohort": m.cohort,
                "removed": m.removed,
                "research_scope": m.research_scope,
                "sealed_pseudonym": hex::encode(&m.sealed_pseudonym),
            })
        })
        .collect();
    let devices: Vec<Value> = membership
        .devices()
        .map(|(id, d)| {
            json!({
                "device": id,
                "member": d.member,
                "recipient": d.recipient,
                "active": d.active,
            })
        })
        .collect();
    // There is no iterator over every scope: gather the alliance scope, the
    // cohorts, and each member's research-only scope.
    let mut scope_ids: BTreeSet<ScopeId> = membership
        .cohorts()
        .flat_map(|(id, _)| membership.chapters_of(id))
        .collect();
    scope_ids.extend(membership.alliance_scope());
    scope_ids.extend(membership.members().filter_map(|(_, m)| m.research_scope));
    let scopes: Vec<Value> = scope_ids
        .iter()
        .map(|id| {
            let s = membership.scope(id).unwrap();
            json!({
                "scope": id,
                "kind": s.kind,
                "epochs": s.epochs,
                "stale": s.stale,
                "sealed_name": hex::encode(&s.sealed_name),
                "history": format!("{:?}", s.history),
                "chapter_of": s.chapter_of,
                "opened_at": s.opened_at,
            })
        })
        .collect();
    // Nor over invites: take their ids from the log.
    let invites: Vec<Value> = membership
        .entries()
        .iter()
        .filter_map(|e| match e.open().ok()?.action {
            Action::Invite { invite, .. } => Some(invite),
            _ => None,
        })
        .map(|id| {
            let i = membership.invite(&id).unwrap();
            json!({
                "invite": id,
                "key": hex::encode(i.key),
                "member": i.member,
                "role": i.role,
                "cohort": i.cohort,
                "recipient": i.recipient,
                "expires_at": i.expires_at.millis(),
                "used_by": i.used_by,
            })
        })
        .collect();
    json!({
        "length": membership.len(),
        "research": membership.research_recipients(),
        "members": members,
        "devices": devices,
        "scopes": scopes,
        "invites": invites,
    })
}

/// Parses an invite link or code; a code that parses must re-encode to itself.
fn run_invite(text: &str) -> Result<Value, String> {
    match Invite::parse(text) {
        Ok(invite) => {
            let code = text.trim().rsplit("#join=").next().unwrap();
            if *invite.code() != code {
                return Err("the invite does not re-encode to its code".into());
            }
            Ok(json!({
                "relay": invite.relay,
                "alliance": invite.alliance,
                "invite": invite.invite,
                "inviter": invite.inviter,
                "token": *invite.token_hex(),
                "token_sha256": invite.token_sha256(),
                "identity": *invite.identity().export_secret(),
                "recipient": invite.identity().recipient().to_string(),
                "public_key": hex::encode(invite.public_key()),
            }))
            .map(|mut got: Value| {
                if let Some(root) = invite.log_root {
                    got["log_root"] = json!(hex::encode(root));
                }
                got
            })
        }
        Err(Error::InvalidInvite(detail)) => {
            Ok(json!({ "error": { "kind": "InvalidInvite", "detail": detail } }))
        }
        Err(other) => Err(format!("unexpected error {other:?}")),
    }
}

fn run_padding(vector: &Value) -> Value {
    let lengths: Vec<Value> = vector["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let n = n.as_u64().unwrap() as usize;
            json!([n, padded_len(n)])
        })
        .collect();
    json!(lengths)
}

/// Loads a state record with its stored blobs, as a driver does at start.
fn run_state(vector: &Value) -> Result<Value, String> {
    let mut blobs = Vec::new();
    for blob in vector["blobs"].as_array().unwrap() {
        let bytes = hex::decode(blob.as_str().unwrap()).unwrap();
        let record = decode_blob(&bytes).map_err(|e| e.to_string())?;
        if encode_blob(&record) != bytes {
            return Err("a stored blob does not re-encode to itself".into());
        }
        blobs.push(record);
    }
    Ok(match Client::load(&bytes(vector, "state"), blobs) {
        Ok((client, refused)) => json!({
            "device": client.device_id(),
            "profile": client.profile(),
            "role": client.role(),
            "refused": refused,
            "pending_uploads": client.pending_uploads(),
            "membership_length": client.membership().len(),
            "contributions": client.contributions(),
        }),
        Err(Error::CorruptState(detail)) => {
            json!({ "error": { "kind": "CorruptState", "detail": detail } })
        }
        Err(other) => return Err(format!("unexpected error {other:?}")),
    })
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string"))
}

fn bytes(value: &Value, key: &str) -> Vec<u8> {
    hex::decode(text(value, key)).unwrap_or_else(|_| panic!("{key} is hex"))
}

// ---- Fixed keys ----

/// Device keys from an Ed25519 seed of `seed` repeated and an X25519 secret
/// of `seed + 1` repeated.
fn device(seed: u8) -> DeviceKeys {
    DeviceKeys::import_secret(&[[seed; 32], [seed + 1; 32]].concat()).unwrap()
}

/// The device id of an Ed25519 seed (the X25519 half does not matter).
fn device_from_seed(seed: [u8; 32]) -> DeviceId {
    DeviceKeys::import_secret(&[seed, [0; 32]].concat())
        .unwrap()
        .device_id()
}

/// The age identity whose X25519 secret is `byte` repeated.
fn identity(byte: u8) -> AgeIdentity {
    AgeIdentity::from_secret_bytes(&[byte; 32])
}

fn public(keys: &DeviceKeys) -> DeviceKeysPublic {
    DeviceKeysPublic {
        device: keys.device_id(),
        recipient: keys.recipient().to_string(),
    }
}

// ---- The generator ----

/// Writes every vector file. Run only for a deliberate format change (see
/// the top of this file).
#[test]
#[ignore = "rewrites core/tests/vectors; run by hand after a deliberate format change"]
fn generate() {
    let world = World::new();
    let mut files: Vec<(&str, Value)> = Vec::new();
    files.extend(envelope_vectors(&world));
    files.extend(membership_vectors(&world));
    files.extend(invite_vectors(&world));
    files.push(("padding-lengths", padding_vector()));
    files.extend(state_vectors());

    // KITH_VECTORS_ONLY=a,b writes only those files and keeps the rest (for
    // a format that gains a case, without re-encrypting every other file).
    let only: Option<Vec<String>> = std::env::var("KITH_VECTORS_ONLY")
        .ok()
        .map(|names| names.split(',').map(str::to_owned).collect());
    if let Some(only) = &only {
        files.retain(|(name, _)| only.iter().any(|o| o == name));
    }
    let dir = vector_dir();
    std::fs::create_dir_all(&dir).unwrap();
    if only.is_none() {
        for path in vector_files() {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, mut vector) in files {
        // The expected outcome is what the current code gives.
        let expect = check_value(&vector);
        vector["expect"] = expect;
        let text = serde_json::to_string_pretty(&vector).unwrap() + "\n";
        std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
    }
    every_vector_matches_the_current_code();
}

/// The outcome `check` compares against, for a vector without `expect`.
fn check_value(vector: &Value) -> Value {
    match text(vector, "kind") {
        "envelope" => {
            let identity = AgeIdentity::parse(text(vector, "identity")).unwrap();
            run_envelope(
                text(vector, "label"),
                text(vector, "payload"),
                &bytes(vector, "age_file"),
                &identity,
            )
        }
        "membership" => {
            let alliance = text(vector, "alliance").parse().unwrap();
            run_membership(alliance, &signed_entries(vector))
        }
        "invite" => run_invite(text(vector, "text")).unwrap(),
        "padding" => run_padding(vector),
        "state" => run_state(vector).unwrap(),
        other => panic!("unknown kind {other}"),
    }
}

const T: Timestamp = Timestamp(1_795_000_000_000);
const RELAY: &str = "http://localhost:8080";
const WEEK_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// One small alliance: a steward, a member who joined, and an open invite
/// for a facilitator. Every key is fixed, except the two invites, which
/// come from seeded random sources.
struct World {
    alliance: AllianceId,
    steward: DeviceKeys,
    steward_member: MemberId,
    member: DeviceKeys,
    member_id: MemberId,
    facilitator_id: MemberId,
    newcomer: DeviceKeys,
    stranger: DeviceKeys,
    researchers: [AgeIdentity; 2],
    stranger_identity: AgeIdentity,
    alliance_key: EpochKey,
    cohort_key: EpochKey,
    steward_research_key: EpochKey,
    member_research_key: EpochKey,
    cohort_key_1: EpochKey,
    member_invite: Invite,
    facilitator_invite: Invite,
}

impl World {
    fn new() -> Self {
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;

        let alliance = AllianceId([0xa1; 16]);
        let steward = device(0x10);
        let key = |scope: u8, epoch, secret| EpochKey {
            scope: ScopeId([scope; 16]),
            epoch,
            identity: identity(secret),
        };
        // Version 1 codes (no pinned log), as the first vectors were made.
        let invite = |seed| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut invite =
                Invite::generate(RELAY, alliance, steward.device_id(), [0; 32], &mut rng);
            invite.log_root = None;
            invite
        };
        Self {
            alliance,
            member_invite: invite(1),
            facilitator_invite: invite(2),
            steward,
            steward_member: MemberId([0xe1; 16]),
            member: device(0x20),
            member_id: MemberId([0xe2; 16]),
            facilitator_id: MemberId([0xe3; 16]),
            newcomer: device(0x40),
            stranger: device(0x30),
            researchers: [identity(0x51), identity(0x52)],
            stranger_identity: identity(0x5f),
            alliance_key: key(0xa5, 0, 0x61),
            cohort_key: key(0xc1, 0, 0x62),
            steward_research_key: key(0xd1, 0, 0x63),
            member_research_key: key(0xd2, 0, 0x64),
            cohort_key_1: key(0xc1, 1, 0x65),
        }
    }

    /// A name sealed to the alliance scope, as the app stores names in the log.
    fn sealed(&self, name: &str) -> Vec<u8> {
        encrypt(name.as_bytes(), &[&self.alliance_key.identity.recipient()]).unwrap()
    }

    /// The valid log, as (note, entry). Built with `Membership::append`,
    /// which refuses anything the log would not accept.
    fn valid_log(&self) -> Vec<SignedEntry> {
        let mut log = Membership::new(self.alliance);
        let open_scope = |key: &EpochKey, kind, name: Option<&str>| Action::OpenScope {
            scope: key.scope,
            kind,
            recipient: key.identity.recipient().to_string(),
            sealed_name: name.map(|n| self.sealed(n)).unwrap_or_default(),
        };
        let invite_action = |invite: &Invite, member, role, cohort| Action::Invite {
            invite: invite.invite,
            key: invite.public_key(),
            member,
            role,
            cohort,
            recipient: invite.identity().recipient().to_string(),
            expires_at: T.plus_millis(WEEK_MS),
        };
        let steps: Vec<(&DeviceKeys, Action)> = vec![
            (
                &self.steward,
                Action::Create {
                    steward: self.steward_member,
                    device: public(&self.steward),
                    cohort: self.cohort_key.scope,
                    research: self
                        .researchers
                        .iter()
                        .map(|r| r.recipient().to_string())
                        .collect(),
                    sealed_pseudonym: self.sealed("Sam"),
                },
            ),
            (
                &self.steward,
                open_scope(
                    &self.alliance_key,
                    ScopeKind::Alliance,
                    Some("Relations study"),
                ),
            ),
            (
                &self.steward,
                open_scope(&self.cohort_key, ScopeKind::Cohort, Some("Parents")),
            ),
            (
                &self.steward,
                open_scope(
                    &self.steward_research_key,
                    ScopeKind::Research(self.steward_member),
                    None,
                ),
            ),
            (
                &self.steward,
                invite_action(
                    &self.member_invite,
                    self.member_id,
                    Role::Member,
                    Some(self.cohort_key.scope),
                ),
            ),
            (&self.member, self.join(&self.member_invite, &self.member)),
            (
                &self.member,
                open_scope(
                    &self.member_research_key,
                    ScopeKind::Research(self.member_id),
                    None,
                ),
            ),
            (
                &self.member,
                Action::Rotate {
                    scope: self.cohort_key_1.scope,
                    epoch: 1,
                    recipient: self.cohort_key_1.identity.recipient().to_string(),
                },
            ),
            (
                &self.steward,
                invite_action(
                    &self.facilitator_invite,
                    self.facilitator_id,
                    Role::Facilitator,
                    Some(self.cohort_key.scope),
                ),
            ),
        ];
        for (keys, action) in steps {
            log.append(keys, action, T).unwrap();
        }
        log.entries().to_vec()
    }

    /// A join by `device` with `invite`, proven with the invite's key.
    fn join(&self, invite: &Invite, device: &DeviceKeys) -> Action {
        let public = public(device);
        let proof = invite.prove(&join_proof_message(self.alliance, invite.invite, &public));
        Action::Join {
            invite: invite.invite,
            device: public,
            proof,
            sealed_pseudonym: self.sealed("Alex"),
        }
    }
}

/// Signs an entry by hand, as a device with its own code could: no checks.
fn sign_entry(keys: &DeviceKeys, entry: &Entry) -> SignedEntry {
    let body = postcard::to_allocvec(entry).unwrap();
    let signature = keys.sign(&[LOG_LABEL, &body].concat()).to_vec();
    SignedEntry { body, signature }
}

/// The next entry after `log`, signed by `keys`.
fn next_entry(world: &World, log: &[SignedEntry], keys: &DeviceKeys, action: Action) -> Entry {
    Entry {
        alliance: world.alliance,
        index: log.len() as u64,
        prev: log.last().map_or([0; 32], SignedEntry::hash),
        author: keys.device_id(),
        at: T,
        action,
    }
}

fn membership_vector(world: &World, comment: &str, entries: &[SignedEntry]) -> Value {
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            let action = e
                .open()
                .map_or("(does not open)", |e| action_name(&e.action));
            json!({
                "action": action,
                "body": hex::encode(&e.body),
                "signature": hex::encode(&e.signature),
            })
        })
        .collect();
    json!({
        "kind": "membership",
        "comment": comment,
        "alliance": world.alliance,
        "entries": entries,
    })
}

fn membership_vectors(world: &World) -> Vec<(&'static str, Value)> {
    let log = world.valid_log();
    let mut valid = membership_vector(
        world,
        "A valid log: Create, OpenScope (alliance, cohort, steward's research-only), Invite \
         (member), Join, OpenScope (member's research-only), Rotate (cohort epoch 1, by the \
         member), Invite (facilitator, still open). It replays to the members, devices, scopes, \
         epochs and invites in expect. `keys` holds the device secrets (Ed25519 seed, then X25519 \
         secret), the invite codes and the epoch keys, for the fuzz harness.",
        &log,
    );
    let epoch_keys: Vec<Value> = [
        &world.alliance_key,
        &world.cohort_key,
        &world.steward_research_key,
        &world.member_research_key,
        &world.cohort_key_1,
    ]
    .iter()
    .map(|k| {
        json!({
            "scope": k.scope,
            "epoch": k.epoch,
            "identity": *k.identity.export_secret(),
        })
    })
    .collect();
    valid["keys"] = json!({
        "steward": hex::encode(world.steward.export_secret()),
        "member": hex::encode(world.member.export_secret()),
        "newcomer": hex::encode(world.newcomer.export_secret()),
        "stranger": hex::encode(world.stranger.export_secret()),
        "member_invite": *world.member_invite.code(),
        "facilitator_invite": *world.facilitator_invite.code(),
        "epoch_keys": epoch_keys,
    });

    // Entry 5 (the join) with one bit of its signature flipped.
    let mut bad_signature = log[..6].to_vec();
    bad_signature[5].signature[10] ^= 1;

    // Entry 5 where entry 4 should come.
    let out_of_order = [&log[..4], &log[5..6]].concat();

    // Entry 4 with the right index but a `prev` of zeros.
    let mut wrong_prev = log[..4].to_vec();
    let mut entry = log[4].open().unwrap();
    entry.prev = [0; 32];
    wrong_prev.push(sign_entry(&world.steward, &entry));

    // A member's device invites someone.
    let mut member_invites = log.clone();
    let helper = Invite::generate(
        RELAY,
        world.alliance,
        world.member.device_id(),
        [0; 32],
        &mut fixed_rng(3),
    );
    member_invites.push(sign_entry(
        &world.member,
        &next_entry(
            world,
            &log,
            &world.member,
            Action::Invite {
                invite: helper.invite,
                key: helper.public_key(),
                member: MemberId([0xe4; 16]),
                role: Role::Member,
                cohort: Some(world.cohort_key.scope),
                recipient: helper.identity().recipient().to_string(),
                expires_at: T.plus_millis(WEEK_MS),
            },
        ),
    ));

    // A device outside the alliance opens a cohort.
    let mut stranger_writes = log.clone();
    stranger_writes.push(sign_entry(
        &world.stranger,
        &next_entry(
            world,
            &log,
            &world.stranger,
            Action::OpenScope {
                scope: ScopeId([0xc9; 16]),
                kind: ScopeKind::Cohort,
                recipient: world.stranger_identity.recipient().to_string(),
                sealed_name: Vec::new(),
            },
        ),
    ));

    // The newcomer joins with the facilitator invite, but proves it with its
    // own key instead of the invite's.
    let mut wrong_proof = log.clone();
    let Action::Join {
        invite,
        device,
        sealed_pseudonym,
        ..
    } = world.join(&world.facilitator_invite, &world.newcomer)
    else {
        unreachable!()
    };
    let proof = world
        .newcomer
        .sign(&join_proof_message(world.alliance, invite, &device))
        .to_vec();
    wrong_proof.push(sign_entry(
        &world.newcomer,
        &next_entry(
            world,
            &log,
            &world.newcomer,
            Action::Join {
                invite,
                device,
                proof,
                sealed_pseudonym,
            },
        ),
    ));

    // The newcomer joins with the member's invite, which was used already.
    let mut used_invite = log.clone();
    used_invite.push(sign_entry(
        &world.newcomer,
        &next_entry(
            world,
            &log,
            &world.newcomer,
            world.join(&world.member_invite, &world.newcomer),
        ),
    ));

    // Entry 1 of another alliance.
    let mut wrong_alliance = log[..1].to_vec();
    let mut entry = log[1].open().unwrap();
    entry.alliance = AllianceId([0xa2; 16]);
    wrong_alliance.push(sign_entry(&world.steward, &entry));

    // A body that is not an entry (a truncated one), signed properly.
    let mut malformed = log[..1].to_vec();
    let body = log[1].body[..40].to_vec();
    let signature = world.steward.sign(&[LOG_LABEL, &body].concat()).to_vec();
    malformed.push(SignedEntry { body, signature });

    // A log whose first entry opens a scope.
    let first = sign_entry(
        &world.steward,
        &log[1]
            .open()
            .map(|mut e| {
                e.index = 0;
                e.prev = [0; 32];
                e
            })
            .unwrap(),
    );

    let cases: Vec<(&'static str, &str, Vec<SignedEntry>)> = vec![
        (
            "membership-bad-signature",
            "Entry 5 (a Join) with one bit of its signature flipped: BadSignature.",
            bad_signature,
        ),
        (
            "membership-out-of-order",
            "Entry 5 comes where entry 4 is expected: OutOfOrder.",
            out_of_order,
        ),
        (
            "membership-wrong-prev",
            "Entry 4 with the right index but prev all zeros, re-signed by its author: OutOfOrder.",
            wrong_prev,
        ),
        (
            "membership-member-invites",
            "After the valid log, the member's device invites someone: Unauthorised.",
            member_invites,
        ),
        (
            "membership-stranger-writes",
            "After the valid log, a device outside the alliance opens a cohort: Unauthorised.",
            stranger_writes,
        ),
        (
            "membership-join-wrong-proof",
            "After the valid log, a new device joins with the open facilitator invite, but its proof is signed by its own key, not the invite's: Unauthorised.",
            wrong_proof,
        ),
        (
            "membership-join-used-invite",
            "After the valid log, a new device joins with the member's invite, already used: Invalid.",
            used_invite,
        ),
        (
            "membership-wrong-alliance",
            "Entry 1 re-signed as part of another alliance: WrongAlliance.",
            wrong_alliance,
        ),
        (
            "membership-malformed-body",
            "Entry 1's body cut to 40 bytes, then signed: Malformed.",
            malformed,
        ),
        (
            "membership-first-entry-not-create",
            "A log that starts with OpenScope: Invalid.",
            vec![first],
        ),
    ];
    // A cohort read from join on, someone invited and joining, the chapter
    // they open, and a new research team; then a chapter no one owes.
    let mut chapters = Membership::replay(world.alliance, &log).unwrap();
    let young = ScopeId([0xf1; 16]);
    let chapter = ScopeId([0xf2; 16]);
    let recipient = |seed| {
        AgeIdentity::generate(&mut fixed_rng(seed))
            .recipient()
            .to_string()
    };
    let young_invite = Invite::generate(
        RELAY,
        world.alliance,
        world.steward.device_id(),
        [0; 32],
        &mut fixed_rng(12),
    );
    let steps: Vec<(&DeviceKeys, Action)> = vec![
        (
            &world.steward,
            Action::OpenCohort {
                scope: young,
                recipient: recipient(13),
                sealed_name: world.sealed("Young people"),
                history: History::FromJoin,
            },
        ),
        (
            &world.steward,
            Action::Invite {
                invite: young_invite.invite,
                key: young_invite.public_key(),
                member: MemberId([0xe5; 16]),
                role: Role::Member,
                cohort: Some(young),
                recipient: young_invite.identity().recipient().to_string(),
                expires_at: T.plus_millis(WEEK_MS),
            },
        ),
        (&world.newcomer, world.join(&young_invite, &world.newcomer)),
        (
            &world.newcomer,
            Action::NewChapter {
                cohort: young,
                scope: chapter,
                recipient: recipient(14),
            },
        ),
        (
            &world.steward,
            Action::ResearchTeam {
                recipients: vec![world.researchers[1].recipient().to_string()],
            },
        ),
    ];
    for (keys, action) in steps {
        chapters.append(keys, action, T).unwrap();
    }
    let chapters = chapters.entries().to_vec();
    let mut not_owed = chapters.clone();
    not_owed.push(sign_entry(
        &world.newcomer,
        &next_entry(
            world,
            &chapters,
            &world.newcomer,
            Action::NewChapter {
                cohort: young,
                scope: ScopeId([0xf3; 16]),
                recipient: recipient(15),
            },
        ),
    ));
    let cases = cases.into_iter().chain([
        (
            "membership-chapters-and-research-team",
            "After the valid log: OpenCohort (Young people, read from join on), Invite into it, \
             Join, NewChapter (by the newcomer, owed since their invite), ResearchTeam (one key \
             instead of two). The newcomer reads the chapter, not the cohort's first scope.",
            chapters,
        ),
        (
            "membership-chapter-not-owed",
            "After the chapters log, the newcomer opens another chapter no one owes: Invalid.",
            not_owed,
        ),
    ]);
    let mut out = vec![("membership-valid-log", valid)];
    for (name, comment, entries) in cases {
        out.push((name, membership_vector(world, comment, &entries)));
    }
    out
}

fn fixed_rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}

fn envelope_vector(
    comment: &str,
    label: &[u8],
    payload: &str,
    identity: &AgeIdentity,
    signer: &DeviceKeys,
    file: &[u8],
) -> Value {
    json!({
        "kind": "envelope",
        "comment": comment,
        "label": std::str::from_utf8(label).unwrap(),
        "payload": payload,
        "identity": *identity.export_secret(),
        "recipient": identity.recipient().to_string(),
        "signer_seed": hex::encode(&signer.export_secret()[..32]),
        "age_file": hex::encode(file),
    })
}

/// Decrypts `file`, changes its plaintext, and encrypts it again: what
/// someone who knows the recipient (but not the signing key) can do.
fn reseal(file: &[u8], identity: &AgeIdentity, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut plaintext = decrypt(file, &[identity]).unwrap();
    change(&mut plaintext);
    encrypt(&plaintext, &[&identity.recipient()]).unwrap()
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("found")
}

fn envelope_vectors(world: &World) -> Vec<(&'static str, Value)> {
    let reader = &world.cohort_key.identity;
    let reader_recipient = reader.recipient();
    let changes = ContributionDoc::default()
        .contribute(
            &world.member.device_id(),
            ContributionId([0xc0; 16]),
            "The meeting felt safe.",
            T,
        )
        .unwrap();
    let batch = || BlobPayload {
        alliance: world.alliance,
        blob: BlobId([0xb1; 16]),
        doc: DocId([0xd0; 16]),
        content: Content::Batch(Batch {
            scope: world.cohort_key.scope,
            epoch: 0,
            seq: 1,
            prev: [0; 32],
            created_at: T,
            changes: changes.clone(),
        }),
    };
    let body = postcard::to_allocvec(&batch()).unwrap();
    let (valid, _) = seal(BLOB_LABEL, &batch(), &world.member, &[&reader_recipient]).unwrap();
    let writing = BlobPayload {
        alliance: world.alliance,
        blob: BlobId([0xb5; 16]),
        doc: DocId::own(world.member_id, world.cohort_key.scope),
        content: Content::Writing(Writing {
            kind: Kind::Reflection,
            batch: Batch {
                scope: world.cohort_key.scope,
                epoch: 0,
                seq: 1,
                prev: [0; 32],
                created_at: T,
                changes: changes.clone(),
            },
        }),
    };
    let (writing, _) = seal(BLOB_LABEL, &writing, &world.member, &[&reader_recipient]).unwrap();
    let answer = ContributionDoc::default()
        .respond(
            &world.member.device_id(),
            ContributionId([0xc1; 16]),
            "Walking every morning.",
            T,
            ContributionId([0xc2; 16]),
        )
        .unwrap();
    let response = BlobPayload {
        alliance: world.alliance,
        blob: BlobId([0xb6; 16]),
        doc: DocId::own_of_kind("response", world.member_id, world.cohort_key.scope),
        content: Content::Writing(Writing {
            kind: Kind::Response,
            batch: Batch {
                scope: world.cohort_key.scope,
                epoch: 0,
                seq: 2,
                prev: [0; 32],
                created_at: T,
                changes: answer,
            },
        }),
    };
    let (response, _) = seal(BLOB_LABEL, &response, &world.member, &[&reader_recipient]).unwrap();
    let blob = |comment, file: &[u8]| {
        envelope_vector(
            comment,
            BLOB_LABEL,
            "BlobPayload",
            reader,
            &world.member,
            file,
        )
    };

    let grant = BlobPayload {
        alliance: world.alliance,
        blob: BlobId([0xb2; 16]),
        doc: DocId([0xd2; 16]),
        content: Content::Grant(Grant::of(&world.cohort_key)),
    };
    let research: Vec<Recipient> = world.researchers.iter().map(|r| r.recipient()).collect();
    let (grant_file, _) = seal(
        BLOB_LABEL,
        &grant,
        &world.steward,
        &research.iter().collect::<Vec<_>>(),
    )
    .unwrap();

    let package = InvitePackage {
        alliance: world.alliance,
        alliance_name: "Relations study".into(),
        invite: world.member_invite.invite,
        member: world.member_id,
        role: Role::Member,
        cohort: Some(world.cohort_key.scope),
        pseudonym: None,
        grants: vec![Grant::of(&world.alliance_key), Grant::of(&world.cohort_key)],
    };
    let invite_identity = world.member_invite.identity();
    let (package_file, _) = seal(
        INVITE_LABEL,
        &package,
        &world.steward,
        &[&invite_identity.recipient()],
    )
    .unwrap();

    let mut flipped = valid.clone();
    *flipped.last_mut().unwrap() ^= 1;

    let mut bad_mac = valid.clone();
    let mac = find(&bad_mac, b"\n--- ") + 5;
    bad_mac[mac] = if bad_mac[mac] == b'A' { b'B' } else { b'A' };

    let truncated = valid[..valid.len() - 17].to_vec();

    let other_bytes = reseal(&valid, reader, |p| {
        let at = find(p, &body) + body.len() - 1;
        p[at] ^= 1;
    });
    let signer_swapped = reseal(&valid, reader, |p| {
        let at = find(p, &body) + body.len();
        p[at..at + 32].copy_from_slice(&world.stranger.device_id().0);
    });
    let non_zero = reseal(&valid, reader, |p| *p.last_mut().unwrap() = 1);
    let too_long = reseal(&valid, reader, |p| p.push(0));
    let (unpadded, _) =
        seal_unpadded(BLOB_LABEL, &batch(), &world.member, &[&reader_recipient]).unwrap();
    let (wrong_label, _) =
        seal(INVITE_LABEL, &batch(), &world.member, &[&reader_recipient]).unwrap();
    let (not_a_payload, _) = seal(
        BLOB_LABEL,
        &"a signed string, not a BlobPayload".to_string(),
        &world.member,
        &[&reader_recipient],
    )
    .unwrap();

    vec![
        (
            "envelope-blob-batch-valid",
            blob(
                "A relay blob carrying a Batch (one contribution's Automerge changes), signed by \
                 the member's device and encrypted to the cohort's epoch-0 key.",
                &valid,
            ),
        ),
        (
            "envelope-blob-writing-valid",
            blob(
                "A relay blob carrying Writing: a Reflection batch (one contribution's Automerge \
                 changes, no name inside) for the member's own document, signed by the member's \
                 device and encrypted to the cohort's epoch-0 key. Devices write batches this way.",
                &writing,
            ),
        ),
        (
            "envelope-blob-response-valid",
            blob(
                "A relay blob carrying Writing of kind Response (2): one answer's Automerge \
                 changes, its item holding text, created_at and prompt (the id of the question it \
                 answers, as 32 hex digits), for the member's own response document \
                 (DocId::own_of_kind(\"response\", member, scope)).",
                &response,
            ),
        ),
        (
            "envelope-blob-grant-valid",
            envelope_vector(
                "The key-wrap format: a relay blob carrying a Grant of the cohort's epoch-0 key, \
                 signed by the steward and encrypted to both researchers; opened by the second.",
                BLOB_LABEL,
                "BlobPayload",
                &world.researchers[1],
                &world.steward,
                &grant_file,
            ),
        ),
        (
            "envelope-invite-package-valid",
            envelope_vector(
                "An invite package for the member's invite (invite-code-valid), with grants of \
                 the alliance and cohort keys, signed by the steward and encrypted to the \
                 invite's identity.",
                INVITE_LABEL,
                "InvitePackage",
                invite_identity,
                &world.steward,
                &package_file,
            ),
        ),
        (
            "envelope-blob-not-for-us",
            envelope_vector(
                "The valid batch blob, opened with an identity it is not encrypted to: NotForUs.",
                BLOB_LABEL,
                "BlobPayload",
                &world.stranger_identity,
                &world.member,
                &valid,
            ),
        ),
        (
            "envelope-blob-flipped-ciphertext-byte",
            blob(
                "The valid batch blob with its last byte flipped: Damaged.",
                &flipped,
            ),
        ),
        (
            "envelope-blob-flipped-header-mac",
            blob(
                "The valid batch blob with the first character of its header MAC changed: Damaged.",
                &bad_mac,
            ),
        ),
        (
            "envelope-blob-truncated",
            blob(
                "The valid batch blob without its last 17 bytes: Damaged.",
                &truncated,
            ),
        ),
        (
            "envelope-not-an-age-file",
            blob(
                "Bytes that are not an age file: Damaged.",
                b"hello, relay\n",
            ),
        ),
        (
            "envelope-blob-signature-over-other-bytes",
            blob(
                "The valid batch blob's plaintext with the last byte of the signed body changed, \
                 encrypted again: the signature is over other bytes: BadSignature.",
                &other_bytes,
            ),
        ),
        (
            "envelope-blob-signer-swapped",
            blob(
                "The valid batch blob's plaintext with the signer replaced by another device, \
                 encrypted again: BadSignature.",
                &signer_swapped,
            ),
        ),
        (
            "envelope-blob-non-zero-padding",
            blob(
                "The valid batch blob's plaintext with its last padding byte set to 1, encrypted \
                 again: refused as BadSignature.",
                &non_zero,
            ),
        ),
        (
            "envelope-blob-padding-too-long",
            blob(
                "The valid batch blob's plaintext with one more zero byte, encrypted again: \
                 refused as BadSignature.",
                &too_long,
            ),
        ),
        (
            "envelope-blob-unpadded",
            blob(
                "The batch sealed without padding (the format before padding): refused as \
                 BadSignature.",
                &unpadded,
            ),
        ),
        (
            "envelope-blob-wrong-label",
            blob(
                "The batch signed and sealed under the invite label, opened as a blob: \
                 BadSignature.",
                &wrong_label,
            ),
        ),
        (
            "envelope-blob-body-not-a-payload",
            blob(
                "A correctly signed and padded blob whose body is a string, not a BlobPayload: \
                 BadSignature.",
                &not_a_payload,
            ),
        ),
    ]
}

fn invite_vectors(world: &World) -> Vec<(&'static str, Value)> {
    let code = world.member_invite.code().to_string();
    let mut pinned = Invite::parse(&code).unwrap();
    pinned.log_root = Some([0x5a; 32]);
    let v2 = pinned.code().to_string();
    let invite =
        |comment: &str, text: &str| json!({ "kind": "invite", "comment": comment, "text": text });
    vec![
        (
            "invite-code-valid",
            invite(
                "The member's invite as a bare code (kith1 + base64url(postcard(InviteWire))).",
                &code,
            ),
        ),
        (
            "invite-link-valid",
            invite(
                "The facilitator's invite as a link, with spaces around it.",
                &format!("  {}\n", *world.facilitator_invite.link()),
            ),
        ),
        (
            "invite-code-v2-valid",
            invite(
                "A version 2 code: kith2 + base64url(postcard(InviteWire, then the SHA-256 of the \
                 alliance's first membership entry)), which the joining device requires the \
                 relay's log to start with.",
                &v2,
            ),
        ),
        (
            "invite-code-v1-body-under-v2-prefix",
            invite(
                "A version 1 code's body after the kith2 prefix: it lacks the log's root.",
                &code.replacen("kith1", "kith2", 1),
            ),
        ),
        (
            "invite-code-wrong-prefix",
            invite(
                "The code with kith9 for kith1.",
                &code.replacen("kith1", "kith9", 1),
            ),
        ),
        (
            "invite-code-cut-short",
            invite(
                "The code without its last 10 characters.",
                &code[..code.len() - 10],
            ),
        ),
        (
            "invite-code-not-base64url",
            invite(
                "The code with a '+' (standard base64, not base64url) in it.",
                &format!("{}+{}", &code[..20], &code[21..]),
            ),
        ),
    ]
}

fn padding_vector() -> Value {
    let lengths = [
        0, 1, 500, 1023, 1024, 1025, 1088, 1089, 2000, 4096, 4097, 10_000, 65_537, 262_144,
        1_000_000,
    ];
    json!({
        "kind": "padding",
        "comment": "Plaintext lengths and the length an envelope pads each to: at least 1024, \
                    then PADMÉ.",
        "lengths": lengths,
    })
}

fn state_vectors() -> Vec<(&'static str, Value)> {
    let mut rng = fixed_rng(7);
    let (mut steward, mut ops) = Client::create_alliance(
        NewAlliance {
            name: "Relations study".into(),
            cohort: "Parents".into(),
            relay: RELAY.into(),
            pseudonym: "Sam".into(),
            researchers: vec![identity(0x51).recipient()],
            history: kith_core::History::Whole,
        },
        T,
        &mut rng,
    )
    .unwrap();
    let (_, more) = steward
        .contribute("First thoughts", WriteScope::Cohort, T, &mut rng)
        .unwrap();
    ops.extend(more);
    let mut state = Vec::new();
    let mut blobs = Vec::new();
    for op in ops {
        match op {
            StoreOp::PutBlob(blob) => blobs.push(hex::encode(encode_blob(&blob))),
            StoreOp::PutState(bytes) => state = bytes.to_vec(),
            StoreOp::PutReplica(_) | StoreOp::DeleteBlob(_) => {}
        }
    }
    let mut earlier = b"kith/state/v2\n".to_vec();
    earlier.extend_from_slice(&state[b"kith/state/v3\n".len()..]);
    vec![
        (
            "state-steward",
            json!({
                "kind": "state",
                "comment": "A steward's state record after creating an alliance (one researcher) \
                            and writing one contribution, with the blobs it stored \
                            (encode_blob): Client::load restores it.",
                "state": hex::encode(&state),
                "blobs": blobs,
            }),
        ),
        (
            "state-earlier-version",
            json!({
                "kind": "state",
                "comment": "The same record labelled kith/state/v2: refused with CorruptState.",
                "state": hex::encode(&earlier),
                "blobs": [],
            }),
        ),
    ]
}
