//! NOTIFY (RFC 5465) on the wire, byte for byte: one session asks to hear of changes,
//! another makes them, and the first reads what it is told without sending a command.

mod common;

use common::*;
use mssante::store::Grant;

const SECRETARIAT: &str = "secretariat@h.mssante.fr";

/// The UIDVALIDITY of `folder`, which the store chose from the clock.
async fn uidvalidity(c: &mut Client, folder: &str) -> String {
    let r = c.cmd(&format!("STATUS {folder} (UIDVALIDITY)")).await;
    let line = r[0].trim_end();
    let v = line
        .rsplit_once("UIDVALIDITY ")
        .map(|(_, v)| v.trim_end_matches(')'))
        .unwrap();
    v.to_owned()
}

/// Two sessions of the same mailbox: the one told, and the one making changes.
async fn pair() -> (World, Client, Client) {
    let w = world("").await;
    let told = w.login(HOUSE_BAL, HOUSE).await;
    let other = w.login(HOUSE_BAL, HOUSE).await;
    (w, told, other)
}

/// `command` answered OK, with nothing untagged.
async fn quiet(c: &mut Client, command: &str) {
    let r = c.cmd(command).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].contains(" OK "), "{r:?}");
}

on_both_backends! {
#[tokio::test]
async fn advertised_after_login() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(r[0].split_whitespace().any(|c| c == "NOTIFY"), "{}", r[0]);
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn status_indicator_answers_for_each_watched_mailbox() {
    let (w, mut a, mut b) = pair().await;
    b.append("Sent", "(\\Seen)", "Subject: s\r\n\r\nx\r\n").await;
    let inbox = uidvalidity(&mut a, "INBOX").await;
    let sent = uidvalidity(&mut a, "Sent").await;
    let r = a
        .cmd("NOTIFY SET STATUS (MAILBOXES (INBOX Sent) (MessageNew MessageExpunge))")
        .await;
    assert_eq!(
        r,
        [
            format!("* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {inbox} UNSEEN 0)\r\n"),
            format!("* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {sent} UNSEEN 0)\r\n"),
            "a4 OK NOTIFY completed\r\n".to_owned(),
        ]
    );
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn new_message_elsewhere_is_a_status() {
    let (w, mut a, mut b) = pair().await;
    let inbox = uidvalidity(&mut a, "INBOX").await;
    quiet(&mut a, "NOTIFY SET (INBOXES (MessageNew MessageExpunge))").await;
    b.append("INBOX", "()", "Subject: n\r\n\r\nx\r\n").await;
    assert_eq!(
        a.line().await,
        format!("* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {inbox} UNSEEN 1)\r\n")
    );
    // Not INBOXES: nothing is told of Sent, and the next line answers the NOOP.
    b.append("Sent", "()", "Subject: s\r\n\r\nx\r\n").await;
    let r = a.cmd("NOOP").await;
    assert_eq!(r, ["a4 OK NOOP completed\r\n"]);
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn condstore_adds_highestmodseq_and_flag_changes_are_told() {
    let (w, mut a, mut b) = pair().await;
    b.append("INBOX", "()", "Subject: n\r\n\r\nx\r\n").await;
    let inbox = uidvalidity(&mut a, "INBOX").await;
    a.cmd("ENABLE CONDSTORE").await;
    quiet(&mut a, "NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange))").await;
    b.cmd("SELECT INBOX").await;
    let r = b.cmd("STORE 1 +FLAGS.SILENT (\\Seen)").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let line = a.line().await;
    let prefix = format!("* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {inbox} UNSEEN 0 HIGHESTMODSEQ ");
    assert!(line.starts_with(&prefix) && line.ends_with(")\r\n"), "{line}");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn selected_mailbox_hears_exists_with_fetch_attributes() {
    let (w, mut a, mut b) = pair().await;
    a.cmd("SELECT INBOX").await;
    quiet(
        &mut a,
        "NOTIFY SET (SELECTED (MessageNew (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]) MessageExpunge))",
    )
    .await;
    b.append("INBOX", "(\\Flagged)", "Subject: hello\r\n\r\nbody\r\n").await;
    assert_eq!(a.line().await, "* 1 EXISTS\r\n");
    assert_eq!(a.line().await, "* 1 RECENT\r\n");
    assert_eq!(
        a.line().await,
        "* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged) BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n)\r\n"
    );
    b.cmd("SELECT INBOX").await;
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.cmd("EXPUNGE").await;
    assert_eq!(
        a.line().await,
        "* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged \\Deleted))\r\n"
    );
    assert_eq!(a.line().await, "* 1 EXPUNGE\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn selected_delayed_holds_expunges_until_a_command() {
    let (w, mut a, mut b) = pair().await;
    b.append("INBOX", "()", "Subject: n\r\n\r\nx\r\n").await;
    let sent = uidvalidity(&mut a, "Sent").await;
    a.cmd("SELECT INBOX").await;
    quiet(
        &mut a,
        "NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange)) (MAILBOXES Sent (MessageNew MessageExpunge))",
    )
    .await;
    b.cmd("SELECT INBOX").await;
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(a.line().await, "* 1 FETCH (UID 1 FLAGS (\\Recent \\Deleted))\r\n");
    b.cmd("EXPUNGE").await;
    // Told of Sent, but not of the expunge: that waits for a command.
    b.append("Sent", "()", "Subject: s\r\n\r\nx\r\n").await;
    assert_eq!(
        a.line().await,
        format!("* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {sent} UNSEEN 1)\r\n")
    );
    let r = a.cmd("NOOP").await;
    assert_eq!(r, ["* 1 EXPUNGE\r\n", "a5 OK NOOP completed\r\n"]);
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn mailbox_names_created_renamed_deleted() {
    let (w, mut a, mut b) = pair().await;
    quiet(&mut a, "NOTIFY SET (PERSONAL (MailboxName))").await;
    b.cmd("CREATE Cases").await;
    assert_eq!(a.line().await, "* LIST (\\HasNoChildren) \"/\" Cases\r\n");
    b.cmd("RENAME Cases Patients").await;
    assert_eq!(
        a.line().await,
        "* LIST (\\HasNoChildren) \"/\" Patients (\"OLDNAME\" (\"Cases\"))\r\n"
    );
    b.cmd("DELETE Patients").await;
    assert_eq!(a.line().await, "* LIST (\\NonExistent) \"/\" Patients\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn subtree_names_only_its_folders() {
    let (w, mut a, mut b) = pair().await;
    b.cmd("CREATE Cases").await;
    quiet(&mut a, "NOTIFY SET (SUBTREE Cases (MailboxName))").await;
    b.cmd("CREATE Other").await;
    b.cmd("CREATE Cases/2024").await;
    assert_eq!(a.line().await, "* LIST (\\HasNoChildren) \"/\" Cases/2024\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn subscription_changes_are_lists() {
    let (w, mut a, mut b) = pair().await;
    b.cmd("UNSUBSCRIBE Sent").await;
    quiet(&mut a, "NOTIFY SET (PERSONAL (SubscriptionChange))").await;
    b.cmd("SUBSCRIBE Sent").await;
    assert_eq!(a.line().await, "* LIST (\\Subscribed) \"/\" Sent\r\n");
    b.cmd("UNSUBSCRIBE Sent").await;
    assert_eq!(a.line().await, "* LIST () \"/\" Sent\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn told_while_idling() {
    let (w, mut a, mut b) = pair().await;
    let sent = uidvalidity(&mut a, "Sent").await;
    quiet(&mut a, "NOTIFY SET (MAILBOXES Sent (MessageNew MessageExpunge))").await;
    a.send(b"i1 IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling\r\n");
    b.append("Sent", "()", "Subject: s\r\n\r\nx\r\n").await;
    assert_eq!(
        a.line().await,
        format!("* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {sent} UNSEEN 1)\r\n")
    );
    a.send(b"DONE\r\n").await;
    assert_eq!(a.line().await, "i1 OK IDLE terminated\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn notify_none_stops_it() {
    let (w, mut a, mut b) = pair().await;
    quiet(&mut a, "NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName))").await;
    quiet(&mut a, "NOTIFY NONE").await;
    b.cmd("CREATE Cases").await;
    b.append("INBOX", "()", "Subject: n\r\n\r\nx\r\n").await;
    let r = a.cmd("NOOP").await;
    assert_eq!(r, ["a4 OK NOOP completed\r\n"]);
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn metadata_events_are_refused_with_badevent() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    for event in ["AnnotationChange", "MailboxMetadataChange", "ServerMetadataChange"] {
        let r = c
            .cmd(&format!("NOTIFY SET (PERSONAL (MessageNew MessageExpunge {event}))"))
            .await;
        assert_eq!(
            last(&r).split_once(' ').unwrap().1,
            "NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] event not supported\r\n"
        );
    }
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn malformed_event_sets_are_bad() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))").await;
    assert_eq!(r, ["a2 BAD fetch attributes are for the selected mailbox only\r\n"]);
    let r = c.cmd("NOTIFY SET (PERSONAL (MessageNew))").await;
    assert_eq!(r, ["a3 BAD syntax error\r\n"]);
    let r = c.cmd("NOTIFY SET (PERSONAL (FlagChange))").await;
    assert_eq!(r, ["a4 BAD syntax error\r\n"]);
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_revoked_grant_ends_a_notified_session_between_commands() {
    let w = world("").await;
    w.organisational(SECRETARIAT, &[HOUSE, CUDDY]).await;
    let mut house = w.login(SECRETARIAT, HOUSE).await;
    let mut cuddy = w.login(SECRETARIAT, CUDDY).await;
    let inbox = uidvalidity(&mut cuddy, "INBOX").await;
    for c in [&mut house, &mut cuddy] {
        quiet(c, "NOTIFY SET (INBOXES (MessageNew MessageExpunge))").await;
    }
    let grant = Grant::Idnat { idnat: HOUSE.into() };
    let store = &w.running.as_ref().unwrap().context.store;
    assert!(store.revoke_grant(SECRETARIAT, grant).await.unwrap());
    // No command sent: the session watching is closed all the same.
    assert_eq!(
        house.line().await,
        "* BYE [ALERT] access to this mailbox was withdrawn, session closed\r\n"
    );
    assert!(house.closed().await);
    // Cuddy, still granted, goes on hearing of the mailbox.
    let mut other = w.login(SECRETARIAT, CUDDY).await;
    other.append("INBOX", "()", "Subject: n\r\n\r\nx\r\n").await;
    assert_eq!(
        cuddy.line().await,
        format!("* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {inbox} UNSEEN 1)\r\n")
    );
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_session_that_falls_behind_hears_of_the_overflow_and_nothing_more() {
    let (w, mut a, mut b) = pair().await;
    // A message large enough that the FETCH below fills the socket while the client
    // does not read: the session stops taking changes meanwhile.
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(12 << 20));
    b.append("Sent", "()", &big).await;
    b.append("INBOX", "()", "Subject: n\r\n\r\nx\r\n").await;
    b.cmd("SELECT INBOX").await;
    a.cmd("SELECT Sent").await;
    quiet(&mut a, "NOTIFY SET (INBOXES (MessageNew MessageExpunge FlagChange))").await;
    a.send(b"f1 FETCH 1 BODY.PEEK[]\r\n").await;
    // More changes than a session may leave untaken (the store keeps 1024).
    for i in 0..1100 {
        let sign = if i % 2 == 0 { '+' } else { '-' };
        let r = b.cmd(&format!("STORE 1 {sign}FLAGS.SILENT (\\Flagged)")).await;
        assert!(last(&r).contains(" OK "), "{r:?}");
    }
    let r = a.until("f1").await;
    assert_eq!(last(&r), "f1 OK FETCH completed\r\n");
    assert_eq!(
        a.line().await,
        "* OK [NOTIFICATIONOVERFLOW] too many changes at once, notifications stopped\r\n"
    );
    // As after NOTIFY NONE: nothing more is told.
    b.append("INBOX", "()", "Subject: n\r\n\r\nx\r\n").await;
    let r = a.cmd("NOOP").await;
    assert_eq!(r, ["a4 OK NOOP completed\r\n"]);
    w.stop().await;
}
}
