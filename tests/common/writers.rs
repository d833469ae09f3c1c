//! Two sessions on one INBOX whose writes interleave: each write of one comes right
//! after a change by the other, which it must report with its own whether or not the
//! change's notification has reached its node yet (a session skips re-reading the
//! folder after its own write only when the MODSEQs say nothing else happened).

use super::{Client, last};

const NOTE: &str = "From: lisa.cuddy@h.mssante.fr\r\nTo: gregory.house@h.mssante.fr\r\nSubject: note\r\n\r\nSee me.\r\n";

async fn append(c: &mut Client) -> Vec<String> {
    let tag = c.next_tag();
    c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n", NOTE.len()).as_bytes())
        .await;
    c.send(NOTE.as_bytes()).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains(" OK"), "{r:?}");
    r
}

async fn ok(c: &mut Client, command: &str) -> Vec<String> {
    let r = c.cmd(command).await;
    assert!(last(&r).contains(" OK"), "{command}: {r:?}");
    r
}

fn position(r: &[String], line: &str) -> usize {
    r.iter()
        .position(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no {line:?} in {r:?}"))
}

/// `a` and `b` are logged in on the same mailbox, through one node or two.
pub async fn own_writes_report_the_other_sessions_changes(a: &mut Client, b: &mut Client) {
    for _ in 0..4 {
        append(a).await;
    }
    ok(a, "SELECT INBOX").await;
    ok(b, "SELECT INBOX").await;

    // Nothing else happened: the session's own changes only.
    let r = ok(a, "STORE 1 +FLAGS (\\Answered)").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("* 1 FETCH (FLAGS (") && r[0].contains("\\Answered"));
    let r = append(a).await;
    assert_eq!(r[0], "* 5 EXISTS\r\n", "{r:?}");
    ok(a, "STORE 5 +FLAGS (\\Deleted)").await;
    let r = ok(a, "EXPUNGE").await;
    assert_eq!(&r[..r.len() - 1], ["* 5 EXPUNGE\r\n"], "{r:?}");
    ok(b, "NOOP").await;

    // b appends (UID 6), then a stores: a reports the new message.
    append(b).await;
    let r = ok(a, "STORE 1 +FLAGS (\\Flagged)").await;
    position(&r, "* 5 EXISTS");
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH") && l.contains("\\Flagged"))
    );

    // b changes flags, then a appends (UID 7): a reports both.
    ok(b, "STORE 2 +FLAGS (\\Seen)").await;
    let r = append(a).await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 2 FETCH") && l.contains("\\Seen")),
        "{r:?}"
    );
    position(&r, "* 6 EXISTS");

    // a flags UID 4 alone, b expunges UID 3, then a expunges: a reports both, in step.
    ok(a, "STORE 4 +FLAGS (\\Deleted)").await;
    ok(b, "STORE 3 +FLAGS (\\Deleted)").await;
    ok(b, "UID EXPUNGE 3").await;
    let r = ok(a, "EXPUNGE").await;
    assert!(
        position(&r, "* 4 EXPUNGE") < position(&r, "* 3 EXPUNGE"),
        "{r:?}"
    );

    // Both see the same folder.
    ok(b, "NOOP").await;
    for c in [a, b] {
        let r = ok(c, "FETCH 1:* (UID)").await;
        let uids: Vec<&str> = r[..r.len() - 1]
            .iter()
            .filter_map(|l| l.split("(UID ").nth(1)?.strip_suffix(")\r\n"))
            .collect();
        assert_eq!(uids, ["1", "2", "6", "7"], "{r:?}");
    }
}
