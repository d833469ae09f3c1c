//! IMAP4rev2 (RFC 9051) beside IMAP4rev1: announced to every client, in force only in a
//! session that sent `ENABLE IMAP4rev2`. Checked byte for byte on the wire.

mod common;

use common::*;

fn note(n: u32) -> String {
    format!("From: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: Note {n}\r\n\r\nText {n}.\r\n")
}

/// Sends `command` under a fresh tag: the tag, and every line up to the tagged answer.
async fn tagged(c: &mut Client, command: &str) -> (String, Vec<String>) {
    let tag = c.next_tag();
    c.send(format!("{tag} {command}\r\n").as_bytes()).await;
    let lines = c.until(&tag).await;
    (tag, lines)
}

/// A session of HOUSE_BAL with IMAP4rev2 enabled.
async fn rev2(w: &World) -> Client {
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let (tag, r) = tagged(&mut c, "ENABLE IMAP4rev2").await;
    assert_eq!(
        r,
        [
            "* ENABLED IMAP4rev2\r\n".to_owned(),
            format!("{tag} OK ENABLE completed\r\n")
        ]
    );
    c
}

/// IMAP4rev2 comes right after IMAP4rev1, with STATUS=SIZE, once TLS is up; the clear
/// STARTTLS port still offers nothing but STARTTLS.
#[tokio::test]
async fn imap4rev2_is_announced_beside_imap4rev1() {
    let w = world("").await;
    let mut c = w.connect_tls().await;
    let greeting = c.line().await;
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4REV1 IMAP4REV2 SASL-IR "),
        "{greeting}"
    );
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(
        r[0].starts_with("* CAPABILITY IMAP4REV1 IMAP4REV2 IDLE "),
        "{r:?}"
    );
    assert!(r[0].split_whitespace().any(|c| c == "STATUS=SIZE"), "{r:?}");
    let mut clear = w.connect_starttls().await;
    assert_eq!(
        clear.line().await,
        "* OK [CAPABILITY IMAP4REV1 STARTTLS LOGINDISABLED] mssante IMAP ready\r\n"
    );
    w.stop().await;
}

/// `ENABLE IMAP4rev2` is answered `* ENABLED IMAP4rev2`; given again, or with an unknown
/// capability beside it, the answer names only what it turned on.
#[tokio::test]
async fn enable_imap4rev2() {
    let w = world("").await;
    let mut c = rev2(&w).await;
    let (tag, r) = tagged(&mut c, "ENABLE IMAP4rev2 X-UNKNOWN").await;
    assert_eq!(
        r,
        [
            "* ENABLED IMAP4rev2\r\n".to_owned(),
            format!("{tag} OK ENABLE completed\r\n")
        ]
    );
    w.stop().await;
}

/// SELECT in a rev2 session (RFC 9051 §6.3.2): no RECENT, no `OK [UNSEEN]`, the folder
/// named in a LIST response, and `[CLOSED]` when it replaces a selected folder.
#[tokio::test]
async fn select_without_recent_or_unseen_and_with_list() {
    let w = world("").await;
    let mut c = rev2(&w).await;
    c.append("INBOX", "()", &note(1)).await;
    let (tag, r) = tagged(&mut c, "SELECT INBOX").await;
    let r: Vec<&str> = r.iter().map(String::as_str).collect();
    assert_eq!(
        r[..3],
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted\r\n",
            "* 1 EXISTS\r\n",
        ]
    );
    assert!(r[3].starts_with("* OK [UIDVALIDITY "), "{r:?}");
    assert_eq!(r[4], "* OK [UIDNEXT 2] predicted next UID\r\n");
    assert_eq!(r[5], "* LIST () \"/\" INBOX\r\n");
    assert!(r[6].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    assert_eq!(r[7], format!("{tag} OK [READ-WRITE] SELECT completed\r\n"));
    assert_eq!(r.len(), 8, "{r:?}");
    // Leaving it for another folder says so first (RFC 9051 §7.1, CLOSED).
    let r = c.cmd("EXAMINE Sent").await;
    assert_eq!(r[0], "* OK [CLOSED] previous mailbox closed\r\n");
    w.stop().await;
}

/// No message is \Recent to a rev2 session: no RECENT after new mail, no `\Recent` in
/// FETCH FLAGS, RECENT and NEW match nothing and OLD everything. What it saw stays recent
/// for the IMAP4rev1 session that comes next.
#[tokio::test]
async fn no_recent_in_a_rev2_session() {
    let w = world("").await;
    let mut c = rev2(&w).await;
    c.append("INBOX", "()", &note(1)).await;
    c.cmd("SELECT INBOX").await;
    let mut writer = w.login(HOUSE_BAL, HOUSE).await;
    writer.append("INBOX", "()", &note(2)).await;
    let r = c.cmd("NOOP").await;
    assert_eq!(untagged_lines(&r), ["* 2 EXISTS"]);
    let r = c.cmd("FETCH 1:2 FLAGS").await;
    assert_eq!(
        untagged_lines(&r),
        ["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS ())"]
    );
    let (tag, r) = tagged(&mut c, "SEARCH RECENT").await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"{tag}\")\r\n"));
    let (tag, r) = tagged(&mut c, "SEARCH NEW").await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"{tag}\")\r\n"));
    let (tag, r) = tagged(&mut c, "SEARCH OLD").await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"{tag}\") ALL 1:2\r\n"));

    let mut old = w.login(HOUSE_BAL, HOUSE).await;
    let r = old.cmd("SELECT INBOX").await;
    assert!(r.contains(&"* 2 RECENT\r\n".to_owned()), "{r:?}");
    w.stop().await;
}

/// SEARCH and UID SEARCH answer with ESEARCH (RFC 9051 §7.3.4): `ALL` when something
/// matched, nothing after the correlator otherwise; RETURN options still apply.
#[tokio::test]
async fn search_answers_esearch() {
    let w = world("").await;
    let mut c = rev2(&w).await;
    for n in 1..=3 {
        c.append("INBOX", "()", &note(n)).await;
    }
    c.cmd("SELECT INBOX").await;
    c.cmd("STORE 2 +FLAGS.SILENT (\\Seen)").await;
    let (tag, r) = tagged(&mut c, "SEARCH UNSEEN").await;
    assert_eq!(
        r,
        [
            format!("* ESEARCH (TAG \"{tag}\") ALL 1,3\r\n"),
            format!("{tag} OK SEARCH completed\r\n")
        ]
    );
    let (tag, r) = tagged(&mut c, "UID SEARCH ALL").await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"{tag}\") UID ALL 1:3\r\n"));
    let (tag, r) = tagged(&mut c, "UID SEARCH SUBJECT nothing").await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"{tag}\") UID\r\n"));
    let (tag, r) = tagged(&mut c, "SEARCH RETURN (MIN COUNT) ALL").await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"{tag}\") MIN 1 COUNT 3\r\n"));
    w.stop().await;
}

/// Mailbox names are UTF-8 both ways (RFC 9051 §5.1): quoted strings may carry it, names
/// go out in it (a literal: imap-codec writes quoted strings 7-bit), and the same folder
/// is modified UTF-7 to an IMAP4rev1 session.
#[tokio::test]
async fn mailbox_names_in_utf8() {
    let w = world("").await;
    let mut c = rev2(&w).await;
    assert!(last(&c.cmd("CREATE \"Été\"").await).contains(" OK "));
    let mut old = w.login(HOUSE_BAL, HOUSE).await;
    assert!(last(&old.cmd("CREATE &ZeVnLIqe-/R&-D").await).contains(" OK "));
    let r = c.cmd("LIST \"\" \"Été\"").await;
    assert_eq!(
        untagged_lines(&r),
        ["* LIST (\\HasNoChildren) \"/\" {5}\r\nÉté"]
    );
    let r = c.cmd("LIST \"\" \"日本語/%\"").await;
    assert_eq!(
        untagged_lines(&r),
        ["* LIST (\\HasNoChildren) \"/\" {13}\r\n日本語/R&D"]
    );
    let r = old.cmd("LIST \"\" &AMk-t&AOk-").await;
    assert_eq!(
        untagged_lines(&r),
        ["* LIST (\\HasNoChildren) \"/\" &AMk-t&AOk-"]
    );
    let r = c.cmd("STATUS \"Été\" (MESSAGES)").await;
    assert_eq!(untagged_lines(&r), ["* STATUS {5}\r\nÉté (MESSAGES 0)"]);
    assert!(last(&c.cmd("RENAME \"Été\" \"Été 2025\"").await).contains(" OK "));
    c.append("\"Été 2025\"", "()", &note(1)).await;
    let r = c.cmd("SELECT \"Été 2025\"").await;
    assert!(
        r.contains(&"* LIST () \"/\" {10}\r\nÉté 2025\r\n".to_owned()),
        "{r:?}"
    );
    let r = old.cmd("STATUS \"&AMk-t&AOk- 2025\" (MESSAGES)").await;
    assert_eq!(
        untagged_lines(&r),
        ["* STATUS \"&AMk-t&AOk- 2025\" (MESSAGES 1)"]
    );
    let r = c.cmd("GETQUOTAROOT \"Été 2025\"").await;
    assert_eq!(untagged_lines(&r), ["* QUOTAROOT {10}\r\nÉté 2025"]);
    assert!(last(&c.cmd("SUBSCRIBE \"Été 2025\"").await).contains(" OK "));
    let r = c.cmd("LSUB \"\" \"É*\"").await;
    assert_eq!(untagged_lines(&r), ["* LSUB () \"/\" {10}\r\nÉté 2025"]);
    w.stop().await;
}

/// STATUS DELETED and SIZE (RFC 9051 §6.3.11), SIZE in LIST-STATUS too.
#[tokio::test]
async fn status_deleted_and_size() {
    let w = world("").await;
    let mut c = rev2(&w).await;
    let (one, two) = (note(1), note(2));
    c.append("INBOX", "(\\Deleted)", &one).await;
    c.append("INBOX", "()", &two).await;
    let r = c.cmd("STATUS INBOX (MESSAGES DELETED SIZE)").await;
    assert_eq!(
        untagged_lines(&r),
        [format!(
            "* STATUS INBOX (MESSAGES 2 DELETED 1 SIZE {})",
            one.len() + two.len()
        )
        .as_str()]
    );
    let r = c.cmd("LIST \"\" INBOX RETURN (STATUS (SIZE))").await;
    assert_eq!(
        untagged_lines(&r)[1],
        format!("* STATUS INBOX (SIZE {})", one.len() + two.len())
    );
    w.stop().await;
}

/// Without `ENABLE IMAP4rev2` the session stays IMAP4rev1: SEARCH answers SEARCH, 8-bit
/// quoted strings are a syntax error, names are modified UTF-7.
#[tokio::test]
async fn without_enable_the_session_stays_imap4rev1() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    c.append("INBOX", "()", &note(1)).await;
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.contains(&"* 1 RECENT\r\n".to_owned()), "{r:?}");
    assert!(!r.iter().any(|l| l.starts_with("* LIST")), "{r:?}");
    assert_eq!(c.cmd("SEARCH ALL").await[0], "* SEARCH 1\r\n");
    let (tag, r) = tagged(&mut c, "CREATE \"Été\"").await;
    assert_eq!(r, [format!("{tag} BAD syntax error\r\n")]);
    w.stop().await;
}
