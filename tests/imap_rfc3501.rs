//! RFC 3501 behaviours that clients rely on, checked byte for byte on the wire.

mod common;

use common::*;

/// APPENDs `message` to `folder` with a non-synchronising literal.
async fn append(c: &mut Client, folder: &str, message: &str) {
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND {folder} {{{}+}}\r\n", message.len()).as_bytes())
        .await;
    c.send(message.as_bytes()).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains(" OK "), "{r:?}");
}

fn note(n: u32) -> String {
    format!(
        "From: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nTo: Gregory House <gregory.house@h.mssante.fr>\r\nSubject: Note {n}\r\nDate: Sun, 25 Mar 2007 01:00:00 +0200\r\nMessage-ID: <n{n}@h.mssante.fr>\r\n\r\nText {n}.\r\n"
    )
}

fn untagged(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.starts_with("* "))
        .map(|l| l.trim_end())
        .collect()
}

/// A message is \Recent in exactly one session: the first to be told of it (SELECT or
/// a later update); EXAMINE and STATUS show what no session has been told of, and
/// change nothing.
#[tokio::test]
async fn recent_belongs_to_the_first_session_told() {
    let w = world("").await;
    let mut writer = w.login(HOUSE_BAL, HOUSE).await;
    append(&mut writer, "INBOX", &note(1)).await;
    append(&mut writer, "INBOX", &note(2)).await;

    let mut watcher = w.login(HOUSE_BAL, HOUSE).await;
    let r = watcher.cmd("STATUS INBOX (MESSAGES RECENT)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 2 RECENT 2)\r\n");
    let r = watcher.cmd("EXAMINE INBOX").await;
    assert!(r.contains(&"* 2 RECENT\r\n".to_owned()), "{r:?}");
    watcher.cmd("CLOSE").await;

    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    let r = a.cmd("SELECT INBOX").await;
    assert!(r.contains(&"* 2 EXISTS\r\n".to_owned()), "{r:?}");
    assert!(r.contains(&"* 2 RECENT\r\n".to_owned()), "{r:?}");
    let r = a.cmd("FETCH 1:2 FLAGS").await;
    assert_eq!(
        untagged(&r),
        [
            "* 1 FETCH (FLAGS (\\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))"
        ]
    );
    assert_eq!(a.cmd("SEARCH RECENT").await[0], "* SEARCH 1 2\r\n");
    a.cmd("STORE 1 +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(a.cmd("SEARCH NEW").await[0], "* SEARCH 2\r\n");
    assert_eq!(a.cmd("SEARCH OLD").await[0], "* SEARCH\r\n");

    // A second session comes after: nothing is recent for it any more.
    let mut b = w.login(HOUSE_BAL, HOUSE).await;
    let r = b.cmd("SELECT INBOX").await;
    assert!(r.contains(&"* 0 RECENT\r\n".to_owned()), "{r:?}");
    assert_eq!(b.cmd("SEARCH RECENT").await[0], "* SEARCH\r\n");
    assert_eq!(b.cmd("SEARCH OLD").await[0], "* SEARCH 1 2\r\n");
    let r = b.cmd("FETCH 2 FLAGS").await;
    assert_eq!(r[0], "* 2 FETCH (FLAGS ())\r\n");
    let r = watcher.cmd("STATUS INBOX (RECENT)").await;
    assert_eq!(r[0], "* STATUS INBOX (RECENT 0)\r\n");

    // New mail: the first session to hear of it keeps it recent.
    append(&mut writer, "INBOX", &note(3)).await;
    let r = a.cmd("NOOP").await;
    assert_eq!(untagged(&r), ["* 3 EXISTS", "* 3 RECENT"]);
    let r = b.cmd("NOOP").await;
    assert_eq!(untagged(&r), ["* 3 EXISTS", "* 0 RECENT"]);
    assert_eq!(a.cmd("SEARCH RECENT").await[0], "* SEARCH 1 2 3\r\n");

    // Expunged messages stop counting.
    a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = a.cmd("EXPUNGE").await;
    assert_eq!(untagged(&r), ["* 1 EXPUNGE"]);
    assert_eq!(a.cmd("SEARCH RECENT").await[0], "* SEARCH 1 2\r\n");
    w.stop().await;
}

/// SENTON, SENTBEFORE and SENTSINCE take the day as written in `Date:`, whatever its
/// time zone (RFC 3501 §6.4.4): 01:00 +0200 on the 25th is still the 24th in UTC.
#[tokio::test]
async fn sent_dates_are_the_days_written_in_the_header() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    append(&mut c, "INBOX", &note(1)).await;
    c.cmd("SELECT INBOX").await;
    assert_eq!(
        c.cmd("SEARCH SENTON 25-Mar-2007").await[0],
        "* SEARCH 1\r\n"
    );
    assert_eq!(c.cmd("SEARCH SENTON 24-Mar-2007").await[0], "* SEARCH\r\n");
    assert_eq!(
        c.cmd("SEARCH SENTBEFORE 25-Mar-2007").await[0],
        "* SEARCH\r\n"
    );
    assert_eq!(
        c.cmd("SEARCH SENTBEFORE 26-Mar-2007").await[0],
        "* SEARCH 1\r\n"
    );
    assert_eq!(
        c.cmd("SEARCH SENTSINCE 25-Mar-2007").await[0],
        "* SEARCH 1\r\n"
    );
    assert_eq!(
        c.cmd("SEARCH SENTSINCE 26-Mar-2007").await[0],
        "* SEARCH\r\n"
    );
    w.stop().await;
}

/// A keyword in use is announced in `FLAGS` (and `PERMANENTFLAGS`, with `\*`) at SELECT,
/// and again, before the message's flags, the moment a new one appears: in the session
/// that stored it and in every other one that has the folder selected.
#[tokio::test]
async fn new_keywords_are_announced_in_flags() {
    let w = world("").await;
    let mut a = w.login(HOUSE_BAL, HOUSE).await;
    append(&mut a, "INBOX", &note(1)).await;
    let mut b = w.login(HOUSE_BAL, HOUSE).await;
    let r = b.cmd("SELECT INBOX").await;
    assert_eq!(
        r[0],
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    );
    assert_eq!(
        r[1],
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted\r\n"
    );
    a.cmd("SELECT INBOX").await;

    let r = a.cmd("STORE 1 +FLAGS ($label1 $Forwarded)").await;
    assert_eq!(
        untagged(&r),
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $label1)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $label1 \\*)] flags permitted",
            "* 1 FETCH (FLAGS ($Forwarded $label1))",
        ]
    );
    // Known keywords are not announced again.
    let r = a.cmd("STORE 1 -FLAGS ($label1)").await;
    assert_eq!(untagged(&r), ["* 1 FETCH (FLAGS ($Forwarded))"]);

    let r = b.cmd("NOOP").await;
    assert_eq!(
        untagged(&r),
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] flags permitted",
            "* 1 FETCH (UID 1 FLAGS (\\Recent $Forwarded))",
        ]
    );
    // A new SELECT lists the keywords in use; EXAMINE permits none.
    let r = a.cmd("SELECT INBOX").await;
    assert_eq!(
        r[0],
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
    );
    let r = a.cmd("EXAMINE INBOX").await;
    assert_eq!(r[1], "* OK [PERMANENTFLAGS ()] flags permitted\r\n");
    w.stop().await;
}

const FORWARDED: &str = "From: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nTo: Gregory House <gregory.house@h.mssante.fr>\r\nSubject: Fwd: results\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: Lab <lab@l.mssante.fr>\r\nSubject: Results 42\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nAll normal.\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>All normal.</p>\r\n--inner--\r\n--outer--\r\n";

/// The part number before HEADER, TEXT and HEADER.FIELDS picks the embedded message of
/// a `message/rfc822` part (RFC 3501 §6.4.5), not the top-level one.
#[tokio::test]
async fn sections_of_an_embedded_message() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    append(&mut c, "INBOX", FORWARDED).await;
    c.cmd("SELECT INBOX").await;
    let fetch = |section: &str| format!("FETCH 1 BODY.PEEK[{section}]");
    // The literal comes inside the first line, up to the closing parenthesis.
    let body = |r: Vec<String>| -> String {
        let line = &r[0];
        let start = line.find("}\r\n").map_or(0, |i| i + 3);
        line[start..line.len() - 3].to_owned()
    };
    let r = c.cmd(&fetch("2.HEADER")).await;
    assert!(r[0].starts_with("* 1 FETCH (BODY[2.HEADER] {"), "{r:?}");
    assert_eq!(
        body(r),
        "From: Lab <lab@l.mssante.fr>\r\nSubject: Results 42\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
    );
    let r = c.cmd(&fetch("2.HEADER.FIELDS (SUBJECT)")).await;
    assert_eq!(body(r), "Subject: Results 42\r\n\r\n");
    let r = c
        .cmd(&fetch("2.HEADER.FIELDS.NOT (SUBJECT CONTENT-TYPE)"))
        .await;
    assert_eq!(body(r), "From: Lab <lab@l.mssante.fr>\r\n\r\n");
    let r = c.cmd(&fetch("2.TEXT")).await;
    assert!(body(r).starts_with("--inner\r\nContent-Type: text/plain\r\n\r\nAll normal."));
    let r = c.cmd(&fetch("2.1")).await;
    assert_eq!(body(r), "All normal.");
    let r = c.cmd(&fetch("2.2")).await;
    assert_eq!(body(r), "<p>All normal.</p>");
    let r = c.cmd(&fetch("1")).await;
    assert_eq!(body(r), "See below.");
    w.stop().await;
}

/// ENVELOPE: empty groups are a start and an end marker with nothing between (a comment
/// is no member), and a source route goes in the route field (RFC 3501 §7.4.2).
#[tokio::test]
async fn envelope_groups_and_source_routes() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    append(
        &mut c,
        "INBOX",
        "Date: Sun, 25 Mar 2007 01:00:00 +0200\r\nSubject: routes\r\nFrom: lab@l.mssante.fr\r\nTo: <@relay.example:user@h.mssante.fr>\r\nCc: group:;, group2: (foo) ;\r\nMessage-ID: <r@l>\r\n\r\nx\r\n",
    )
    .await;
    c.cmd("SELECT INBOX").await;
    let r = c.cmd("FETCH 1 ENVELOPE").await;
    assert_eq!(
        r[0],
        "* 1 FETCH (ENVELOPE (\"Sun, 25 Mar 2007 01:00:00 +0200\" \"routes\" ((NIL NIL \"lab\" \"l.mssante.fr\")) ((NIL NIL \"lab\" \"l.mssante.fr\")) ((NIL NIL \"lab\" \"l.mssante.fr\")) ((NIL \"@relay.example\" \"user\" \"h.mssante.fr\")) ((NIL NIL \"group\" NIL)(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL NIL NIL)) NIL NIL \"<r@l>\"))\r\n"
    );
    w.stop().await;
}

/// Subscriptions are names (RFC 3501 §6.3.6, §6.3.9): CREATE does not subscribe, a
/// subscribed name outlives its folder, `%` shows the parent of a subscribed child as
/// `\Noselect`, and LSUB says nothing of children.
#[tokio::test]
async fn subscriptions_are_names_not_folders() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    c.cmd("CREATE Patients").await;
    c.cmd("CREATE Patients/Lupus").await;
    c.cmd("CREATE Old").await;
    assert_eq!(
        untagged(&c.cmd("LSUB \"\" Patients*").await),
        Vec::<&str>::new()
    );
    assert!(last(&c.cmd("SUBSCRIBE Patients/Lupus").await).contains(" OK "));
    assert!(last(&c.cmd("SUBSCRIBE Old").await).contains(" OK "));
    assert!(last(&c.cmd("SUBSCRIBE Nowhere").await).contains(" NO "));
    c.cmd("DELETE Old").await;

    assert_eq!(
        untagged(&c.cmd("LSUB \"\" %").await),
        [
            "* LSUB () \"/\" Drafts",
            "* LSUB () \"/\" INBOX",
            "* LSUB () \"/\" Junk",
            "* LSUB (\\Noselect) \"/\" Old",
            "* LSUB (\\Noselect) \"/\" Patients",
            "* LSUB () \"/\" Sent",
            "* LSUB () \"/\" Trash",
        ]
    );
    assert_eq!(
        untagged(&c.cmd("LSUB \"\" Patients/*").await),
        ["* LSUB () \"/\" Patients/Lupus"]
    );
    // A deleted folder can still be unsubscribed.
    assert!(last(&c.cmd("UNSUBSCRIBE Old").await).contains(" OK "));
    assert_eq!(untagged(&c.cmd("LSUB \"\" Old").await), Vec::<&str>::new());
    // LIST is about folders: Patients is there, with its child.
    assert_eq!(
        untagged(&c.cmd("LIST \"\" Patients").await),
        ["* LIST (\\HasChildren) \"/\" Patients"]
    );
    w.stop().await;
}

/// DELETE of a folder with children (RFC 3501 §6.3.4): its messages go, its name stays
/// for the children as `\Noselect`; a `\Noselect` name with children cannot be deleted,
/// and CREATE makes it a folder again.
#[tokio::test]
async fn delete_with_children_leaves_a_noselect_name() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    c.cmd("CREATE Patients").await;
    c.cmd("CREATE Patients/Lupus").await;
    append(&mut c, "Patients", &note(1)).await;

    let mut watcher = w.login(HOUSE_BAL, HOUSE).await;
    assert!(last(&watcher.cmd("SELECT Patients").await).contains(" OK "));

    assert!(last(&c.cmd("DELETE Patients").await).contains(" OK "));
    assert_eq!(
        untagged(&c.cmd("LIST \"\" Patients*").await),
        [
            "* LIST (\\HasChildren \\Noselect) \"/\" Patients",
            "* LIST (\\HasNoChildren) \"/\" Patients/Lupus",
        ]
    );
    assert!(last(&c.cmd("SELECT Patients").await).contains(" NO "));
    assert!(last(&c.cmd("STATUS Patients (MESSAGES)").await).contains(" NO "));
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND Patients {{4+}}\r\nA: b\r\n").as_bytes())
        .await;
    assert!(last(&c.until(&tag).await).contains(" NO "));
    // The session that had it selected is told it is gone.
    let tag = watcher.next_tag();
    watcher.send(format!("{tag} NOOP\r\n").as_bytes()).await;
    let bye = watcher.line().await;
    assert!(bye.starts_with("* BYE"), "{bye}");
    assert!(last(&c.cmd("DELETE Patients").await).contains(" NO "));

    // CREATE brings it back, empty; without its children it can then go for good.
    assert!(last(&c.cmd("CREATE Patients").await).contains(" OK "));
    let r = c.cmd("SELECT Patients").await;
    assert!(r.contains(&"* 0 EXISTS\r\n".to_owned()), "{r:?}");
    c.cmd("CLOSE").await;
    assert!(last(&c.cmd("DELETE Patients/Lupus").await).contains(" OK "));
    assert!(last(&c.cmd("DELETE Patients").await).contains(" OK "));
    assert_eq!(
        untagged(&c.cmd("LIST \"\" Patients*").await),
        Vec::<&str>::new()
    );
    w.stop().await;
}

/// WITHIN (RFC 5032): OLDER and YOUNGER count seconds back from the server's clock and
/// compare with the INTERNALDATE, time of day included.
#[tokio::test]
async fn older_and_younger_count_seconds_back_from_now() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let now = mssante::clock::SystemClock::now_utc();
    for (n, hours) in [(1, 50), (2, 3), (3, 0)] {
        let when = (now - chrono::Duration::hours(hours)).format("%d-%b-%Y %H:%M:%S +0000");
        let text = note(n);
        let tag = c.next_tag();
        c.send(
            format!(
                "{tag} APPEND INBOX \"{when}\" {{{}+}}\r\n{text}\r\n",
                text.len()
            )
            .as_bytes(),
        )
        .await;
        assert!(last(&c.until(&tag).await).contains(" OK "));
    }
    c.cmd("SELECT INBOX").await;
    let day = 24 * 3600;
    assert_eq!(
        untagged(&c.cmd(&format!("SEARCH OLDER {day}")).await),
        ["* SEARCH 1"]
    );
    assert_eq!(
        untagged(&c.cmd("SEARCH YOUNGER 3600").await),
        ["* SEARCH 3"]
    );
    assert_eq!(
        untagged(&c.cmd(&format!("UID SEARCH YOUNGER {day} OLDER 60")).await),
        ["* SEARCH 2"]
    );
    // Zero is no interval (RFC 5032 §3: nz-number).
    assert!(last(&c.cmd("SEARCH OLDER 0").await).contains(" BAD "));
    w.stop().await;
}
