//! FETCH ENVELOPE, BODY and BODYSTRUCTURE from the structure stored with each body
//! (src/structure.rs): written when the body is stored, by APPEND or by delivery, read
//! back instead of the body, and computed once more for bodies stored without it.

#[path = "common/mod.rs"]
mod common;

use common::smtp::{Instance, Pki, authenticated, eventually, operator_a};
use common::*;

/// A forwarded report: a note and the original message attached, with a group in Cc
/// and a source route in To.
const FORWARDED: &str = "Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nFrom: Gregory House <gregory.house@h.mssante.fr>\r\nTo: <@relay.h.mssante.fr:lisa.cuddy@h.mssante.fr>\r\nCc: equipe:;\r\nSubject: Fwd: Bilan\r\nMessage-ID: <fwd-1@h.mssante.fr>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n--sep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoir ci-dessous.\r\n--sep\r\nContent-Type: message/rfc822\r\n\r\nFrom: James Wilson <james.wilson@h.mssante.fr>\r\nSubject: Bilan\r\n\r\nFerritine basse.\r\n--sep--\r\n";

const ENVELOPE: &str = "ENVELOPE (\"Mon, 23 Nov 2026 10:00:00 +0100\" \"Fwd: Bilan\" ((\"Gregory House\" NIL \"gregory.house\" \"h.mssante.fr\")) ((\"Gregory House\" NIL \"gregory.house\" \"h.mssante.fr\")) ((\"Gregory House\" NIL \"gregory.house\" \"h.mssante.fr\")) ((NIL \"@relay.h.mssante.fr\" \"lisa.cuddy\" \"h.mssante.fr\")) ((NIL NIL \"equipe\" NIL)(NIL NIL NIL NIL)) NIL NIL \"<fwd-1@h.mssante.fr>\")";

const BODY: &str = "BODY ((\"TEXT\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 16 1)(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 82 (NIL \"Bilan\" ((\"James Wilson\" NIL \"james.wilson\" \"h.mssante.fr\")) ((\"James Wilson\" NIL \"james.wilson\" \"h.mssante.fr\")) ((\"James Wilson\" NIL \"james.wilson\" \"h.mssante.fr\")) NIL NIL NIL NIL NIL) (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 16 1) 4) \"mixed\")";

const BODYSTRUCTURE: &str = "BODYSTRUCTURE ((\"TEXT\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 16 1 NIL NIL)(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 82 (NIL \"Bilan\" ((\"James Wilson\" NIL \"james.wilson\" \"h.mssante.fr\")) ((\"James Wilson\" NIL \"james.wilson\" \"h.mssante.fr\")) ((\"James Wilson\" NIL \"james.wilson\" \"h.mssante.fr\")) NIL NIL NIL NIL NIL) (\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 16 1 NIL NIL) 4 NIL NIL) \"mixed\" (\"boundary\" \"sep\"))";

async fn appended(w: &World, message: &str) -> Client {
    let mut c = w.login(CUDDY_BAL, CUDDY).await;
    c.append("INBOX", "()", message).await;
    c.cmd("SELECT INBOX").await;
    c
}

/// The `* 1 FETCH` line of `FETCH 1 (<items>)`.
async fn fetched(c: &mut Client, items: &str) -> String {
    let r = c.cmd(&format!("FETCH 1 ({items})")).await;
    assert!(last(&r).contains("OK"), "{r:?}");
    r[0].clone()
}

on_both_backends! {
#[tokio::test]
async fn the_structure_is_stored_with_the_body_and_served_from_there() {
    let w = world("").await;
    let mut c = appended(&w, FORWARDED).await;
    // Stored by the APPEND, before anything asked for it.
    assert_eq!(w.count("SELECT count(*) FROM body_structure").await, 1);
    assert_eq!(
        fetched(&mut c, "ENVELOPE").await,
        format!("* 1 FETCH ({ENVELOPE})\r\n")
    );
    assert_eq!(fetched(&mut c, "BODY").await, format!("* 1 FETCH ({BODY})\r\n"));
    assert_eq!(
        fetched(&mut c, "BODYSTRUCTURE").await,
        format!("* 1 FETCH ({BODYSTRUCTURE})\r\n")
    );
    // The row is what FETCH reads: changed under the server, the answer changes.
    w.execute("UPDATE body_structure SET envelope = body").await;
    let changed = fetched(&mut c, "ENVELOPE").await;
    assert_eq!(changed, format!("* 1 FETCH (ENVELOPE {})\r\n", &BODY[5..]));
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn items_stay_in_the_order_asked_for() {
    let w = world("").await;
    let mut c = appended(&w, FORWARDED).await;
    let line = fetched(&mut c, "UID ENVELOPE FLAGS BODY RFC822.SIZE").await;
    assert_eq!(
        line,
        format!("* 1 FETCH (UID 1 {ENVELOPE} FLAGS (\\Recent) {BODY} RFC822.SIZE {})\r\n", FORWARDED.len())
    );
    // With a body section and the \Seen it sets between them.
    let line = fetched(&mut c, "BODY[1] ENVELOPE").await;
    assert_eq!(
        line,
        format!("* 1 FETCH (BODY[1] {{16}}\r\nVoir ci-dessous. {ENVELOPE} FLAGS (\\Recent \\Seen))\r\n")
    );
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn bodies_stored_without_it_get_it_on_the_first_fetch() {
    let w = world("").await;
    let mut c = appended(&w, FORWARDED).await;
    // As stored by an older version: no row, or a row by other rules (and wrong).
    w.execute("DELETE FROM body_structure").await;
    assert_eq!(fetched(&mut c, "ENVELOPE").await, format!("* 1 FETCH ({ENVELOPE})\r\n"));
    eventually("the structure written back", || async { w.count("SELECT count(*) FROM body_structure").await == 1 }).await;
    w.execute("UPDATE body_structure SET version = 0, envelope = body").await;
    assert_eq!(fetched(&mut c, "ENVELOPE BODY").await, format!("* 1 FETCH ({ENVELOPE} {BODY})\r\n"));
    eventually("the structure written back", || async {
        w.count("SELECT count(*) FROM body_structure WHERE version = 1").await == 1
    })
    .await;
    assert_eq!(fetched(&mut c, "ENVELOPE").await, format!("* 1 FETCH ({ENVELOPE})\r\n"));
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn one_row_per_body_however_many_messages_hold_it() {
    let w = world("").await;
    let mut c = appended(&w, FORWARDED).await;
    c.append("INBOX", "()", FORWARDED).await;
    let r = c.cmd("COPY 1 INBOX").await;
    assert!(last(&r).contains("OK"), "{r:?}");
    assert_eq!(w.count("SELECT count(*) FROM body_structure").await, 1);
    let r = c.cmd("FETCH 1:3 ENVELOPE").await;
    for (i, line) in r[..3].iter().enumerate() {
        assert_eq!(line, &format!("* {} FETCH ({ENVELOPE})\r\n", i + 1));
    }
    // Gone with the last message holding the body.
    c.cmd("STORE 1:3 +FLAGS.SILENT (\\Deleted)").await;
    c.cmd("EXPUNGE").await;
    eventually("the structure written back", || async { w.count("SELECT count(*) FROM body_structure").await == 0 }).await;
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn delivered_mail_has_its_structure_stored_with_it() {
    let pki = Pki::new();
    let a = Instance::start(&pki, operator_a(&pki)).await;
    let sender = a.mailbox("house", common::smtp::IDNAT).await;
    let to = a.mailbox("cuddy", common::smtp::IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    // The same report, from the sender's own address.
    let forwarded = FORWARDED.replace("gregory.house@h.mssante.fr", &sender);
    let (code, text) = s.mail(&sender, &[&to, &sender], &forwarded).await;
    assert_eq!(code, 250, "{text}");
    let (local, domain) = sender.split_once('@').unwrap();
    let from = format!("((\"Gregory House\" NIL \"{local}\" \"{domain}\"))");
    for address in [&to, &sender] {
        let mailbox = a.store().mailbox(address).await.unwrap().unwrap();
        let inbox = a.store().folder(mailbox.id, "INBOX").await.unwrap().unwrap();
        let stored = a
            .store()
            .structures_in_range(inbox.id, 1, u32::MAX, mssante::structure::VERSION)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "{address}");
        let envelope = stored[0].2.as_ref().expect("stored at delivery").envelope.clone();
        let want = ENVELOPE[9..].replace(
            "((\"Gregory House\" NIL \"gregory.house\" \"h.mssante.fr\"))",
            &from,
        );
        assert_eq!(String::from_utf8(envelope).unwrap(), want);
    }
    a.stop().await;
}
}
