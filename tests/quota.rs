//! Quotas (RFC 9208) as clients meet them: the real server on loopback over TLS with
//! real SASL, IMAP answers compared byte for byte, and SMTP refusals at RCPT.

mod common;

use common::smtp as smtp_support;

use common::{Client, HOUSE, HOUSE_BAL, last, world};
use mssante::store::{AuditOutcome, QuotaLimit, Store};

/// A message of exactly `len` bytes (`len` >= 40).
fn sized(n: usize, len: usize) -> String {
    let head = format!("Subject: message {n}\r\n\r\n");
    let body = "x".repeat(len - head.len() - 2);
    format!("{head}{body}\r\n")
}

async fn append(c: &mut Client, folder: &str, text: &str) -> Vec<String> {
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND {folder} {{{}+}}\r\n{text}\r\n", text.len()).as_bytes())
        .await;
    c.until(&tag).await
}

async fn set(store: &Store, address: &str, storage: QuotaLimit, messages: QuotaLimit) {
    store.set_quota(address, storage, messages).await.unwrap();
}

/// The untagged lines of an answer, and its tagged status line without the tag.
fn split(lines: &[String]) -> (Vec<&str>, &str) {
    let (status, data) = lines.split_last().unwrap();
    let status = status.split_once(' ').unwrap().1;
    (data.iter().map(String::as_str).collect(), status)
}

#[tokio::test]
async fn capabilities_after_login_announce_quota_but_not_quotaset() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    let caps: Vec<&str> = r[0].split_whitespace().collect();
    for want in ["QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"] {
        assert!(caps.contains(&want), "{want} missing in {caps:?}");
    }
    assert!(!caps.contains(&"QUOTASET"), "{caps:?}");
    w.stop().await;
}

#[tokio::test]
async fn getquotaroot_and_getquota_answer_byte_for_byte() {
    let w = world("").await;
    let store = w.running.as_ref().unwrap().context.store.clone();
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    assert!(last(&append(&mut c, "INBOX", &sized(1, 1500)).await).contains("OK [APPENDUID"));

    // No limit: the mailbox has no quota root at all.
    let r = c.cmd("GETQUOTAROOT INBOX").await;
    let (data, status) = split(&r);
    assert_eq!(data, ["* QUOTAROOT INBOX\r\n"]);
    assert!(status.starts_with("OK "), "{r:?}");
    let r = c.cmd("GETQUOTA \"\"").await;
    assert!(last(&r).contains(" NO [NONEXISTENT]"), "{r:?}");

    // Both limits: 1500 bytes used is 2 units of 1024 octets (rounded up); a limit of
    // 10,000 bytes is 9 whole units.
    set(
        &store,
        HOUSE_BAL,
        QuotaLimit::Set(10_000),
        QuotaLimit::Set(5),
    )
    .await;
    let r = c.cmd("GETQUOTAROOT INBOX").await;
    let (data, status) = split(&r);
    assert_eq!(
        data,
        [
            "* QUOTAROOT INBOX \"\"\r\n",
            "* QUOTA \"\" (STORAGE 2 9 MESSAGE 1 5)\r\n"
        ]
    );
    assert!(status.starts_with("OK "), "{r:?}");
    let r = c.cmd("GETQUOTA \"\"").await;
    let (data, status) = split(&r);
    assert_eq!(data, ["* QUOTA \"\" (STORAGE 2 9 MESSAGE 1 5)\r\n"]);
    assert!(status.starts_with("OK "), "{r:?}");
    // Every folder of the mailbox shares the root.
    let r = c.cmd("GETQUOTAROOT Sent").await;
    assert_eq!(r[0], "* QUOTAROOT Sent \"\"\r\n");

    // Only the resources that have a limit are listed.
    set(&store, HOUSE_BAL, QuotaLimit::Clear, QuotaLimit::Keep).await;
    let r = c.cmd("GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (MESSAGE 1 5)\r\n");

    // Unknown roots and folders, and SETQUOTA.
    let r = c.cmd("GETQUOTA \"user.house\"").await;
    assert!(last(&r).contains(" NO [NONEXISTENT]"), "{r:?}");
    let r = c.cmd("GETQUOTAROOT Nowhere").await;
    assert!(last(&r).contains(" NO [NONEXISTENT]"), "{r:?}");
    assert_eq!(r.len(), 1, "{r:?}");
    let r = c.cmd("SETQUOTA \"\" (STORAGE 100)").await;
    assert!(last(&r).contains(" NO [NOPERM]"), "{r:?}");
    assert_eq!(r.len(), 1, "{r:?}");
    let r = c.cmd("GETQUOTA \"\"").await;
    assert_eq!(
        r[0], "* QUOTA \"\" (MESSAGE 1 5)\r\n",
        "SETQUOTA changed nothing"
    );
    // A malformed command is a protocol error, not a crash.
    let r = c.cmd("GETQUOTAROOT").await;
    assert!(last(&r).contains("BAD"), "{r:?}");
    let r = c.cmd("NOOP").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    w.stop().await;
}

#[tokio::test]
async fn append_copy_and_move_respect_the_limits_and_pass_again_after_expunge() {
    let w = world("").await;
    let store = w.running.as_ref().unwrap().context.store.clone();
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    set(&store, HOUSE_BAL, QuotaLimit::Keep, QuotaLimit::Set(3)).await;
    for n in 1..=3 {
        let r = append(&mut c, "INBOX", &sized(n, 100)).await;
        assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");
    }
    let r = append(&mut c, "INBOX", &sized(4, 100)).await;
    assert!(last(&r).contains(" NO [OVERQUOTA]"), "{r:?}");
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 3)\r\n", "nothing stored");

    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).contains("OK [READ-WRITE]"), "{r:?}");
    let r = c.cmd("COPY 1 Trash").await;
    assert!(last(&r).contains(" NO [OVERQUOTA]"), "{r:?}");
    let r = c.cmd("STATUS Trash (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Trash (MESSAGES 0)\r\n", "nothing copied");
    // MOVE stays within the mailbox: the usage does not change, so it is allowed at
    // the limit.
    let r = c.cmd("MOVE 1 Trash").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let r = c.cmd("GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (MESSAGE 3 3)\r\n");

    // EXPUNGE makes room: COPY passes, then APPEND is refused again until the next one.
    let r = c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let r = c.cmd("STATUS INBOX (DELETED DELETED-STORAGE)").await;
    assert_eq!(r[0], "* STATUS INBOX (DELETED 1 DELETED-STORAGE 1)\r\n");
    let r = c.cmd("EXPUNGE").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let r = c.cmd("COPY 1 Trash").await;
    assert!(last(&r).contains("OK [COPYUID"), "{r:?}");
    let r = append(&mut c, "INBOX", &sized(5, 100)).await;
    assert!(last(&r).contains(" NO [OVERQUOTA]"), "{r:?}");
    let r = c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let r = c.cmd("EXPUNGE").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let r = append(&mut c, "INBOX", &sized(6, 100)).await;
    assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");

    // Storage: reaching the limit exactly is allowed, one byte past it is not.
    let used = store
        .quota(store.mailbox(HOUSE_BAL).await.unwrap().unwrap().id)
        .await
        .unwrap()
        .unwrap()
        .used_bytes;
    set(
        &store,
        HOUSE_BAL,
        QuotaLimit::Set(used + 200),
        QuotaLimit::Clear,
    )
    .await;
    let r = append(&mut c, "Drafts", &sized(7, 201)).await;
    assert!(last(&r).contains(" NO [OVERQUOTA]"), "{r:?}");
    let r = append(&mut c, "Drafts", &sized(8, 200)).await;
    assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");
    let r = c.cmd("COPY 1 Drafts").await;
    assert!(last(&r).contains(" NO [OVERQUOTA]"), "{r:?}");
    let r = c.cmd("STATUS Drafts (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Drafts (MESSAGES 1)\r\n");
    w.stop().await;
}

mod smtp {
    use super::smtp_support::*;
    use super::*;

    /// Whether the RCPT refusal of a full mailbox was audited for `address`.
    async fn audited_full(a: &Instance, address: &str, protocol: &str) -> u32 {
        a.audited(|e| {
            e.protocol == protocol
                && e.outcome == AuditOutcome::Failure
                && e.mailbox.as_deref() == Some(address)
                && e.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("mailbox full"))
        })
        .await
    }

    #[tokio::test]
    async fn a_full_mailbox_is_refused_at_rcpt_and_the_others_still_get_the_message() {
        let pki = Pki::new();
        let mut o = Options::new("a.mssante.test");
        o.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
        let a = Instance::start(&pki, o).await;
        let sender = a.mailbox("house", IDNAT).await;
        let full = a.mailbox("wilson", OTHER_IDNAT).await;
        let other = a.mailbox("cameron", OTHER_IDNAT).await;
        set(a.store(), &full, QuotaLimit::Keep, QuotaLimit::Set(1)).await;

        let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
        let body = message(&sender, &full, "first", 200);
        assert_eq!(s.mail(&sender, &[&full], &body).await.0, 250);
        // At the limit now: refused at RCPT, the other recipient still served.
        assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 250);
        let (code, text) = s.cmd(&format!("RCPT TO:<{full}>")).await;
        assert_eq!((code, text.as_str()), (552, "5.2.2 Mailbox full"));
        assert_eq!(s.cmd(&format!("RCPT TO:<{other}>")).await.0, 250);
        assert_eq!(s.cmd("DATA").await.0, 354);
        s.send(&dot_stuff(&message(&sender, &other, "second", 200)))
            .await;
        assert_eq!(s.reply().await.0, 250);
        assert_eq!(a.messages(&full, "INBOX").await.len(), 1);
        assert_eq!(a.messages(&other, "INBOX").await.len(), 1);
        assert_eq!(audited_full(&a, &full, "submission").await, 1);

        // SIZE= weighs in: a message announced bigger than the room left is refused.
        let id = a.store().mailbox(&full).await.unwrap().unwrap().id;
        let used = a.store().quota(id).await.unwrap().unwrap().used_bytes;
        set(
            a.store(),
            &full,
            QuotaLimit::Set(used + 1000),
            QuotaLimit::Clear,
        )
        .await;
        assert_eq!(
            s.cmd(&format!("MAIL FROM:<{sender}> SIZE=1001")).await.0,
            250
        );
        let (code, text) = s.cmd(&format!("RCPT TO:<{full}>")).await;
        assert_eq!((code, text.as_str()), (552, "5.2.2 Mailbox full"));
        assert_eq!(s.cmd("RSET").await.0, 250);
        assert_eq!(
            s.cmd(&format!("MAIL FROM:<{sender}> SIZE=1000")).await.0,
            250
        );
        assert_eq!(s.cmd(&format!("RCPT TO:<{full}>")).await.0, 250);
        assert_eq!(s.cmd("RSET").await.0, 250);

        // The operator interface refuses the same way.
        set(a.store(), &full, QuotaLimit::Keep, QuotaLimit::Set(1)).await;
        let mut s = starttls(plain(a.inbound()).await, pki.client(Some("operator2"))).await;
        assert_eq!(s.cmd("EHLO mx.b.mssante.test").await.0, 250);
        assert_eq!(s.cmd("MAIL FROM:<cuddy@b.mssante.test>").await.0, 250);
        let (code, text) = s.cmd(&format!("RCPT TO:<{full}>")).await;
        assert_eq!((code, text.as_str()), (552, "5.2.2 Mailbox full"));
        assert_eq!(s.cmd(&format!("RCPT TO:<{other}>")).await.0, 250);
        assert_eq!(s.cmd("DATA").await.0, 354);
        s.send(&dot_stuff(&message(
            "cuddy@b.mssante.test",
            &other,
            "third",
            200,
        )))
        .await;
        assert_eq!(s.reply().await.0, 250);
        assert_eq!(a.messages(&full, "INBOX").await.len(), 1);
        assert_eq!(a.messages(&other, "INBOX").await.len(), 2);
        assert_eq!(audited_full(&a, &full, "inbound").await, 1);
        a.stop().await;
    }
}
