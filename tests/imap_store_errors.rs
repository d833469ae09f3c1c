//! IMAP when the store fails under a session: a database error is reported by reference,
//! never by its text, and nothing the client has not heard of is taken as told.
//!
//! The failures are real: a second SQLite connection renames a table the server reads,
//! then puts it back.

mod common;

use common::database;

use common::*;
use mssante::store::Flags;

const NOTE: &str = "From: Gregory House <gregory.house@h.mssante.fr>\r\nTo: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: Patient 12\r\nMessage-ID: <m1@h.mssante.fr>\r\n\r\nLupus, again.\r\n";

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

async fn on_database(w: &World, sql: &'static str) {
    database::run(&database::file(&w.dir.path().join("data")), sql).await;
}

/// Puts `n` messages in House's INBOX through the store.
async fn fill_inbox(w: &World, n: usize) {
    let store = &w.running.as_ref().unwrap().context.store;
    let mailbox = store.mailbox(HOUSE_BAL).await.unwrap().unwrap();
    let inbox = store.folder(mailbox.id, "INBOX").await.unwrap().unwrap();
    for _ in 0..n {
        store
            .append(
                inbox.id,
                NOTE.as_bytes(),
                Flags::default(),
                mssante::clock::SystemClock::now_utc(),
            )
            .await
            .unwrap();
    }
}

/// `Internal error, reference 3f9a2c1e` after the code, and nothing else.
fn is_internal_error(line: &str, code: &str) -> bool {
    let Some(rest) = line
        .trim_end()
        .split_once(&format!(" NO [{code}] Internal error, reference "))
        .map(|(_, r)| r)
    else {
        return false;
    };
    rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn an_expunge_survives_a_failed_read() {
    let w = world("").await;
    fill_inbox(&w, 3).await;
    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    let mut b = w.login(HOUSE_BAL, HOUSE).await;
    a.cmd("SELECT INBOX").await;
    b.cmd("SELECT INBOX").await;
    b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    assert!(last(&b.cmd("EXPUNGE").await).contains(" OK "));

    on_database(&w, "ALTER TABLE expunged RENAME TO expunged_away").await;
    let r = a.cmd("NOOP").await;
    assert!(is_internal_error(last(&r), "UNAVAILABLE"), "{r:?}");
    assert!(!has(&r, "EXPUNGE"), "{r:?}");
    // Sequence numbers are still those the client knows: 3 is still UID 3.
    let f = a.cmd("FETCH 3 UID").await;
    assert!(has(&f, "* 3 FETCH (UID 3)"), "{f:?}");

    on_database(&w, "ALTER TABLE expunged_away RENAME TO expunged").await;
    let r = a.cmd("NOOP").await;
    assert_eq!(r[0], "* 2 EXPUNGE\r\n", "{r:?}");
    assert!(last(&r).contains(" OK "), "{r:?}");
    let untagged: Vec<String> = a
        .cmd("FETCH 1:* UID")
        .await
        .into_iter()
        .filter(|l| l.starts_with("* "))
        .collect();
    assert_eq!(untagged, ["* 1 FETCH (UID 1)\r\n", "* 2 FETCH (UID 3)\r\n"]);
    w.stop().await;
}

#[tokio::test]
async fn a_failed_append_shows_a_reference_not_the_database_error() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    on_database(&w, "ALTER TABLE messages RENAME TO messages_away").await;
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND INBOX () {{{}+}}\r\n", NOTE.len()).as_bytes())
        .await;
    c.send(NOTE.as_bytes()).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    let reply = last(&r);
    assert!(is_internal_error(reply, "SERVERBUG"), "{r:?}");
    for leak in ["sql", "database", "messages", "table", "error returned"] {
        assert!(!reply.to_ascii_lowercase().contains(leak), "{reply}");
    }
    on_database(&w, "ALTER TABLE messages_away RENAME TO messages").await;
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND INBOX () {{{}+}}\r\n", NOTE.len()).as_bytes())
        .await;
    c.send(NOTE.as_bytes()).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains(" OK [APPENDUID "), "{r:?}");
    w.stop().await;
}

/// A message whose body cannot be read fails the FETCH: left out, it would read as a
/// message with nothing to fetch, and the client would cache it so.
#[tokio::test]
async fn a_body_that_cannot_be_read_fails_the_fetch() {
    let w = world("").await;
    fill_inbox(&w, 2).await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    c.cmd("SELECT INBOX").await;
    on_database(&w, "ALTER TABLE bodies RENAME TO bodies_away").await;
    let r = c.cmd("FETCH 1:2 BODY.PEEK[]").await;
    assert!(is_internal_error(last(&r), "SERVERBUG"), "{r:?}");
    assert!(!has(&r, "FETCH ("), "{r:?}");
    on_database(&w, "ALTER TABLE bodies_away RENAME TO bodies").await;
    let r = c.cmd("FETCH 1:2 BODY.PEEK[]").await;
    assert!(has(&r, "* 1 FETCH (BODY[] {"), "{r:?}");
    assert!(has(&r, "* 2 FETCH (BODY[] {"), "{r:?}");
    assert!(last(&r).contains(" OK "), "{r:?}");
    w.stop().await;
}
