//! Invites and device links end with the device that made them: a real
//! relay process and real `kith` commands. A facilitator who is removed
//! leaves no invite behind that still works; a member can cancel their own
//! invites and device links; `kith invite list` shows what is waiting.

use std::io::Write;
use std::process::{Command, Stdio};

use kith_tests::{Relay, RelayDb, Study, bin, files_containing, invite_and_join, kith, kith_raw};
use serde_json::Value;

/// `kith join` with `link` into `dir`: the refusal's words, or panics if it joined.
fn join_refused(dir: &str, link: &str, name: &str) -> String {
    let out = kith_raw(&["join", "--data-dir", dir, "--invite", link, "--name", name]);
    assert!(
        !out.status.success(),
        "{name} joined with a cancelled invite"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn open_invite_ids(dir: &str) -> Vec<String> {
    kith(&["invite", "list", "--data-dir", dir])["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_removed_makers_invites_and_links_stop_working_and_members_cancel_their_own() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);

    // Fran, a facilitator, makes an invite and is removed before anyone uses it.
    let fran = study.dir("fran");
    invite_and_join(&study.steward, &fran, "Fran", &["--role", "facilitator"]);
    let from_fran: Value = kith(&["invite", "--data-dir", &fran]);
    let fran_link = from_fran["invite"].as_str().unwrap().to_owned();
    let fran_invite = from_fran["invite_id"].as_str().unwrap().to_owned();
    assert!(open_invite_ids(&study.steward).contains(&fran_invite));
    kith(&[
        "member",
        "remove",
        "--data-dir",
        &study.steward,
        "--member",
        "Fran",
    ]);
    assert!(
        !open_invite_ids(&study.steward).contains(&fran_invite),
        "the removal cancelled it"
    );
    let said = join_refused(&study.dir("stranger"), &fran_link, "Stranger");
    assert!(said.contains("cancelled"), "says why: {said}");

    // A device link made by a phone that is then unlinked stops working too.
    let alex = study.dir("alex");
    study.member("Alex", "alex");
    let phone = study.dir("alex-phone");
    let code = kith(&["device", "link", "--data-dir", &alex])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone_id = kith(&["device", "add", "--data-dir", &phone, "--code", &code])["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let from_phone = kith(&["device", "link", "--data-dir", &phone])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    kith(&[
        "device",
        "unlink",
        "--data-dir",
        &alex,
        "--device",
        &phone_id,
    ]);
    let out = kith_raw(&[
        "device",
        "add",
        "--data-dir",
        &study.dir("found-phone"),
        "--code",
        &from_phone,
    ]);
    assert!(
        !out.status.success(),
        "a link from an unlinked phone still worked"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cancelled"), "says why: {said}");

    // The steward cancels an invite of their own; it shows no more and
    // cannot be used; a second cancel says there is nothing to cancel.
    let made = kith(&["invite", "--data-dir", &study.steward]);
    let id = made["invite_id"].as_str().unwrap().to_owned();
    assert!(open_invite_ids(&study.steward).contains(&id));
    kith(&[
        "invite",
        "cancel",
        "--data-dir",
        &study.steward,
        "--id",
        &id,
    ]);
    assert!(!open_invite_ids(&study.steward).contains(&id));
    let said = join_refused(
        &study.dir("casey"),
        made["invite"].as_str().unwrap(),
        "Casey",
    );
    assert!(said.contains("cancelled"), "{said}");
    let again = kith_raw(&[
        "invite",
        "cancel",
        "--data-dir",
        &study.steward,
        "--id",
        &id,
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("kith invite list"));

    // A member may not cancel someone else's invite.
    let other = kith(&["invite", "--data-dir", &study.steward]);
    let other_id = other["invite_id"].as_str().unwrap();
    let refused = kith_raw(&["invite", "cancel", "--data-dir", &alex, "--id", other_id]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("only its maker"), "{said}");
    // And the invite still works; pasted on standard input, it shows
    // neither in the process list nor in shell history, and no warning.
    let mut join = Command::new(bin("kith"))
        .args([
            "join",
            "--data-dir",
            &study.dir("dana"),
            "--invite",
            "-",
            "--name",
            "Dana",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let link = other["invite"].as_str().unwrap();
    writeln!(join.stdin.take().unwrap(), "{link}").unwrap();
    let out = join.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("warning"), "{said}");
    // On the command line it still works, with a warning.
    let link = kith(&["invite", "--data-dir", &study.steward])["invite"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = kith_raw(&[
        "join",
        "--data-dir",
        &study.dir("eli"),
        "--invite",
        &link,
        "--name",
        "Eli",
    ]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("shell history"), "{said}");
}

/// The packages the relay holds, by whether they are still there.
fn held_packages(relay: &Relay) -> (Vec<Vec<u8>>, usize) {
    // Opened and closed each time: an open reader holds the relay's
    // write-ahead log back from being scrubbed.
    let all = RelayDb::open(relay).invite_packages();
    let gone = all.iter().filter(|(_, p)| p.is_empty()).count();
    let held = all.into_iter().map(|(_, p)| p).filter(|p| !p.is_empty());
    (held.collect(), gone)
}

/// Waits until the relay holds `held` packages and has deleted `gone`;
/// returns them. Panics, saying what it saw, after a generous bound.
fn packages_become(relay: &Relay, held: usize, gone: usize) -> (Vec<Vec<u8>>, usize) {
    let start = std::time::Instant::now();
    loop {
        let now = held_packages(relay);
        if (now.0.len(), now.1) == (held, gone) {
            return now;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the relay holds {} package(s) and deleted {}; expected {held} and {gone}",
            now.0.len(),
            now.1
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// An invite's package holds every epoch key, sealed to the link: a link
/// found later in a chat backup, with the relay's database or a backup of
/// it, would give them all. The relay deletes a package once a device
/// joined with it or it was cancelled, and scrubs it from its files
/// (review finding 8). On SQLite; PostgreSQL runs the same statements.
#[test]
fn the_relay_deletes_an_invites_keys_once_it_is_used_or_cancelled() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    study.member("Alex", "alex");
    let unused = kith(&["invite", "--data-dir", &study.steward]);
    // The researcher's and Alex's invites were used: only the unused one
    // keeps its keys. The relay deletes in the background, at once: wait
    // for it (not a timing test; the bound is generous).
    let (held, _) = packages_become(&relay, 1, 2);
    let package = held[0].clone();
    kith(&[
        "invite",
        "cancel",
        "--data-dir",
        &study.steward,
        "--id",
        unused["invite_id"].as_str().unwrap(),
    ]);
    // A cancelled invite keeps no keys.
    packages_become(&relay, 0, 3);
    // And it is scrubbed from the relay's files (in the background too).
    let start = std::time::Instant::now();
    loop {
        let found = files_containing(&base.path().join("relay-data"), &[package[..64].to_vec()]);
        if found.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the deleted package is still in {found:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Reads a QR code drawn with half blocks (two rows of modules a line)
/// back into the text it holds, with a QR decoder: what a phone's camera
/// would read off the screen.
fn scan_terminal_qr(drawn: &str) -> String {
    const SCALE: usize = 4;
    let lines: Vec<Vec<char>> = drawn.lines().map(|l| l.chars().collect()).collect();
    let width = lines.iter().map(Vec::len).max().unwrap();
    let height = lines.len() * 2;
    // Which half of a cell is drawn (lit), upper and lower.
    let lit = |c: char| match c {
        '█' => (true, true),
        '▀' => (true, false),
        '▄' => (false, true),
        _ => (false, false),
    };
    let module_lit = |x: usize, y: usize| {
        let c = lines[y / 2].get(x).copied().unwrap_or(' ');
        let (upper, lower) = lit(c);
        if y.is_multiple_of(2) { upper } else { lower }
    };
    // Lit cells are the light modules (the code is drawn for a dark
    // terminal): dark modules are dark pixels.
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width * SCALE, height * SCALE, |x, y| {
            if module_lit(x / SCALE, y / SCALE) {
                255
            } else {
                0
            }
        });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code is found");
    grids[0].decode().expect("the QR code decodes").1
}

/// `kith invite --qr` shows the link as a QR code a phone can scan from the
/// screen (review finding 8: links need not travel by chat or e-mail).
#[test]
fn an_invite_shown_as_a_qr_code_scans_back_to_its_link() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let study = Study::start(base.path(), &relay);
    let made = kith(&["invite", "--data-dir", &study.steward, "--qr"]);
    let link = made["invite"].as_str().unwrap();
    assert_eq!(scan_terminal_qr(made["qr"].as_str().unwrap()), link);
    // And it joins, as the link does.
    let joined = kith(&[
        "join",
        "--data-dir",
        &study.dir("alex"),
        "--invite",
        &scan_terminal_qr(made["qr"].as_str().unwrap()),
        "--name",
        "Alex",
    ]);
    assert!(joined["member_id"].is_string(), "{joined}");
}
