//! ESEARCH (RFC 4731), SEARCHRES (RFC 5182), ESORT and CONTEXT (RFC 5267) on the wire,
//! byte for byte.

mod common;

use common::*;

/// Six messages after one that was expunged, so UIDs are sequence numbers plus one:
///
/// | seq | uid | Subject | flags    | arrival |
/// |-----|-----|---------|----------|---------|
/// | 1   | 2   | d       |          | 1 Jan   |
/// | 2   | 3   | e       | \Flagged | 2 Jan   |
/// | 3   | 4   | a       | \Flagged | 3 Jan   |
/// | 4   | 5   | b       | \Flagged | 4 Jan   |
/// | 5   | 6   | c       |          | 5 Jan   |
/// | 6   | 7   | f       | \Flagged | 6 Jan   |
async fn six() -> (World, Client) {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    c.append("INBOX", "()", "Subject: gone\r\n\r\nx\r\n").await;
    for (day, subject, flags) in [
        (1, "d", ""),
        (2, "e", "\\Flagged"),
        (3, "a", "\\Flagged"),
        (4, "b", "\\Flagged"),
        (5, "c", ""),
        (6, "f", "\\Flagged"),
    ] {
        let options = format!("({flags}) \"0{day}-Jan-2024 00:00:00 +0000\"");
        let message = format!("Subject: {subject}\r\n\r\nbody {subject}\r\n");
        c.append("INBOX", &options, &message).await;
    }
    c.cmd("SELECT INBOX").await;
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.cmd("EXPUNGE").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    (w, c)
}

/// The whole answer to `command`, its tag replaced by `T`.
async fn exchange(c: &mut Client, command: &str) -> Vec<String> {
    let tag = c.next_tag();
    c.send(format!("{tag} {command}\r\n").as_bytes()).await;
    c.until(&tag)
        .await
        .into_iter()
        .map(|l| {
            let l = l.replace(&format!("\"{tag}\""), "\"T\"");
            match l.strip_prefix(&format!("{tag} ")) {
                Some(rest) => format!("T {rest}"),
                None => l,
            }
        })
        .collect()
}

#[tokio::test]
async fn capabilities_after_login() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    for want in [
        "ESEARCH",
        "SEARCHRES",
        "ESORT",
        "CONTEXT=SEARCH",
        "CONTEXT=SORT",
    ] {
        assert!(
            r[0].split_whitespace().any(|c| c == want),
            "{want} missing in {}",
            r[0]
        );
    }
    w.stop().await;
}

#[tokio::test]
async fn esearch_return_options() {
    let (w, mut c) = six().await;
    for (command, expected) in [
        (
            "SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED",
            "* ESEARCH (TAG \"T\") MIN 2 MAX 6 COUNT 4 ALL 2:4,6\r\n",
        ),
        (
            "UID SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED",
            "* ESEARCH (TAG \"T\") UID MIN 3 MAX 7 COUNT 4 ALL 3:5,7\r\n",
        ),
        (
            "UID SEARCH RETURN () FLAGGED",
            "* ESEARCH (TAG \"T\") UID ALL 3:5,7\r\n",
        ),
        (
            "SEARCH RETURN (COUNT) DRAFT",
            "* ESEARCH (TAG \"T\") COUNT 0\r\n",
        ),
        (
            "UID SEARCH RETURN (MIN MAX ALL) DRAFT",
            "* ESEARCH (TAG \"T\") UID\r\n",
        ),
        (
            "SEARCH RETURN (MAX) UNFLAGGED",
            "* ESEARCH (TAG \"T\") MAX 5\r\n",
        ),
        // A `RETURN` or `$` inside a string is the string's.
        (
            "SEARCH RETURN (ALL) OR SUBJECT \"RETURN ($)\" SUBJECT {1+}\r\nb",
            "* ESEARCH (TAG \"T\") ALL 4\r\n",
        ),
        (
            "SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT a",
            "* ESEARCH (TAG \"T\") COUNT 1\r\n",
        ),
    ] {
        assert_eq!(
            exchange(&mut c, command).await,
            [expected, "T OK SEARCH completed\r\n"],
            "{command}"
        );
    }
    for command in [
        "SEARCH RETURN (FOO) ALL",
        "SEARCH RETURN (ALL PARTIAL 1:2) ALL",
        "SEARCH RETURN MIN ALL",
        "SEARCH RETURN (MIN)",
    ] {
        let r = exchange(&mut c, command).await;
        assert_eq!(r.len(), 1, "{command}: {r:?}");
        assert!(r[0].starts_with("T BAD "), "{command}: {r:?}");
    }
    // Without RETURN, SEARCH answers as RFC 3501 has it.
    assert_eq!(
        exchange(&mut c, "SEARCH FLAGGED").await,
        ["* SEARCH 2 3 4 6\r\n", "T OK SEARCH completed\r\n"]
    );
    w.stop().await;
}

#[tokio::test]
async fn saved_result_follows_its_messages() {
    let (w, mut c) = six().await;
    // SAVE alone answers nothing but the tagged OK.
    assert_eq!(
        exchange(&mut c, "SEARCH RETURN (SAVE) FLAGGED").await,
        ["T OK SEARCH completed\r\n"]
    );
    assert_eq!(
        exchange(&mut c, "FETCH $ (UID)").await,
        [
            "* 2 FETCH (UID 3)\r\n",
            "* 3 FETCH (UID 4)\r\n",
            "* 4 FETCH (UID 5)\r\n",
            "* 6 FETCH (UID 7)\r\n",
            "T OK FETCH completed\r\n"
        ]
    );
    // Expunging a saved message (seq 3, UID 4) leaves the others named by `$`.
    c.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    c.cmd("EXPUNGE").await;
    assert_eq!(
        exchange(&mut c, "SEARCH $").await,
        ["* SEARCH 2 3 5\r\n", "T OK SEARCH completed\r\n"]
    );
    assert_eq!(
        exchange(&mut c, "UID SEARCH UID $ NOT UID 3").await,
        ["* SEARCH 5 7\r\n", "T OK SEARCH completed\r\n"]
    );
    assert_eq!(
        exchange(&mut c, "UID STORE $ +FLAGS (\\Seen)").await,
        [
            "* 2 FETCH (UID 3 FLAGS (\\Recent \\Seen \\Flagged))\r\n",
            "* 3 FETCH (UID 5 FLAGS (\\Recent \\Seen \\Flagged))\r\n",
            "* 5 FETCH (UID 7 FLAGS (\\Recent \\Seen \\Flagged))\r\n",
            "T OK STORE completed\r\n"
        ]
    );
    let r = exchange(&mut c, "COPY $ Trash").await;
    assert!(r[0].starts_with("T OK [COPYUID "), "{r:?}");
    assert!(r[0].contains(" 3,5,7 "), "{r:?}");
    // The saved set answers with a `$` inside a SAVE: the old set is read first.
    assert_eq!(
        exchange(&mut c, "SEARCH RETURN (SAVE MIN) $ NOT UID 3").await,
        [
            "* ESEARCH (TAG \"T\") MIN 3\r\n",
            "T OK SEARCH completed\r\n"
        ]
    );
    // MIN alone: only that message is kept.
    assert_eq!(
        exchange(&mut c, "UID FETCH $ (UID)").await,
        ["* 3 FETCH (UID 5)\r\n", "T OK FETCH completed\r\n"]
    );
    w.stop().await;
}

#[tokio::test]
async fn empty_saved_result_names_nothing() {
    let (w, mut c) = six().await;
    // Nothing saved yet: `$` is the empty set, and using it is no error.
    assert_eq!(
        exchange(&mut c, "SEARCH $").await,
        ["* SEARCH\r\n", "T OK SEARCH completed\r\n"]
    );
    assert_eq!(
        exchange(&mut c, "FETCH $ (FLAGS)").await,
        ["T OK FETCH completed, no message\r\n"]
    );
    c.cmd("SEARCH RETURN (SAVE) FLAGGED").await;
    // A SAVE that fails forgets the saved result.
    let r = exchange(&mut c, "SEARCH RETURN (SAVE) NOSUCHKEY").await;
    assert!(r[0].starts_with("T BAD "), "{r:?}");
    assert_eq!(
        exchange(&mut c, "UID STORE $ +FLAGS (\\Seen)").await,
        ["T OK UID STORE completed, no message\r\n"]
    );
    c.cmd("SEARCH RETURN (SAVE) FLAGGED").await;
    let r = exchange(&mut c, "SEARCH CHARSET KOI8-R RETURN (SAVE) ALL").await;
    assert!(r[0].starts_with("T BAD "), "{r:?}");
    let r = exchange(&mut c, "SEARCH RETURN (SAVE) CHARSET KOI8-R ALL").await;
    assert!(r[0].starts_with("T NO [BADCHARSET"), "{r:?}");
    assert_eq!(
        exchange(&mut c, "SEARCH $").await,
        ["* SEARCH\r\n", "T OK SEARCH completed\r\n"]
    );
    // SELECT starts with nothing saved.
    c.cmd("SEARCH RETURN (SAVE) FLAGGED").await;
    c.cmd("SELECT INBOX").await;
    assert_eq!(
        exchange(&mut c, "MOVE $ Trash").await,
        ["T OK MOVE completed, no message\r\n"]
    );
    // Without a selected folder, `$` means nothing.
    c.cmd("UNSELECT").await;
    let r = exchange(&mut c, "FETCH $ (FLAGS)").await;
    assert!(r[0].starts_with("T BAD "), "{r:?}");
    w.stop().await;
}

#[tokio::test]
async fn esort_return_options() {
    let (w, mut c) = six().await;
    for (command, expected) in [
        (
            "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL",
            "* ESEARCH (TAG \"T\") MIN 3 MAX 6 COUNT 6 ALL 3:5,1:2,6\r\n",
        ),
        (
            "UID SORT RETURN () (REVERSE ARRIVAL) UTF-8 FLAGGED",
            "* ESEARCH (TAG \"T\") UID ALL 7,5,4,3\r\n",
        ),
        (
            "SORT RETURN (COUNT) (SUBJECT) UTF-8 DRAFT",
            "* ESEARCH (TAG \"T\") COUNT 0\r\n",
        ),
    ] {
        assert_eq!(
            exchange(&mut c, command).await,
            [expected, "T OK SORT completed\r\n"],
            "{command}"
        );
    }
    // SAVE keeps the set; `$` answers in mailbox order.
    assert_eq!(
        exchange(&mut c, "SORT RETURN (SAVE) (SUBJECT) UTF-8 UNFLAGGED").await,
        ["T OK SORT completed\r\n"]
    );
    assert_eq!(
        exchange(&mut c, "SEARCH $").await,
        ["* SEARCH 1 5\r\n", "T OK SEARCH completed\r\n"]
    );
    w.stop().await;
}

#[tokio::test]
async fn partial_results() {
    let (w, mut c) = six().await;
    for (command, expected) in [
        (
            "SEARCH RETURN (PARTIAL 2:3) FLAGGED",
            "* ESEARCH (TAG \"T\") PARTIAL (2:3 3:4)\r\n",
        ),
        (
            "UID SEARCH RETURN (COUNT PARTIAL 10:3) FLAGGED",
            "* ESEARCH (TAG \"T\") UID COUNT 4 PARTIAL (10:3 5,7)\r\n",
        ),
        (
            "SEARCH RETURN (PARTIAL 7:9) ALL",
            "* ESEARCH (TAG \"T\") PARTIAL (7:9 NIL)\r\n",
        ),
        (
            "SEARCH RETURN (CONTEXT COUNT) FLAGGED",
            "* ESEARCH (TAG \"T\") COUNT 4\r\n",
        ),
    ] {
        assert_eq!(
            exchange(&mut c, command).await,
            [expected, "T OK SEARCH completed\r\n"],
            "{command}"
        );
    }
    assert_eq!(
        exchange(&mut c, "SORT RETURN (PARTIAL 2:4) (SUBJECT) UTF-8 ALL").await,
        [
            "* ESEARCH (TAG \"T\") PARTIAL (2:4 4:5,1)\r\n",
            "T OK SORT completed\r\n"
        ]
    );
    w.stop().await;
}

/// Sends `line` as it is and returns the answer up to `tag`.
async fn raw(c: &mut Client, tag: &str, line: &str) -> Vec<String> {
    c.send(format!("{tag} {line}\r\n").as_bytes()).await;
    c.until(tag).await
}

#[tokio::test]
async fn search_kept_updated_until_cancelled() {
    let (w, mut c) = six().await;
    assert_eq!(
        raw(&mut c, "B01", "UID SEARCH RETURN (UPDATE COUNT) FLAGGED").await,
        [
            "* ESEARCH (TAG \"B01\") UID COUNT 4\r\n",
            "B01 OK SEARCH completed\r\n"
        ]
    );
    // The session's own changes, as soon as they are made.
    assert_eq!(
        raw(&mut c, "B02", "STORE 1 +FLAGS.SILENT (\\Flagged)").await,
        [
            "* ESEARCH (TAG \"B01\") UID ADDTO (0 2)\r\n",
            "B02 OK STORE completed\r\n"
        ]
    );
    assert_eq!(
        raw(&mut c, "B03", "STORE 2 -FLAGS.SILENT (\\Flagged)").await,
        [
            "* ESEARCH (TAG \"B01\") UID REMOVEFROM (0 3)\r\n",
            "B03 OK STORE completed\r\n"
        ]
    );
    // A second UPDATE under a live tag is refused.
    let r = raw(&mut c, "B01", "SEARCH RETURN (UPDATE) ALL").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("B01 BAD "), "{r:?}");
    // REMOVEFROM comes before the EXPUNGE, while the number still holds.
    raw(&mut c, "B04", "STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        raw(&mut c, "B05", "EXPUNGE").await,
        [
            "* ESEARCH (TAG \"B01\") UID REMOVEFROM (0 4)\r\n",
            "* 3 EXPUNGE\r\n",
            "B05 OK EXPUNGE completed\r\n"
        ]
    );
    // Another session's delivery: ADDTO after EXISTS.
    let mut other = w.login(HOUSE_BAL, HOUSE).await;
    other
        .append("INBOX", "(\\Flagged)", "Subject: g\r\n\r\nbody g\r\n")
        .await;
    assert_eq!(
        raw(&mut c, "B06", "NOOP").await,
        [
            "* 6 EXISTS\r\n",
            "* 6 RECENT\r\n",
            "* ESEARCH (TAG \"B01\") UID ADDTO (0 8)\r\n",
            "B06 OK NOOP completed\r\n"
        ]
    );
    let r = raw(&mut c, "B07", "CANCELUPDATE \"B09\"").await;
    assert!(r[0].starts_with("B07 BAD "), "{r:?}");
    assert_eq!(
        raw(&mut c, "B08", "CANCELUPDATE \"B01\"").await,
        ["B08 OK CANCELUPDATE completed\r\n"]
    );
    assert_eq!(
        raw(&mut c, "B10", "STORE 1 -FLAGS.SILENT (\\Flagged)").await,
        ["B10 OK STORE completed\r\n"]
    );
    w.stop().await;
}

#[tokio::test]
async fn sort_kept_updated_at_positions() {
    let (w, mut c) = six().await;
    assert_eq!(
        raw(
            &mut c,
            "S01",
            "SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 FLAGGED"
        )
        .await,
        [
            "* ESEARCH (TAG \"S01\") ALL 3:4,2,6\r\n",
            "S01 OK SORT completed\r\n"
        ]
    );
    // c (seq 5) sorts after a and b: third.
    assert_eq!(
        raw(&mut c, "S02", "STORE 5 +FLAGS.SILENT (\\Flagged)").await,
        [
            "* ESEARCH (TAG \"S01\") ADDTO (3 5)\r\n",
            "S02 OK STORE completed\r\n"
        ]
    );
    assert_eq!(
        raw(&mut c, "S03", "STORE 3 -FLAGS.SILENT (\\Flagged)").await,
        [
            "* ESEARCH (TAG \"S01\") REMOVEFROM (1 3)\r\n",
            "S03 OK STORE completed\r\n"
        ]
    );
    // Leaving the folder ends the context.
    c.cmd("SELECT INBOX").await;
    assert_eq!(
        raw(&mut c, "S04", "STORE 3 +FLAGS.SILENT (\\Flagged)").await,
        ["S04 OK STORE completed\r\n"]
    );
    w.stop().await;
}

#[tokio::test]
async fn updates_reach_an_idling_client() {
    let (w, mut c) = six().await;
    assert_eq!(
        raw(&mut c, "I01", "UID SEARCH RETURN (UPDATE MIN) UNFLAGGED").await,
        [
            "* ESEARCH (TAG \"I01\") UID MIN 2\r\n",
            "I01 OK SEARCH completed\r\n"
        ]
    );
    c.send(b"I02 IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling\r\n");
    let mut other = w.login(HOUSE_BAL, HOUSE).await;
    other.cmd("SELECT INBOX").await;
    let r = other.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    assert_eq!(
        c.line().await,
        "* 1 FETCH (UID 2 FLAGS (\\Recent \\Flagged))\r\n"
    );
    assert_eq!(
        c.line().await,
        "* ESEARCH (TAG \"I01\") UID REMOVEFROM (0 2)\r\n"
    );
    c.send(b"DONE\r\n").await;
    assert_eq!(c.until("I02").await, ["I02 OK IDLE terminated\r\n"]);
    w.stop().await;
}

/// Past 8 live contexts the search is answered but not kept (RFC 5267 §4.3.1).
#[tokio::test]
async fn too_many_contexts_are_refused_updates() {
    let (w, mut c) = six().await;
    for n in 1..=8 {
        let tag = format!("U{n}");
        assert_eq!(
            raw(&mut c, &tag, "SEARCH RETURN (UPDATE COUNT) FLAGGED").await,
            [
                format!("* ESEARCH (TAG \"{tag}\") COUNT 4\r\n"),
                format!("{tag} OK SEARCH completed\r\n")
            ]
        );
    }
    assert_eq!(
        raw(&mut c, "U9", "SEARCH RETURN (UPDATE COUNT) FLAGGED").await,
        [
            "* ESEARCH (TAG \"U9\") COUNT 4\r\n",
            "* NO [NOUPDATE \"U9\"] too many searches kept updated\r\n",
            "U9 OK SEARCH completed\r\n"
        ]
    );
    // The eight kept ones are told of a change; the ninth is not.
    let r = raw(&mut c, "U10", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    let updates: Vec<String> = (1..=8)
        .map(|n| format!("* ESEARCH (TAG \"U{n}\") ADDTO (0 1)\r\n"))
        .chain(["U10 OK STORE completed\r\n".to_owned()])
        .collect();
    assert_eq!(r, updates);
    w.stop().await;
}
