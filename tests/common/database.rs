//! Real store failures for tests: SQL run on the server's SQLite file from a connection
//! of its own, as an operator's tool would (renaming a table the server reads, then
//! putting it back).
#![allow(dead_code)]

use std::path::Path;

/// The database file of a server whose `data_dir` is `data_dir`.
pub fn file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("mssante.db")
}

/// Runs `sql` on `db`. Off the runtime's thread: the server shares the runtime and must
/// keep running (and finish its own transactions) while SQLite waits for the lock.
pub async fn run(db: &Path, sql: &'static str) {
    let db = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c.execute_batch(sql).unwrap();
    })
    .await
    .unwrap();
}

/// The one integer `sql` selects from `db`, read as `run` writes.
pub async fn count(db: &Path, sql: &'static str) -> i64 {
    let db = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    })
    .await
    .unwrap()
}
