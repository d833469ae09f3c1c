//! Backups of the SQLite store, and the lock that tells whether a server runs on it.
//!
//! `backup` takes a consistent copy while a server writes: `VACUUM INTO` reads the
//! database inside one read transaction (a snapshot of every commit made before it
//! began; WAL lets the writer go on meanwhile) and writes a compact new file, which is
//! then synced and checked (`PRAGMA integrity_check`) before it is reported done.
//!
//! `restore` puts such a copy in place of a data folder's database, and refuses while a
//! server runs there: `serve` holds a shared lock on `data_dir/serving.lock` for its
//! whole life (`ServingLock`), and `restore` needs that lock exclusively. The lock is
//! the kernel's (`flock`), so a server that crashed holds nothing.
//!
//! A PostgreSQL store is backed up with the engine's own tools (`pg_dump`, base backups
//! and WAL archiving), not here.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The database file in a data folder (as `Config::database_path` says).
const DATABASE: &str = "mssante.db";
/// Locked shared by every `serve` on the folder, exclusively by `restore`.
const LOCK_FILE: &str = "serving.lock";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists; a backup never overwrites a file", .0.display())]
    Exists(PathBuf),
    #[error("no database at {}", .0.display())]
    NoDatabase(PathBuf),
    #[error(
        "a server is running on {}: stop it before restoring (its data would be replaced under it)",
        .0.display()
    )]
    ServerRunning(PathBuf),
    #[error("a restore or a store copy is in progress on {}", .0.display())]
    Restoring(PathBuf),
    #[error("{} is not a sound SQLite database: {problem}", .path.display())]
    Integrity { path: PathBuf, problem: String },
    #[error("database: {0}")]
    Sqlite(String),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Sqlite(e.to_string())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Held by a running server: while it lives, `restore` refuses this data folder.
#[derive(Debug)]
pub struct ServingLock {
    _file: File,
}

impl ServingLock {
    /// Takes the folder's lock, shared with other servers (and command-line tools) but
    /// not with a restore in progress.
    pub fn take(data_dir: &Path) -> Result<Self, BackupError> {
        let file = lock_file(data_dir)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(ServingLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(BackupError::Restoring(data_dir.to_owned())),
            Err(TryLockError::Error(e)) => Err(io(&data_dir.join(LOCK_FILE))(e)),
        }
    }
}

/// Takes the folder's lock exclusively: no server runs on it, and none starts until
/// the returned file is dropped.
pub(crate) fn lock_exclusively(data_dir: &Path) -> Result<File, BackupError> {
    let lock = lock_file(data_dir)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(BackupError::ServerRunning(data_dir.to_owned())),
        Err(TryLockError::Error(e)) => Err(io(&data_dir.join(LOCK_FILE))(e)),
    }
}

fn lock_file(data_dir: &Path) -> Result<File, BackupError> {
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let path = data_dir.join(LOCK_FILE);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(&path))
}

pub(crate) async fn connect(
    path: &Path,
    read_only: bool,
) -> Result<sqlx::SqliteConnection, BackupError> {
    Ok(SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await?)
}

/// `PRAGMA integrity_check` on the file at `path`.
async fn check(path: &Path) -> Result<(), BackupError> {
    let mut conn = connect(path, true).await?;
    let verdict: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    if verdict.len() == 1 && verdict[0] == "ok" {
        Ok(())
    } else {
        Err(BackupError::Integrity {
            path: path.to_owned(),
            problem: verdict.join("; "),
        })
    }
}

/// Writes a consistent copy of `data_dir`'s database to `to` (which must not exist),
/// whether or not a server is writing to it; returns its size in bytes. Every write
/// acknowledged before the call is in the copy.
pub async fn backup(data_dir: &Path, to: &Path) -> Result<u64, BackupError> {
    let database = data_dir.join(DATABASE);
    if !database.is_file() {
        return Err(BackupError::NoDatabase(database));
    }
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let target = to
        .to_str()
        .ok_or_else(|| BackupError::Sqlite(format!("{} is not UTF-8", to.display())))?;
    // Read-write only so that SQLite may open the WAL index a running server shares;
    // nothing is written to the database.
    let mut conn = connect(&database, false).await?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    // VACUUM INTO does not sync what it wrote.
    let file = File::open(to).map_err(io(to))?;
    file.sync_all().map_err(io(to))?;
    let size = file.metadata().map_err(io(to))?.len();
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    check(to).await?;
    Ok(size)
}

/// Puts the backup `from` in place of `data_dir`'s database, refusing while a server
/// runs there. The database it replaces is kept beside it as `mssante.db.before-restore`
/// (with its WAL, so nothing committed in it is lost); returns that path if there was one.
pub async fn restore(data_dir: &Path, from: &Path) -> Result<Option<PathBuf>, BackupError> {
    if !from.is_file() {
        return Err(BackupError::NoDatabase(from.to_owned()));
    }
    let lock = lock_exclusively(data_dir)?;
    check(from).await?;
    let database = data_dir.join(DATABASE);
    let incoming = data_dir.join(format!("{DATABASE}.restoring"));
    std::fs::copy(from, &incoming).map_err(io(&incoming))?;
    File::open(&incoming)
        .and_then(|f| f.sync_all())
        .map_err(io(&incoming))?;
    let kept = data_dir.join(format!("{DATABASE}.before-restore"));
    let replaced = if database.exists() {
        for suffix in ["", "-wal"] {
            let old = PathBuf::from(format!("{}{suffix}", database.display()));
            let new = PathBuf::from(format!("{}{suffix}", kept.display()));
            match std::fs::rename(&old, &new) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = std::fs::remove_file(&new);
                }
                Err(e) => return Err(io(&old)(e)),
            }
        }
        Some(kept)
    } else {
        None
    };
    // The shared-memory index describes the WAL just moved away.
    match std::fs::remove_file(data_dir.join(format!("{DATABASE}-shm"))) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(&data_dir.join(format!("{DATABASE}-shm")))(e));
        }
        _ => {}
    }
    std::fs::rename(&incoming, &database).map_err(io(&database))?;
    sync_dir(data_dir)?;
    drop(lock);
    Ok(replaced)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
