//! Thin wasm-bindgen bindings over `kith-core` for the PWA. No logic lives
//! here: each method reads the clock and the random source, calls the core,
//! and converts values to JavaScript.

#![forbid(unsafe_code)]

mod convert;
mod live;

use js_sys::{Array, Uint8Array};
use kith_core::{Client, HttpResponse, Joining as CoreJoining, Timestamp, WriteScope, decode_blob};
use rand_core::OsRng;
use wasm_bindgen::prelude::*;

use convert::{
    Contribution, Profile, RelayRequest, StoreOpView, SyncStep, Written, contribution, each, ops,
    report, ts,
};
use tsify::Ts;

fn now() -> Timestamp {
    Timestamp(js_sys::Date::now() as u64)
}

/// A core error as a JavaScript `Error` whose `message` is the sentence for
/// the person and whose `code` is stable, for the app to branch on.
fn fail(e: kith_core::Error) -> JsValue {
    let error = coded(e.code(), &e.to_string());
    // Live updates stop on such an error instead of trying again.
    let _ = js_sys::Reflect::set(
        &error,
        &"refusedForGood".into(),
        &e.is_refused_for_good().into(),
    );
    error
}

pub(crate) fn coded(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("KithError");
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// Who may read what the member writes: the research team only, or their
/// cohort too.
fn audience(research_only: bool) -> WriteScope {
    if research_only {
        WriteScope::Research
    } else {
        WriteScope::Cohort
    }
}

/// A `Joining` used after it finished.
fn used() -> JsValue {
    coded("invite_used", "this invite was already used")
}

fn parse_id(id: &str) -> Result<kith_core::ContributionId, JsValue> {
    id.parse().map_err(|e: kith_core::InvalidId| fail(e.into()))
}

/// One device in one alliance.
#[wasm_bindgen]
pub struct KithDevice {
    inner: Client,
}

#[wasm_bindgen]
impl KithDevice {
    /// Restores a device from its saved state, its saved replica (the
    /// bytes of the last `replica` store op, if any) and the blobs it still
    /// stores (each as stored: the bytes of a `blob` store op).
    pub fn load(
        state: &[u8],
        replica: Option<Vec<u8>>,
        blobs: Array,
    ) -> Result<KithDevice, JsValue> {
        let blobs = blobs
            .iter()
            .map(|b| decode_blob(&Uint8Array::new(&b).to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let (inner, _refused) = Client::open(state, replica.as_deref(), blobs).map_err(fail)?;
        Ok(KithDevice { inner })
    }

    /// Writes a reflection locally, for the research team only or for the
    /// member's cohort too. Persist its `ops` in order.
    pub fn contribute(&mut self, text: &str, research_only: bool) -> Result<Ts<Written>, JsValue> {
        let scope = audience(research_only);
        let (id, store) = self
            .inner
            .contribute(text, scope, now(), &mut OsRng)
            .map_err(fail)?;
        ts(&Written {
            id: id.to_string(),
            ops: ops(store),
        })
    }

    /// Answers question `prompt` (its id), for the research team only or
    /// for the member's cohort too. Persist its `ops` in order.
    pub fn respond(
        &mut self,
        prompt: &str,
        text: &str,
        research_only: bool,
    ) -> Result<Ts<Written>, JsValue> {
        let prompt = parse_id(prompt)?;
        let scope = audience(research_only);
        let (id, store) = self
            .inner
            .respond(prompt, text, scope, now(), &mut OsRng)
            .map_err(fail)?;
        ts(&Written {
            id: id.to_string(),
            ops: ops(store),
        })
    }

    /// Replaces the text of one of the member's own reflections. Returns the
    /// store ops; persist them in order.
    pub fn edit(&mut self, id: &str, text: &str) -> Result<Vec<Ts<StoreOpView>>, JsValue> {
        let id = parse_id(id)?;
        let store = self.inner.edit(id, text, now(), &mut OsRng).map_err(fail)?;
        each(&ops(store))
    }

    /// Deletes one of the member's own reflections. Returns the store ops.
    pub fn delete(&mut self, id: &str) -> Result<Vec<Ts<StoreOpView>>, JsValue> {
        let id = parse_id(id)?;
        let store = self.inner.delete(id, now(), &mut OsRng).map_err(fail)?;
        each(&ops(store))
    }

    /// Every item this device can read, oldest first.
    pub fn contributions(&self) -> Result<Vec<Ts<Contribution>>, JsValue> {
        let all: Vec<Contribution> = self
            .inner
            .contributions()
            .iter()
            .map(contribution)
            .collect();
        each(&all)
    }

    /// Who this device is, in which alliance.
    pub fn profile(&self) -> Result<Ts<Profile>, JsValue> {
        ts(&convert::profile(&self.inner))
    }

    /// The fingerprint of each of the research team's keys, as
    /// `kith research-team list` shows them, for a member to compare with
    /// the ones their steward gave them.
    #[wasm_bindgen(js_name = researchTeam)]
    pub fn research_team(&self) -> Vec<String> {
        self.inner
            .membership()
            .research_recipients()
            .iter()
            .map(|r| kith_core::fingerprint(r))
            .collect()
    }

    /// The key the alliance's app updates must be signed with
    /// (`kith-release-key:...`), or `undefined` if the steward pinned none.
    #[wasm_bindgen(js_name = releaseKey)]
    pub fn release_key(&self) -> Option<String> {
        self.inner.membership().release_key().map(|k| k.to_string())
    }

    /// How many blobs wait to be sent.
    #[wasm_bindgen(js_name = pendingUploads)]
    pub fn pending_uploads(&self) -> usize {
        self.inner.pending_uploads()
    }

    /// Starts a sync run.
    #[wasm_bindgen(js_name = syncStart)]
    pub fn sync_start(&mut self) {
        self.inner.sync_start();
    }

    /// The next request, or `undefined` when done.
    #[wasm_bindgen(js_name = syncNext)]
    pub fn sync_next(&mut self) -> Result<Option<Ts<RelayRequest>>, JsValue> {
        let next = self.inner.sync_next(now(), &mut OsRng);
        next.map(|r| ts(&RelayRequest::from(r))).transpose()
    }

    /// A signed request for the relay's
    /// live updates: a stream of server-sent events, `ready` first, then
    /// `changed` whenever the alliance changes (sync at each), or `removed`.
    /// Each call signs anew; a request is good for one use.
    #[wasm_bindgen(js_name = eventsRequest)]
    pub fn events_request(&self) -> Result<Ts<RelayRequest>, JsValue> {
        ts(&RelayRequest::from(
            self.inner.events_request(now(), &mut OsRng),
        ))
    }

    /// A signed long poll, for networks
    /// that hold streamed answers back: the relay answers when something
    /// this device reads arrives, or with an empty page after `wait_secs`.
    /// Either way, sync next. Each call signs anew.
    #[wasm_bindgen(js_name = waitRequest)]
    pub fn wait_request(&self, wait_secs: u32) -> Result<Ts<RelayRequest>, JsValue> {
        ts(&RelayRequest::from(self.inner.wait_request(
            u64::from(wait_secs),
            now(),
            &mut OsRng,
        )))
    }

    /// Feeds the answer: what to store, and the report once the run is over.
    #[wasm_bindgen(js_name = syncReceive)]
    pub fn sync_receive(&mut self, status: u16, body: &[u8]) -> Result<Ts<SyncStep>, JsValue> {
        let step = self
            .inner
            .sync_receive(
                HttpResponse {
                    status,
                    body: body.to_vec(),
                },
                now(),
                &mut OsRng,
            )
            .map_err(fail)?;
        ts(&SyncStep {
            ops: ops(step.ops),
            finished: step.finished.as_ref().map(report),
        })
    }
}

/// The SHA-256 (hex) that a release manifest signed with `key` gives for
/// `path`. Throws, with a `code` and a sentence, if the signature is not
/// the pinned key's over these exact bytes or the manifest does not list
/// the file.
#[wasm_bindgen(js_name = signedReleaseHash)]
pub fn signed_release_hash(
    key: &str,
    manifest: &[u8],
    signature: &[u8],
    path: &str,
) -> Result<String, JsValue> {
    use kith_core::release::{ReleaseKey, verify_release};
    let release_error =
        |e: kith_core::release::ReleaseError| coded("release_refused", &e.to_string());
    let key = ReleaseKey::parse(key).map_err(release_error)?;
    let manifest = verify_release(&key, manifest, signature).map_err(release_error)?;
    manifest.sha256_of(path).map(str::to_owned).ok_or_else(|| {
        coded(
            "release_refused",
            &format!("the signed release does not list {path}"),
        )
    })
}

/// A device joining from an invite link.
#[wasm_bindgen]
pub struct Joining {
    inner: Option<CoreJoining>,
    finished_ops: Vec<StoreOpView>,
}

#[wasm_bindgen]
impl Joining {
    /// Reads the invite link and makes this device's keys.
    #[wasm_bindgen(constructor)]
    pub fn new(invite: &str, pseudonym: &str) -> Result<Joining, JsValue> {
        let inner = CoreJoining::new(invite, pseudonym, &mut OsRng).map_err(fail)?;
        Ok(Joining {
            inner: Some(inner),
            finished_ops: Vec::new(),
        })
    }

    /// Chooses another pseudonym before the join has gone in (the first was
    /// taken, say); the same device asks again.
    pub fn rename(&mut self, pseudonym: &str) -> Result<(), JsValue> {
        self.inner
            .as_mut()
            .ok_or_else(used)?
            .rename(pseudonym)
            .map_err(fail)
    }

    /// The relay named in the invite.
    pub fn relay(&self) -> String {
        self.inner
            .as_ref()
            .map(|j| j.relay().to_owned())
            .unwrap_or_default()
    }

    /// The next request, or `undefined` when joined (then call `finish`).
    #[wasm_bindgen(js_name = nextRequest)]
    pub fn next_request(&mut self) -> Result<Option<Ts<RelayRequest>>, JsValue> {
        let inner = self.inner.as_mut().ok_or_else(used)?;
        let next = inner.next_request(now(), &mut OsRng);
        next.map(|r| ts(&RelayRequest::from(r))).transpose()
    }

    /// Feeds the relay's answer to the last request.
    pub fn receive(&mut self, status: u16, body: &[u8]) -> Result<(), JsValue> {
        let inner = self.inner.as_mut().ok_or_else(used)?;
        inner
            .receive(
                HttpResponse {
                    status,
                    body: body.to_vec(),
                },
                now(),
                &mut OsRng,
            )
            .map_err(fail)
    }

    /// The device, once joined; then take what to store with `takeOps`.
    pub fn finish(&mut self) -> Result<KithDevice, JsValue> {
        let inner = self.inner.take().ok_or_else(used)?;
        let (client, store) = inner.finish(now(), &mut OsRng).map_err(fail)?;
        self.finished_ops = ops(store);
        Ok(KithDevice { inner: client })
    }

    /// What the finished join asks the app to store, in order (once).
    #[wasm_bindgen(js_name = takeOps)]
    pub fn take_ops(&mut self) -> Result<Vec<Ts<StoreOpView>>, JsValue> {
        each(&std::mem::take(&mut self.finished_ops))
    }
}
