//! SORT, SORT=DISPLAY and THREAD (RFC 5256, RFC 5957) on the wire, byte for byte.

mod common;

use common::*;
use mssante::store::SortFields;

/// APPENDs `message` to `folder` with `internal` as its INTERNALDATE.
async fn append_at(c: &mut Client, folder: &str, internal: &str, message: &str) {
    let tag = c.next_tag();
    c.send(
        format!(
            "{tag} APPEND {folder} \"{internal}\" {{{}+}}\r\n",
            message.len()
        )
        .as_bytes(),
    )
    .await;
    c.send(message.as_bytes()).await;
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains(" OK "), "{r:?}");
}

/// The first line of the answer, which must be followed by the tagged OK.
async fn answer(c: &mut Client, command: &str) -> String {
    let r = c.cmd(command).await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(last(&r).contains(" OK "), "{r:?}");
    r[0].clone()
}

/// A first message, deleted at once, so that UIDs are the sequence numbers plus one.
async fn offset_uids(c: &mut Client, folder: &str) {
    append_at(
        c,
        folder,
        "01-Jan-2020 00:00:00 +0000",
        "Subject: gone\r\n\r\nx\r\n",
    )
    .await;
}

async fn expunge_first(c: &mut Client) {
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.cmd("EXPUNGE").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
}

fn message(headers: &str, body_len: usize) -> String {
    format!("{headers}\r\n{}\r\n", "x".repeat(body_len))
}

/// Four messages whose keys disagree, so that every key gives its own order:
///
/// | seq | FROM (display)        | TO (display)    | CC    | Subject       | Date (UTC)   | arrival | body |
/// |-----|-----------------------|-----------------|-------|---------------|--------------|---------|------|
/// | 1   | zadams ("Adam Zoe")   | bob             | carol | Re: Budget    | 2 Jan 10:00  | 5 Jan   | 400  |
/// | 2   | beta ("Bob Zed")      | zed ("Alpha")   |       | apple         | 2 Jan 01:30  | 3 Jan   | 100  |
/// | 3   | mike                  | adam            |       | [list] Cherry | none: 1 Jan  | 1 Jan   | 300  |
/// | 4   | alpha ("alice")       | mail ("Zed")    | bob   | Fwd: budget   | 2 Jan 10:00  | 4 Jan   | 200  |
async fn sort_world() -> (World, Client) {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    offset_uids(&mut c, "INBOX").await;
    let messages = [
        (
            "05-Jan-2023 00:00:00 +0000",
            message(
                "From: Adam Zoe <zadams@x.fr>\r\nTo: bob@x.fr\r\nCc: carol@x.fr\r\nSubject: Re: Budget\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n",
                400,
            ),
        ),
        (
            "03-Jan-2023 00:00:00 +0000",
            message(
                "From: Bob Zed <beta@x.fr>\r\nTo: Alpha <zed@x.fr>\r\nSubject: apple\r\nDate: Sun, 1 Jan 2023 23:30:00 -0200\r\n",
                100,
            ),
        ),
        (
            "01-Jan-2023 00:00:00 +0000",
            message(
                "From: mike@x.fr\r\nTo: adam@x.fr\r\nSubject: [list] Cherry\r\n",
                300,
            ),
        ),
        (
            "04-Jan-2023 00:00:00 +0000",
            message(
                "From: alice <alpha@x.fr>\r\nTo: Zed <mail@x.fr>\r\nCc: bob@x.fr\r\nSubject: Fwd: budget\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n",
                200,
            ),
        ),
    ];
    for (at, m) in &messages {
        append_at(&mut c, "INBOX", at, m).await;
    }
    c.cmd("SELECT INBOX").await;
    expunge_first(&mut c).await;
    (w, c)
}

#[tokio::test]
async fn sort_by_each_key() {
    let (w, mut c) = sort_world().await;
    for (criteria, expected) in [
        ("ARRIVAL", "* SORT 3 2 4 1\r\n"),
        ("DATE", "* SORT 3 2 1 4\r\n"),
        ("FROM", "* SORT 4 2 3 1\r\n"),
        ("TO", "* SORT 3 1 4 2\r\n"),
        ("CC", "* SORT 2 3 4 1\r\n"),
        ("SUBJECT", "* SORT 2 1 4 3\r\n"),
        ("SIZE", "* SORT 2 4 3 1\r\n"),
        ("DISPLAYFROM", "* SORT 1 4 2 3\r\n"),
        ("DISPLAYTO", "* SORT 3 2 1 4\r\n"),
    ] {
        assert_eq!(
            answer(&mut c, &format!("SORT ({criteria}) UTF-8 ALL")).await,
            expected,
            "{criteria}"
        );
    }
    w.stop().await;
}

/// REVERSE turns one key round, not the tie-break: equal messages stay in mailbox order.
#[tokio::test]
async fn reverse_applies_to_its_own_key() {
    let (w, mut c) = sort_world().await;
    for (criteria, expected) in [
        ("REVERSE ARRIVAL", "* SORT 1 4 2 3\r\n"),
        ("REVERSE DATE", "* SORT 1 4 2 3\r\n"),
        ("REVERSE SUBJECT", "* SORT 3 1 4 2\r\n"),
        ("SUBJECT ARRIVAL", "* SORT 2 4 1 3\r\n"),
        ("SUBJECT REVERSE ARRIVAL", "* SORT 2 1 4 3\r\n"),
        ("REVERSE SUBJECT ARRIVAL", "* SORT 3 4 1 2\r\n"),
        ("REVERSE SUBJECT REVERSE ARRIVAL", "* SORT 3 1 4 2\r\n"),
        ("REVERSE DISPLAYTO", "* SORT 4 1 2 3\r\n"),
    ] {
        assert_eq!(
            answer(&mut c, &format!("SORT ({criteria}) UTF-8 ALL")).await,
            expected,
            "{criteria}"
        );
    }
    w.stop().await;
}

#[tokio::test]
async fn uid_sort_answers_with_uids() {
    let (w, mut c) = sort_world().await;
    assert_eq!(
        answer(&mut c, "UID SORT (ARRIVAL) UTF-8 ALL").await,
        "* SORT 4 3 5 2\r\n"
    );
    assert_eq!(
        answer(&mut c, "UID SORT (REVERSE SIZE) US-ASCII UID 3:5").await,
        "* SORT 4 5 3\r\n"
    );
    w.stop().await;
}

#[tokio::test]
async fn search_criteria_come_first() {
    let (w, mut c) = sort_world().await;
    assert_eq!(
        answer(&mut c, "SORT (DATE) UTF-8 SUBJECT budget").await,
        "* SORT 1 4\r\n"
    );
    assert_eq!(
        answer(&mut c, "SORT (REVERSE ARRIVAL) UTF-8 NOT SUBJECT budget").await,
        "* SORT 2 3\r\n"
    );
    assert_eq!(
        answer(&mut c, "SORT (FROM) UTF-8 2:4 LARGER 250").await,
        "* SORT 4 3\r\n"
    );
    assert_eq!(
        answer(&mut c, "SORT (SUBJECT) UTF-8 BODY nothing-like-this").await,
        "* SORT\r\n"
    );
    w.stop().await;
}

#[tokio::test]
async fn unknown_charsets_are_refused() {
    let (w, mut c) = sort_world().await;
    let r = c.cmd("SORT (DATE) ISO-8859-1 ALL").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].ends_with(
            " NO [BADCHARSET (UTF-8 US-ASCII)] only UTF-8 and US-ASCII are supported\r\n"
        ),
        "{r:?}"
    );
    let r = c.cmd("THREAD REFERENCES KOI8-R ALL").await;
    assert!(r[0].contains(" NO [BADCHARSET (UTF-8 US-ASCII)] "), "{r:?}");
    let r = c.cmd("THREAD NEWEST UTF-8 ALL").await;
    assert!(last(&r).contains(" BAD "), "{r:?}");
    let r = c.cmd("SORT (NAME) UTF-8 ALL").await;
    assert!(last(&r).contains(" BAD "), "{r:?}");
    let r = c.cmd("SORT () UTF-8 ALL").await;
    assert!(last(&r).contains(" BAD "), "{r:?}");
    w.stop().await;
}

#[tokio::test]
async fn sort_and_thread_need_a_selected_mailbox() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("SORT (DATE) UTF-8 ALL").await;
    assert!(last(&r).ends_with(" BAD no mailbox selected\r\n"), "{r:?}");
    let r = c.cmd("THREAD REFERENCES UTF-8 ALL").await;
    assert!(last(&r).ends_with(" BAD no mailbox selected\r\n"), "{r:?}");
    c.cmd("SELECT INBOX").await;
    assert_eq!(answer(&mut c, "SORT (DATE) UTF-8 ALL").await, "* SORT\r\n");
    assert_eq!(
        answer(&mut c, "THREAD REFERENCES UTF-8 ALL").await,
        "* THREAD\r\n"
    );
    w.stop().await;
}

fn mail(id: &str, refs: &str, subject: &str, date: &str) -> String {
    format!(
        "Message-ID: <{id}@h.mssante.fr>\r\n{refs}Subject: {subject}\r\nDate: {date}\r\n\r\nText.\r\n"
    )
}

/// | seq | Message-ID | refers to               | Subject   | Date       |
/// |-----|------------|-------------------------|-----------|------------|
/// | 1   | a          |                         | Hello     | 1 Jan      |
/// | 2   | b          | References a            | Re: Hello | 2 Jan      |
/// | 3   | c          | In-Reply-To a           | Re: Hello | 3 Jan      |
/// | 4   | d          | References a b          | Re: Hello | 4 Jan      |
/// | 5   | e          | References lost (absent)| Lost      | 5 Jan      |
/// | 6   | f          | References lost         | Re: Lost  | 6 Jan      |
/// | 7   | g          | nothing                 | Re: Hello | 7 Jan      |
/// | 8   | h          |                         | Other     | 31 Dec     |
async fn thread_world() -> (World, Client) {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    c.cmd("CREATE Threads").await;
    offset_uids(&mut c, "Threads").await;
    let r = |ids: &str| format!("References: {ids}\r\n");
    let messages = [
        mail("a", "", "Hello", "Sun, 1 Jan 2023 10:00:00 +0000"),
        mail(
            "b",
            &r("<a@h.mssante.fr>"),
            "Re: Hello",
            "Mon, 2 Jan 2023 10:00:00 +0000",
        ),
        mail(
            "c",
            "In-Reply-To: <a@h.mssante.fr>\r\n",
            "Re: Hello",
            "Tue, 3 Jan 2023 10:00:00 +0000",
        ),
        mail(
            "d",
            &r("<a@h.mssante.fr> <b@h.mssante.fr>"),
            "Re: Hello",
            "Wed, 4 Jan 2023 10:00:00 +0000",
        ),
        mail(
            "e",
            &r("<lost@h.mssante.fr>"),
            "Lost",
            "Thu, 5 Jan 2023 10:00:00 +0000",
        ),
        mail(
            "f",
            &r("<lost@h.mssante.fr>"),
            "Re: Lost",
            "Fri, 6 Jan 2023 10:00:00 +0000",
        ),
        mail("g", "", "Re: Hello", "Sat, 7 Jan 2023 10:00:00 +0000"),
        mail("h", "", "Other", "Sat, 31 Dec 2022 10:00:00 +0000"),
    ];
    for m in &messages {
        append_at(&mut c, "Threads", "10-Jan-2023 00:00:00 +0000", m).await;
    }
    c.cmd("SELECT Threads").await;
    expunge_first(&mut c).await;
    (w, c)
}

#[tokio::test]
async fn thread_references() {
    let (w, mut c) = thread_world().await;
    assert_eq!(
        answer(&mut c, "THREAD REFERENCES UTF-8 ALL").await,
        "* THREAD (8)(1 (2 4)(3)(7))((5)(6))\r\n"
    );
    assert_eq!(
        answer(&mut c, "UID THREAD REFERENCES UTF-8 ALL").await,
        "* THREAD (9)(2 (3 5)(4)(8))((6)(7))\r\n"
    );
    // Without its parent (2), 4 hangs from 1 by its References; without 5, 6 is alone.
    assert_eq!(
        answer(&mut c, "THREAD REFERENCES UTF-8 NOT 2 NOT 5").await,
        "* THREAD (8)(1 (3)(4)(7))(6)\r\n"
    );
    w.stop().await;
}

#[tokio::test]
async fn thread_orderedsubject() {
    let (w, mut c) = thread_world().await;
    assert_eq!(
        answer(&mut c, "THREAD ORDEREDSUBJECT UTF-8 ALL").await,
        "* THREAD (8)(1 (2)(3)(4)(7))(5 6)\r\n"
    );
    assert_eq!(
        answer(&mut c, "UID THREAD ORDEREDSUBJECT US-ASCII SUBJECT hello").await,
        "* THREAD (2 (3)(4)(5)(8))\r\n"
    );
    w.stop().await;
}

/// SORT and THREAD are announced once logged in, not before: they need a mailbox.
#[tokio::test]
async fn capabilities_after_login_only() {
    let w = world("").await;
    let mut c = w.connect_tls().await;
    let greeting = c.line().await;
    assert!(
        !greeting.contains("SORT") && !greeting.contains("THREAD"),
        "{greeting}"
    );
    let r = c.cmd("CAPABILITY").await;
    assert!(!r[0].contains("SORT") && !r[0].contains("THREAD"), "{r:?}");
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(
        r[0].ends_with(" SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES\r\n"),
        "{r:?}"
    );
    w.stop().await;
}

const EVERY_KEY: [&str; 9] = [
    "ARRIVAL",
    "DATE",
    "FROM",
    "TO",
    "CC",
    "SUBJECT",
    "SIZE",
    "DISPLAYFROM",
    "DISPLAYTO",
];

async fn every_answer(c: &mut Client) -> Vec<String> {
    let mut out = Vec::new();
    for k in EVERY_KEY {
        out.push(answer(c, &format!("SORT ({k}) UTF-8 ALL")).await);
        out.push(answer(c, &format!("SORT (REVERSE {k}) UTF-8 ALL")).await);
    }
    out.push(answer(c, "THREAD REFERENCES UTF-8 ALL").await);
    out.push(answer(c, "THREAD ORDEREDSUBJECT UTF-8 ALL").await);
    out
}

/// The first SORT reads headers and stores their keys; later ones read the stored keys
/// and must answer exactly the same. Keys stored by other rules are never trusted (the
/// rules are at version 2, `i;unicode-casemap` keys).
#[tokio::test]
async fn stored_keys_answer_as_headers_do() {
    let (w, mut c) = sort_world().await;
    let store = w.running.as_ref().unwrap().context.store.clone();
    let mailbox = store.mailbox(HOUSE_BAL).await.unwrap().unwrap();
    let inbox = store.folder(mailbox.id, "INBOX").await.unwrap().unwrap();
    let rows = store
        .sort_keys_in_range(inbox.id, 1, u32::MAX, 2, SortFields::ALL)
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.2.is_none()), "{rows:?}");

    let from_headers = every_answer(&mut c).await;
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = store
            .sort_keys_in_range(inbox.id, 1, u32::MAX, 2, SortFields::ALL)
            .await
            .unwrap();
        if stored.iter().all(|r| r.2.is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(stored.iter().all(|r| r.2.is_some()), "{stored:?}");
    assert_eq!(every_answer(&mut c).await, from_headers);
    // A read of some fields leaves the others empty.
    let dates = SortFields {
        sent: true,
        ..SortFields::default()
    };
    let partial = store
        .sort_keys_in_range(inbox.id, 1, u32::MAX, 2, dates)
        .await
        .unwrap();
    for (full, part) in stored.iter().zip(&partial) {
        let (full, part) = (full.2.clone().unwrap(), part.2.clone().unwrap());
        assert_eq!(part.sent, full.sent);
        assert!(
            !full.subject.is_empty() && part.subject.is_empty(),
            "{part:?}"
        );
        assert!(
            part.from_mailbox.is_empty() && part.references.is_empty(),
            "{part:?}"
        );
    }

    // Rows of rules version 0 saying every subject is "A" must not be believed.
    let wrong = stored
        .iter()
        .map(|(_, body, k)| {
            let mut k = k.clone().unwrap_or_default();
            k.subject = "A".into();
            (*body, k)
        })
        .collect();
    store.put_sort_keys(0, wrong).await.unwrap();
    assert_eq!(every_answer(&mut c).await, from_headers);
    w.stop().await;
}

/// I18NLEVEL=1 (RFC 5255): SEARCH and SORT compare with i;unicode-casemap (RFC 5051), so
/// a decomposed accent typed by one client finds the precomposed one another stored, a
/// ligature finds its letters, and SORT orders by the titlecased decomposed form.
#[tokio::test]
async fn search_and_sort_compare_with_unicode_casemap() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    for subject in [
        "=?UTF-8?Q?Compte_rendu_=EF=AC=81nal?=",
        "=?UTF-8?Q?R=C3=A9sum=C3=A9_de_s=C3=A9jour?=",
        "=?UTF-8?Q?=C3=89chographie?=",
        "Dossier",
    ] {
        append_at(
            &mut c,
            "INBOX",
            "01-Jan-2024 00:00:00 +0000",
            &message(&format!("Subject: {subject}\r\n"), 10),
        )
        .await;
    }
    c.cmd("SELECT INBOX").await;
    for (needle, expected) in [
        // The ligature U+FB01 in the first subject is the letters F and I.
        ("FINAL", "* SEARCH 1\r\n"),
        // Decomposed e + U+0301 against the precomposed é of the second subject.
        ("RE\u{301}SUM", "* SEARCH 2\r\n"),
        ("s\u{e9}jour", "* SEARCH 2\r\n"),
        ("\u{c9}CHO", "* SEARCH 3\r\n"),
    ] {
        // A literal: 8-bit text cannot be a quoted string in IMAP4rev1.
        let command = format!(
            "SEARCH CHARSET UTF-8 SUBJECT {{{}+}}\r\n{needle}",
            needle.len()
        );
        assert_eq!(answer(&mut c, &command).await, expected, "{needle}");
    }
    // Titlecased decomposed forms: C(ompte) < D(ossier) < E+U+0301(chographie) < R(ésumé).
    assert_eq!(
        answer(&mut c, "SORT (SUBJECT) UTF-8 ALL").await,
        "* SORT 1 4 3 2\r\n"
    );
    w.stop().await;
}
