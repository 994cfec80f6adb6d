//! Core values to plain JavaScript objects.

use js_sys::{Array, Object, Reflect, Uint8Array};
use kith_core::{Client, ContributionView, HttpRequest, StoreOp, SyncReport, encode_blob};
use wasm_bindgen::JsValue;

pub fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a property on a plain new object cannot fail.
    let _ = Reflect::set(obj, &key.into(), value);
}

fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in pairs {
        set(&obj, k, v);
    }
    obj.into()
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

pub fn request(r: &HttpRequest) -> JsValue {
    let headers: Array = r
        .headers
        .iter()
        .map(|(k, v)| -> JsValue { Array::of2(&(*k).into(), &v.into()).into() })
        .collect();
    object(&[
        ("method", r.method.into()),
        ("path", r.path.clone().into()),
        ("headers", headers.into()),
        ("body", bytes(&r.body)),
    ])
}

pub fn ops(ops: Vec<StoreOp>) -> JsValue {
    let out: Array = ops
        .into_iter()
        .map(|op| match op {
            StoreOp::PutBlob(b) => object(&[
                ("kind", "blob".into()),
                ("id", b.id.to_string().into()),
                ("bytes", bytes(&encode_blob(&b))),
            ]),
            StoreOp::PutState(s) => object(&[("kind", "state".into()), ("bytes", bytes(&s))]),
            StoreOp::PutReplica(r) => object(&[("kind", "replica".into()), ("bytes", bytes(&r))]),
            StoreOp::DeleteBlob(id) => {
                object(&[("kind", "delete".into()), ("id", id.to_string().into())])
            }
        })
        .collect();
    out.into()
}

fn kind_name(kind: kith_core::kinds::Kind) -> &'static str {
    use kith_core::kinds::Kind;
    match kind {
        Kind::Prompt => "prompt",
        Kind::Response => "response",
        Kind::Agenda => "agenda",
        _ => "reflection",
    }
}

pub fn contribution(c: &ContributionView) -> JsValue {
    object(&[
        ("id", c.id.to_string().into()),
        ("author", c.author.clone().into()),
        ("text", c.text.clone().into()),
        ("createdAt", c.created_at.clone().into()),
        ("researchOnly", c.research_only.into()),
        ("mine", c.mine.into()),
        ("kind", kind_name(c.kind).into()),
        (
            "prompt",
            c.prompt.map_or(JsValue::NULL, |p| p.to_string().into()),
        ),
    ])
}

pub fn profile(client: &Client) -> JsValue {
    let p = client.profile();
    object(&[
        ("allianceId", p.alliance.to_string().into()),
        ("allianceName", p.alliance_name.clone().into()),
        ("pseudonym", p.pseudonym.clone().into()),
        ("role", client.role().as_str().into()),
        ("deviceId", client.device_id().to_string().into()),
        ("relay", p.relay.clone().into()),
        (
            "cohort",
            client
                .cohort()
                .and_then(|c| client.cohort_name(&c))
                .map_or(JsValue::NULL, JsValue::from),
        ),
    ])
}

pub fn report(r: &SyncReport) -> JsValue {
    let rejected: Array = r
        .rejected
        .iter()
        .map(|e| JsValue::from(e.to_string()))
        .collect();
    let missing: Array = r
        .missing
        .iter()
        .map(|g| JsValue::from(g.to_string()))
        .collect();
    object(&[
        ("sent", (r.sent as u32).into()),
        ("received", (r.received as u32).into()),
        ("rejected", rejected.into()),
        ("missing", missing.into()),
    ])
}
