//! `kith-server`: reads its configuration, opens storage, serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kith_server::storage::{PostgresStorage, SqliteStorage, Storage};
use kith_server::{AppState, app, run, spawn_maintenance};

/// The Kith relay: stores encrypted blobs it cannot read, and serves the Kith app.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "KITH_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder for the relay's SQLite database (created if missing), when no
    /// --database is given.
    #[arg(long, env = "KITH_DATA_DIR", default_value = "kith-data")]
    data_dir: PathBuf,
    /// A PostgreSQL database (postgres://user@host/db) shared by any number
    /// of relay instances, instead of SQLite.
    #[arg(long, env = "KITH_DATABASE_URL", value_name = "URL")]
    database: Option<String>,
    /// Folder of the built app to serve at `/` (default: web/app/dist if present).
    #[arg(long, env = "KITH_WEB_DIR")]
    web_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kith-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    match args.database.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let storage = PostgresStorage::connect(url).await.map_err(|e| {
                // The URL may hold a password: never repeat it.
                format!("cannot open the PostgreSQL database given by --database: {e}")
            })?;
            tracing::info!("storage: PostgreSQL");
            serve_with(storage, args).await
        }
        Some(_) => Err(
            "--database takes a postgres:// URL; for SQLite, leave it out and use --data-dir"
                .into(),
        ),
        None => {
            std::fs::create_dir_all(&args.data_dir).map_err(|e| {
                format!(
                    "cannot create the data folder {}: {e}",
                    args.data_dir.display()
                )
            })?;
            let storage = SqliteStorage::open(&args.data_dir).await.map_err(|e| {
                format!(
                    "cannot open the database in {}: {e}",
                    args.data_dir.display()
                )
            })?;
            tracing::info!(data_dir = %args.data_dir.display(), "storage: SQLite");
            serve_with(storage, args).await
        }
    }
}

async fn serve_with<S: Storage>(storage: S, args: Args) -> Result<(), String> {
    let web_dir = args.web_dir.or_else(|| Some(PathBuf::from("web/app/dist")));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e} (is another relay running?)",
                args.listen
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = AppState::new(storage);
    spawn_maintenance(state.storage.clone());
    tracing::info!("Kith relay listening on http://{addr}");
    run(listener, app(state, web_dir), shutdown_signal())
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
