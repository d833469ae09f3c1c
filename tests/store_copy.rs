//! `mssante store copy --to postgres://…` as an operator moving from SQLite runs it: a
//! store filled through a running server (IMAP and SMTP) is copied into an empty
//! PostgreSQL database, and a server started on that database answers an IMAP client
//! byte for byte as the SQLite one did: same folders, UIDVALIDITYs, UIDs, MODSEQs,
//! flags, dates and bodies, so the client has nothing to synchronise again. The copy
//! refuses a running server and a used database, and its comparison finds a changed
//! flag or body. Without PostgreSQL these tests say SKIPPED (and fail in CI).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::postgres::{Backend, Database, run};
use common::smtp::{
    Gate, IDNAT, Instance, Kept, OTHER_IDNAT, Options, Pki, authenticated, message,
};
use common::{Client, cli, last};
use mssante::config::DatabaseUrl;
use mssante::store::MailboxKind;
use std::time::Duration;

const SECRETARIAT: &str = "secretariat@a.mssante.test";

fn options(gate: &Gate, pki: &Pki) -> Options {
    let mut o = Options::new("a.mssante.test");
    o.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
    // The other operator never answers: submitted mail stays in the queue.
    o.routes = vec![("b.mssante.test".into(), gate.addr.to_string())];
    o
}

async fn logged_in(imap: SocketAddr, tls: Arc<rustls::ClientConfig>, login: &str) -> Client {
    let mut c = Client::plain(imap).await;
    c.upgrade_config(tls).await;
    c.line().await;
    let lines = c.cmd(&format!("AUTHENTICATE XOAUTH2 {login}")).await;
    assert!(last(&lines).contains("OK"), "{lines:?}");
    c
}

fn ok(lines: Vec<String>) -> Vec<String> {
    assert!(last(&lines).contains(" OK"), "{lines:?}");
    lines
}

async fn append(c: &mut Client, folder: &str, flags: &str, body: &str) {
    let tag = c.next_tag();
    c.send(
        format!(
            "{tag} APPEND {folder} ({flags}) {{{}+}}\r\n{body}\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    ok(c.until(&tag).await);
}

/// Fills `address` over IMAP: several folders, flags and keywords, an expunge (a gap in
/// the UIDs), a move, a subscription, and what SORT and FETCH ENVELOPE store.
async fn fill(c: &mut Client) {
    ok(c.cmd("CREATE Projects").await);
    ok(c.cmd("CREATE Archive").await);
    ok(c.cmd("SUBSCRIBE Projects").await);
    for n in 0..5 {
        let body = message(
            "cuddy@a.mssante.test",
            "house@a.mssante.test",
            &format!("note {n}"),
            300,
        );
        append(c, "INBOX", if n % 2 == 0 { "\\Seen" } else { "" }, &body).await;
    }
    for n in 0..3 {
        let body = message(
            "wilson@a.mssante.test",
            "house@a.mssante.test",
            &format!("plan {n}"),
            200,
        );
        append(c, "Projects", "\\Flagged $Important", &body).await;
    }
    // The same bytes twice: one body, two messages.
    let same = message("cuddy@a.mssante.test", "house@a.mssante.test", "twice", 100);
    append(c, "Archive", "", &same).await;
    append(c, "Archive", "\\Answered", &same).await;
    ok(c.cmd("SELECT INBOX").await);
    ok(c.cmd("UID STORE 2 +FLAGS (\\Deleted)").await);
    ok(c.cmd("UID EXPUNGE 2").await);
    ok(c.cmd("UID STORE 3 +FLAGS ($Label1 \\Draft)").await);
    ok(c.cmd("UID MOVE 4 Projects").await);
    ok(c.cmd("UID SORT (SUBJECT) UTF-8 ALL").await);
    ok(c.cmd("FETCH 1:* ENVELOPE").await);
    ok(c.cmd("UNSELECT").await);
}

/// Everything a client reads of the mailbox: folders, subscriptions, quota, and per
/// folder its status and every message's UID, flags, MODSEQ, date, size and bytes.
async fn seen_by_a_client(c: &mut Client) -> Vec<String> {
    let mut seen = Vec::new();
    let list = ok(c.cmd("LIST \"\" *").await);
    let folders: Vec<String> = list
        .iter()
        .filter(|l| l.starts_with("* LIST"))
        .filter_map(|l| l.trim_end().rsplit(' ').next().map(str::to_owned))
        .collect();
    assert!(folders.len() >= 5, "{list:?}");
    seen.extend(list);
    seen.extend(ok(c.cmd("LSUB \"\" *").await));
    seen.extend(ok(c.cmd("GETQUOTAROOT INBOX").await));
    for folder in folders {
        seen.extend(ok(c
            .cmd(&format!(
                "STATUS {folder} (UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES)"
            ))
            .await));
        seen.extend(ok(c.cmd(&format!("EXAMINE {folder}")).await));
        seen.extend(ok(c
            .cmd("UID FETCH 1:* (UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE BODY.PEEK[])")
            .await));
    }
    seen
}

/// Rows of `table` in the summary `store copy` printed.
fn copied(summary: &str, table: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(table)).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_copied_to_postgresql_looks_the_same_to_an_imap_client() {
    run(Backend::Postgres, async {
        let pki = Pki::new();
        let gate = Gate::new().await;
        gate.close();
        // A store on SQLite, filled through a running server.
        let kept = Kept {
            dir: tempfile::tempdir().unwrap(),
            db: None,
        };
        let a = Instance::start_in(&pki, options(&gate, &pki), kept).await;
        let house = a.mailbox("house", IDNAT).await;
        common::config::mailbox(a.store(), SECRETARIAT, MailboxKind::Organisational, None).await;
        let config = a.dir.path().join("config.toml");
        cli::ok_async(&config, &["mailbox", "grant", SECRETARIAT, "--idnat", OTHER_IDNAT]).await;
        cli::ok_async(
            &config,
            &["mailbox", "quota", &house, "--storage", "10MB", "--messages", "1000"],
        )
        .await;
        let token = a.token();
        let login = common::xoauth2(&house, &token);
        let mut c = logged_in(a.imap_tls(), pki.client(None), &login).await;
        fill(&mut c).await;
        // SMTP: one copy for a local mailbox, one queued for the other operator, and
        // the sender's copy in Sent.
        let mut s = authenticated(a.submission_tls(), pki.client(None), &house, &token).await;
        let remote = "cameron@b.mssante.test";
        let body = message(&house, remote, "for both", 400);
        let (code, t) = s.mail(&house, &[&house, SECRETARIAT, remote], &body).await;
        assert_eq!(code, 250, "{t}");
        drop(s);
        common::smtp::eventually("the local copies to be filed", || async {
            a.messages(SECRETARIAT, "INBOX").await.len() == 1
        })
        .await;
        c.cmd("LOGOUT").await;
        // What a client connecting afresh reads (the same commands, so the same tags).
        let mut c = logged_in(a.imap_tls(), pki.client(None), &login).await;
        let before = seen_by_a_client(&mut c).await;
        c.cmd("LOGOUT").await;
        let queued = a.store().queue_len().await.unwrap();
        assert_eq!(queued, 1);
        let kept = a.stop_keeping_data().await;

        // The copy, by the operator's command.
        let db = Database::create().await;
        let out = cli::ok_async(&config, &["store", "copy", "--to", &db.url]).await;
        assert!(out.contains("verified: 2 mailboxes,"), "{out}");
        assert!(out.contains("identical"), "{out}");
        // Every kind of record the server keeps was there to copy.
        for table in [
            "grants",
            "subscriptions",
            "bodies",
            "sort_keys",
            "body_structure",
            "messages",
            "expunged",
            "queue",
            "queue_recipients",
            "audit",
            "mailbox_events",
            "traffic",
        ] {
            assert!(copied(&out, table) > 0, "{table}: {out}");
        }
        // Two messages share one body.
        assert!(copied(&out, "bodies") < copied(&out, "messages"), "{out}");

        // The comparison on its own finds a changed flag and a changed body.
        let data_dir = kept.dir.path().join("data");
        let url = DatabaseUrl::parse(&db.url).unwrap();
        let timeout = Duration::from_secs(5);
        let again = mssante::store::copy::verify(&data_dir, &url, timeout).await.unwrap();
        assert!(again.identical(), "{again}");
        let tamper = |sql: &'static str| {
            let url = db.url.clone();
            async move {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        };
        tamper("UPDATE messages SET system_flags = system_flags # 4 WHERE id = 1").await;
        tamper("UPDATE bodies SET content = content || '\\x21'::bytea WHERE id = 1").await;
        let found = mssante::store::copy::verify(&data_dir, &url, timeout).await.unwrap();
        assert!(!found.identical());
        let text = found.to_string();
        assert!(text.contains("messages: id=1: system_flags is"), "{text}");
        assert!(text.contains("bodies: id=1: content"), "{text}");
        assert!(text.contains("bodies: id=1: its bytes in PostgreSQL do not hash"), "{text}");
        tamper("UPDATE messages SET system_flags = system_flags # 4 WHERE id = 1").await;
        tamper("UPDATE bodies SET content = substring(content FROM 1 FOR length(content) - 1) WHERE id = 1").await;
        let undone = mssante::store::copy::verify(&data_dir, &url, timeout).await.unwrap();
        assert!(undone.identical(), "{undone}");

        // A server on PostgreSQL: the client sees exactly what it saw.
        let b = Instance::start_in(
            &pki,
            options(&gate, &pki),
            Kept {
                dir: kept.dir,
                db: Some(db),
            },
        )
        .await;
        let login = common::xoauth2(&house, &b.token());
        let mut c = logged_in(b.imap_tls(), pki.client(None), &login).await;
        let after = seen_by_a_client(&mut c).await;
        assert_eq!(before, after);
        c.cmd("LOGOUT").await;
        // The grant came along: the organisational mailbox opens for its professional.
        let token = b.psc.mint(&mssante_conformance::psc_standin::TokenSpec::valid(OTHER_IDNAT));
        let mut c = logged_in(
            b.imap_tls(),
            pki.client(None),
            &common::xoauth2(SECRETARIAT, &token),
        )
        .await;
        let r = ok(c.cmd("STATUS INBOX (MESSAGES)").await);
        assert_eq!(r[0], "* STATUS INBOX (MESSAGES 1)\r\n");
        assert_eq!(b.store().queue_len().await.unwrap(), queued);

        // Refused while a server runs on the data folder…
        let config = b.dir.path().join("config.toml");
        let fresh = Database::create().await;
        let (success, _, err) = cli::mssante(&config, &["store", "copy", "--to", &fresh.url]);
        assert!(!success);
        assert!(err.contains("a server is running on"), "{err}");
        let kept = b.stop_keeping_data().await;
        // … and into a database that holds a store already (the URL from a file).
        let url_file = kept.dir.path().join("target-url");
        std::fs::write(&url_file, kept.db.as_ref().unwrap().url.as_bytes()).unwrap();
        let (success, _, err) = cli::mssante(
            &config,
            &["store", "copy", "--to-url-file", url_file.to_str().unwrap()],
        );
        assert!(!success);
        assert!(
            err.contains("is not empty (table `mailboxes` has rows)"),
            "{err}"
        );
        // … and a target that is not PostgreSQL, as a usage error.
        let out = cli::command(&config, &["store", "copy", "--to", "mysql://db/mail"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--to: scheme `mysql` is not PostgreSQL"), "{err}");
    })
    .await
}
