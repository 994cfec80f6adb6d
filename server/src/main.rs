//! `kith-server`: reads its configuration, opens storage, serves.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kith_server::config::{Config, Flags, LogFormat};
use kith_server::storage::{PostgresStorage, SqliteStorage, Storage};
use kith_server::{AppState, app_for_origins, run_with, spawn_maintenance};

/// The Kith relay: stores encrypted blobs it cannot read, and serves the Kith app.
///
/// Every setting is a flag, an environment variable or a key in the config
/// file (snake_case: data_dir = "/var/lib/kith"); a flag beats the
/// environment, which beats the file.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A TOML file of settings.
    #[arg(long, env = "KITH_CONFIG", value_name = "FILE", hide_env_values = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Flags,
    #[command(subcommand)]
    task: Option<Task>,
}

/// Instead of serving: one task on the same database, then exit.
#[derive(clap::Subcommand, Clone, Copy)]
enum Task {
    /// Delete now the batches that checkpoints superseded more than DAYS ago
    /// (the relay does this every hour after superseded_retention_days), and
    /// scrub the deleted bytes from the database files.
    PurgeSuperseded {
        /// How old a checkpoint must be for what it covers to go.
        #[arg(long, value_name = "DAYS")]
        older_than_days: u64,
    },
    /// Make a one-use token that lets one steward create one alliance here
    /// (`kith init --registration-token -`). Give it to them privately.
    RegistrationToken,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.settings, args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kith-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_format = config.log_format;
    init_logging(config_format);
    match serve(config, args.task).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Keep a JSON log all JSON.
            match config_format {
                LogFormat::Text => eprintln!("kith-server: {message}"),
                LogFormat::Json => tracing::error!("{message}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error at RUST_LOG's levels (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let shown = filter.to_string();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    tracing::debug!(filter = %shown, "logging");
}

async fn serve(config: Config, task: Option<Task>) -> Result<(), String> {
    match config.database.as_ref().map(|url| url.expose()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let storage = PostgresStorage::connect(url).await.map_err(|e| {
                // The URL may hold a password: never repeat it.
                format!("cannot open the PostgreSQL database given by database (--database or KITH_DATABASE_URL): {e}")
            })?;
            tracing::info!("storage: PostgreSQL");
            serve_with(storage, config, task).await
        }
        Some(_) => Err(
            "database takes a postgres:// URL; for SQLite, leave it out and set data_dir (--data-dir)"
                .into(),
        ),
        None => {
            let dir = &config.data_dir;
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the data folder {}: {e}", dir.display()))?;
            let storage = SqliteStorage::open(dir).await.map_err(|e| {
                format!("cannot open the database in {}: {e}", dir.display())
            })?;
            tracing::info!(data_dir = %dir.display(), "storage: SQLite");
            serve_with(storage, config, task).await
        }
    }
}

async fn serve_with<S: Storage>(
    storage: S,
    config: Config,
    task: Option<Task>,
) -> Result<(), String> {
    if let Some(Task::PurgeSuperseded { older_than_days }) = task {
        let purged =
            kith_server::purge::superseded(&storage, older_than_days.saturating_mul(24 * 3600))
                .await
                .map_err(|e| format!("could not delete superseded batches: {e}"))?;
        println!(
            "Deleted {} batches ({} bytes) that checkpoints superseded, and scrubbed them from the database files.",
            purged.blobs, purged.bytes
        );
        return Ok(());
    }
    if let Some(Task::RegistrationToken) = task {
        let token = kith_server::ops::new_registration_token(&storage)
            .await
            .map_err(|e| format!("could not store a new registration token: {e}"))?;
        println!("{}", *token);
        eprintln!(
            "A one-use registration token: give it privately to the steward who will run `kith init \
             --registration-token -` (and paste it). It works for one alliance."
        );
        return Ok(());
    }
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!("cannot listen for metrics on {addr}: {e} (check metrics_listen)")
        })?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e} (is another relay running?)",
                config.listen
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = AppState::with_limits(storage, config.limits.clone());
    spawn_maintenance(&state);
    tracing::info!("Kith relay listening on http://{addr}");
    let live = state.live.clone();
    if !config.app_origins.is_empty() {
        tracing::info!("answering the app served from {:?}", config.app_origins);
    }
    let (app, metrics) = app_for_origins(state, Some(config.web_dir), &config.app_origins);
    if let Some(metrics_listener) = metrics_listener {
        if let Ok(addr) = metrics_listener.local_addr() {
            tracing::info!("metrics at http://{addr}/metrics");
        }
        let limits = config.limits.clone();
        // Ends with the process; nothing in flight there needs finishing.
        tokio::spawn(async move {
            let never = std::future::pending::<()>();
            if let Err(e) = run_with(metrics_listener, metrics, &limits, never).await {
                tracing::warn!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let shutdown = async move {
        shutdown_signal().await;
        // Live-update streams never finish by themselves: end them, so
        // devices reconnect (to another instance, or when this one is back).
        live.close();
    };
    run_with(listener, app, &config.limits, shutdown)
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down; finishing requests in flight");
}
