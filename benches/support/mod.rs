//! What the store benchmarks share: their size from the environment, the runtime they
//! run on, a connection to the SQLite file they fill behind the server's back, and the
//! 10-second target their figure is held to.

use std::path::Path;
use std::time::Duration;

use sqlx::{Connection, SqliteConnection};

/// The whole number in `var`, or `default` when it is unset or not a number.
pub fn size(var: &str, default: i64) -> i64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `bench` to its end on a multi-threaded runtime, as `serve` runs.
pub fn run(bench: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench);
}

/// A connection of its own to the store's SQLite file: the fill writes set-based SQL
/// that no store method offers.
pub async fn connect(database: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap()
}

/// Says so when `took` misses the 10-second target.
pub fn against_target(took: Duration) {
    if took > Duration::from_secs(10) {
        println!("over the 10 s target");
    }
}
