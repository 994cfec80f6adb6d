//! The bodies of Kith's fuzz targets: one function per decoder of untrusted
//! bytes. Each libFuzzer target in `fuzz_targets/` calls one of these, and
//! `core/tests/fuzz_fixtures.rs` includes this file to feed the same
//! functions every test vector and every saved crash, so the normal
//! `cargo test` runs exactly what the fuzzer ran. See docs/FUZZING.md.
//!
//! Most targets read a first "mode" byte that says how to use the rest, so
//! one target reaches every layer of its decoder: for an envelope, the raw
//! age file (what the relay hands over), a plaintext encrypted to our fixed
//! identity (so the fuzzer gets past the encryption), or a body signed by a
//! fixed device (so it gets past the signature too). The fixed keys are
//! those of the test vectors in `core/tests/vectors/`, so the vectors are
//! also good seeds.
//!
//! Besides "does not panic", the targets check a few properties (a refused
//! membership entry changes nothing, an accepted log replays, what decodes
//! re-encodes to something that decodes the same, padding is accepted
//! exactly when it is what `seal` adds).

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use kith_core::api::{
    self, AppendBlobs, AppendLog, Appended, BlobPage, CheckpointList, ErrorBody, LogPage,
    PublishInvite, RedeemInvite, Redeemed, RegisterAlliance,
};
use kith_core::envelope::{
    BLOB_LABEL, INVITE_LABEL, OpenError, decrypt, encrypt, open, padded_len, seal, seal_unpadded,
};
use kith_core::membership::{Action, Entry, LOG_LABEL, join_proof_message};
use kith_core::payload::{Batch, BlobPayload, Checkpoint, Content, Writing};
use kith_core::{
    AgeIdentity, AllianceId, BlobId, BlobRecord, Client, ContributionDoc, DeviceKeys, DocId,
    EpochKey, Ingested, Invite, InvitePackage, Membership, Reader, Recipient, SignedEntry,
    Timestamp, decode_blob, encode_blob,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every target: its name (the file in `fuzz_targets/`, and the folder of
/// its saved crashes) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("blob_open", blob_open),
    ("invite_package_open", invite_package_open),
    ("invite_parse", invite_parse),
    ("membership_apply", membership_apply),
    ("store_decode", store_decode),
    ("relay_json", relay_json),
    ("padding", padding),
    ("automerge_apply", automerge_apply),
    ("reader_ingest", reader_ingest),
];

/// A target's body: it takes one input and panics on a bug.
pub type Target = fn(&[u8]);

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---- The targets ----

/// A relay blob: `envelope::open::<BlobPayload>` with the fixed cohort and
/// researcher identities, then what a reader does with what opened (apply a
/// batch's changes, read a grant's key, apply a checkpoint's documents).
pub fn blob_open(data: &[u8]) {
    envelope(
        BLOB_LABEL,
        data,
        &fixed().blob_identities,
        |payload: &BlobPayload| {
            let _ = payload.content.scope();
            let _ = payload.content.covers();
            match &payload.content {
                Content::Batch(batch) | Content::Writing(Writing { batch, .. }) => {
                    automerge(&[], &batch.changes);
                }
                Content::Grant(grant) => {
                    let _ = grant.epoch_key().identity.recipient().to_string();
                }
                Content::Checkpoint(checkpoint) => {
                    for (_, save) in &checkpoint.docs {
                        automerge(&[], save);
                    }
                }
            }
        },
    );
}

/// An invite package: `envelope::open::<InvitePackage>` with the fixed
/// invite's identity, then its grants' keys.
pub fn invite_package_open(data: &[u8]) {
    let identities = std::slice::from_ref(&fixed().invite_identity);
    envelope(INVITE_LABEL, data, identities, |package: &InvitePackage| {
        for grant in &package.grants {
            let _ = grant.epoch_key().identity.recipient().to_string();
        }
    });
}

/// An invite link or code: `Invite::parse`. Mode 0: the bytes as text;
/// 1: `kith2` (or, for an odd first byte after the mode, `kith1`) and the
/// bytes in base64url (reaches the postcard decoding); 2: the same inside a
/// link. A parsed invite re-encodes to a code that
/// parses to the same fields.
pub fn invite_parse(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let prefix = if mode & 0x80 == 0 { "kith2" } else { "kith1" };
    let text = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => format!("{prefix}{}", BASE64URL.encode(rest)),
        _ => format!(
            "https://relay.example/#join={prefix}{}",
            BASE64URL.encode(rest)
        ),
    };
    let Ok(invite) = Invite::parse(&text) else {
        return;
    };
    let again = Invite::parse(&invite.code()).expect("a code we wrote parses");
    assert_eq!(again.relay, invite.relay);
    assert_eq!(again.alliance, invite.alliance);
    assert_eq!(again.invite, invite.invite);
    assert_eq!(again.inviter, invite.inviter);
    assert_eq!(*again.token_hex(), *invite.token_hex());
    assert_eq!(again.public_key(), invite.public_key());
    assert_eq!(again.identity().recipient(), invite.identity().recipient());
    let _ = invite.link();
    let _ = invite.token_sha256();
    let _ = invite.prove(b"a message");
}

/// One membership entry, applied after the first N entries of the fixed
/// valid log (N from the mode byte's upper six bits). Mode & 3 = 0: the
/// bytes are the body, then a 64-byte signature; 1: a `SignedEntry` as JSON
/// (as the relay serves it); 2: an `Entry` (postcard), put in place (index,
/// prev, alliance) and signed by one of the fixed devices, so the checks
/// after the signature run; 3: as 2, and a `Join` is also proven with the
/// log's open invite. A refused entry must change nothing; an accepted one
/// must leave a log that replays from the start.
pub fn membership_apply(data: &[u8]) {
    let f = fixed();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut membership = f.replayed[usize::from(mode >> 2) % f.replayed.len()].clone();
    let entry = match mode & 3 {
        0 => {
            let Some(at) = rest.len().checked_sub(64) else {
                return;
            };
            let (body, signature) = rest.split_at(at);
            SignedEntry {
                body: body.to_vec(),
                signature: signature.to_vec(),
            }
        }
        1 => match serde_json::from_slice(rest) {
            Ok(entry) => entry,
            Err(_) => return,
        },
        _ => match put_in_place(&membership, rest, mode & 3 == 3) {
            Some(entry) => entry,
            None => return,
        },
    };
    let before = membership.len();
    match membership.apply(&entry) {
        Ok(()) => {
            assert_eq!(membership.len(), before + 1);
            let again = Membership::replay(membership.alliance(), membership.entries())
                .expect("a log that was accepted entry by entry replays");
            assert_eq!(again.len(), membership.len());
            read_everything(&membership);
        }
        Err(_) => assert_eq!(membership.len(), before, "a refused entry changed nothing"),
    }
}

/// The device's local store. Mode 0: `decode_blob` (a decoded record
/// re-encodes to one that decodes the same); 1: `Client::load` of the bytes
/// as a state record; 2: the same after the state label; 3: the fixed
/// steward's state and blobs, plus the bytes as one more stored blob, which
/// must never stop the device from loading.
pub fn store_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(record) = decode_blob(rest) {
                assert_eq!(decode_blob(&encode_blob(&record)).unwrap(), record);
            }
        }
        1 => load(rest, Vec::new()),
        2 => load(&[&b"kith/state/v3\n"[..], rest].concat(), Vec::new()),
        _ => {
            let Ok(extra) = decode_blob(rest) else {
                return;
            };
            let (state, mut blobs) = steward_store();
            blobs.push(extra);
            let loaded = Client::load(&state, blobs);
            assert!(loaded.is_ok(), "one stored blob stopped the device loading");
        }
    }
}

/// The relay's JSON bodies, as `serde_json` reads them (mode 0 to 10, one
/// type each), and mode 11: the `scopes=` list of a fetch. What decodes
/// re-encodes to JSON that decodes to the same JSON again; what a device
/// does next with a body (open blobs, replay a log) runs too.
pub fn relay_json(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixed();
    let blobs = |blobs: &[BlobRecord]| {
        for blob in blobs {
            blob_open(&with(0, &blob.data));
        }
    };
    match mode % 12 {
        0 => {
            if let Some(page) = json::<BlobPage>(rest) {
                blobs(&page.blobs);
            }
        }
        1 => {
            if let Some(page) = json::<LogPage>(rest) {
                let _ = Membership::replay(f.alliance, &page.entries);
            }
        }
        2 => {
            if let Some(redeemed) = json::<Redeemed>(rest) {
                invite_package_open(&with(0, &redeemed.package));
                let _ = Membership::replay(redeemed.alliance_id, &redeemed.log);
            }
        }
        3 => {
            if let Some(append) = json::<AppendLog>(rest) {
                let mut membership = f.replayed.last().unwrap().clone();
                for entry in &append.entries {
                    if membership.apply(entry).is_err() {
                        break;
                    }
                }
            }
        }
        4 => {
            if let Some(publish) = json::<PublishInvite>(rest) {
                let _ = publish.entry.open();
                invite_package_open(&with(0, &publish.package));
            }
        }
        5 => {
            if let Some(list) = json::<CheckpointList>(rest) {
                blobs(&list.checkpoints);
            }
        }
        6 => {
            if let Some(register) = json::<RegisterAlliance>(rest) {
                let _ = Membership::replay(register.alliance_id, &register.log);
            }
        }
        7 => {
            if let Some(append) = json::<AppendBlobs>(rest) {
                blobs(&append.blobs);
            }
        }
        8 => {
            let _ = json::<Appended>(rest);
        }
        9 => {
            let _ = json::<RedeemInvite>(rest);
        }
        10 => {
            let _ = json::<ErrorBody>(rest);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            if let Some(scopes) = api::paths::parse_scope_list(&text) {
                let path = api::paths::checkpoints(f.alliance, &scopes);
                let (_, list) = path.split_once("scopes=").unwrap();
                assert_eq!(api::paths::parse_scope_list(list), Some(scopes));
            }
        }
    }
}

/// Envelope padding, through the public `open`: a fixed signed content of
/// a chosen length (first two bytes) followed by padding. Mode bit 0 clear:
/// the rest of the bytes are the padding; set: they are XORed over the
/// correct zero padding (and any extra appended). `open` must accept it
/// exactly when the padding is what `seal` adds. Also checks `padded_len`
/// on a length made of up to eight of the bytes.
pub fn padding(data: &[u8]) {
    let [lo, hi, mode, rest @ ..] = data else {
        return;
    };
    let mut n = [0u8; 8];
    let take = rest.len().min(8);
    n[..take].copy_from_slice(&rest[..take]);
    let n = u64::from_le_bytes(n) as usize;
    let padded = padded_len(n);
    assert!(padded >= n && padded_len(padded) == padded);
    assert!(padded_len(n.saturating_add(1)) >= padded);

    let f = fixed();
    let body = "x".repeat(usize::from(u16::from_le_bytes([*lo, *hi])) % 1500);
    let recipient = f.blob_identities[0].recipient();
    let (unpadded, _) = seal_unpadded(BLOB_LABEL, &body, &f.signer, &[&recipient]).unwrap();
    let mut plaintext = decrypt(&unpadded, &[&f.blob_identities[0]]).unwrap();
    let correct = padded_len(plaintext.len()) - plaintext.len();
    let padding = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut padding = vec![0u8; correct];
        for (i, b) in rest.iter().enumerate() {
            match padding.get_mut(i) {
                Some(p) => *p ^= b,
                None => padding.push(*b),
            }
        }
        padding
    };
    let canonical = padding.len() == correct && padding.iter().all(|&b| b == 0);
    plaintext.extend_from_slice(&padding);
    let file = encrypt(&plaintext, &[&recipient]).unwrap();
    let opened = open::<String>(BLOB_LABEL, &file, &[&f.blob_identities[0]]);
    match opened {
        Ok(opened) => {
            assert!(canonical, "padding that seal never adds was accepted");
            assert_eq!(opened.body, body);
        }
        Err(e) => {
            assert!(!canonical, "canonical padding was refused");
            assert_eq!(e, OpenError::BadSignature);
        }
    }
}

/// Automerge changes from a blob: `ContributionDoc::apply` on an empty
/// document (mode 0) or one that holds a contribution (mode 1); a document
/// that took them saves and loads into another with the same contributions.
pub fn automerge_apply(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let base: &[u8] = if mode % 2 == 0 { &[] } else { &fixed().changes };
    automerge(base, rest);
}

/// What a reader does with relay blobs after they open: blobs signed by
/// the fixed devices and sealed to the valid log's epoch keys (or the
/// researcher), ingested in order by a `Reader` that holds every key, with
/// the membership of the whole valid log. The input is a list of items:
/// signer (a byte), key (a byte), length (two bytes, little-endian) and a
/// postcard `BlobPayload`, whose alliance is set to the fixed one and whose
/// ids the relay's record repeats. A blob ingested without error is
/// known: ingesting it again gives `AlreadyHad`.
pub fn reader_ingest(data: &[u8]) {
    let f = fixed();
    let membership = f.replayed.last().unwrap();
    let researcher = f.blob_identities[1].clone();
    let mut recipients: Vec<Recipient> = f
        .epoch_keys
        .iter()
        .map(|k| k.identity.recipient())
        .collect();
    recipients.push(researcher.recipient());
    let mut reader = Reader::new(f.alliance, f.epoch_keys.clone(), vec![researcher]);
    let mut rest = data;
    while let [who, key, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        let Ok(mut payload) = postcard::from_bytes::<BlobPayload>(body) else {
            continue;
        };
        payload.alliance = f.alliance;
        let author = &f.authors[usize::from(*who) % f.authors.len()];
        let to = &recipients[usize::from(*key) % recipients.len()];
        let (data, _) = seal(BLOB_LABEL, &payload, author, &[to]).unwrap();
        let record = BlobRecord {
            id: payload.blob,
            doc: payload.doc,
            scope: payload.content.scope(),
            covers: payload.content.covers(),
            seq: payload.content.seq(),
            data,
        };
        if reader.ingest_all([&record], membership).outcomes[0].is_ok() {
            assert_eq!(
                reader.ingest_all([&record], membership).outcomes,
                vec![Ok(Ingested::AlreadyHad)]
            );
        }
    }
    let _ = reader.contributions(membership);
    let _ = reader.gaps();
    for key in &f.epoch_keys {
        let newest = membership.current_epoch(&key.scope).unwrap_or_default();
        let _ = reader.checkpoint_of(key.scope, 1, newest);
        let _ = reader.newest_key(key.scope);
    }
}

/// One `reader_ingest` item.
fn reader_item(who: u8, key: u8, payload: &[u8]) -> Vec<u8> {
    let mut item = vec![who, key];
    item.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    item.extend_from_slice(payload);
    item
}

// ---- Shared steps ----

/// Opens an envelope made from `data` (see the top of this file for the
/// modes) and hands what opened to `inspect`. A file we encrypted to our
/// own identity must decrypt; one we also signed may fail only because its
/// body is not a `T`.
fn envelope<T: DeserializeOwned>(
    label: &[u8],
    data: &[u8],
    identities: &[AgeIdentity],
    inspect: impl FnOnce(&T),
) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let recipient = identities[0].recipient();
    let (file, encrypted_by_us, signed_by_us) = match mode % 3 {
        0 => (rest.to_vec(), false, false),
        1 => (encrypt(rest, &[&recipient]).unwrap(), true, false),
        _ => {
            let (file, _) = seal(label, &Raw(rest), &fixed().signer, &[&recipient]).unwrap();
            (file, true, true)
        }
    };
    let refs: Vec<&AgeIdentity> = identities.iter().collect();
    match open::<T>(label, &file, &refs) {
        Ok(opened) => inspect(&opened.body),
        Err(OpenError::BadSignature) => {
            if signed_by_us {
                assert!(
                    postcard::from_bytes::<T>(rest).is_err(),
                    "our seal was refused"
                );
            }
        }
        Err(e) => assert!(!encrypted_by_us, "our own age file failed: {e:?}"),
    }
}

/// Applies `base` then `changes` to a new document and reads it; if the
/// changes applied, the document saves and loads into another that reads
/// the same.
fn automerge(base: &[u8], changes: &[u8]) {
    let mut doc = ContributionDoc::default();
    doc.apply(base).expect("the fixed changes apply");
    if doc.apply(changes).is_err() {
        return;
    }
    let seen = doc.contributions();
    let _ = doc.heads();
    let mut copy = ContributionDoc::default();
    copy.apply(&doc.save()).expect("a saved document loads");
    assert_eq!(copy.contributions(), seen);
}

/// `Client::load` of a state record; whatever it gives, the client works.
fn load(state: &[u8], blobs: Vec<BlobRecord>) {
    if let Ok((client, _)) = Client::load(state, blobs) {
        let _ = client.contributions();
        let _ = client.role();
        let _ = client.cohort();
        read_everything(client.membership());
    }
}

/// Reads a body as JSON; what reads writes JSON that reads back to the same JSON.
fn json<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(bytes).ok()?;
    let written = serde_json::to_vec(&value).unwrap();
    let again: T = serde_json::from_slice(&written).expect("what we wrote reads");
    assert_eq!(serde_json::to_vec(&again).unwrap(), written);
    Some(value)
}

/// For `reader_ingest`: the member's batches 2 and 1 of the cohort (the
/// first held until the second comes), then a checkpoint of the cohort by
/// the steward that covers them.
fn reader_chain_and_checkpoint() -> Vec<u8> {
    let f = fixed();
    let cohort = f.epoch_keys[1].scope;
    // The member's own document: readers refuse batches for any other.
    let membership = f.replayed.last().unwrap();
    let member = membership
        .device(&f.authors[1].device_id())
        .map_or(kith_core::MemberId([0; 16]), |d| d.member);
    let doc = DocId::own(member, cohort);
    let batch = |n: u8, seq, prev| BlobPayload {
        alliance: f.alliance,
        blob: BlobId([n; 16]),
        doc,
        content: Content::Batch(Batch {
            scope: cohort,
            epoch: 0,
            seq,
            prev,
            created_at: Timestamp(1),
            changes: f.changes.clone(),
        }),
    };
    let first = postcard::to_allocvec(&batch(1, 1, [0; 32])).unwrap();
    let hash: [u8; 32] = sha256(&first);
    let second = postcard::to_allocvec(&batch(2, 2, hash)).unwrap();
    let checkpoint = BlobPayload {
        alliance: f.alliance,
        blob: BlobId([3; 16]),
        doc: DocId([0xd3; 16]),
        content: Content::Checkpoint(Checkpoint {
            scope: cohort,
            epoch: 0,
            covers: 2,
            heads: vec![(f.authors[1].device_id(), 2, sha256(&second))],
            docs: vec![(doc, f.changes.clone())],
        }),
    };
    let checkpoint = postcard::to_allocvec(&checkpoint).unwrap();
    [
        reader_item(1, 1, &second),
        reader_item(1, 1, &first),
        reader_item(0, 1, &checkpoint),
    ]
    .concat()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// A mode byte, then `bytes`.
fn with(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut input = vec![mode];
    input.extend_from_slice(bytes);
    input
}

/// Calls every query of a membership.
fn read_everything(membership: &Membership) {
    let mut scopes: Vec<_> = membership.cohorts().map(|(s, _)| *s).collect();
    scopes.extend(membership.alliance_scope());
    for (member, info) in membership.members() {
        scopes.extend(info.research_scope);
        let _ = membership.scopes_of(member);
    }
    for scope in &scopes {
        let _ = membership.readers(*scope);
        let _ = membership.pending_invite_recipients(*scope, Timestamp(0));
        if let Some(epoch) = membership.current_epoch(scope) {
            assert!(membership.epoch_recipient(scope, epoch).is_some());
        }
    }
    for (device, _) in membership.devices() {
        let _ = membership.active_role(device);
        let _ = membership.stale_scopes_read_by(device);
        for scope in &scopes {
            let _ = membership.may_checkpoint(device, scope);
        }
    }
    for entry in membership.entries() {
        if let Ok(Entry {
            action: Action::Invite { invite, .. },
            ..
        }) = entry.open()
        {
            let _ = membership.scopes_for_invite(&invite);
        }
    }
}

/// Turns `rest` (a device choice, then a postcard `Entry`) into the entry
/// that would come next, signed by the chosen fixed device.
fn put_in_place(membership: &Membership, rest: &[u8], prove: bool) -> Option<SignedEntry> {
    let f = fixed();
    let (&who, rest) = rest.split_first()?;
    let mut entry: Entry = postcard::from_bytes(rest).ok()?;
    let author = &f.authors[usize::from(who) % f.authors.len()];
    entry.alliance = membership.alliance();
    entry.index = membership.len();
    entry.prev = membership
        .entries()
        .last()
        .map_or([0; 32], SignedEntry::hash);
    entry.author = author.device_id();
    if let (
        true,
        Action::Join {
            invite,
            device,
            proof,
            ..
        },
    ) = (prove, &mut entry.action)
    {
        device.device = author.device_id();
        device.recipient = author.recipient().to_string();
        *invite = f.open_invite.invite;
        *proof = f
            .open_invite
            .prove(&join_proof_message(entry.alliance, *invite, device));
    }
    let body = postcard::to_allocvec(&entry).ok()?;
    let signature = author.sign(&[LOG_LABEL, &body].concat()).to_vec();
    Some(SignedEntry { body, signature })
}

/// Bytes that postcard writes as they are (no length in front), so
/// `seal(label, &Raw(bytes), ..)` signs exactly `bytes` as the body.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = s.serialize_tuple(self.0.len())?;
        for byte in self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

// ---- Fixed keys and state, from the test vectors ----

const BATCH_VECTOR: &str = include_str!("../../core/tests/vectors/envelope-blob-batch-valid.json");
const GRANT_VECTOR: &str = include_str!("../../core/tests/vectors/envelope-blob-grant-valid.json");
const PACKAGE_VECTOR: &str =
    include_str!("../../core/tests/vectors/envelope-invite-package-valid.json");
const LOG_VECTOR: &str = include_str!("../../core/tests/vectors/membership-valid-log.json");
const STATE_VECTOR: &str = include_str!("../../core/tests/vectors/state-steward.json");

struct Fixed {
    /// The cohort's epoch-0 identity and the second researcher's.
    blob_identities: Vec<AgeIdentity>,
    /// The member invite's identity, which opens its package.
    invite_identity: AgeIdentity,
    /// The steward's device, which signs what the targets seal.
    signer: DeviceKeys,
    alliance: AllianceId,
    /// `replayed[n]`: the first n entries of the valid log.
    replayed: Vec<Membership>,
    /// Steward, member, newcomer, stranger.
    authors: Vec<DeviceKeys>,
    /// The facilitator invite, still open at the end of the valid log.
    open_invite: Invite,
    /// One contribution's Automerge changes.
    changes: Vec<u8>,
    /// Alliance, cohort (epoch 0), steward's and member's research-only,
    /// cohort (epoch 1): every key of the valid log.
    epoch_keys: Vec<EpochKey>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(Fixed::load)
}

impl Fixed {
    fn load() -> Self {
        let batch = parse(BATCH_VECTOR);
        let log = parse(LOG_VECTOR);
        let keys =
            |who: &str| DeviceKeys::import_secret(&hex_at(&log, &format!("/keys/{who}"))).unwrap();
        let alliance: AllianceId = str_at(&log, "/alliance").parse().unwrap();
        let entries = signed_entries(&log);
        let mut replayed = vec![Membership::new(alliance)];
        for entry in &entries {
            let mut next = replayed.last().unwrap().clone();
            next.apply(entry).expect("the valid log applies");
            replayed.push(next);
        }
        Self {
            blob_identities: vec![identity_of(&batch), identity_of(&parse(GRANT_VECTOR))],
            invite_identity: identity_of(&parse(PACKAGE_VECTOR)),
            signer: keys("steward"),
            alliance,
            replayed,
            authors: ["steward", "member", "newcomer", "stranger"]
                .map(keys)
                .into(),
            open_invite: Invite::parse(str_at(&log, "/keys/facilitator_invite")).unwrap(),
            changes: hex_at(&batch, "/expect/payload/content/batch/changes"),
            epoch_keys: log["keys"]["epoch_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| EpochKey {
                    scope: str_at(k, "/scope").parse().unwrap(),
                    epoch: k["epoch"].as_u64().unwrap() as u32,
                    identity: identity_of(k),
                })
                .collect(),
        }
    }
}

/// The steward's state record and stored blobs (`state-steward.json`).
/// Loaded apart from the rest, so a stale vector (a changed store format)
/// stops only `store_decode`, with a message that says so.
fn steward_store() -> (Vec<u8>, Vec<BlobRecord>) {
    static STORE: OnceLock<(Vec<u8>, Vec<BlobRecord>)> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let vector = parse(STATE_VECTOR);
            let blobs = vector["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    decode_blob(&hex::decode(b.as_str().unwrap()).unwrap())
                        .expect("state-steward.json is stale: regenerate the vectors")
                })
                .collect();
            (hex_at(&vector, "/state"), blobs)
        })
        .clone()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("a vector is JSON")
}

fn str_at<'a>(vector: &'a Value, pointer: &str) -> &'a str {
    vector
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is a string"))
}

fn hex_at(vector: &Value, pointer: &str) -> Vec<u8> {
    hex::decode(str_at(vector, pointer)).expect("hex")
}

fn identity_of(vector: &Value) -> AgeIdentity {
    AgeIdentity::parse(str_at(vector, "/identity")).unwrap()
}

fn signed_entries(vector: &Value) -> Vec<SignedEntry> {
    vector["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| SignedEntry {
            body: hex_at(e, "/body"),
            signature: hex_at(e, "/signature"),
        })
        .collect()
}

// ---- Seeds: target inputs made from the test vectors ----

/// The inputs one vector file gives the targets, as (target, input): what
/// seeds the corpora and what the fixture test feeds.
pub fn inputs_from_vector(vector: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    match vector["kind"].as_str().unwrap_or("") {
        "envelope" => {
            let label = str_at(vector, "/label");
            let target = match str_at(vector, "/payload") {
                "InvitePackage" => "invite_package_open",
                _ => "blob_open",
            };
            let file = hex_at(vector, "/age_file");
            out.push((target, with(0, &file)));
            if let Ok(plaintext) = decrypt(&file, &[&identity_of(vector)]) {
                out.push((target, with(1, &plaintext)));
                let signed = plaintext.strip_prefix(label.as_bytes()).unwrap_or(&[]);
                if let Ok(((body, _, _), _)) =
                    postcard::take_from_bytes::<(Vec<u8>, [u8; 32], Vec<u8>)>(signed)
                {
                    out.push((target, with(2, &body)));
                    if target == "blob_open" {
                        // Signed by the member (1) to the cohort's epoch-0
                        // key (1), by the steward (0) to the researcher (5).
                        out.push(("reader_ingest", reader_item(1, 1, &body)));
                        out.push(("reader_ingest", reader_item(0, 5, &body)));
                    }
                }
            }
            if let Some(changes) = vector.pointer("/expect/payload/content/batch/changes") {
                let changes = hex::decode(changes.as_str().unwrap()).unwrap();
                out.push(("automerge_apply", with(0, &changes)));
                out.push(("automerge_apply", with(1, &changes)));
            }
        }
        "membership" => {
            let entries = signed_entries(vector);
            for (i, entry) in entries.iter().enumerate() {
                let at = (i as u8) << 2;
                out.push((
                    "membership_apply",
                    with(at, &[&entry.body[..], &entry.signature[..]].concat()),
                ));
                out.push((
                    "membership_apply",
                    with(at | 1, &serde_json::to_vec(entry).unwrap()),
                ));
                for who in 0..4u8 {
                    out.push(("membership_apply", with(at | 3, &with(who, &entry.body))));
                }
            }
            let page = LogPage {
                entries,
                more: false,
            };
            out.push(("relay_json", with(1, &serde_json::to_vec(&page).unwrap())));
            let append = AppendLog {
                entries: page.entries,
            };
            out.push(("relay_json", with(3, &serde_json::to_vec(&append).unwrap())));
        }
        "invite" => {
            let text = str_at(vector, "/text");
            out.push(("invite_parse", with(0, text.as_bytes())));
            let code = text.trim().rsplit("#join=").next().unwrap();
            let (mode, body) = match code.strip_prefix("kith2") {
                Some(body) => (1, body),
                None => (0x81, code.strip_prefix("kith1").unwrap_or(code)),
            };
            if let Ok(wire) = BASE64URL.decode(body) {
                out.push(("invite_parse", with(mode, &wire)));
            }
        }
        "state" => {
            let state = hex_at(vector, "/state");
            out.push(("store_decode", with(1, &state)));
            if let Some(body) = state.strip_prefix(b"kith/state/v3\n") {
                out.push(("store_decode", with(2, body)));
            }
            let mut records = Vec::new();
            for blob in vector["blobs"].as_array().unwrap() {
                let bytes = hex::decode(blob.as_str().unwrap()).unwrap();
                out.push(("store_decode", with(0, &bytes)));
                out.push(("store_decode", with(3, &bytes)));
                if let Ok(record) = decode_blob(&bytes) {
                    out.push(("blob_open", with(0, &record.data)));
                    records.push(record);
                }
            }
            let page = BlobPage {
                blobs: records,
                next: 4,
                more: false,
            };
            out.push(("relay_json", with(0, &serde_json::to_vec(&page).unwrap())));
        }
        "padding" => {
            for len in vector["lengths"].as_array().unwrap() {
                let len = len.as_u64().unwrap();
                let body_len = (len % 1500) as u16;
                let mut input = body_len.to_le_bytes().to_vec();
                input.push(1);
                input.extend_from_slice(&len.to_le_bytes());
                out.push(("padding", input));
            }
        }
        _ => {}
    }
    out
}

/// Seeds no vector gives.
pub fn extra_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let scopes = format!("{}:0,{}:17", "c1".repeat(16), "a5".repeat(16));
    vec![
        ("reader_ingest", reader_chain_and_checkpoint()),
        ("padding", vec![0, 0, 1]),
        ("padding", vec![0, 0, 0]),
        ("padding", vec![0xdc, 0x05, 0, 0, 0, 0]),
        ("relay_json", with(11, scopes.as_bytes())),
        ("relay_json", b"\x08{\"stored\":[]}".to_vec()),
        ("relay_json", b"\x09{\"token\":\"00\"}".to_vec()),
        (
            "relay_json",
            b"\x0a{\"error\":\"e\",\"message\":\"m\"}".to_vec(),
        ),
        (
            "invite_parse",
            b"\x00https://relay.example/#join=kith1AAAA".to_vec(),
        ),
        ("store_decode", with(2, &[0; 64])),
    ]
}
