//! The relay's settings: flags, environment variables and a TOML file.
//!
//! A flag beats its environment variable (clap reads both into one value),
//! which beats the file, which beats the default. Every setting has the same
//! name everywhere: `--data-dir`, `KITH_DATA_DIR`, `data_dir = "..."`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::Limits;
use crate::cors::AppOrigins;

/// Declares every setting once: as a flag with its environment variable, as
/// a key of the config file, and (for `limits`) how it lands in [`Limits`].
/// Adding a field to [`Limits`] means adding its one line under `limits`;
/// until then `Flags::limits` does not compile.
macro_rules! settings {
    (
        server {
            $($name:ident: $ty:ty, env $env:literal, $help:literal;)*
        }
        limits {
            $($limit:ident: $lty:ty, env $lenv:literal, $lhelp:literal;)*
        }
    ) => {
        /// Every setting, as given by flags or environment variables (unset:
        /// the file or the default decides).
        #[derive(clap::Args, Debug, Default)]
        pub struct Flags {
            $(
                #[arg(long, env = $env, hide_env_values = true, help = $help)]
                pub $name: Option<$ty>,
            )*
            $(
                #[arg(long, env = $lenv, hide_env_values = true, help = $lhelp)]
                pub $limit: Option<$lty>,
            )*
        }

        /// The config file: the same settings as snake_case keys, all optional.
        #[derive(Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields)]
        struct FileSettings {
            $($name: Option<$ty>,)*
            $($limit: Option<$lty>,)*
        }

        impl Flags {
            /// These settings, with the file filling in what they leave unset.
            fn over(self, file: FileSettings) -> Self {
                Self {
                    $($name: self.$name.or(file.$name),)*
                    $($limit: self.$limit.or(file.$limit),)*
                }
            }

            /// The limits set, the others at their defaults.
            fn limits(&self) -> Limits {
                let default = Limits::default();
                Limits {
                    $($limit: self.$limit.clone().map_or(default.$limit, Into::into),)*
                }
            }
        }

        /// Each limit's key and default, to check the defaults its help states.
        #[cfg(test)]
        fn limit_defaults() -> Vec<(&'static str, String)> {
            let default = Limits::default();
            vec![$((stringify!($limit), default.$limit.to_string()),)*]
        }

        /// Every setting: (file key, environment variable, help).
        pub const SETTINGS: &[(&str, &str, &str)] = &[
            $((stringify!($name), $env, $help),)*
            $((stringify!($limit), $lenv, $lhelp),)*
        ];
    };
}

settings! {
    server {
        listen: SocketAddr, env "KITH_LISTEN",
            "Address to listen on [default: 127.0.0.1:8080]";
        data_dir: PathBuf, env "KITH_DATA_DIR",
            "Folder for the SQLite database (created if missing), when no database is given [default: kith-data]";
        database: DatabaseUrl, env "KITH_DATABASE_URL",
            "A PostgreSQL database (postgres://user@host/db) shared by any number of relay instances, instead of SQLite";
        web_dir: PathBuf, env "KITH_WEB_DIR",
            "Folder of the built app to serve at / [default: web/app/dist]";
        log_format: LogFormat, env "KITH_LOG_FORMAT",
            "Log lines as text or as JSON objects, one a line [default: text]";
        metrics_listen: SocketAddr, env "KITH_METRICS_LISTEN",
            "Address to serve Prometheus metrics on at /metrics, apart from the API (for example 127.0.0.1:9464); unset, they are not served";
        app_origins: AppOrigins, env "KITH_APP_ORIGINS",
            "Web origins that serve the Kith app apart from this relay, comma-separated (for example https://app.example.org); the relay answers their browsers' requests (CORS) and no other origin's. Unset: only the app this relay serves itself";
    }
    limits {
        alliance_quota_bytes: u64, env "KITH_ALLIANCE_QUOTA_BYTES",
            "Bytes of blob data one alliance may hold [default: 1073741824]";
        device_burst: u32, env "KITH_DEVICE_BURST",
            "Requests one device may send at once before it must slow down (429); 0 turns the per-device limit off [default: 1024]";
        device_refill_per_minute: u32, env "KITH_DEVICE_REFILL_PER_MINUTE",
            "Requests per minute a device's allowance refills by [default: 1920]";
        header_read_timeout_secs: u64, env "KITH_HEADER_READ_TIMEOUT_SECS",
            "Seconds a client has to send a request's headers, and that an idle kept-alive connection stays open [default: 30]";
        body_read_timeout_secs: u64, env "KITH_BODY_READ_TIMEOUT_SECS",
            "Seconds a client has to send a request's body (408 past it) [default: 120]";
        shutdown_grace_secs: u64, env "KITH_SHUTDOWN_GRACE_SECS",
            "Seconds requests in flight get to finish at shutdown [default: 30]";
        superseded_retention_days: u64, env "KITH_SUPERSEDED_RETENTION_DAYS",
            "Days a batch stays after a checkpoint supersedes it (devices offline longer fetch the checkpoint); 0 keeps them all [default: 30]";
        open_registration: bool, env "KITH_OPEN_REGISTRATION",
            "Let anyone create an alliance here; otherwise each needs a one-use token from `kith-server registration-token` [default: false]";
    }
}

/// How log lines are written (to standard error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A database URL. It may hold a password, so it never prints itself.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, for connecting. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

/// The settings the relay runs with.
#[derive(Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder of the SQLite database, when `database` is unset.
    pub data_dir: PathBuf,
    /// A PostgreSQL database instead of SQLite.
    pub database: Option<DatabaseUrl>,
    /// Folder of the built app.
    pub web_dir: PathBuf,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Where metrics are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Origins serving the app apart from the relay.
    pub app_origins: AppOrigins,
    /// What the relay allows.
    pub limits: Limits,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read the config file {path}: {source}; check the path given by --config or KITH_CONFIG"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or holds a wrong or unknown setting.
    #[error(
        "the config file {path} is wrong at line {line}, column {column}: {message}. Fix that line \
         (`kith-server --help` lists every setting)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// `flags` over the file at `file` (if any) over the defaults.
    pub fn load(flags: Flags, file: Option<&Path>) -> Result<Self, ConfigError> {
        let settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                flags.over(parse_file(path, &text)?)
            }
            None => flags,
        };
        Ok(Self::from_settings(settings))
    }

    fn from_settings(settings: Flags) -> Self {
        let limits = settings.limits();
        Self {
            listen: settings
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: settings.data_dir.unwrap_or_else(|| "kith-data".into()),
            database: settings.database,
            web_dir: settings.web_dir.unwrap_or_else(|| "web/app/dist".into()),
            log_format: settings.log_format.unwrap_or_default(),
            metrics_listen: settings.metrics_listen,
            app_origins: settings.app_origins.unwrap_or_default(),
            limits,
        }
    }
}

/// Reads a config file's text. Errors give the line and column, and only
/// toml's message: never the line itself, which may hold a password.
fn parse_file(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message: e.message().trim_end_matches('\n').to_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<FileSettings, ConfigError> {
        parse_file(Path::new("/etc/kith/relay.toml"), text)
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::from_settings(Flags::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("kith-data"));
        assert!(config.database.is_none());
        assert_eq!(config.web_dir, PathBuf::from("web/app/dist"));
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(
            config.limits.alliance_quota_bytes,
            Limits::default().alliance_quota_bytes
        );
    }

    #[test]
    fn every_setting_can_come_from_the_file() {
        let settings = file(
            r#"
            listen = "0.0.0.0:9000"
            data_dir = "/var/lib/kith"
            database = "postgres://kith@db/kith"
            web_dir = "/srv/kith"
            log_format = "json"
            alliance_quota_bytes = 5000
            "#,
        )
        .unwrap();
        let config = Config::from_settings(Flags::default().over(settings));
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/kith"));
        assert_eq!(
            config.database.as_ref().map(DatabaseUrl::expose),
            Some("postgres://kith@db/kith")
        );
        assert_eq!(config.web_dir, PathBuf::from("/srv/kith"));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.limits.alliance_quota_bytes, 5000);
    }

    #[test]
    fn flags_and_environment_beat_the_file() {
        // clap has already merged flags over environment variables here.
        let flags = Flags {
            data_dir: Some("/from/flag".into()),
            alliance_quota_bytes: Some(7),
            ..Flags::default()
        };
        let settings =
            file("data_dir = \"/from/file\"\nalliance_quota_bytes = 5\nweb_dir = \"/w\"\n")
                .unwrap();
        let config = Config::from_settings(flags.over(settings));
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.limits.alliance_quota_bytes, 7);
        // What the flags leave unset still comes from the file.
        assert_eq!(config.web_dir, PathBuf::from("/w"));
    }

    #[test]
    fn an_unknown_key_names_the_file_the_line_and_the_known_keys() {
        let error = file("listen = \"127.0.0.1:1\"\n\ndata-dir = \"x\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("/etc/kith/relay.toml"), "{error}");
        assert!(error.contains("line 3, column 1"), "{error}");
        assert!(error.contains("unknown field `data-dir`"), "{error}");
        assert!(error.contains("Fix that line"), "{error}");
        // toml lists the keys it knows.
        assert!(error.contains("`data_dir`, `database`"), "{error}");
    }

    #[test]
    fn a_wrong_value_names_its_line() {
        let error = file("alliance_quota_bytes = \"lots\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("line 1"), "{error}");
        assert!(error.contains("expected u64"), "{error}");
        let error = file("log_format = \"xml\"\n").err().unwrap().to_string();
        assert!(error.contains("expected `text` or `json`"), "{error}");
    }

    #[test]
    fn broken_toml_names_its_line_without_repeating_it() {
        let error = file("listen = \"127.0.0.1:8080\"\ndatabase = postgres://u:hunter2@db/k\n")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_missing_file_says_where_it_was_looked_for() {
        let error = Config::load(Flags::default(), Some(Path::new("/nonexistent/kith.toml")))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("/nonexistent/kith.toml"), "{error}");
        assert!(error.contains("--config or KITH_CONFIG"), "{error}");
    }

    #[test]
    fn a_database_url_never_prints_its_password() {
        let config = Config::from_settings(Flags {
            database: Some("postgres://kith:hunter2@db/kith".parse().unwrap()),
            ..Flags::default()
        });
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn the_help_states_each_limits_true_default() {
        for (key, default) in limit_defaults() {
            let (_, _, help) = SETTINGS.iter().find(|(k, _, _)| *k == key).unwrap();
            assert!(
                help.ends_with(&format!("[default: {default}]")),
                "the help of {key} should end with [default: {default}]: {help}"
            );
        }
    }

    #[test]
    fn every_setting_has_a_kith_variable_and_a_snake_case_key() {
        for (key, env, help) in SETTINGS {
            assert!(env.starts_with("KITH_"), "{env}");
            assert!(
                key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{key}"
            );
            assert!(!help.is_empty());
        }
    }
}
