//! The relay serves a device only the ciphertext of the spaces the
//! membership log says its member reads (review finding 9). A member with a
//! changed client who asks for another cohort's blobs, or for every scope,
//! is refused, as is one who asks for a chapter of their own cohort opened
//! before they were invited; a researcher's device is served every scope, because the
//! research team's key opens what each grants it. Real relay, real `kith`
//! commands; the changed client is the core's own request signer.

use kith_core::api::{self, BlobPage, CheckpointList};
use kith_core::{Client, ScopeId};
use kith_tests::device::now;
use kith_tests::{Relay, Study, kith, open_device, send};
use rand_core::OsRng;
use serde_json::Value;
use std::path::Path;

/// Signs `GET path` as `device` and sends it.
fn get(url: &str, device: &Client, path: String) -> (u16, Value) {
    send(
        url,
        &device.sign_request("GET", path, vec![], now(), &mut OsRng),
    )
}

/// The id of the cohort `device` knows as `name`.
fn cohort_id(device: &Client, name: &str) -> ScopeId {
    *device
        .membership()
        .cohorts()
        .map(|(id, _)| id)
        .find(|id| device.cohort_name(id).as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no cohort {name}"))
}

#[test]
fn a_member_is_served_only_the_spaces_they_read() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let url = relay.url();
    let study = Study::start(base.path(), &relay);
    kith(&[
        "cohort",
        "create",
        "--data-dir",
        &study.steward,
        "--name",
        "Carers",
    ]);
    study.member("Alex", "alex");
    let carer = study.dir("kim");
    kith_tests::invite_and_join(&study.steward, &carer, "Kim", &["--cohort", "Carers"]);
    kith(&[
        "contribute",
        "--data-dir",
        &carer,
        "--text",
        "what carers said",
    ]);
    kith(&["sync", "--data-dir", &carer]);
    let alex_dir = study.dir("alex");
    kith(&["sync", "--data-dir", &alex_dir]);

    let alex = open_device(Path::new(&alex_dir));
    let alliance = alex.profile().alliance;
    // Parents is read from join on: Alex reads the chapter opened after she
    // was invited, not the cohort's first scope, which holds what came before.
    let earlier = cohort_id(&alex, "Parents");
    let parents = alex.write_scope(kith_core::WriteScope::Cohort).unwrap();
    assert_ne!(parents, earlier);
    let carers = cohort_id(&alex, "Carers");
    let limit = api::MAX_BLOBS_PER_FETCH;

    // Asking for another cohort's blobs, or for every scope, is refused.
    for (what, path) in [
        (
            "another cohort",
            api::paths::blobs_after(alliance, 0, limit, Some(&[(carers, 0)])),
        ),
        (
            "own and another cohort",
            api::paths::blobs_after(alliance, 0, limit, Some(&[(parents, 0), (carers, 0)])),
        ),
        (
            "every scope",
            api::paths::blobs_after(alliance, 0, limit, None),
        ),
        (
            "an earlier chapter of their own cohort",
            api::paths::blobs_after(alliance, 0, limit, Some(&[(earlier, 0)])),
        ),
        (
            "an earlier chapter's checkpoints",
            api::paths::checkpoints(alliance, &[(earlier, 0)]),
        ),
        (
            "a long poll on another cohort",
            api::paths::wait_for_blobs(alliance, 0, Some(&[(carers, 0)]), 1),
        ),
        (
            "another cohort's checkpoints",
            api::paths::checkpoints(alliance, &[(carers, 0)]),
        ),
    ] {
        let (status, body) = get(&url, &alex, path);
        assert_eq!(status, 403, "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("only the spaces it reads") || message.contains("does not read"),
            "{what}: the refusal says why: {body}"
        );
    }

    // Their own cohort is served, and holds nothing of the carers'.
    let (status, body) = get(
        &url,
        &alex,
        api::paths::blobs_after(alliance, 0, limit, Some(&[(parents, 0)])),
    );
    assert_eq!(status, 200, "{body}");
    let page: BlobPage = serde_json::from_value(body).unwrap();
    assert!(page.blobs.iter().all(|b| b.scope != carers));
    let (status, body) = get(
        &url,
        &alex,
        api::paths::checkpoints(alliance, &[(parents, 0)]),
    );
    assert_eq!(status, 200, "{body}");
    let _: CheckpointList = serde_json::from_value(body).unwrap();

    // The researcher's device is served every scope, the carers' included.
    let researcher = open_device(Path::new(&study.researcher));
    let (status, body) = get(
        &url,
        &researcher,
        api::paths::blobs_after(alliance, 0, limit, None),
    );
    assert_eq!(status, 200, "{body}");
    let page: BlobPage = serde_json::from_value(body).unwrap();
    assert!(page.blobs.iter().any(|b| b.scope == carers));

    // And the member's own sync, which asks only for what they read, works.
    let synced = kith(&["sync", "--data-dir", &alex_dir]);
    assert_eq!(synced["rejected"], Value::Array(vec![]), "{synced}");
}
