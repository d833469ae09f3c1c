//! SORT, THREAD, SEARCH and FETCH of the message structure over a 100,000-message
//! folder: the time from command to tagged OK, for the keys clients ask for most (date,
//! arrival, sender, subject), for threading, for body text (through the body text index;
//! the short needle is read from every body), and for the ENVELOPE and BODYSTRUCTURE a
//! client lists a folder with (stored with each body). The first header key reads every
//! header and stores the keys; the others read those.
//!
//! `cargo bench --bench sort` (SQLite); `BENCH_BACKEND=postgres cargo bench --bench sort`
//! on a database of its own on the test PostgreSQL (tests/common/postgres.rs).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use mssante::store::Flags;
use tokio::time::Instant;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let backend = match std::env::var("BENCH_BACKEND").as_deref() {
        Ok("postgres") => postgres::Backend::Postgres,
        _ => postgres::Backend::Sqlite,
    };
    runtime.block_on(postgres::run(backend, run()));
}

async fn run() {
    let w = world("imap.max_commands_per_second = 100000\nsession.idle_timeout = \"1h\"").await;
    let store = w.running.as_ref().unwrap().context.store.clone();
    let mailbox = store.mailbox(CUDDY_BAL).await.unwrap().unwrap();
    let inbox = store.folder(mailbox.id, "INBOX").await.unwrap().unwrap();
    let total = 100_000usize;
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(1024));
    let mut tasks = Vec::with_capacity(total);
    let epoch = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for i in 0..total {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Sent dates, senders and subjects in an order unlike arrival's.
            let sent = epoch + Duration::minutes(((i * 7919) % total) as i64);
            let sender = (i * 104_729) % 5_000;
            let subject = (i * 1_299_709) % 20_000;
            let reply = if i % 3 == 0 { "Re: " } else { "" };
            let refs = if i % 3 == 0 && i > 0 {
                format!("References: <{}@clinique.mssante.fr>\r\n", i - 1)
            } else {
                String::new()
            };
            let message = format!(
                "Return-Path: <sender{sender}@clinique.mssante.fr>\r\nReceived: from mx.clinique.mssante.fr by mail.h.mssante.fr; Mon, 23 Nov 2026 10:00:00 +0100\r\nFrom: Docteur {sender} <sender{sender}@clinique.mssante.fr>\r\nTo: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: {reply}Compte rendu patient {subject}\r\nDate: {}\r\nMessage-ID: <{i}@clinique.mssante.fr>\r\n{refs}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-MSS-CODECDA: 11488-4\r\n\r\nCompte rendu numero {i}.\r\n",
                sent.to_rfc2822()
            );
            let arrival = epoch + Duration::seconds(i as i64);
            store
                .append(inbox.id, message.as_bytes(), Flags::default(), arrival)
                .await
                .unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "filled a {total}-message folder in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut c = w.login(CUDDY_BAL, CUDDY).await;
    c.cmd("SELECT INBOX").await;
    for command in [
        "SORT (ARRIVAL) UTF-8 ALL",
        "SORT (DATE) UTF-8 ALL",
        "SORT (REVERSE DATE) UTF-8 ALL",
        "SORT (FROM) UTF-8 ALL",
        "SORT (SUBJECT) UTF-8 ALL",
        "SORT (DISPLAYFROM) UTF-8 ALL",
        "THREAD ORDEREDSUBJECT UTF-8 ALL",
        "THREAD REFERENCES UTF-8 ALL",
        "SEARCH TEXT \"numero 4242\"",
        "SEARCH BODY compte",
        "SEARCH TEXT sender4242@",
        "SEARCH NOT BODY rendu",
        "FETCH 1:* (UID FLAGS ENVELOPE)",
        "FETCH 1:* (UID BODYSTRUCTURE)",
        "SEARCH BODY 42",
    ] {
        for round in 1..=2 {
            let (t, cpu) = (Instant::now(), cpu_seconds());
            let r = c.cmd(command).await;
            let secs = t.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu;
            assert!(last(&r).contains(" OK "), "{}", last(&r));
            println!(
                "{command} over {total} messages, run {round}: {secs:.3} s ({cpu:.2} s of CPU)"
            );
            if round == 1 && command.contains("DATE") {
                // The first header key stores every message's keys, after answering.
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            }
        }
    }
    w.stop().await;
}

/// The CPU time this process (server and client) has used, from /proc/self/stat: on a
/// machine shared with other work the elapsed time says little, this says what the
/// command cost.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, fields 14 and 15 of the line (12 and 13 after the name), in
    // ticks of 1/100 s as on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
