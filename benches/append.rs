//! Appends per second with 1, 8 and 64 concurrent writers, 4 KiB messages, durable commits.
//!
//! Group commit is what makes many writers faster than one: their writes share a
//! transaction and its fsync. Run with `cargo bench --bench append`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
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

async fn run(writers: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).await?;
    let mut folders = Vec::new();
    for w in 0..writers {
        let mb = store
            .create_mailbox(NewMailbox {
                address: format!("dr{w}@one.mssante.fr"),
                kind: MailboxKind::Personal,
                owner: Some(format!("8{w:011}")),
                display_name: None,
                created_at: Utc::now(),
                red_list: false,
                directory: Default::default(),
            })
            .await?;
        let inbox = store
            .folder(mb.id, "INBOX")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no INBOX"))?;
        folders.push(inbox.id);
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
                    .append(folder, &message(w, n), Flags::default(), Utc::now())
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

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("appends/s, 4 KiB messages, synchronous=FULL, {SECONDS_PER_RUN} s per run");
        // `cargo bench --bench append -- 64` runs only the given writer counts.
        let mut counts: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
        if counts.is_empty() {
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
        anyhow::Ok(())
    })
}
