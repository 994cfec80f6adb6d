//! `kith`: the Kith command line. With `--json`, every command prints exactly
//! one JSON object on stdout; errors go to stderr with a non-zero exit.

#![forbid(unsafe_code)]

mod commands;
mod membership;
mod qr;
mod relay;
mod release;
mod secrets;
mod store;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kith_core::Role;

/// Kith: private reflections for learning alliances.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new age identity (a researcher's key) and save it to a file.
    Keygen {
        /// Where to save it (must not exist yet).
        #[arg(long)]
        out: PathBuf,
    },
    /// Create a new alliance, as its steward.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// The relay's address, for example http://localhost:8080.
        #[arg(long)]
        relay: String,
        /// The alliance's name.
        #[arg(long)]
        alliance: String,
        /// The name of its first cohort (yours).
        #[arg(long, default_value = "First cohort")]
        cohort: String,
        /// What someone who joins that cohort later reads of it.
        #[arg(long, value_enum, default_value_t = HistoryArg::FromJoin)]
        history: HistoryArg,
        /// Your pseudonym.
        #[arg(long)]
        name: String,
        /// A research team member's age recipient (age1...); repeat for each.
        #[arg(long = "researcher")]
        researchers: Vec<String>,
        /// The one-use token the relay's operator gave you (`-` to paste it,
        /// or @FILE). Not needed on a relay open to anyone.
        #[arg(long)]
        registration_token: Option<String>,
    },
    /// Make an invite link for a new member.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Invite {
        /// Or: list the invites not yet used, or cancel one.
        #[command(subcommand)]
        action: Option<InviteCommand>,
        #[arg(long, required = true)]
        data_dir: Option<PathBuf>,
        /// The role the new member gets.
        #[arg(long, value_enum, default_value_t = InviteRole::Member)]
        role: InviteRole,
        /// The cohort they join, by name (default: yours). Not for researchers.
        #[arg(long)]
        cohort: Option<String>,
        /// How many days the invite works.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=30))]
        days: u64,
        /// Also show the link as a QR code, to scan from this screen: the
        /// link then need not travel by chat or e-mail, where copies stay.
        #[arg(long)]
        qr: bool,
        /// Where the app is served, when not by the relay itself (for
        /// example https://app.example.org; see docs/DEPLOYMENT.md): the
        /// link opens it there.
        #[arg(long)]
        app: Option<String>,
    },
    /// Join an alliance from an invite link or code.
    Join {
        #[arg(long)]
        data_dir: PathBuf,
        /// The invite link (or the code after #join=): `-` to paste it on
        /// standard input, `@FILE` to read it from a file (on the command
        /// line itself it shows in the process list and shell history).
        #[arg(long)]
        invite: String,
        /// Your pseudonym.
        #[arg(long)]
        name: String,
        /// Reach the relay at this address instead of the one in the invite
        /// (the same relay by another name, inside a private network say).
        #[arg(long)]
        relay: Option<String>,
    },
    /// Write a contribution. Works with no connection; it is sent at the next sync.
    Contribute {
        #[arg(long)]
        data_dir: PathBuf,
        /// What you want to say.
        #[arg(long)]
        text: String,
        /// Who may read it: your cohort and the research team, or the research team only.
        #[arg(long, value_enum, default_value_t = ScopeArg::Cohort)]
        scope: ScopeArg,
    },
    /// Put a question to your group (facilitators and stewards). Members see
    /// it from you and answer it with `kith respond`.
    Prompt {
        #[arg(long)]
        data_dir: PathBuf,
        /// The question.
        #[arg(long)]
        text: String,
    },
    /// Answer a question put to your group (`kith list` shows its id).
    Respond {
        #[arg(long)]
        data_dir: PathBuf,
        /// The id of the question.
        #[arg(long)]
        to: String,
        /// Your answer.
        #[arg(long)]
        text: String,
        /// Who may read it: your cohort and the research team, or the research team only.
        #[arg(long, value_enum, default_value_t = ScopeArg::Cohort)]
        scope: ScopeArg,
    },
    /// Suggest something for your cohort to talk about when it next meets.
    /// Everyone in the cohort sees the agenda; you can change or delete your
    /// own suggestions, and a facilitator can take any off the agenda.
    Suggest {
        #[arg(long)]
        data_dir: PathBuf,
        /// What you would like to talk about.
        #[arg(long)]
        text: String,
    },
    /// Change the text of something you wrote (`kith list` shows ids).
    Edit {
        #[arg(long)]
        data_dir: PathBuf,
        /// The id of your contribution.
        #[arg(long)]
        id: String,
        /// Its new text.
        #[arg(long)]
        text: String,
    },
    /// Delete something you wrote (`kith list` shows ids).
    Delete {
        #[arg(long)]
        data_dir: PathBuf,
        /// The id of your contribution.
        #[arg(long)]
        id: String,
    },
    /// Cohorts: the groups members meet in.
    #[command(subcommand)]
    Cohort(CohortCommand),
    /// Members: who is in the alliance.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Your devices: link a second one, or unlink a lost one.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The research team's keys: who can read everything members write.
    #[command(subcommand)]
    ResearchTeam(ResearchTeamCommand),
    /// The app's releases: the key that signs them, signing a build, and
    /// pinning the key so members' apps take only signed updates.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Send what is waiting and fetch what is new.
    Sync {
        #[arg(long)]
        data_dir: PathBuf,
        /// Keep going: sync again whenever the relay says something changed
        /// (one line, or with --json one JSON object, per sync). Stop with Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// With --watch: ask the relay every few seconds instead of keeping a
        /// stream open (for networks that hold streamed answers back).
        #[arg(long, requires = "watch")]
        poll: bool,
    },
    /// Show every contribution this device can read.
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Sync, then decrypt with your own age identity and export.
    Export {
        #[arg(long)]
        data_dir: PathBuf,
        /// Your age identity file (AGE-SECRET-KEY-1...). It is read, never copied.
        #[arg(long)]
        identity: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write to this file (created with owner-only permissions) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CohortCommand {
    /// Create a cohort (stewards only).
    Create {
        #[arg(long)]
        data_dir: PathBuf,
        /// Its name, for example "Young people".
        #[arg(long)]
        name: String,
        /// What someone who joins it later reads of it. Members see which
        /// applies when they write; it cannot change later.
        #[arg(long, value_enum, default_value_t = HistoryArg::FromJoin)]
        history: HistoryArg,
    },
    /// List the cohorts.
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum InviteCommand {
    /// The invites and device links not yet used: who made each, for whom, until when.
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Cancel an invite or device link no one has used yet.
    Cancel {
        #[arg(long)]
        data_dir: PathBuf,
        /// The invite's id (see kith invite list).
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// List the members, with their roles and cohorts.
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Remove a member and all their devices. What they write from now on
    /// cannot reach anyone, and they cannot read what others write from now on.
    Remove {
        #[arg(long)]
        data_dir: PathBuf,
        /// The member: their pseudonym, or the id `kith member list` shows.
        #[arg(long)]
        member: String,
    },
    /// For a member who withdrew from the study: remove them (if not yet
    /// removed) and delete everything they wrote from the relay.
    Withdraw {
        #[arg(long)]
        data_dir: PathBuf,
        /// The member: their pseudonym, or the id `kith member list` shows.
        #[arg(long)]
        member: String,
    },
}

#[derive(Subcommand)]
enum ResearchTeamCommand {
    /// List the research team's keys, each with its fingerprint (compare
    /// it with the one your institution published).
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Add a key to the research team (stewards only). Every space's key
    /// changes, so the new key reads what is written from now on.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        /// The researcher's age recipient (age1...), from `kith keygen`.
        #[arg(long)]
        recipient: String,
    },
    /// Take a key off the research team (stewards only): a key lost, or a
    /// researcher who left. Every space's key changes, so it opens nothing
    /// written from now on.
    Remove {
        #[arg(long)]
        data_dir: PathBuf,
        /// The key (age1...) or its fingerprint, as `kith research-team list` shows it.
        #[arg(long)]
        recipient: String,
    },
}

#[derive(Subcommand)]
enum ReleaseCommand {
    /// Make a release signing key. Keep it off the relay's machine: whoever
    /// holds it can send members a new app.
    Keygen {
        /// Where to save it (must not exist yet).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a build of the app (writes kith-release.sig beside its
    /// kith-release.json, after checking every file against it).
    Sign {
        /// The key file from `kith release keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The built app, for example web/app/dist.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Check a folder as members' apps check an update: the signature with
    /// this key, then every file.
    Verify {
        /// The release key (kith-release-key:...).
        #[arg(long)]
        key: String,
        /// The built app.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Pin a release key in the alliance (stewards only): members' apps
    /// then offer only updates signed with it.
    Pin {
        #[arg(long)]
        data_dir: PathBuf,
        /// The key's public half (kith-release-key:...), from `kith release keygen`.
        #[arg(long)]
        key: String,
    },
    /// Stop checking updates (stewards only).
    Unpin {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Show the pinned release key.
    Show {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Make a one-time code to add another device of yours.
    Link {
        #[arg(long)]
        data_dir: PathBuf,
        /// How many hours the code works.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=168))]
        hours: u64,
    },
    /// On the new device: add it with the code from `kith device link`.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        /// The code (kith2...) or link: `-` to paste it on standard input,
        /// `@FILE` to read it from a file.
        #[arg(long)]
        code: String,
    },
    /// List your devices.
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Unlink a device (a lost phone): it can no longer read new writing or write.
    Unlink {
        #[arg(long)]
        data_dir: PathBuf,
        /// The device's id (from `kith device list`; the first 8 or more characters do).
        #[arg(long)]
        device: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HistoryArg {
    /// Only what is written after they join (the safer choice).
    FromJoin,
    /// Everything, from the cohort's start.
    All,
}

impl From<HistoryArg> for kith_core::History {
    fn from(history: HistoryArg) -> Self {
        match history {
            HistoryArg::FromJoin => kith_core::History::FromJoin,
            HistoryArg::All => kith_core::History::Whole,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScopeArg {
    /// Your cohort and the research team.
    Cohort,
    /// The research team only.
    Research,
}

impl From<ScopeArg> for kith_core::WriteScope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::Cohort => kith_core::WriteScope::Cohort,
            ScopeArg::Research => kith_core::WriteScope::Research,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum InviteRole {
    Member,
    Facilitator,
    Researcher,
    /// Another steward (stewards only): have two, so a lost phone is not
    /// the end of running the alliance.
    Steward,
}

impl From<InviteRole> for Role {
    fn from(r: InviteRole) -> Role {
        match r {
            InviteRole::Member => Role::Member,
            InviteRole::Facilitator => Role::Facilitator,
            InviteRole::Researcher => Role::Researcher,
            InviteRole::Steward => Role::Steward,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Json,
    Csv,
}

/// What a command prints: a JSON object for `--json`, text otherwise.
pub struct Output {
    json: serde_json::Value,
    text: String,
    exit: ExitCode,
}

impl Output {
    fn ok(json: serde_json::Value, text: impl Into<String>) -> Self {
        Self {
            json,
            text: text.into(),
            exit: ExitCode::SUCCESS,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli.command, cli.json) {
        Ok(out) => {
            if cli.json {
                println!("{}", out.json);
            } else if !out.text.is_empty() {
                println!("{}", out.text);
            }
            out.exit
        }
        Err(e) => {
            eprintln!("kith: {e:#}");
            ExitCode::FAILURE
        }
    }
}
