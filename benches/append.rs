//! Appends per second with 1, 8 and 64 concurrent writers, 4 KiB messages, durable commits.
//!
//! Group commit is what makes many writers faster than one: their writes share a
//! transaction and its fsync. Run with `cargo bench --bench append`.
//!
//! How much sharing can gain depends on the disk: the ratio is at most what one commit
//! costs over what one more message adds to a commit. Two reference lines measure that on
//! the same file system, without the server: SQLite alone on our schema, one append per
//! commit against sixty-four, and the bare disk, one 4 KiB write per fsync against
//! sixty-four.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mssante::store::{Flags, MailboxKind, NewMailbox, Store};

const SECONDS_PER_RUN: u64 = 4;

fn message(writer: usize, n: u64) -> Vec<u8> {
    let mut m = format!(
        "From: lab@one.mssante.fr\r\nTo: dr{writer}@one.mssante.fr\r\nSubject: result {n}\r\nMessage-ID: <{writer}.{n}@one>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < 4096 {
        m.extend_from_slice(b"Resultat d'analyse: hemoglobine 14.2 g/dL, normal.\r\n");
    }
    m.truncate(4094);
    m.extend_from_slice(b"\r\n");
    m
}

/// A new mailbox for writer `w`; its INBOX's folder id.
async fn inbox(store: &Store, w: usize) -> anyhow::Result<i64> {
    let mb = store
        .create_mailbox(NewMailbox::new(
            format!("dr{w}@one.mssante.fr"),
            MailboxKind::Personal,
            Some(format!("8{w:011}")),
            mssante::clock::SystemClock::now_utc(),
        ))
        .await?;
    let inbox = store
        .folder(mb.id, "INBOX")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no INBOX"))?;
    Ok(inbox.id)
}

async fn run(writers: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), mssante::clock::system()).await?;
    let mut folders = Vec::new();
    for w in 0..writers {
        folders.push(inbox(&store, w).await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(SECONDS_PER_RUN);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (w, folder) in folders.into_iter().enumerate() {
        let store = store.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while tokio::time::Instant::now() < deadline {
                store
                    .append(
                        folder,
                        &message(w, n),
                        Flags::default(),
                        mssante::clock::SystemClock::now_utc(),
                    )
                    .await?;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

/// Appends through the same schema with one plain SQLite connection, `per_commit` at a
/// time: what SQLite itself allows on this disk.
async fn sqlite_alone(per_commit: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), mssante::clock::system()).await?;
    let mut folders = Vec::new();
    for w in 0..64 {
        folders.push(inbox(&store, w).await?);
    }
    drop(store);
    let path = dir.path().join("mssante.db");
    tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(path)?;
        // the writer's own settings (src/store/mod.rs)
        c.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 16000;",
        )?;
        let start = tokio::time::Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(SECONDS_PER_RUN) {
            c.execute_batch("BEGIN IMMEDIATE")?;
            for i in 0..per_commit {
                let w = (n as usize + i) % folders.len();
                let raw = mssante::store::RawMessage::new(&message(w, n + i as u64));
                c.prepare_cached(
                    "INSERT INTO message_appends (folder_id, sha256, size, header, content,
                        system_flags, keywords, internal_date) VALUES (?1, ?2, ?3, ?4, ?5, 0, '', 0)",
                )?
                .execute(rusqlite::params![
                    folders[w],
                    &raw.sha256[..],
                    raw.len() as i64,
                    &raw.header,
                    &raw.content
                ])?;
            }
            c.execute_batch("COMMIT")?;
            n += per_commit as u64;
        }
        anyhow::Ok(n as f64 / start.elapsed().as_secs_f64())
    })
    .await?
}

/// 4 KiB writes made durable `per_sync` at a time: what the disk itself allows.
fn disk_alone(per_sync: usize) -> anyhow::Result<f64> {
    use std::os::unix::fs::FileExt;
    const SPAN: u64 = 64 << 20;
    let dir = tempfile::tempdir()?;
    let file = std::fs::File::create(dir.path().join("disk"))?;
    file.set_len(SPAN)?;
    file.sync_all()?;
    let page = [b'x'; 4096];
    let start = tokio::time::Instant::now();
    let (mut n, mut offset) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(SECONDS_PER_RUN) {
        for _ in 0..per_sync {
            file.write_all_at(&page, offset)?;
            offset = (offset + 4096) % SPAN;
        }
        file.sync_data()?;
        n += per_sync as u64;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("appends/s, 4 KiB messages, synchronous=FULL, {SECONDS_PER_RUN} s per run");
        // `cargo bench --bench append -- 64` runs only the given writer counts, and no
        // reference lines (for profiling).
        let mut counts: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
        let references = counts.is_empty();
        if references {
            counts = vec![1, 8, 64];
        }
        let mut single = None;
        for writers in counts {
            let rate = run(writers).await?;
            let base = *single.get_or_insert(rate);
            println!(
                "{writers:>3} writers: {rate:>9.0} appends/s  ({:.1}x one writer)",
                rate / base
            );
        }
        if !references {
            return anyhow::Ok(());
        }
        println!("reference, same file system, no server:");
        let one = sqlite_alone(1).await?;
        let many = sqlite_alone(64).await?;
        println!(
            "  SQLite alone, our schema: {one:>7.0} appends/s one per commit, {many:>7.0} 64 per commit ({:.1}x)",
            many / one
        );
        let one = disk_alone(1)?;
        let many = disk_alone(64)?;
        println!(
            "  the disk alone, 4 KiB:    {one:>7.0} writes/s one per fsync,  {many:>7.0} 64 per fsync  ({:.1}x)",
            many / one
        );
        anyhow::Ok(())
    })
}
