//! Withdrawn access ends open IMAP sessions: a revoked grant, a deleted mailbox or a
//! lifecycle deletion, made by the CLI in another process, closes the sessions that
//! relied on it within seconds, while sessions whose access is unchanged go on.

mod common;

use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use mssante::store::{AuditOutcome, Grant, MailboxKind, NewMailbox, Store};
use tokio::time::Instant;

const SECRETARIAT: &str = "secretariat@h.mssante.fr";
const BYE: &str = "* BYE [ALERT] access to this mailbox was withdrawn, session closed\r\n";
/// Longer than the sessions' access check interval (one second).
const PAST_CHECK: Duration = Duration::from_millis(1500);

/// Runs the operator command without blocking the runtime the server under test runs on
/// (the command may wait for a write lock that only the server's next step releases).
async fn cli(w: &World, args: &[&str]) -> String {
    common::cli::ok_async(&w.dir.path().join("config.toml"), args).await
}

/// An organisational mailbox granted to House and Cuddy, with one message in INBOX.
async fn secretariat(w: &World) {
    w.organisational(SECRETARIAT, &[HOUSE, CUDDY]).await;
    append(&mut w.login(SECRETARIAT, HOUSE).await).await;
}

async fn append(c: &mut Client) {
    let msg = "Subject: hello\r\n\r\nbody\r\n";
    let r = c
        .cmd(&format!("APPEND INBOX {{{}+}}\r\n{msg}", msg.len()))
        .await;
    assert!(last(&r).contains("OK"), "{r:?}");
}

async fn selected(w: &World, address: &str, idnat: &str) -> Client {
    let mut c = w.login(address, idnat).await;
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).contains("OK"), "{r:?}");
    c
}

/// The next command gets the `BYE` and no tagged answer; the connection then closes.
async fn next_command_is_refused(c: &mut Client, command: &str) {
    let tag = c.next_tag();
    c.send(format!("{tag} {command}\r\n").as_bytes()).await;
    assert_eq!(c.line().await, BYE);
    assert!(c.closed().await);
}

async fn still_works(c: &mut Client) {
    let r = c.cmd("FETCH 1 (FLAGS)").await;
    assert!(last(&r).contains("OK"), "{r:?}");
}

#[tokio::test]
async fn a_revoked_grant_ends_the_open_session_at_its_next_command() {
    let w = world("").await;
    secretariat(&w).await;
    let mut house = selected(&w, SECRETARIAT, HOUSE).await;
    let mut cuddy = selected(&w, SECRETARIAT, CUDDY).await;
    still_works(&mut house).await;

    cli(&w, &["mailbox", "revoke", SECRETARIAT, "--idnat", HOUSE]).await;
    tokio::time::sleep(PAST_CHECK).await;
    next_command_is_refused(&mut house, "FETCH 1 (BODY[])").await;
    // Cuddy's grant is unchanged: her session goes on, APPEND and SELECT included.
    still_works(&mut cuddy).await;
    append(&mut cuddy).await;
    let r = cuddy.cmd("SELECT INBOX").await;
    assert!(last(&r).contains("OK"), "{r:?}");

    // A new login is refused too, and the closing is in the audit trail with its reason.
    let mut again = w.connect_tls().await;
    again.line().await;
    let r = again
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(SECRETARIAT, HOUSE)
        ))
        .await;
    assert!(last(&r).contains("NO"), "{r:?}");
    let store = &w.running.as_ref().unwrap().context.store;
    let audit = store.audit_records(Some(SECRETARIAT), 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.entry.outcome == AuditOutcome::Failure
                && a.entry.identity.as_deref() == Some(HOUSE)
                && a.entry.reason.as_deref()
                    == Some(
                        "session closed, access withdrawn: no access granted to this professional"
                    )),
        "{audit:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_revoked_grant_ends_an_idling_session_without_a_command() {
    let w = world("").await;
    secretariat(&w).await;
    let mut house = selected(&w, SECRETARIAT, HOUSE).await;
    let mut cuddy = selected(&w, SECRETARIAT, CUDDY).await;
    for c in [&mut house, &mut cuddy] {
        c.send(b"i1 IDLE\r\n").await;
        assert!(c.line().await.starts_with("+ "));
    }

    // Another store handle on the same file: what another process or node would do.
    let other = Store::open(&w.dir.path().join("data"), mssante::clock::system())
        .await
        .unwrap();
    let revoked = Instant::now();
    assert!(
        other
            .revoke_grant(
                SECRETARIAT,
                Grant::Idnat {
                    idnat: HOUSE.into()
                }
            )
            .await
            .unwrap()
    );
    assert_eq!(house.line().await, BYE);
    assert!(revoked.elapsed() < Duration::from_secs(3));
    assert!(house.closed().await);

    // Cuddy's IDLE was not disturbed: DONE ends it normally.
    tokio::time::sleep(PAST_CHECK).await;
    cuddy.send(b"DONE\r\n").await;
    let r = cuddy.until("i1").await;
    assert_eq!(r, ["i1 OK IDLE terminated\r\n"]);
    still_works(&mut cuddy).await;
    w.stop().await;
}

#[tokio::test]
async fn a_deleted_mailbox_ends_its_sessions() {
    let w = world("").await;
    secretariat(&w).await;
    let mut house = selected(&w, SECRETARIAT, HOUSE).await;
    let mut cuddy = w.login(SECRETARIAT, CUDDY).await;
    let mut own = selected(&w, HOUSE_BAL, HOUSE).await;

    cli(&w, &["mailbox", "delete", SECRETARIAT]).await;
    tokio::time::sleep(PAST_CHECK).await;
    next_command_is_refused(&mut house, "FETCH 1 (FLAGS)").await;
    // Not selected: the next command is refused all the same.
    next_command_is_refused(&mut cuddy, "SELECT INBOX").await;
    // House's own mailbox is untouched.
    let r = own.cmd("NOOP").await;
    assert!(last(&r).contains("OK"), "{r:?}");
    w.stop().await;
}

#[tokio::test]
async fn a_lifecycle_deletion_ends_the_sessions_of_the_deleted_mailbox() {
    let w = world("").await;
    let mut cuddy = selected(&w, CUDDY_BAL, CUDDY).await;
    cuddy.send(b"i1 IDLE\r\n").await;
    assert!(cuddy.line().await.starts_with("+ "));
    let mut house = selected(&w, HOUSE_BAL, HOUSE).await;
    // House's mailbox is kept (held) so that only Cuddy's goes.
    cli(&w, &["mailbox", "hold", HOUSE_BAL]).await;

    let year_later = (mssante::clock::SystemClock::now_utc() + TimeDelta::days(400))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    cli(&w, &["jobs", "run", "--at", &year_later]).await;
    assert!(cli(&w, &["mailbox", "list"]).await.contains(HOUSE_BAL));
    assert_eq!(cuddy.line().await, BYE);
    assert!(cuddy.closed().await);
    tokio::time::sleep(PAST_CHECK).await;
    let r = house.cmd("NOOP").await;
    assert!(last(&r).contains("OK"), "{r:?}");
    w.stop().await;
}

#[tokio::test]
async fn an_unbound_certificate_ends_the_applicative_session() {
    use sha2::Digest;
    let w = world("tls.client_ca").await;
    let store = &w.running.as_ref().unwrap().context.store;
    let labo = "labo@h.mssante.fr";
    store
        .create_mailbox(NewMailbox::new(
            labo,
            MailboxKind::Applicative,
            None,
            mssante::clock::SystemClock::now_utc(),
        ))
        .await
        .unwrap();
    let (cert, key) = w.client_certificate("LABO-SIL");
    let fingerprint = hex::encode(sha2::Sha256::digest(cert.as_ref()));
    store
        .add_grant(
            labo,
            Grant::CertificatePin {
                fingerprint: fingerprint.clone(),
            },
        )
        .await
        .unwrap();
    let mut c = w.connect_tls_with((cert, key)).await;
    c.line().await;
    let r = c.cmd(&format!("AUTHENTICATE EXTERNAL {labo}")).await;
    assert!(last(&r).contains("OK"), "{r:?}");
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).contains("OK"), "{r:?}");

    cli(
        &w,
        &["mailbox", "revoke", labo, "--certificate", &fingerprint],
    )
    .await;
    tokio::time::sleep(PAST_CHECK).await;
    next_command_is_refused(&mut c, "NOOP").await;
    w.stop().await;
}

/// Only what can take access away moves the counter: every login or publication moving
/// it would make every open session decide again.
#[tokio::test]
async fn the_access_counter_moves_only_when_access_may_be_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), mssante::clock::system())
        .await
        .unwrap();
    let start = store.access_epoch().await.unwrap();
    let m = store
        .create_mailbox(NewMailbox::new(
            SECRETARIAT,
            MailboxKind::Organisational,
            None,
            mssante::clock::SystemClock::now_utc(),
        ))
        .await
        .unwrap();
    let grant = || Grant::Idnat {
        idnat: HOUSE.into(),
    };
    store.add_grant(SECRETARIAT, grant()).await.unwrap();
    store
        .record_authentication(m.id, mssante::clock::SystemClock::now_utc())
        .await
        .unwrap();
    store.set_hold(SECRETARIAT, true).await.unwrap();
    assert_eq!(store.access_epoch().await.unwrap(), start);

    assert!(store.revoke_grant(SECRETARIAT, grant()).await.unwrap());
    let revoked = store.access_epoch().await.unwrap();
    assert!(revoked > start);
    assert!(!store.revoke_grant(SECRETARIAT, grant()).await.unwrap());
    assert_eq!(store.access_epoch().await.unwrap(), revoked);
    assert!(store.delete_mailbox(SECRETARIAT).await.unwrap());
    assert!(store.access_epoch().await.unwrap() > revoked);
}
