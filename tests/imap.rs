//! The IMAP interface end to end: the real server on loopback ports, the PSC stand-in,
//! real TLS, a raw client that checks the bytes, Python's imaplib and curl.

mod common;

use common::tools;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use mssante_conformance::psc_standin::{Flaw, TokenSpec};

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

const SIMPLE: &str = "From: Gregory House <gregory.house@h.mssante.fr>\r\nTo: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: Patient 12\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <m1@h.mssante.fr>\r\n\r\nLupus, again.\r\n";

const MULTIPART: &str = "From: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nTo: gregory.house@h.mssante.fr\r\nSubject: Compte rendu\r\nDate: Tue, 24 Nov 2026 09:00:00 +0100\r\nMessage-ID: <m2@h.mssante.fr>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n--sep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoir le compte rendu joint.\r\n--sep\r\nContent-Type: application/pdf; name=\"cr.pdf\"\r\nContent-Disposition: attachment; filename=\"cr.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--sep--\r\n";

async fn append(c: &mut Client, folder: &str, message: &str, flags: &str) -> Vec<String> {
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND {folder} ({flags}) {{{}+}}\r\n", message.len()).as_bytes())
        .await;
    c.send(message.as_bytes()).await;
    c.send(b"\r\n").await;
    c.until(&tag).await
}

on_both_backends! {
#[tokio::test]
async fn starttls_port_offers_only_starttls_then_authenticates() {
    let w = world("").await;
    let mut c = w.connect_starttls().await;
    let greeting = c.line().await;
    assert_eq!(
        greeting,
        "* OK [CAPABILITY IMAP4REV1 STARTTLS LOGINDISABLED] mssante IMAP ready\r\n"
    );
    let caps = c.cmd("CAPABILITY").await;
    assert_eq!(caps[0], "* CAPABILITY IMAP4REV1 STARTTLS LOGINDISABLED\r\n");
    // No authentication at all before TLS.
    let r = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(HOUSE_BAL, HOUSE)
        ))
        .await;
    assert!(last(&r).contains("NO [PRIVACYREQUIRED]"), "{r:?}");
    let r = c.cmd("LOGIN house secret").await;
    assert!(last(&r).contains(" NO "), "{r:?}");
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).contains(" BAD "), "{r:?}");
    let r = c.cmd("STARTTLS").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    c.upgrade(&w.ca).await;
    // No greeting after STARTTLS: the next line answers our command.
    let caps = c.cmd("CAPABILITY").await;
    assert_eq!(caps.len(), 2, "{caps:?}");
    let caps = &caps[0];
    for want in [
        "IMAP4REV1",
        "SASL-IR",
        "AUTH=XOAUTH2",
        "AUTH=OAUTHBEARER",
        "LOGINDISABLED",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "NAMESPACE",
        "ID",
        "ENABLE",
        "UNSELECT",
        "LITERAL+",
        "CONDSTORE",
        "QRESYNC",
        "SPECIAL-USE",
        "I18NLEVEL=1",
        "CHILDREN",
        "WITHIN",
        "QUOTA",
        "QUOTA=RES-STORAGE",
        "QUOTA=RES-MESSAGE",
    ] {
        assert!(
            caps.split_whitespace().any(|c| c == want),
            "{want} missing in {caps}"
        );
    }
    assert!(
        !caps.contains("STARTTLS")
            && !caps.contains("AUTH=EXTERNAL")
            && !caps.contains("AUTH=PLAIN")
            && !caps.contains("QUOTASET")
    );
    let r = c.cmd("STARTTLS").await;
    assert!(last(&r).contains(" BAD "), "{r:?}");
    let r = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(HOUSE_BAL, HOUSE)
        ))
        .await;
    assert!(last(&r).contains(" OK ["), "{r:?}");
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).contains("OK [READ-WRITE]"), "{r:?}");
    let r = c.cmd("LOGOUT").await;
    assert!(r[0].starts_with("* BYE"), "{r:?}");
    assert!(c.closed().await);
    w.stop().await;
}
}

/// Sends `AUTHENTICATE XOAUTH2` for the holder of HOUSE_BAL with `token` inline; the tag.
async fn start_xoauth2(c: &mut Client, token: &str) -> String {
    let tag = c.next_tag();
    let line = format!(
        "{tag} AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2(HOUSE_BAL, token)
    );
    c.send(line.as_bytes()).await;
    tag
}

on_both_backends! {
#[tokio::test]
async fn implicit_tls_greeting_and_refusals() {
    // Many refusals in a row from one address: keep the back-off out of the way here.
    let w = world("session.auth_failures_before_delay = 1000").await;
    let mut c = w.connect_tls().await;
    let greeting = c.line().await;
    assert!(
        greeting.starts_with(
            "* OK [CAPABILITY IMAP4REV1 IMAP4REV2 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER LOGINDISABLED "
        ),
        "{greeting}"
    );
    assert!(!greeting.contains("STARTTLS") && !greeting.contains("EXTERNAL"));

    let r = c.cmd("LOGIN gregory.house@h.mssante.fr secret").await;
    assert!(last(&r).contains(" NO "), "{r:?}");
    let r = c.cmd("AUTHENTICATE PLAIN AGhvdXNlAHNlY3JldA==").await;
    assert!(last(&r).contains(" NO "), "{r:?}");
    // No client certificate: EXTERNAL is not offered and refused.
    let r = c.cmd("AUTHENTICATE EXTERNAL =").await;
    assert!(last(&r).contains(" NO "), "{r:?}");

    // An expired token: the XOAUTH2 error challenge, an empty reply, then the failure.
    let expired = w.psc.mint(&TokenSpec::flawed(HOUSE, Flaw::Expired));
    let tag = start_xoauth2(&mut c, &expired).await;
    let challenge = c.line().await;
    assert!(challenge.starts_with("+ "), "{challenge}");
    let decoded = B64.decode(challenge[2..].trim()).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(json["status"], "401");
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");

    // Thunderbird: never answers the challenge; the server gives up after the timeout.
    let tag = start_xoauth2(&mut c, &expired).await;
    assert!(c.line().await.starts_with("+ "));
    let r = c.until(&tag).await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");

    // A new command instead of a reply ends the exchange, and is then answered.
    let tag = start_xoauth2(&mut c, &expired).await;
    assert!(c.line().await.starts_with("+ "));
    c.send(b"n1 NOOP\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");
    let r = c.until("n1").await;
    assert!(last(&r).contains("n1 OK"), "{r:?}");

    // Every kind of bad token is refused the same way on the wire.
    for flaw in [
        Flaw::NotYetValid,
        Flaw::ForeignIssuer,
        Flaw::UnknownKey,
        Flaw::AlgNone,
        Flaw::Hs256WithPublicKey,
        Flaw::WrongAcr,
        Flaw::RefreshType,
        Flaw::BadSignature,
    ] {
        let bad = w.psc.mint(&TokenSpec::flawed(HOUSE, flaw));
        let tag = start_xoauth2(&mut c, &bad).await;
        assert!(c.line().await.starts_with("+ "), "{flaw:?}");
        c.send(b"\r\n").await;
        let r = c.until(&tag).await;
        assert!(
            last(&r).contains("NO [AUTHENTICATIONFAILED]"),
            "{flaw:?}: {r:?}"
        );
    }
    // Each attempt is in the audit trail, with the IMAP interface and the peer.
    let store = &w.running.as_ref().unwrap().context.store;
    let audit = store.audit_records(Some(HOUSE_BAL), 100).await.unwrap();
    let refused = audit
        .iter()
        .filter(|r| {
            r.entry.outcome == mssante::store::AuditOutcome::Failure
                && r.entry.protocol.eq_ignore_ascii_case("imap")
                && r.entry
                    .peer
                    .as_deref()
                    .is_some_and(|p| p.starts_with("127.0.0.1"))
        })
        // Identical refusals close together share a row and count as its repeats.
        .map(|r| 1 + r.repeated as usize)
        .sum::<usize>();
    assert!(refused >= 11, "{audit:?}");

    // A good token for somebody else's mailbox.
    let r = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(CUDDY_BAL, HOUSE)
        ))
        .await;
    assert!(
        r.iter().any(|l| l.contains("AUTHENTICATIONFAILED")),
        "{r:?}"
    );

    // Cancelled exchange.
    let tag = c.next_tag();
    c.send(format!("{tag} AUTHENTICATE XOAUTH2\r\n").as_bytes())
        .await;
    assert!(c.line().await.starts_with("+"));
    c.send(b"*\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains(" BAD "), "{r:?}");

    // Without SASL-IR: empty continuation, then the response; OAUTHBEARER.
    let tag = c.next_tag();
    c.send(format!("{tag} AUTHENTICATE OAUTHBEARER\r\n").as_bytes())
        .await;
    assert_eq!(c.line().await, "+ \r\n");
    let bearer = format!(
        "n,a={HOUSE_BAL},\x01host=127.0.0.1\x01port=993\x01auth=Bearer {}\x01\x01",
        w.token(HOUSE)
    );
    c.send(format!("{}\r\n", B64.encode(bearer)).as_bytes())
        .await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains(" OK [CAPABILITY"), "{r:?}");
    assert!(!last(&r).contains("AUTH="));
    let r = c.cmd("AUTHENTICATE XOAUTH2 =").await;
    assert!(last(&r).contains(" BAD "), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn temporary_failure_when_psc_is_down() {
    let w = world("psc.introspection").await;
    let token = w.token(HOUSE);
    let mut c = w.connect_tls().await;
    c.line().await;
    w.psc.set_down(true);
    let r = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            xoauth2(HOUSE_BAL, &token)
        ))
        .await;
    assert!(last(&r).contains("NO [UNAVAILABLE]"), "{r:?}");
    w.psc.set_down(false);
    let r = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            xoauth2(HOUSE_BAL, &token)
        ))
        .await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn external_with_an_application_certificate() {
    use mssante::store::{Grant, MailboxKind, NewMailbox};
    use sha2::Digest;
    let w = world("tls.client_ca").await;
    let store = &w.running.as_ref().unwrap().context.store;
    let (cert, key) = w.client_certificate("LABO-SIL");
    let again = (cert.clone(), key.clone_key());
    store
        .create_mailbox(NewMailbox::new(
            "labo@h.mssante.fr",
            MailboxKind::Applicative,
            None,
            mssante::clock::SystemClock::now_utc(),
        ))
        .await
        .unwrap();
    let fingerprint = hex::encode(sha2::Sha256::digest(cert.as_ref()));
    store
        .add_grant("labo@h.mssante.fr", Grant::CertificatePin { fingerprint })
        .await
        .unwrap();
    // Without a certificate: no EXTERNAL.
    let mut plain = w.connect_tls().await;
    assert!(!plain.line().await.contains("AUTH=EXTERNAL"));
    let mut c = w.connect_tls_with((cert, key)).await;
    let greeting = c.line().await;
    assert!(greeting.contains("AUTH=EXTERNAL"), "{greeting}");
    // Another mailbox than the one bound to the certificate: refused.
    let r = c
        .cmd(&format!("AUTHENTICATE EXTERNAL {}", B64.encode(HOUSE_BAL)))
        .await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");
    let r = c.cmd("AUTHENTICATE EXTERNAL =").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).contains("OK [READ-WRITE]"), "{r:?}");
    // The mailbox address in clear text where base64 was expected is tolerated.
    let mut c = w.connect_tls_with(again).await;
    c.line().await;
    let r = c.cmd("AUTHENTICATE EXTERNAL labo@h.mssante.fr").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    // A certificate bound to no mailbox.
    let mut c = w.connect_tls_with(w.client_certificate("OTHER")).await;
    c.line().await;
    let r = c.cmd("AUTHENTICATE EXTERNAL labo@h.mssante.fr").await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn folders_and_mailbox_commands() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("LIST \"\" \"*\"").await;
    for (name, attr) in [
        ("INBOX", "\\HasNoChildren"),
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
    ] {
        assert!(
            r.iter().any(|l| l.starts_with("* LIST (")
                && l.contains(attr)
                && l.trim_end().ends_with(name)),
            "{name}: {r:?}"
        );
    }
    let r = c.cmd("LIST \"\" \"\"").await;
    assert!(r[0].starts_with("* LIST (\\Noselect) \"/\""), "{r:?}");
    assert!(last(&c.cmd("CREATE Patients").await).contains(" OK "));
    assert!(last(&c.cmd("CREATE Patients/Lupus").await).contains(" OK "));
    let r = c.cmd("CREATE Patients").await;
    assert!(last(&r).contains("NO [ALREADYEXISTS]"), "{r:?}");
    let r = c.cmd("LIST \"\" \"%\"").await;
    assert!(
        has(&r, "\\HasChildren") && has(&r, "Patients") && !has(&r, "Lupus"),
        "{r:?}"
    );
    let r = c.cmd("LIST \"Patients/\" \"%\"").await;
    assert!(has(&r, "Patients/Lupus"), "{r:?}");
    assert!(last(&c.cmd("RENAME Patients/Lupus Patients/Sarcoidose").await).contains(" OK "));
    assert!(last(&c.cmd("UNSUBSCRIBE Patients/Sarcoidose").await).contains(" OK "));
    let r = c.cmd("LSUB \"\" \"*\"").await;
    assert!(has(&r, "* LSUB") && !has(&r, "Sarcoidose"), "{r:?}");
    assert!(last(&c.cmd("SUBSCRIBE Patients/Sarcoidose").await).contains(" OK "));
    // With a child, DELETE leaves the name \Noselect (tests/imap_rfc3501.rs has the rest).
    assert!(last(&c.cmd("DELETE Patients").await).contains(" OK "));
    assert!(last(&c.cmd("DELETE Patients/Sarcoidose").await).contains(" OK "));
    assert!(last(&c.cmd("DELETE Patients").await).contains(" OK "));
    assert!(last(&c.cmd("DELETE INBOX").await).contains(" NO "));
    assert!(last(&c.cmd("DELETE Nowhere").await).contains("NO [NONEXISTENT]"));

    let r = c.cmd("NAMESPACE").await;
    assert_eq!(r[0], "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    let r = c.cmd("ID (\"name\" \"test\")").await;
    assert!(r[0].starts_with("* ID (\"name\" \"mssante\""), "{r:?}");
    let r = c.cmd("ENABLE CONDSTORE").await;
    assert_eq!(r[0], "* ENABLED CONDSTORE\r\n");

    let r = append(&mut c, "INBOX", SIMPLE, "\\Flagged").await;
    assert!(last(&r).contains("OK [APPENDUID "), "{r:?}");
    let r = append(&mut c, "Nowhere", SIMPLE, "").await;
    assert!(last(&r).contains("NO [TRYCREATE]"), "{r:?}");
    let r = c
        .cmd("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ RECENT)")
        .await;
    assert!(
        r[0].starts_with("* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "),
        "{r:?}"
    );
    assert!(r[0].contains("UNSEEN 1"), "{r:?}");

    let r = c.cmd("EXAMINE INBOX").await;
    assert!(
        has(&r, "* 1 EXISTS")
            && has(&r, "* FLAGS (")
            && has(&r, "[UIDVALIDITY ")
            && has(&r, "[UIDNEXT 2]")
            && has(&r, "[HIGHESTMODSEQ ")
            && has(&r, "[UNSEEN 1]"),
        "{r:?}"
    );
    assert!(last(&r).contains("OK [READ-ONLY]"));
    let r = c.cmd("STORE 1 +FLAGS (\\Seen)").await;
    assert!(last(&r).contains(" NO "), "read-only: {r:?}");
    let r = c.cmd("SELECT INBOX (CONDSTORE)").await;
    assert!(
        last(&r).contains("OK [READ-WRITE]") && has(&r, "[HIGHESTMODSEQ "),
        "{r:?}"
    );
    let r = c.cmd("FETCH 1 (FLAGS) (CHANGEDSINCE 1)").await;
    assert!(r[0].contains("MODSEQ ("), "{r:?}");
    assert!(last(&c.cmd("CHECK").await).contains(" OK "));
    assert!(last(&c.cmd("UNSELECT").await).contains(" OK "));
    assert!(last(&c.cmd("FETCH 1 FLAGS").await).contains(" BAD "));
    assert!(last(&c.cmd("SELECT INBOX").await).contains(" OK "));
    assert!(last(&c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await).contains(" OK "));
    assert!(last(&c.cmd("CLOSE").await).contains(" OK "));
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 0"), "CLOSE expunges: {r:?}");
    // INBOX rename moves the messages and leaves INBOX empty.
    append(&mut c, "INBOX", SIMPLE, "").await;
    assert!(last(&c.cmd("RENAME INBOX Archive").await).contains(" OK "));
    let r = c.cmd("STATUS Archive (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 1"), "{r:?}");
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 0"), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
/// The server version is for those who logged in, not for whoever connects.
#[tokio::test]
async fn id_tells_the_version_only_after_login() {
    let w = world("").await;
    let version = env!("CARGO_PKG_VERSION");
    let mut c = w.connect_tls().await;
    c.line().await;
    let r = c.cmd("ID (\"name\" \"probe\")").await;
    assert_eq!(r[0], "* ID (\"name\" \"mssante\")\r\n", "{r:?}");
    assert!(!r.iter().any(|l| l.contains(version)), "{r:?}");
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("ID NIL").await;
    assert_eq!(
        r[0],
        format!("* ID (\"name\" \"mssante\" \"version\" \"{version}\")\r\n"),
        "{r:?}"
    );
    w.stop().await;
}
}

on_both_backends! {
/// RFC 3501 §5.1, §5.1.3: wildcards, control characters and invalid or needless
/// modified UTF-7 are refused as new names, by CREATE and as a RENAME target.
#[tokio::test]
async fn invalid_folder_names_are_refused() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    assert!(last(&c.cmd("CREATE Patients").await).contains(" OK "));
    let before = c.cmd("LIST \"\" *").await;
    for name in [
        "\"a*b\"",
        "\"a%b\"",
        "{3+}\r\na\x01b",
        "\"a\tb\"",
        "&Jjo",
        "&AGEAYgBj-",
        "&AAA-",
        "&2D3-",
        "&AC8-",
        "a//b",
        "/a",
    ] {
        let r = c.cmd(&format!("CREATE {name}")).await;
        assert!(
            last(&r).contains(" NO ") && last(&r).contains("invalid mailbox name"),
            "CREATE {name:?}: {r:?}"
        );
        let r = c.cmd(&format!("RENAME Patients {name}")).await;
        assert!(
            last(&r).contains(" NO ") && last(&r).contains("invalid mailbox name"),
            "RENAME {name:?}: {r:?}"
        );
    }
    let after = c.cmd("LIST \"\" *").await;
    assert_eq!(before.len(), after.len(), "{before:?} then {after:?}");
    // Été, properly encoded, is a good name.
    assert!(last(&c.cmd("CREATE &AMk-t&AOk-").await).contains(" OK "));
    assert!(last(&c.cmd("RENAME Patients Patients/&AMk-t&AOk-").await).contains(" OK "));
    let r = c.cmd("LIST \"\" *").await;
    assert!(
        has(&r, "\"&AMk-t&AOk-\"") || has(&r, " &AMk-t&AOk-\r\n"),
        "{r:?}"
    );
    assert!(has(&r, "Patients/&AMk-t&AOk-"), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn fetch_store_search_copy_move() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    append(&mut c, "INBOX", SIMPLE, "").await;
    append(&mut c, "INBOX", MULTIPART, "\\Answered $Important").await;
    // The first SELECT takes \Recent for itself (tests/imap_rfc3501.rs); the checks
    // below are about the stored flags, seen from the second.
    assert!(has(&c.cmd("SELECT INBOX").await, "* 2 RECENT"));
    let r = c.cmd("SELECT INBOX").await;
    assert!(has(&r, "* 2 EXISTS"), "{r:?}");
    assert!(has(&r, "* 0 RECENT"), "{r:?}");

    let r = c
        .cmd("FETCH 1:2 (UID FLAGS RFC822.SIZE INTERNALDATE)")
        .await;
    assert!(
        r[0].starts_with(&format!(
            "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE {} INTERNALDATE \"",
            SIMPLE.len()
        )),
        "{r:?}"
    );
    assert!(r[1].contains("FLAGS (\\Answered $Important)"), "{r:?}");
    let r = c.cmd("FETCH 1 ENVELOPE").await;
    assert!(r[0].contains("ENVELOPE (\"Mon, 23 Nov 2026 10:00:00 +0100\" \"Patient 12\" ((\"Gregory House\" NIL \"gregory.house\" \"h.mssante.fr\"))"), "{r:?}");
    assert!(r[0].contains("\"<m1@h.mssante.fr>\")"), "{r:?}");
    let r = c.cmd("FETCH 2 BODYSTRUCTURE").await;
    assert!(
        r[0].contains("(\"TEXT\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 27 1 NIL NIL)"),
        "{r:?}"
    );
    assert!(
        r[0].contains("\"application\" \"pdf\" (\"name\" \"cr.pdf\") NIL NIL \"BASE64\" 12"),
        "{r:?}"
    );
    assert!(
        r[0].contains("(\"attachment\" (\"filename\" \"cr.pdf\"))"),
        "{r:?}"
    );
    assert!(r[0].contains("\"mixed\" (\"boundary\" \"sep\")"), "{r:?}");
    let r = c.cmd("FETCH 2 BODY").await;
    assert!(r[0].contains("BODY ((\"TEXT\" \"plain\""), "{r:?}");

    let r = c
        .cmd("FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject From)])")
        .await;
    assert!(
        r[0].contains("BODY[HEADER.FIELDS (Subject From)] {"),
        "{r:?}"
    );
    assert!(
        r[0].contains(
            "From: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: Compte rendu\r\n\r\n"
        ),
        "{r:?}"
    );
    let r = c
        .cmd(
            "FETCH 2 (BODY.PEEK[HEADER.FIELDS.NOT (Subject From To Date Message-ID MIME-Version)])",
        )
        .await;
    assert!(
        r[0].contains("Content-Type: multipart/mixed") && !r[0].contains("Subject:"),
        "{r:?}"
    );
    let r = c
        .cmd("FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[1]<0.4>)")
        .await;
    assert!(
        r[0].contains("BODY[1] {") && r[0].contains("Voir le compte rendu joint."),
        "{r:?}"
    );
    assert!(
        r[0].contains("BODY[2.MIME] {") && r[0].contains("Content-Disposition: attachment"),
        "{r:?}"
    );
    assert!(r[0].contains("BODY[1]<0> {4}\r\nVoir"), "{r:?}");
    let r = c.cmd("FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])").await;
    assert!(
        r[0].contains("BODY[TEXT] {15}\r\nLupus, again.\r\n"),
        "{r:?}"
    );
    let r = c.cmd("FETCH 1 (RFC822.HEADER RFC822.TEXT)").await;
    assert!(
        r[0].contains("RFC822.HEADER {") && r[0].contains("RFC822.TEXT {15}"),
        "{r:?}"
    );
    // BODY.PEEK leaves \Seen alone; BODY[] sets it and says so.
    let r = c.cmd("FETCH 1 FLAGS").await;
    assert!(
        r[0].contains("FLAGS (\\Seen)"),
        "RFC822.TEXT sets \\Seen: {r:?}"
    );
    let r = c.cmd("FETCH 2 FLAGS").await;
    assert!(!r[0].contains("\\Seen"), "{r:?}");
    let r = c.cmd("FETCH 2 BODY[]").await;
    assert!(
        r[0].contains(&format!("BODY[] {{{}}}", MULTIPART.len())) && r[0].contains("\\Seen"),
        "{r:?}"
    );
    let r = c.cmd("FETCH 1 RFC822").await;
    assert!(
        r[0].contains(&format!("RFC822 {{{}}}", SIMPLE.len())),
        "{r:?}"
    );
    let tag = c.next_tag();
    c.send(
        format!(
            "{tag} APPEND Drafts (\\Draft) \"01-Jan-2020 10:00:00 +0200\" {{{}+}}\r\n{SIMPLE}\r\n",
            SIMPLE.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(last(&c.until(&tag).await).contains("OK [APPENDUID"));
    c.cmd("EXAMINE Drafts").await;
    let r = c.cmd("FETCH 1 (FLAGS INTERNALDATE)").await;
    assert!(
        // EXAMINE shows as \Recent what no session has been told of yet.
        r[0].contains("FLAGS (\\Recent \\Draft) INTERNALDATE \"01-Jan-2020 08:00:00 +0000\""),
        "{r:?}"
    );
    c.cmd("SELECT INBOX").await;
    let r = c.cmd("FETCH 1:2 FAST").await;
    assert_eq!(r.len(), 3);
    let r = c.cmd("FETCH 3 FLAGS").await;
    assert!(last(&r).contains(" BAD "), "{r:?}");
    let r = c.cmd("UID FETCH 2:* (FLAGS MODSEQ)").await;
    assert!(
        r[0].starts_with("* 2 FETCH (UID 2 FLAGS (") && r[0].contains("MODSEQ ("),
        "{r:?}"
    );

    // STORE
    let r = c.cmd("STORE 1 -FLAGS (\\Seen)").await;
    assert!(r[0].starts_with("* 1 FETCH (FLAGS ())"), "{r:?}");
    let r = c.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let r = c.cmd("UID STORE 1 FLAGS (\\Draft foo)").await;
    // foo is a new keyword: FLAGS is announced again first (tests/imap_rfc3501.rs).
    assert!(r[0].starts_with("* FLAGS ("), "{r:?}");
    assert!(
        r[2].starts_with("* 1 FETCH (UID 1 FLAGS (\\Draft foo))"),
        "{r:?}"
    );

    // SEARCH
    let r = c.cmd("SEARCH ALL").await;
    assert_eq!(r[0], "* SEARCH 1 2\r\n");
    assert_eq!(c.cmd("SEARCH FROM cuddy").await[0], "* SEARCH 2\r\n");
    assert_eq!(
        c.cmd("SEARCH CHARSET UTF-8 SUBJECT \"patient\"").await[0],
        "* SEARCH 1\r\n"
    );
    assert_eq!(c.cmd("SEARCH BODY lupus").await[0], "* SEARCH 1\r\n");
    assert_eq!(
        c.cmd("SEARCH TEXT \"compte rendu joint\"").await[0],
        "* SEARCH 2\r\n"
    );
    assert_eq!(
        c.cmd("SEARCH KEYWORD $Important").await[0],
        "* SEARCH 2\r\n"
    );
    assert_eq!(c.cmd("SEARCH DRAFT").await[0], "* SEARCH 1\r\n");
    assert_eq!(c.cmd("SEARCH UNSEEN NOT DRAFT").await[0], "* SEARCH\r\n");
    assert_eq!(
        c.cmd("SEARCH OR ANSWERED DRAFT").await[0],
        "* SEARCH 1 2\r\n"
    );
    assert_eq!(c.cmd("SEARCH LARGER 400").await[0], "* SEARCH 2\r\n");
    assert_eq!(c.cmd("SEARCH SMALLER 400").await[0], "* SEARCH 1\r\n");
    assert_eq!(
        c.cmd("SEARCH SENTBEFORE 24-Nov-2026").await[0],
        "* SEARCH 1\r\n"
    );
    assert_eq!(
        c.cmd("SEARCH SENTON 24-Nov-2026").await[0],
        "* SEARCH 2\r\n"
    );
    assert_eq!(
        c.cmd("SEARCH SINCE 1-Jan-2000 BEFORE 1-Jan-2100").await[0],
        "* SEARCH 1 2\r\n"
    );
    assert_eq!(
        c.cmd("SEARCH HEADER Message-ID m2@").await[0],
        "* SEARCH 2\r\n"
    );
    assert_eq!(c.cmd("SEARCH TO house CC nobody").await[0], "* SEARCH\r\n");
    assert_eq!(c.cmd("UID SEARCH UID 2:*").await[0], "* SEARCH 2\r\n");
    assert_eq!(c.cmd("SEARCH 2:*").await[0], "* SEARCH 2\r\n");
    assert!(c.cmd("SEARCH MODSEQ 1").await[0].starts_with("* SEARCH 1 2 (MODSEQ "));
    let r = c.cmd("SEARCH CHARSET ISO-8859-1 ALL").await;
    assert!(last(&r).contains("NO [BADCHARSET"), "{r:?}");

    // COPY / MOVE / EXPUNGE
    let r = c.cmd("COPY 1:2 Trash").await;
    assert!(last(&r).contains("OK [COPYUID "), "{r:?}");
    let r = c.cmd("COPY 1 Nowhere").await;
    assert!(last(&r).contains("NO [TRYCREATE]"), "{r:?}");
    let r = c.cmd("UID MOVE 1 Junk").await;
    assert!(has(&r, "* OK [COPYUID ") && has(&r, "* 1 EXPUNGE"), "{r:?}");
    let r = c.cmd("STATUS Junk (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 1"), "{r:?}");
    let r = c.cmd("FETCH 1 UID").await;
    assert!(r[0].starts_with("* 1 FETCH (UID 2)"), "{r:?}");
    assert!(last(&c.cmd("STORE 1 +FLAGS (\\Deleted)").await).contains(" OK "));
    let r = c.cmd("EXPUNGE").await;
    assert_eq!(r[0], "* 1 EXPUNGE\r\n");
    let r = c.cmd("SELECT Trash").await;
    assert!(has(&r, "* 2 EXISTS"), "{r:?}");
    assert!(last(&c.cmd("STORE 1:2 +FLAGS (\\Deleted)").await).contains(" OK "));
    let r = c.cmd("UID EXPUNGE 2").await;
    assert_eq!(r[0], "* 2 EXPUNGE\r\n", "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn idle_receives_exists_from_another_connection() {
    let w = world("").await;
    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    let mut b = w.login(HOUSE_BAL, HOUSE).await;
    assert!(has(&a.cmd("SELECT INBOX").await, "* 0 EXISTS"));
    a.send(b"i1 IDLE\r\n").await;
    assert!(a.line().await.starts_with("+ "));
    append(&mut b, "INBOX", SIMPLE, "").await;
    assert_eq!(a.line().await, "* 1 EXISTS\r\n");
    assert_eq!(a.line().await, "* 1 RECENT\r\n");
    // Flag changes from elsewhere arrive too.
    assert!(b.cmd("SELECT INBOX").await.len() > 1);
    b.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    assert!(
        a.line()
            .await
            .starts_with("* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged))")
    );
    a.send(b"DONE\r\n").await;
    let r = a.until("i1").await;
    assert!(last(&r).contains("i1 OK"), "{r:?}");
    // And NOOP reports what happened while not idling.
    append(&mut b, "INBOX", SIMPLE, "").await;
    let r = a.cmd("NOOP").await;
    assert_eq!(r[0], "* 2 EXISTS\r\n", "{r:?}");
    // ... and any other command too.
    append(&mut b, "INBOX", SIMPLE, "").await;
    let r = a.cmd("STATUS Trash (MESSAGES)").await;
    assert_eq!(r[0], "* 3 EXISTS\r\n", "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_sessions_own_writes_report_what_another_session_changed_before_them() {
    let w = world("").await;
    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    let mut b = w.login(HOUSE_BAL, HOUSE).await;
    common::writers::own_writes_report_the_other_sessions_changes(&mut a, &mut b).await;
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn concurrent_expunges_keep_sequence_numbers_in_step() {
    let w = world("").await;
    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    let mut b = w.login(HOUSE_BAL, HOUSE).await;
    for _ in 0..10 {
        append(&mut a, "INBOX", SIMPLE, "").await;
    }
    a.cmd("SELECT INBOX").await;
    b.cmd("SELECT INBOX").await;
    a.cmd("STORE 2,4 +FLAGS.SILENT (\\Deleted)").await;
    b.cmd("STORE 6,9 +FLAGS.SILENT (\\Deleted)").await;
    // Both expunge at once.
    a.send(b"x1 EXPUNGE\r\n").await;
    b.send(b"x1 EXPUNGE\r\n").await;
    let ra = a.until("x1").await;
    let rb = b.until("x1").await;
    // FETCH/STORE/SEARCH never carry EXPUNGE; NOOP brings each view up to date.
    let fa = a.cmd("FETCH 1:* UID").await;
    assert!(!has(&fa, "EXPUNGE"), "{fa:?}");
    let na = a.cmd("NOOP").await;
    let nb = b.cmd("NOOP").await;
    let expunges = |lines: &[Vec<String>]| {
        lines
            .iter()
            .flatten()
            .filter(|l| l.ends_with("EXPUNGE\r\n"))
            .count()
    };
    assert_eq!(expunges(&[ra, fa, na]), 4);
    assert_eq!(expunges(&[rb, nb]), 4);
    let untagged = |lines: Vec<String>| -> Vec<String> {
        lines.into_iter().filter(|l| l.starts_with("* ")).collect()
    };
    let ua = untagged(a.cmd("FETCH 1:* UID").await);
    let ub = untagged(b.cmd("FETCH 1:* UID").await);
    assert_eq!(ua, ub);
    let uids: Vec<&str> = ua.iter().map(|l| l.as_str()).collect();
    assert_eq!(
        uids,
        [
            "* 1 FETCH (UID 1)\r\n",
            "* 2 FETCH (UID 3)\r\n",
            "* 3 FETCH (UID 5)\r\n",
            "* 4 FETCH (UID 7)\r\n",
            "* 5 FETCH (UID 8)\r\n",
            "* 6 FETCH (UID 10)\r\n"
        ]
    );
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn qresync_resynchronises_after_changes() {
    let w = world("").await;
    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    for _ in 0..4 {
        append(&mut a, "INBOX", SIMPLE, "").await;
    }
    assert_eq!(a.cmd("ENABLE QRESYNC").await[0], "* ENABLED QRESYNC\r\n");
    let r = a.cmd("SELECT INBOX").await;
    let validity = r
        .iter()
        .find_map(|l| l.split("[UIDVALIDITY ").nth(1))
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .to_owned();
    let modseq = r
        .iter()
        .find_map(|l| l.split("[HIGHESTMODSEQ ").nth(1))
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .to_owned();
    a.cmd("LOGOUT").await;

    let mut b = w.login(HOUSE_BAL, HOUSE).await;
    b.cmd("SELECT INBOX").await;
    b.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    b.cmd("STORE 3 +FLAGS (\\Deleted)").await;
    b.cmd("EXPUNGE").await;

    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    a.cmd("ENABLE QRESYNC").await;
    let r = a
        .cmd(&format!("SELECT INBOX (QRESYNC ({validity} {modseq} 1:4))"))
        .await;
    assert!(has(&r, "* VANISHED (EARLIER) 3"), "{r:?}");
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (")),
        "{r:?}"
    );
    assert!(has(&r, "* 3 EXISTS"), "{r:?}");
    let r = a
        .cmd(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    assert!(
        has(&r, "* VANISHED (EARLIER) 3") && has(&r, "UID 1 FLAGS (\\Flagged) MODSEQ"),
        "{r:?}"
    );
    // While selected, an expunge elsewhere shows as VANISHED, not EXPUNGE.
    b.cmd("STORE 1 +FLAGS (\\Deleted)").await;
    b.cmd("EXPUNGE").await;
    let r = a.cmd("NOOP").await;
    assert!(has(&r, "* VANISHED 1"), "{r:?}");
    // CONDSTORE conditional STORE.
    let r = a.cmd("STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)").await;
    assert!(last(&r).contains("OK [MODIFIED 1]"), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn twenty_mib_append_and_literal_limits() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let mut big = String::from("From: a@h.mssante.fr\r\nSubject: big\r\n\r\n");
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n";
    // As large as the default limit (smtp.max_message_size, 20 MiB) allows.
    while big.len() + line.len() <= 20 * 1024 * 1024 {
        big.push_str(line);
    }
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND INBOX {{{}}}\r\n", big.len()).as_bytes())
        .await;
    assert!(c.line().await.starts_with("+ "));
    c.send(big.as_bytes()).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");
    c.cmd("SELECT INBOX").await;
    let r = c.cmd("FETCH 1 RFC822.SIZE").await;
    assert_eq!(r[0], format!("* 1 FETCH (RFC822.SIZE {})\r\n", big.len()));
    let r = c.cmd("FETCH 1 BODY.PEEK[]").await;
    assert!(r[0].len() > big.len());
    w.stop().await;

    let w = world("imap.max_literal_size = \"1MiB\"\nimap.max_line_length = \"4KiB\"").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    // Synchronizing literal over the limit: refused before the client sends it.
    let r = c.cmd("APPEND INBOX {2000000}").await;
    assert!(last(&r).contains("NO [TOOBIG]"), "{r:?}");
    assert!(last(&c.cmd("NOOP").await).contains(" OK "));
    // Non-synchronizing literal over the limit: the bytes are read past, then refused.
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND INBOX {{2000000+}}\r\n").as_bytes())
        .await;
    c.send(&vec![b'x'; 2_000_000]).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains("NO [TOOBIG]"), "{r:?}");
    assert!(last(&c.cmd("NOOP").await).contains(" OK "));
    // A line over the limit: BYE and a clean close.
    c.send(format!("a99 NOOP {}\r\n", "x".repeat(8 * 1024)).as_bytes())
        .await;
    let l = c.line().await;
    assert!(l.starts_with("* BYE"), "{l}");
    assert!(c.closed().await);
    w.stop().await;
}
}

on_both_backends! {
/// Before login nobody is known: a literal too large for a SASL exchange ends the
/// connection at once, unread, and a synchronizing one gets no `+`.
#[tokio::test]
async fn large_literal_before_login_gets_bye_unread() {
    let w = world("").await;
    for literal in ["{60000000+}", "{60000000}"] {
        let mut c = w.connect_tls().await;
        c.line().await;
        c.send(format!("x ID ({literal}\r\n").as_bytes()).await;
        let l = c.line().await;
        assert!(l.starts_with("* BYE"), "{literal}: {l}");
        assert!(c.closed().await, "{literal}");
        // The clear-text port before STARTTLS too.
        let mut c = w.connect_starttls().await;
        c.line().await;
        c.send(format!("x ID ({literal}\r\n").as_bytes()).await;
        let l = c.line().await;
        assert!(l.starts_with("* BYE"), "{literal}: {l}");
        assert!(c.closed().await, "{literal}");
    }
    // A line longer than a SASL exchange needs, before login: the same.
    let mut c = w.connect_tls().await;
    c.line().await;
    c.send(format!("x NOOP {}", "x".repeat(20 * 1024)).as_bytes())
        .await;
    let l = c.line().await;
    assert!(l.starts_with("* BYE"), "{l}");
    assert!(c.closed().await);
    // Small literals before login still work, and the limits go back to the configured
    // ones after login.
    let mut c = w.connect_tls().await;
    c.line().await;
    c.send(b"x ID (\"name\" {5}\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send(b"hello)\r\n").await;
    let r = c.until("x").await;
    assert!(last(&r).starts_with("x OK"), "{r:?}");
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = append(
        &mut c,
        "INBOX",
        &format!("{SIMPLE}{}\r\n", "y".repeat(40 * 1024)),
        "",
    )
    .await;
    assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
/// One message size limit whichever way a message comes in: APPEND takes what SMTP
/// takes (`smtp.max_message_size`), announced as APPENDLIMIT (RFC 7889), unless
/// `imap.max_literal_size` says otherwise.
#[tokio::test]
async fn append_limit_is_the_smtp_message_size() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(r[0].contains(" APPENDLIMIT=20971520"), "{r:?}");
    w.stop().await;

    let w = world("imap.max_literal_size = \"1MiB\"").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(r[0].contains(" APPENDLIMIT=1048576"), "{r:?}");
    w.stop().await;

    let w = world("smtp.max_message_size = 100000").await;
    let mut c = w.connect_tls().await;
    let greeting = c.line().await;
    assert!(greeting.contains(" APPENDLIMIT=100000"), "{greeting}");
    let r = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(HOUSE_BAL, HOUSE)
        ))
        .await;
    assert!(last(&r).contains(" APPENDLIMIT=100000"), "{r:?}");
    // Over the limit: refused at once, no `+`, nothing to upload.
    let r = c.cmd("APPEND INBOX {100001}").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(last(&r).contains("NO [TOOBIG]"), "{r:?}");
    let r = append(
        &mut c,
        "INBOX",
        &format!("{SIMPLE}{}\r\n", "y".repeat(90_000)),
        "",
    )
    .await;
    assert!(last(&r).contains("OK [APPENDUID"), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
/// Refusals decided before the authenticator is asked are in the audit trail too, with
/// the peer address.
#[tokio::test]
async fn refusals_are_audited_with_the_peer() {
    let w = world("session.auth_failures_before_delay = 1000").await;
    let mut c = w.connect_tls().await;
    c.line().await;
    assert!(last(&c.cmd("LOGIN gregory.house@h.mssante.fr secret").await).contains(" NO "));
    assert!(last(&c.cmd("AUTHENTICATE PLAIN AGhvdXNlAHNlY3JldA==").await).contains(" NO "));
    assert!(last(&c.cmd("AUTHENTICATE EXTERNAL =").await).contains(" NO "));
    assert!(last(&c.cmd("AUTHENTICATE XOAUTH2 !!!!").await).contains(" BAD "));
    let tag = c.next_tag();
    c.send(format!("{tag} AUTHENTICATE XOAUTH2\r\n").as_bytes())
        .await;
    assert!(c.line().await.starts_with("+"));
    c.send(b"%%%\r\n").await;
    assert!(last(&c.until(&tag).await).contains(" BAD "));
    let mut clear = w.connect_starttls().await;
    clear.line().await;
    let r = clear
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(HOUSE_BAL, HOUSE)
        ))
        .await;
    assert!(last(&r).contains("NO [PRIVACYREQUIRED]"), "{r:?}");
    let mut big = w.connect_tls().await;
    big.line().await;
    big.send(b"x ID ({60000000}\r\n").await;
    assert!(big.line().await.starts_with("* BYE"));
    assert!(big.closed().await);

    let store = &w.running.as_ref().unwrap().context.store;
    let audit = store.audit_records(None, 100).await.unwrap();
    for (mechanism, reason) in [
        (Some("LOGIN"), "LOGIN is disabled"),
        (Some("PLAIN"), "unsupported mechanism"),
        (Some("EXTERNAL"), "EXTERNAL without a client certificate"),
        (Some("XOAUTH2"), "syntax error"),
        (Some("XOAUTH2"), "SASL response is not base64"),
        (Some("XOAUTH2"), "authentication before TLS"),
        (
            None,
            "literal larger than 16384 bytes before authentication",
        ),
    ] {
        assert!(
            audit.iter().any(|r| {
                r.entry.outcome == mssante::store::AuditOutcome::Failure
                    && r.entry.protocol == "imap"
                    && r.entry.mechanism.as_deref() == mechanism
                    && r.entry.reason.as_deref() == Some(reason)
                    && r.entry
                        .peer
                        .as_deref()
                        .is_some_and(|p| p.starts_with("127.0.0.1:"))
            }),
            "{mechanism:?} {reason}: {audit:?}"
        );
    }
    w.stop().await;
}
}

on_both_backends! {
/// An AUTHENTICATE that does not parse is audited, so it waits its turn like any other
/// command: a flood of them cannot turn into a flood of audit writes.
#[tokio::test]
async fn unparsable_authenticate_lines_are_rate_limited() {
    let w = world("imap.max_commands_per_second = 2").await;
    // Taken before the connection: the session's allowance starts full when it is
    // accepted and refills from then on, so pacing is measured from no later than that.
    let started = tokio::time::Instant::now();
    let mut c = w.connect_tls().await;
    c.line().await;
    let mut burst = Vec::new();
    for i in 0..6 {
        burst.extend_from_slice(format!("b{i} AUTHENTICATE XOAUTH2 !!!!\r\n").as_bytes());
    }
    c.send(&burst).await;
    for i in 0..6 {
        let r = c.until(&format!("b{i}")).await;
        assert!(last(&r).contains(" BAD "), "{r:?}");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn session_limits() {
    let w = world("session.max_unauthenticated_per_address = 2\nsession.idle_timeout = \"1s\"\nsession.max_lifetime = \"3s\"").await;
    let mut a = w.connect_tls().await;
    let mut b = w.connect_tls().await;
    a.line().await;
    b.line().await;
    let mut c = w.connect_tls().await;
    let l = c.line().await;
    assert!(l.starts_with("* BYE"), "third connection: {l}");
    // Inactivity: BYE then close.
    let l = a.line().await;
    assert!(l.starts_with("* BYE") && l.contains("inactivity"), "{l}");
    assert!(a.closed().await);
    drop(b);
    // IDLE counts as activity, but the lifetime still ends the session.
    let mut d = w.login(HOUSE_BAL, HOUSE).await;
    d.cmd("SELECT INBOX").await;
    d.send(b"i IDLE\r\n").await;
    assert!(d.line().await.starts_with("+ "));
    let l = d.line().await;
    assert!(l.starts_with("* BYE") && l.contains("lifetime"), "{l}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn commands_over_the_rate_wait_their_turn() {
    let w = world("imap.max_commands_per_second = 10").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let mut burst = Vec::new();
    for i in 0..25 {
        burst.extend_from_slice(format!("n{i} NOOP\r\n").as_bytes());
    }
    c.send(&burst).await;
    for i in 0..25 {
        let r = c.until(&format!("n{i}")).await;
        assert!(last(&r).contains(" OK "), "{r:?}");
    }
    let r = c.cmd("FETCH 1 FLAGS").await;
    assert!(last(&r).contains("BAD no mailbox selected"), "{r:?}");
    let r = c.cmd("GETMETADATA \"\" /shared/comment").await;
    assert!(last(&r).contains("BAD command not supported"), "{r:?}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn shutdown_says_bye() {
    let mut w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    c.cmd("SELECT INBOX").await;
    let running = w.running.take().unwrap();
    let stop = tokio::spawn(running.stop());
    let l = c.line().await;
    assert!(l.starts_with("* BYE"), "{l}");
    assert!(c.closed().await);
    stop.await.unwrap();
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn random_input_never_breaks_the_server() {
    use rand::{Rng, SeedableRng};
    let w = world("imap.max_line_length = \"8KiB\"\nimap.max_commands_per_second = 100000").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1a2b3c);
    let nasty: &[&[u8]] = &[
        b"a FETCH 1:* (BODY[1.2.3.HEADER.FIELDS (\"x\")]<0.0>)\r\n",
        b"a APPEND INBOX {4294967295}\r\n",
        b"a APPEND INBOX {99999999999999999999}\r\n",
        b"a SEARCH OR OR OR OR OR OR ALL\r\n",
        b"a UID FETCH 4294967295:1 FLAGS\r\n",
        b"a STORE 0 +FLAGS (\\Seen)\r\n",
        b"a SELECT \"\xff\xfe\"\r\n",
        b"a LIST \"\" \"*%*%*%*%*%*%*%*%*%*%\"\r\n",
        b"\x00\x00\x00\r\n",
        b"a ID (\"a\" NIL \"b\")\r\n",
        b"a IDLE\r\nnot done\r\n",
        b"a AUTHENTICATE XOAUTH2\r\n",
        b"a COPY 1:* \"\"\r\n",
        b"a SEARCH HEADER \"\" \"\"\r\n",
        b"a ENABLE QRESYNC\r\na SELECT INBOX (QRESYNC (1 1 1:*))\r\n",
    ];
    for round in 0..6 {
        let mut c = w.login(HOUSE_BAL, HOUSE).await;
        c.cmd("SELECT INBOX").await;
        append(&mut c, "INBOX", MULTIPART, "").await;
        for _ in 0..60 {
            let mut line: Vec<u8> = if rng.random_bool(0.3) {
                nasty[rng.random_range(0..nasty.len())].to_vec()
            } else {
                let words: &[&[u8]] = &[
                    b"a",
                    b"UID",
                    b"FETCH",
                    b"STORE",
                    b"SEARCH",
                    b"1:*",
                    b"(",
                    b")",
                    b"BODY[",
                    b"]",
                    b"\"",
                    b"{3}",
                    b"{2+}",
                    b"*",
                    b"\\Seen",
                    b"NOT",
                    b"<1.2>",
                    b"HEADER.FIELDS",
                    b"MOVE",
                    b"COPY",
                    b"EXPUNGE",
                    b"INBOX",
                ];
                let mut l = Vec::new();
                for _ in 0..rng.random_range(0..12) {
                    if rng.random_bool(0.2) {
                        l.push(rng.random::<u8>());
                    } else {
                        l.extend_from_slice(words[rng.random_range(0..words.len())]);
                    }
                    l.push(b' ');
                }
                l.extend_from_slice(b"\r\n");
                l
            };
            if round % 2 == 1 && rng.random_bool(0.1) {
                line.truncate(line.len() / 2);
            }
            c.send(&line).await;
        }
        drop(c);
    }
    // The server still answers on a new connection.
    let mut c = w.connect_tls().await;
    assert!(c.line().await.starts_with("* OK"));
    let r = c.cmd("CAPABILITY").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    assert!(last(&c.cmd("SELECT INBOX").await).contains(" OK "));
    w.stop().await;
}
}

fn run_python(script: &str, args: &[String]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const PYTHON: &str = r#"
import imaplib, ssl, sys
mode, port, user, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_2
if mode == "tls":
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
else:
    m = imaplib.IMAP4("127.0.0.1", port)
    print("pre", " ".join(sorted(m.capabilities)))
    m.starttls(ssl_context=ctx)
print("caps", " ".join(sorted(m.capabilities)))
try:
    m.login(user, "password")
    print("login accepted")
except imaplib.IMAP4.error as e:
    print("login refused")
auth = "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)
typ, data = m.authenticate("XOAUTH2", lambda _: auth.encode())
print("auth", typ)
typ, data = m.append("INBOX", "(\\Flagged)", None, b"From: a@h.mssante.fr\r\nSubject: py\r\n\r\nhello from imaplib\r\n")
print("append", typ, data[0].decode())
typ, data = m.select("INBOX")
print("select", typ, data[0].decode())
typ, data = m.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("fetch", typ, data[0][1].decode().strip())
typ, data = m.search(None, "FLAGGED")
print("search", typ, data[0].decode())
typ, data = m.store("1", "+FLAGS", "\\Deleted")
print("store", typ, data[0].decode())
typ, data = m.expunge()
print("expunge", typ, data[0].decode() if data[0] else "")
typ, data = m.list()
print("list", typ, len(data))
m.logout()
print("done")
"#;

on_both_backends! {
#[tokio::test]
async fn python_imaplib_over_tls_and_starttls() {
    if !tools::available("python3") {
        return;
    }
    let w = world("").await;
    for (mode, port) in [("tls", w.tls.port()), ("starttls", w.starttls.port())] {
        let args = vec![
            mode.to_owned(),
            port.to_string(),
            HOUSE_BAL.to_owned(),
            w.token(HOUSE),
        ];
        let out = tokio::task::spawn_blocking(move || run_python(PYTHON, &args))
            .await
            .unwrap();
        if mode == "starttls" {
            assert!(
                out.contains("pre IMAP4REV1 LOGINDISABLED STARTTLS\n"),
                "{out}"
            );
        }
        assert!(
            out.contains("AUTH=XOAUTH2") && out.contains("login refused\n"),
            "{out}"
        );
        assert!(out.contains("auth OK\n"), "{out}");
        assert!(out.contains("append OK [APPENDUID "), "{out}");
        assert!(out.contains("select OK 1\n"), "{out}");
        assert!(out.contains("fetch OK Subject: py"), "{out}");
        assert!(out.contains("search OK 1\n"), "{out}");
        assert!(
            // The session that selected INBOX first is told the message is \Recent.
            out.contains("store OK 1 (FLAGS (\\Recent \\Flagged \\Deleted))"),
            "{out}"
        );
        assert!(out.contains("expunge OK 1\n"), "{out}");
        assert!(
            out.contains("list OK 5\n") && out.contains("done\n"),
            "{out}"
        );
    }
    w.stop().await;
}
}

/// `curl --oauth2-bearer TOKEN --user ADDRESS imaps://…/PATH` against the server.
async fn curl(port: u16, token: String, path: &str) -> (bool, String) {
    let url = format!("imaps://127.0.0.1:{port}/{path}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-s",
                "-k",
                "--max-time",
                "20",
                "--oauth2-bearer",
                &token,
                "--user",
                HOUSE_BAL,
                &url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!(
            "curl: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), stdout)
}

on_both_backends! {
#[tokio::test]
async fn curl_with_oauth2_bearer() {
    if !tools::available("curl") {
        return;
    }
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    append(&mut c, "INBOX", SIMPLE, "").await;
    let port = w.tls.port();
    let (ok, body) = curl(port, w.token(HOUSE), "INBOX;UID=1").await;
    assert!(ok, "curl failed");
    assert!(
        body.contains("Subject: Patient 12") && body.contains("Lupus, again."),
        "{body}"
    );
    // The mailbox URL alone, as in the operator documentation.
    let (ok, listing) = curl(port, w.token(HOUSE), "INBOX").await;
    assert!(ok, "curl failed");
    assert!(
        listing.contains("* LIST (\\HasNoChildren) \"/\" INBOX"),
        "{listing}"
    );
    // A bad token fails.
    let (ok, _) = curl(port, "not-a-token".into(), "INBOX;UID=1").await;
    assert!(!ok);
    tokio::time::sleep(Duration::from_millis(10)).await;
    w.stop().await;
}
}
