//! SMTP when the store fails under a transaction: `451 4.3.0` with the reference of the
//! log entry, never the database's own text.

mod common;

use common::database;
use common::smtp as smtp_support;
use smtp_support::*;

#[tokio::test]
async fn a_failed_delivery_is_451_with_a_reference() {
    let pki = Pki::new();
    let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("cuddy", OTHER_IDNAT).await;
    let db = database::file(&a.dir.path().join("data"));
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    database::run(&db, "ALTER TABLE messages RENAME TO messages_away").await;
    let (code, text) = s
        .mail(
            &sender,
            &[&rcpt],
            &message(&sender, &rcpt, "Patient 12", 200),
        )
        .await;
    assert_eq!(code, 451, "{text}");
    let reference = text
        .strip_prefix("4.3.0 Internal error, reference ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        reference.len() == 8 && reference.bytes().all(|b| b.is_ascii_hexdigit()),
        "{text}"
    );
    database::run(&db, "ALTER TABLE messages_away RENAME TO messages").await;
    let (code, text) = s
        .mail(
            &sender,
            &[&rcpt],
            &message(&sender, &rcpt, "Patient 12", 200),
        )
        .await;
    assert_eq!(code, 250, "{text}");
    a.stop().await;
}
