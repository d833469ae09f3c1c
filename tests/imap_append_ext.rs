//! MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) on the wire, byte for byte.

mod common;

use common::*;
use mssante::store::QuotaLimit;

const NOTE: &str = "Subject: note\r\n\r\nTexte.\r\n";
const REPORT: &str = "Subject: CR\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nVoir le CR.\r\n--b\r\nContent-Type: text/plain\r\n\r\nCR: normal.\r\n--b--\r\n";

/// The folder's UIDVALIDITY, as STATUS gives it.
async fn uidvalidity(c: &mut Client, folder: &str) -> String {
    let r = c.cmd(&format!("STATUS {folder} (UIDVALIDITY)")).await;
    let line = r[0].trim_end();
    let start = line.rfind(' ').unwrap_or(0) + 1;
    line[start..line.len() - 1].to_owned()
}

on_both_backends! {
#[tokio::test]
async fn multiappend_stores_all_messages_or_none() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(r[0].contains(" MULTIAPPEND CATENATE "), "{r:?}");
    let v = uidvalidity(&mut c, "INBOX").await;

    let command = format!(
        "APPEND INBOX {{{}+}}\r\n{NOTE} (\\Seen $label1) \"05-Mar-2026 10:00:00 +0100\" ~{{{}+}}\r\n{REPORT} {{{}+}}\r\n{NOTE}\r\n",
        NOTE.len(),
        REPORT.len(),
        NOTE.len()
    );
    let r = c.raw_cmd(command.as_bytes()).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].ends_with(&format!(" OK [APPENDUID {v} 1:3] APPEND completed\r\n")), "{r:?}");
    c.cmd("SELECT INBOX").await;
    let r = c.cmd("FETCH 1:3 (FLAGS INTERNALDATE RFC822.SIZE)").await;
    let untagged = untagged_lines(&r);
    assert_eq!(untagged.len(), 3, "{r:?}");
    assert!(untagged[0].starts_with("* 1 FETCH (FLAGS (\\Recent) INTERNALDATE "), "{r:?}");
    assert_eq!(
        untagged[1],
        format!("* 2 FETCH (FLAGS (\\Recent \\Seen $label1) INTERNALDATE \"05-Mar-2026 09:00:00 +0000\" RFC822.SIZE {})", REPORT.len())
    );
    let r = c.cmd("FETCH 3 BODY.PEEK[]").await;
    assert_eq!(r[0], format!("* 3 FETCH (BODY[] {{{}}}\r\n{NOTE})\r\n", NOTE.len()));

    // A bad second message: BAD, and the first one is not stored either.
    let command = format!("APPEND INBOX {{{}+}}\r\n{NOTE} (\\Seen {{1+}}\r\nx\r\n", NOTE.len());
    let r = c.raw_cmd(command.as_bytes()).await;
    assert!(r[0].ends_with(" BAD syntax error\r\n"), "{r:?}");
    // No such folder: TRYCREATE, nothing stored.
    let command = format!("APPEND Nowhere {{{}+}}\r\n{NOTE} {{{}+}}\r\n{NOTE}\r\n", NOTE.len(), NOTE.len());
    let r = c.raw_cmd(command.as_bytes()).await;
    assert!(r[0].ends_with(" NO [TRYCREATE] no such mailbox\r\n"), "{r:?}");

    // Room for one more message only: the set of two is refused whole.
    let store = w.running.as_ref().unwrap().context.store.clone();
    store
        .set_quota(HOUSE_BAL, QuotaLimit::Keep, QuotaLimit::Set(4))
        .await
        .unwrap();
    let command = format!("APPEND INBOX {{{}+}}\r\n{NOTE} {{{}+}}\r\n{NOTE}\r\n", NOTE.len(), NOTE.len());
    let r = c.raw_cmd(command.as_bytes()).await;
    assert!(r[0].ends_with(" NO [OVERQUOTA] mailbox is over its quota\r\n"), "{r:?}");
    let r = c.cmd("STATUS INBOX (MESSAGES UIDNEXT)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 3 UIDNEXT 4)\r\n");
    let r = c.cmd("NOOP").await;
    assert_eq!(untagged_lines(&r), Vec::<&str>::new());
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn catenate_joins_text_and_urls_of_stored_messages() {
    let w = world("smtp.max_message_size = 1000").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let v = uidvalidity(&mut c, "INBOX").await;
    let r = c
        .raw_cmd(format!("APPEND INBOX {{{}+}}\r\n{REPORT}\r\n", REPORT.len()).as_bytes())
        .await;
    assert!(r[0].contains(" OK "), "{r:?}");

    // A forward: new header, then part 2 of the report, by URL; the Sent folder takes it.
    let head = "Subject: Fwd: CR\r\n\r\n";
    let command = format!(
        "APPEND Sent (\\Seen) CATENATE (TEXT {{{}+}}\r\n{head} URL \"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=2\" URL \"/inbox/;UID=1/;SECTION=1/;PARTIAL=0.4\")\r\n",
        head.len()
    );
    let r = c.raw_cmd(command.as_bytes()).await;
    let sent = uidvalidity(&mut c, "Sent").await;
    assert!(r[0].ends_with(&format!(" OK [APPENDUID {sent} 1] APPEND completed\r\n")), "{r:?}");
    c.cmd("EXAMINE Sent").await;
    let r = c.cmd("FETCH 1 BODY[]").await;
    let whole = format!("{head}CR: normal.Voir");
    assert_eq!(r[0], format!("* 1 FETCH (BODY[] {{{}}}\r\n{whole})\r\n", whole.len()));

    // URLs naming nothing this session can read.
    for url in [
        "/INBOX/;UID=9".to_owned(),
        format!("/INBOX;UIDVALIDITY={}/;UID=1", v.parse::<u32>().unwrap() + 1),
        "/INBOX/;UID=1/;SECTION=7".to_owned(),
        "/Nowhere/;UID=1".to_owned(),
        "imap://lisa.cuddy@h.mssante.fr/INBOX/;UID=1".to_owned(),
    ] {
        let r = c.cmd(&format!("APPEND Sent CATENATE (URL \"{url}\")")).await;
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].ends_with(&format!(" NO [BADURL {url}] CATENATE cannot read that URL\r\n")),
            "{r:?}"
        );
    }
    // Put together past APPENDLIMIT (1000 bytes): TOOBIG.
    let parts = ["URL \"/INBOX/;UID=1\""; 6];
    let r = c.cmd(&format!("APPEND Sent CATENATE ({})", parts.join(" "))).await;
    assert!(r[0].ends_with(" NO [TOOBIG] message too large\r\n"), "{r:?}");
    let r = c.cmd("STATUS Sent (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Sent (MESSAGES 1)\r\n");
    w.stop().await;
}
}
