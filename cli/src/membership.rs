//! Commands that read or change the membership: cohorts, members, devices.

use std::path::Path;

use anyhow::{Context, Result, bail};
use kith_core::api::Withdrawn;
use kith_core::{Client, DeviceId, Joining, MemberId, ScopeId};
use rand_core::OsRng;
use serde_json::json;

use crate::relay::{Relay, change, join_relay, now, publish, sync};
use crate::store::DataDir;
use crate::{
    CohortCommand, DeviceCommand, InviteCommand, MemberCommand, Output, ResearchTeamCommand,
};

const HOUR_MS: u64 = 60 * 60 * 1000;

pub fn run_cohort(command: CohortCommand) -> Result<Output> {
    match command {
        CohortCommand::Create {
            data_dir,
            name,
            history,
        } => {
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            sync(&mut client, &dir)?;
            change(&mut client, &dir, |c| {
                c.create_cohort(&name, history.into(), now(), &mut OsRng)
            })?;
            let id = cohort_by_name(&client, &name)?;
            Ok(Output::ok(
                json!({ "cohort_id": id.to_string(), "name": name }),
                format!("Created the cohort {name}."),
            ))
        }
        CohortCommand::List { data_dir } => {
            let client = fresh(&DataDir::new(&data_dir))?;
            let cohorts: Vec<_> = client
                .membership()
                .cohorts()
                .map(|(id, info)| {
                    let history = match info.history {
                        kith_core::History::FromJoin => "from-join",
                        kith_core::History::Whole => "all",
                    };
                    json!({
                        "id": id.to_string(),
                        "name": client.cohort_name(id),
                        "history": history,
                    })
                })
                .collect();
            let text = cohorts
                .iter()
                .map(|c| {
                    let history = match c["history"].as_str() {
                        Some("from-join") => {
                            "newcomers read what is written after they are invited"
                        }
                        _ => "newcomers read everything from the start",
                    };
                    format!(
                        "{}  {}  ({history})",
                        c["id"].as_str().unwrap_or(""),
                        c["name"].as_str().unwrap_or("(name not readable)")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::ok(json!({ "cohorts": cohorts }), text))
        }
    }
}

pub fn run_invite(command: InviteCommand) -> Result<Output> {
    match command {
        InviteCommand::List { data_dir } => {
            let client = fresh(&DataDir::new(&data_dir))?;
            let pseudonyms = client.pseudonyms();
            let now = now();
            let invites: Vec<_> = client
                .membership()
                .invites()
                .filter(|(_, i)| i.is_open(now))
                .map(|(id, i)| {
                    let maker = client.membership().device(&i.made_by).map(|d| d.member);
                    let adds_device = client.membership().member(&i.member).is_some();
                    json!({
                        "id": id.to_string(),
                        "kind": if adds_device { "device link" } else { "invite" },
                        "role": i.role.as_str(),
                        "cohort": i.cohort.and_then(|c| client.cohort_name(&c)),
                        "made_by": maker.and_then(|m| pseudonyms.get(&m).cloned()),
                        "expires_at": kith_core::rfc3339(i64::try_from(i.expires_at.millis()).unwrap_or(i64::MAX)),
                    })
                })
                .collect();
            let text = if invites.is_empty() {
                "No invites are waiting to be used.".to_owned()
            } else {
                invites
                    .iter()
                    .map(|i| {
                        format!(
                            "{}  {} for a {}{}, made by {}, until {}",
                            i["id"].as_str().unwrap_or(""),
                            i["kind"].as_str().unwrap_or(""),
                            i["role"].as_str().unwrap_or(""),
                            i["cohort"]
                                .as_str()
                                .map(|c| format!(" in {c}"))
                                .unwrap_or_default(),
                            i["made_by"].as_str().unwrap_or("(a member who left)"),
                            i["expires_at"].as_str().unwrap_or(""),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(Output::ok(json!({ "invites": invites }), text))
        }
        InviteCommand::Cancel { data_dir, id } => {
            let dir = DataDir::new(&data_dir);
            let invite = id
                .parse()
                .context("the invite id is 32 hex digits; see kith invite list")?;
            let mut client = dir.load()?;
            sync(&mut client, &dir)?;
            change(&mut client, &dir, |c| {
                c.cancel_invite(invite, now(), &mut OsRng)
            })?;
            Ok(Output::ok(
                json!({ "cancelled": id }),
                "Cancelled. No one can join with that invite now.",
            ))
        }
    }
}

pub fn run_member(command: MemberCommand) -> Result<Output> {
    match command {
        MemberCommand::List { data_dir } => {
            let client = fresh(&DataDir::new(&data_dir))?;
            let pseudonyms = client.pseudonyms();
            let members: Vec<_> = client
                .membership()
                .members()
                .map(|(id, m)| {
                    let devices = client
                        .membership()
                        .devices()
                        .filter(|(_, d)| d.member == *id && d.active)
                        .count();
                    json!({
                        "id": id.to_string(),
                        "pseudonym": pseudonyms.get(id),
                        "role": m.role.as_str(),
                        "cohort": m.cohort.and_then(|c| client.cohort_name(&c)),
                        "devices": devices,
                        "left": m.removed,
                    })
                })
                .collect();
            let text = members
                .iter()
                .map(|m| {
                    format!(
                        "{}  {} ({}, {}){}",
                        &m["id"].as_str().unwrap_or("")[..8],
                        m["pseudonym"].as_str().unwrap_or("?"),
                        m["role"].as_str().unwrap_or(""),
                        m["cohort"].as_str().unwrap_or("no cohort"),
                        if m["left"] == true { " - left" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::ok(json!({ "members": members }), text))
        }
        MemberCommand::Withdraw { data_dir, member } => withdraw(&data_dir, &member),
        MemberCommand::Remove { data_dir, member } => {
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            sync(&mut client, &dir)?;
            let id = member_by_name(&client, &member)?;
            change(&mut client, &dir, |c| {
                c.remove_member(id, now(), &mut OsRng)
            })?;
            Ok(Output::ok(
                json!({ "removed": id.to_string() }),
                format!(
                    "Removed {member}. Their devices can no longer sync, and what is written from now on is closed to them."
                ),
            ))
        }
    }
}

pub fn run_research_team(command: ResearchTeamCommand) -> Result<Output> {
    match command {
        ResearchTeamCommand::List { data_dir } => {
            let client = fresh(&DataDir::new(&data_dir))?;
            Ok(research_team_output(&client, ""))
        }
        ResearchTeamCommand::Add {
            data_dir,
            recipient,
        } => {
            let recipient = recipient.trim().to_owned();
            kith_core::Recipient::parse(&recipient)
                .context("that is not an age recipient; it should start with age1")?;
            change_research_team(&data_dir, "Added", |team| {
                if team.contains(&recipient) {
                    bail!("that key is already on the research team");
                }
                team.push(recipient.clone());
                Ok(())
            })
        }
        ResearchTeamCommand::Remove {
            data_dir,
            recipient,
        } => {
            let wanted = recipient.trim().to_owned();
            change_research_team(&data_dir, "Removed", |team| {
                let before = team.len();
                team.retain(|r| *r != wanted && kith_core::fingerprint(r) != wanted);
                if team.len() == before {
                    bail!("no such key on the research team; `kith research-team list` shows them");
                }
                Ok(())
            })
        }
    }
}

/// Changes the research team with `edit`, then says who is on it now.
fn change_research_team(
    data_dir: &Path,
    done: &str,
    edit: impl FnOnce(&mut Vec<String>) -> Result<()>,
) -> Result<Output> {
    let dir = DataDir::new(data_dir);
    let mut client = dir.load()?;
    sync(&mut client, &dir)?;
    let mut team = client.membership().research_recipients().to_vec();
    edit(&mut team)?;
    change(&mut client, &dir, |c| {
        c.change_research_team(team.clone(), now(), &mut OsRng)
    })?;
    let said = format!(
        "{done}. Every space's key is being replaced; members' new writing is sealed to the new keys."
    );
    Ok(research_team_output(&client, &said))
}

/// The research team's keys and fingerprints, after `said`.
fn research_team_output(client: &Client, said: &str) -> Output {
    let team: Vec<_> = client
        .membership()
        .research_recipients()
        .iter()
        .map(|r| json!({ "recipient": r, "fingerprint": kith_core::fingerprint(r) }))
        .collect();
    let mut text = Vec::new();
    if !said.is_empty() {
        text.push(said.to_owned());
    }
    if team.is_empty() {
        text.push("The research team has no keys.".to_owned());
    }
    for key in &team {
        text.push(format!(
            "{}\n  fingerprint {}",
            key["recipient"].as_str().unwrap_or(""),
            key["fingerprint"].as_str().unwrap_or("")
        ));
    }
    Output::ok(json!({ "research_team": team }), text.join("\n"))
}

/// Removes a member who withdrew (if still present), then has the relay
/// delete everything their devices wrote.
fn withdraw(data_dir: &Path, member: &str) -> Result<Output> {
    let dir = DataDir::new(data_dir);
    let mut client = dir.load()?;
    sync(&mut client, &dir)?;
    let id = member_by_name(&client, member)?;
    let present = client
        .membership()
        .devices()
        .any(|(_, d)| d.member == id && d.active);
    if present {
        change(&mut client, &dir, |c| {
            c.remove_member(id, now(), &mut OsRng)
        })?;
    }
    let relay = Relay::new(&client.profile().relay);
    let response = relay.send(&client.withdrawal_request(id, now(), &mut OsRng))?;
    if !(200..300).contains(&response.status) {
        bail!(
            "the relay did not delete {member}'s writing: {}",
            response.refusal_message()
        );
    }
    let done: Withdrawn = serde_json::from_slice(&response.body)
        .context("the relay's answer to the withdrawal was not understood")?;
    Ok(Output::ok(
        json!({ "removed": id.to_string(), "deleted_blobs": done.blobs, "deleted_bytes": done.bytes }),
        format!(
            "Removed {member} and deleted everything they wrote from the relay ({} pieces). \
             Copies already on members' devices and in exports stay there: ask those people to delete them.",
            done.blobs
        ),
    ))
}

pub fn run_device(command: DeviceCommand) -> Result<Output> {
    match command {
        DeviceCommand::Link { data_dir, hours } => {
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            sync(&mut client, &dir)?;
            let invite = publish(&mut client, &dir, |c| {
                c.create_device_link(hours * HOUR_MS, now(), &mut OsRng)
            })?;
            let code = invite.code();
            Ok(Output::ok(
                json!({ "code": *code }),
                format!(
                    "On your other device, run:\n  kith device add --data-dir DIR --code {}\nThe code works once, for {hours} hours. Keep it to yourself.",
                    *code
                ),
            ))
        }
        DeviceCommand::Add { data_dir, code } => {
            let dir = DataDir::new(&data_dir);
            dir.ensure_empty()?;
            let code = crate::secrets::read(&code, "--code")?;
            let joining = Joining::add_device(&code, &mut OsRng)?;
            let mut client = join_relay(joining, &dir)?;
            if let Err(e) = sync(&mut client, &dir) {
                eprintln!("kith: added, but the first sync failed ({e:#}); run `kith sync` later");
            }
            Ok(Output::ok(
                json!({ "device_id": client.device_id().to_string(), "member_id": client.profile().member.to_string() }),
                format!("This device now belongs to {}.", client.profile().pseudonym),
            ))
        }
        DeviceCommand::List { data_dir } => {
            let client = fresh(&DataDir::new(&data_dir))?;
            let me = client.device_id();
            let devices: Vec<_> = client
                .membership()
                .devices()
                .filter(|(_, d)| d.member == client.profile().member)
                .map(|(id, d)| json!({ "id": id.to_string(), "active": d.active, "this": *id == me }))
                .collect();
            let text = devices
                .iter()
                .map(|d| {
                    format!(
                        "{}{}{}",
                        d["id"].as_str().unwrap_or(""),
                        if d["this"] == true {
                            "  (this device)"
                        } else {
                            ""
                        },
                        if d["active"] == false {
                            "  (unlinked)"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output::ok(json!({ "devices": devices }), text))
        }
        DeviceCommand::Unlink { data_dir, device } => {
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            sync(&mut client, &dir)?;
            let id = device_by_prefix(&client, &device)?;
            change(&mut client, &dir, |c| {
                c.unlink_device(id, now(), &mut OsRng)
            })?;
            Ok(Output::ok(
                json!({ "unlinked": id.to_string() }),
                "Unlinked. That device can no longer sync, and what is written from now on is closed to it.",
            ))
        }
    }
}

/// The device, brought up to date with the relay when it can be reached
/// (a list should show who joined or left since); otherwise as saved.
fn fresh(dir: &DataDir) -> Result<Client> {
    let mut client = dir.load()?;
    if let Err(e) = sync(&mut client, dir) {
        eprintln!("kith: showing what this device last saw ({e:#})");
    }
    Ok(client)
}

/// A cohort by its name.
pub fn cohort_by_name(client: &Client, name: &str) -> Result<ScopeId> {
    let found: Vec<ScopeId> = client
        .membership()
        .cohorts()
        .filter(|(id, _)| client.cohort_name(id).as_deref() == Some(name))
        .map(|(id, _)| *id)
        .collect();
    match found[..] {
        [id] => Ok(id),
        [] => bail!("there is no cohort called '{name}'; see `kith cohort list`"),
        _ => bail!("more than one cohort is called '{name}'"),
    }
}

/// A present member by pseudonym or id (or the start of an id).
fn member_by_name(client: &Client, text: &str) -> Result<MemberId> {
    let pseudonyms = client.pseudonyms();
    let found: Vec<MemberId> = client
        .membership()
        .members()
        .filter(|(_, m)| !m.removed)
        .filter(|(id, _)| {
            pseudonyms.get(id).map(String::as_str) == Some(text)
                || (text.len() >= 8 && id.to_string().starts_with(&text.to_ascii_lowercase()))
        })
        .map(|(id, _)| *id)
        .collect();
    match found[..] {
        [id] => Ok(id),
        [] => bail!("no present member is called '{text}'; see `kith member list`"),
        _ => bail!("more than one member is called '{text}'; use the id from `kith member list`"),
    }
}

/// An active device of this member by the start of its id.
fn device_by_prefix(client: &Client, text: &str) -> Result<DeviceId> {
    let text = text.to_ascii_lowercase();
    if text.len() < 8 {
        bail!("give at least the first 8 characters of the device id");
    }
    let found: Vec<DeviceId> = client
        .membership()
        .devices()
        .filter(|(id, d)| d.active && id.to_string().starts_with(&text))
        .map(|(id, _)| *id)
        .collect();
    match found[..] {
        [id] => Ok(id),
        [] => bail!("no device in the alliance starts with '{text}'; see `kith device list`"),
        _ => bail!("more than one device starts with '{text}'; give more of its id"),
    }
}
