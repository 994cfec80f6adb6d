//! Thin wasm-bindgen bindings over `kith-core` for the PWA. No logic lives
//! here: each method reads the clock and the random source, calls the core,
//! and converts values to JavaScript.

#![forbid(unsafe_code)]

mod convert;

use js_sys::{Array, Uint8Array};
use kith_core::{Client, HttpResponse, Joining as CoreJoining, Timestamp, WriteScope, decode_blob};
use rand_core::OsRng;
use wasm_bindgen::prelude::*;

use convert::{contribution, ops, report, request};

fn now() -> Timestamp {
    Timestamp(js_sys::Date::now() as u64)
}

/// A core error as a JavaScript `Error` whose `message` is the sentence for
/// the person and whose `code` is stable, for the app to branch on.
fn fail(e: kith_core::Error) -> JsValue {
    coded(e.code(), &e.to_string())
}

fn coded(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("KithError");
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// A `Joining` used after it finished.
fn used() -> JsValue {
    coded("invite_used", "this invite was already used")
}

fn parse_id(id: &str) -> Result<kith_core::ContributionId, JsValue> {
    id.parse().map_err(fail)
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
    /// member's cohort too. Returns `{ id, ops }`; persist `ops` in order.
    pub fn contribute(&mut self, text: &str, research_only: bool) -> Result<JsValue, JsValue> {
        let scope = if research_only {
            WriteScope::Research
        } else {
            WriteScope::Cohort
        };
        let (id, store) = self
            .inner
            .contribute(text, scope, now(), &mut OsRng)
            .map_err(fail)?;
        let out = js_sys::Object::new();
        convert::set(&out, "id", &id.to_string().into());
        convert::set(&out, "ops", &ops(store));
        Ok(out.into())
    }

    /// Answers question `prompt` (its id), for the research team only or
    /// for the member's cohort too. Returns `{ id, ops }`.
    pub fn respond(
        &mut self,
        prompt: &str,
        text: &str,
        research_only: bool,
    ) -> Result<JsValue, JsValue> {
        let prompt = parse_id(prompt)?;
        let scope = if research_only {
            WriteScope::Research
        } else {
            WriteScope::Cohort
        };
        let (id, store) = self
            .inner
            .respond(prompt, text, scope, now(), &mut OsRng)
            .map_err(fail)?;
        let out = js_sys::Object::new();
        convert::set(&out, "id", &id.to_string().into());
        convert::set(&out, "ops", &ops(store));
        Ok(out.into())
    }

    /// Replaces the text of one of the member's own reflections. Returns the
    /// store ops; persist them in order.
    pub fn edit(&mut self, id: &str, text: &str) -> Result<JsValue, JsValue> {
        let id = parse_id(id)?;
        let store = self.inner.edit(id, text, now(), &mut OsRng).map_err(fail)?;
        Ok(ops(store))
    }

    /// Deletes one of the member's own reflections. Returns the store ops.
    pub fn delete(&mut self, id: &str) -> Result<JsValue, JsValue> {
        let id = parse_id(id)?;
        let store = self.inner.delete(id, now(), &mut OsRng).map_err(fail)?;
        Ok(ops(store))
    }

    /// Every contribution this device can read:
    /// `{ id, author, text, createdAt, researchOnly, mine }[]`.
    pub fn contributions(&self) -> Array {
        self.inner
            .contributions()
            .iter()
            .map(contribution)
            .collect()
    }

    /// `{ allianceId, allianceName, pseudonym, role, deviceId, relay }`.
    pub fn profile(&self) -> JsValue {
        convert::profile(&self.inner)
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

    /// The next request `{ method, path, headers, body }`, or `undefined` when done.
    #[wasm_bindgen(js_name = syncNext)]
    pub fn sync_next(&mut self) -> JsValue {
        match self.inner.sync_next(now(), &mut OsRng) {
            Some(r) => request(&r),
            None => JsValue::UNDEFINED,
        }
    }

    /// A signed request `{ method, path, headers, body }` for the relay's
    /// live updates: a stream of server-sent events, `ready` first, then
    /// `changed` whenever the alliance changes (sync at each), or `removed`.
    /// Each call signs anew; a request is good for one use.
    #[wasm_bindgen(js_name = eventsRequest)]
    pub fn events_request(&self) -> JsValue {
        request(&self.inner.events_request(now(), &mut OsRng))
    }

    /// A signed long poll `{ method, path, headers, body }`, for networks
    /// that hold streamed answers back: the relay answers when something
    /// this device reads arrives, or with an empty page after `wait_secs`.
    /// Either way, sync next. Each call signs anew.
    #[wasm_bindgen(js_name = waitRequest)]
    pub fn wait_request(&self, wait_secs: u32) -> JsValue {
        request(
            &self
                .inner
                .wait_request(u64::from(wait_secs), now(), &mut OsRng),
        )
    }

    /// Feeds the answer. Returns `{ ops, finished? : { sent, received, rejected } }`.
    #[wasm_bindgen(js_name = syncReceive)]
    pub fn sync_receive(&mut self, status: u16, body: &[u8]) -> Result<JsValue, JsValue> {
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
        let out = js_sys::Object::new();
        convert::set(&out, "ops", &ops(step.ops));
        if let Some(r) = step.finished {
            convert::set(&out, "finished", &report(&r));
        }
        Ok(out.into())
    }
}

/// A device joining from an invite link.
#[wasm_bindgen]
pub struct Joining {
    inner: Option<CoreJoining>,
}

#[wasm_bindgen]
impl Joining {
    /// Reads the invite link and makes this device's keys.
    #[wasm_bindgen(constructor)]
    pub fn new(invite: &str, pseudonym: &str) -> Result<Joining, JsValue> {
        let inner = CoreJoining::new(invite, pseudonym, &mut OsRng).map_err(fail)?;
        Ok(Joining { inner: Some(inner) })
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

    /// The next request `{ method, path, headers, body }`, or `undefined`
    /// when joined (then call `finish`).
    #[wasm_bindgen(js_name = nextRequest)]
    pub fn next_request(&mut self) -> Result<JsValue, JsValue> {
        let inner = self.inner.as_mut().ok_or_else(used)?;
        Ok(match inner.next_request(now(), &mut OsRng) {
            Some(r) => request(&r),
            None => JsValue::UNDEFINED,
        })
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

    /// The device, once joined. Returns `{ device, ops }`.
    pub fn finish(&mut self) -> Result<JsValue, JsValue> {
        let inner = self.inner.take().ok_or_else(used)?;
        let (client, store) = inner.finish(now(), &mut OsRng).map_err(fail)?;
        let out = js_sys::Object::new();
        convert::set(&out, "device", &KithDevice { inner: client }.into());
        convert::set(&out, "ops", &ops(store));
        Ok(out.into())
    }
}
