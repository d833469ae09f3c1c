//! Submission decides MAIL FROM from the store for every transaction, so a grant revoked
//! by another process after AUTH refuses the next transaction of the open session.

mod common;

use common::smtp as smtp_support;

use mssante::store::{Grant, MailboxKind, NewMailbox, Store};
use smtp_support::*;

#[tokio::test]
async fn a_revoked_grant_refuses_the_next_mail_from_of_an_open_session() {
    let pki = Pki::new();
    let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
    let own = a.mailbox("house", IDNAT).await;
    let secretariat = a.address("secretariat");
    a.store()
        .create_mailbox(NewMailbox::new(
            &secretariat,
            MailboxKind::Organisational,
            None,
            mssante::clock::SystemClock::now_utc(),
        ))
        .await
        .unwrap();
    a.store()
        .add_grant(
            &secretariat,
            Grant::Idnat {
                idnat: IDNAT.into(),
            },
        )
        .await
        .unwrap();
    let mut s = authenticated(
        a.submission_tls(),
        pki.client(None),
        &secretariat,
        &a.token(),
    )
    .await;
    assert_eq!(s.cmd(&format!("MAIL FROM:<{secretariat}>")).await.0, 250);
    assert_eq!(s.cmd("RSET").await.0, 250);

    // Another store handle on the same file: what the CLI or another node does.
    let other = Store::open(&a.dir.path().join("data"), mssante::clock::system())
        .await
        .unwrap();
    let grant = Grant::Idnat {
        idnat: IDNAT.into(),
    };
    assert!(other.revoke_grant(&secretariat, grant).await.unwrap());

    let (code, text) = s.cmd(&format!("MAIL FROM:<{secretariat}>")).await;
    assert_eq!(code, 550, "{text}");
    assert!(text.starts_with("5.7.1"), "{text}");
    // The professional's own mailbox is unaffected.
    assert_eq!(s.cmd(&format!("MAIL FROM:<{own}>")).await.0, 250);
    a.stop().await;
}
