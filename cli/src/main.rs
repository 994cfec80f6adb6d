//! `kith`: the Kith command line. With `--json`, every command prints exactly
//! one JSON object on stdout; errors go to stderr with a non-zero exit.

#![forbid(unsafe_code)]

mod commands;
mod relay;
mod store;

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
        /// Your pseudonym.
        #[arg(long)]
        name: String,
        /// A research team member's age recipient (age1...); repeat for each.
        #[arg(long = "researcher")]
        researchers: Vec<String>,
    },
    /// Make an invite link for a new member.
    Invite {
        #[arg(long)]
        data_dir: PathBuf,
        /// The role the new device gets.
        #[arg(long, value_enum, default_value_t = InviteRole::Member)]
        role: InviteRole,
        /// How many days the invite works.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=30))]
        days: u64,
    },
    /// Join an alliance from an invite link or code.
    Join {
        #[arg(long)]
        data_dir: PathBuf,
        /// The invite link (or the code after #join=).
        #[arg(long)]
        invite: String,
        /// Your pseudonym.
        #[arg(long)]
        name: String,
    },
    /// Write a contribution. Works with no connection; it is sent at the next sync.
    Contribute {
        #[arg(long)]
        data_dir: PathBuf,
        /// What you want to say.
        #[arg(long)]
        text: String,
    },
    /// Send what is waiting and fetch what is new.
    Sync {
        #[arg(long)]
        data_dir: PathBuf,
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

#[derive(Clone, Copy, ValueEnum)]
enum InviteRole {
    Member,
    Facilitator,
    Researcher,
}

impl From<InviteRole> for Role {
    fn from(r: InviteRole) -> Role {
        match r {
            InviteRole::Member => Role::Member,
            InviteRole::Facilitator => Role::Facilitator,
            InviteRole::Researcher => Role::Researcher,
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
