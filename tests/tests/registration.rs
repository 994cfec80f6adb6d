//! Who may create an alliance on a relay (review finding 13). By default
//! only a steward holding a one-use token from the relay's operator
//! (`kith-server registration-token`): otherwise anyone could create any
//! number of alliances, each with its storage quota. A real relay process,
//! the real `kith-server` task on its database, and real `kith init`.

use std::process::Command;

use kith_tests::{Relay, bin, kith, kith_raw};

/// `kith init` of a new alliance on `relay` into `dir`, with `extra` flags.
fn init(relay: &Relay, dir: &str, extra: &[&str]) -> std::process::Output {
    let url = relay.url();
    let mut args = vec![
        "init",
        "--data-dir",
        dir,
        "--relay",
        &url,
        "--alliance",
        "Relations study",
        "--name",
        "Sam",
    ];
    args.extend_from_slice(extra);
    kith_raw(&args)
}

/// A new token from the operator's command, run on the relay's database.
fn new_token(relay: &Relay) -> String {
    let out = Command::new(bin("kith-server"))
        .arg("--data-dir")
        .arg(relay.data_dir())
        .arg("registration-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(said.contains("one-use"), "says what it is: {said}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn creating_an_alliance_takes_a_one_use_token_from_the_operator() {
    let base = tempfile::tempdir().unwrap();
    let dir = |name: &str| base.path().join(name).to_str().unwrap().to_owned();
    // The default: no open registration (the test harness opens it).
    let relay = Relay::start_with_env(base.path(), None, &[("KITH_OPEN_REGISTRATION", "false")]);

    // Without a token: refused, saying how to get one; nothing kept.
    let refused = init(&relay, &dir("no-token"), &[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("registration token") && said.contains("kith-server registration-token"),
        "{said}"
    );
    assert!(
        !base.path().join("no-token/state.kith").exists(),
        "no device kept"
    );
    // A made-up token: refused too.
    let made_up = "11".repeat(32);
    let refused = init(&relay, &dir("made-up"), &["--registration-token", &made_up]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not known here or was already used")
    );

    // With the operator's token, from a file: created, and it syncs.
    let token = new_token(&relay);
    assert_eq!(token.len(), 64, "{token}");
    let token_file = dir("token.txt");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let created = init(
        &relay,
        &dir("steward"),
        &["--registration-token", &format!("@{token_file}")],
    );
    assert!(created.status.success(), "{created:?}");
    kith(&["sync", "--data-dir", &dir("steward")]);

    // The same token again, for another alliance: refused.
    let again = init(
        &relay,
        &dir("second"),
        &["--registration-token", &format!("@{token_file}")],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already used"));
}

#[test]
fn an_operator_may_open_registration_to_anyone() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start_with_env(base.path(), None, &[("KITH_OPEN_REGISTRATION", "true")]);
    let dir = base.path().join("steward");
    let created = init(&relay, dir.to_str().unwrap(), &[]);
    assert!(created.status.success(), "{created:?}");
}
