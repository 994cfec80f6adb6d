//! A member withdraws from the study: the steward removes them and has the
//! relay delete everything they wrote. Real relay processes, real `kith`
//! commands; afterwards the deleted ciphertext is searched for in the
//! database's own files (SQLite: the database and its write-ahead log;
//! PostgreSQL: the blobs table's files), and must be gone.

use std::path::{Path, PathBuf};

use kith_tests::{Relay, TestDatabase, files_containing, kith, kith_raw};
use sqlx::Row;

fn dir(base: &tempfile::TempDir, name: &str) -> String {
    base.path().join(name).to_str().unwrap().to_owned()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Where each backend keeps its bytes, and how to read a device's blobs.
enum Store {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Store {
    fn blobs_of(&self, device: &[u8]) -> Vec<Vec<u8>> {
        block_on(async {
            let sql_sqlite = "SELECT data FROM blobs WHERE device_id = ?";
            let sql_pg = "SELECT data FROM blobs WHERE device_id = $1";
            match self {
                Store::Sqlite(dir) => {
                    let url = format!("sqlite://{}", dir.join("relay.sqlite3").display());
                    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                    let rows = sqlx::query(sql_sqlite)
                        .bind(device)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                    rows.iter().map(|r| r.get(0)).collect()
                }
                Store::Postgres(url) => {
                    let pool = sqlx::PgPool::connect(url).await.unwrap();
                    let rows = sqlx::query(sql_pg)
                        .bind(device)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                    rows.iter().map(|r| r.get(0)).collect()
                }
            }
        })
    }

    /// The files holding the blobs. For PostgreSQL, after a checkpoint so
    /// what is in memory is on disk: the table's and its TOAST table's files.
    fn files(&self) -> Vec<PathBuf> {
        match self {
            Store::Sqlite(dir) => vec![dir.to_owned()],
            Store::Postgres(url) => block_on(async {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query("CHECKPOINT").execute(&pool).await.unwrap();
                let data_dir: String =
                    sqlx::query_scalar("SELECT current_setting('data_directory')")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                let relations: Vec<String> = sqlx::query_scalar(
                    "SELECT pg_relation_filepath(oid) FROM pg_class WHERE relname = 'blobs' \
                     UNION ALL SELECT pg_relation_filepath(reltoastrelid) FROM pg_class \
                     WHERE relname = 'blobs' AND reltoastrelid <> 0",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                relations
                    .into_iter()
                    .map(|r| Path::new(&data_dir).join(r))
                    .collect()
            }),
        }
    }

    /// Which of the files hold any of `needles`.
    fn holding(&self, needles: &[Vec<u8>]) -> Vec<PathBuf> {
        self.files()
            .iter()
            .flat_map(|f| {
                if f.is_dir() {
                    files_containing(f, needles)
                } else {
                    let bytes = std::fs::read(f).unwrap_or_default();
                    let hit = needles
                        .iter()
                        .any(|n| bytes.windows(n.len()).any(|w| w == &n[..]));
                    if hit { vec![f.clone()] } else { Vec::new() }
                }
            })
            .collect()
    }
}

fn withdrawal_deletes_the_bytes(relay: &Relay, store: &Store, base: &tempfile::TempDir) {
    let (steward, alex, blake, late) = (
        dir(base, "steward"),
        dir(base, "alex"),
        dir(base, "blake"),
        dir(base, "late"),
    );
    kith(&[
        "init",
        "--data-dir",
        &steward,
        "--relay",
        &relay.url(),
        "--alliance",
        "Relations study",
        "--name",
        "Sam",
        // A member who joins late reads what stayed (history kept whole).
        "--history",
        "all",
    ]);
    let joined = kith_tests::invite_and_join(&steward, &alex, "Alex", &[]);
    let alex_device = hex::decode(joined["device_id"].as_str().unwrap()).unwrap();
    kith_tests::invite_and_join(&steward, &blake, "Blake", &[]);
    for (scope, text) in [("cohort", "I want to leave."), ("research", "Private.")] {
        kith(&[
            "contribute",
            "--data-dir",
            &alex,
            "--text",
            text,
            "--scope",
            scope,
        ]);
    }
    kith(&["sync", "--data-dir", &alex]);
    kith(&["contribute", "--data-dir", &blake, "--text", "Staying."]);
    kith(&["sync", "--data-dir", &blake]);

    // A stretch from the middle of each of Alex's ciphertexts.
    let written = store.blobs_of(&alex_device);
    assert_eq!(written.len(), 2);
    let needles: Vec<Vec<u8>> = written.iter().map(|d| d[200..264].to_vec()).collect();
    assert!(
        !store.holding(&needles).is_empty(),
        "the search finds the ciphertext before the purge"
    );

    // Only a steward may ask.
    let refused = kith_raw(&[
        "member",
        "withdraw",
        "--data-dir",
        &blake,
        "--member",
        "Alex",
    ]);
    assert!(!refused.status.success());
    assert_eq!(store.blobs_of(&alex_device).len(), 2, "nothing deleted");

    let done = kith(&[
        "member",
        "withdraw",
        "--data-dir",
        &steward,
        "--member",
        "Alex",
    ]);
    assert_eq!(done["deleted_blobs"], 2, "{done}");
    assert!(store.blobs_of(&alex_device).is_empty());
    assert_eq!(
        store.holding(&needles),
        Vec::<PathBuf>::new(),
        "deleted ciphertext is gone from the database's files"
    );

    // Everyone else goes on: a member who joins now reads Blake's writing
    // and none of Alex's, and nothing is reported missing.
    kith_tests::invite_and_join(&steward, &late, "Casey", &[]);
    let synced = kith(&["sync", "--data-dir", &late]);
    assert_eq!(synced["missing"], serde_json::json!([]), "{synced}");
    let listed = kith(&["list", "--data-dir", &late]);
    let texts: Vec<&str> = listed["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["Staying."]);
    assert!(kith_raw(&["sync", "--data-dir", &blake]).status.success());
}

#[test]
fn a_withdrawn_members_writing_leaves_the_sqlite_files() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let store = Store::Sqlite(relay.data_dir.clone());
    withdrawal_deletes_the_bytes(&relay, &store, &base);
}

#[test]
fn a_withdrawn_members_writing_leaves_the_postgresql_files() {
    let db = TestDatabase::create();
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start_postgres(base.path(), &db.url);
    let store = Store::Postgres(db.url.clone());
    withdrawal_deletes_the_bytes(&relay, &store, &base);
}
