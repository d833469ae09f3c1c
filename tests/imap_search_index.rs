//! SEARCH TEXT and BODY through the body text index: the answers are those of a scan of
//! every body (decoded parts, casemapped), on both backends.

#[path = "common/mod.rs"]
mod common;

use common::*;

/// A plain message with this subject and text.
fn plain(subject: &str, text: &str) -> String {
    format!(
        "From: Gregory House <gregory.house@h.mssante.fr>\r\nTo: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    )
}

/// A message whose two text parts are base64 (UTF-8) and quoted-printable (Latin-1).
const ENCODED: &str = "From: Gregory House <gregory.house@h.mssante.fr>\r\nTo: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: =?UTF-8?Q?R=C3=A9sultats?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n--sep\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSMOpbW9nbG9iaW5lIGdseXF1w6ll\r\n--sep\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCr=E9atinine d=E9j=E0 dos=E9e\r\n--sep--\r\n";

/// `SEARCH CHARSET UTF-8 <key> <needle>`, the needle sent as a literal (8-bit text).
fn utf8(key: &str, needle: &str) -> String {
    format!(
        "SEARCH CHARSET UTF-8 {key} {{{}+}}\r\n{needle}",
        needle.len()
    )
}

async fn selected(w: &World, messages: &[String]) -> Client {
    let mut c = w.login(CUDDY_BAL, CUDDY).await;
    for m in messages {
        c.append("INBOX", "()", m).await;
    }
    c.cmd("SELECT INBOX").await;
    c
}

on_both_backends! {
#[tokio::test]
async fn text_matches_substrings_whatever_their_case_and_form() {
    let w = world("").await;
    let mut c = selected(&w, &[
        plain("Bilan", "Le patient pr\u{e9}sente une hypoglyc\u{e9}mie."),
        plain("Suivi", "Le \u{fb01}chier est joint. RE\u{301}SUME\u{301} du s\u{e9}jour."),
        plain("Autre", "Rien de particulier."),
    ]).await;
    // Mid-word, any case.
    assert_eq!(c.cmd("SEARCH TEXT GLYC").await[0], "* SEARCH 1\r\n");
    assert_eq!(c.cmd("SEARCH BODY ogly").await[0], "* SEARCH 1\r\n");
    // Precomposed needle, decomposed text; and the other way round.
    assert_eq!(c.cmd(&utf8("BODY", "r\u{e9}sum\u{e9}")).await[0], "* SEARCH 2\r\n");
    assert_eq!(c.cmd(&utf8("BODY", "PRE\u{301}SENTE")).await[0], "* SEARCH 1\r\n");
    // A ligature in the text matches its letters.
    assert_eq!(c.cmd("SEARCH BODY fichier").await[0], "* SEARCH 2\r\n");
    // Accents count: without it, nothing.
    assert_eq!(c.cmd("SEARCH BODY presente").await[0], "* SEARCH\r\n");
    assert_eq!(c.cmd("SEARCH TEXT absent").await[0], "* SEARCH\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn encoded_parts_are_searched_decoded() {
    let w = world("").await;
    let mut c = selected(&w, &[ENCODED.to_owned(), plain("Autre", "SMOpbW9n")]).await;
    // base64, UTF-8
    assert_eq!(c.cmd(&utf8("BODY", "glyqu\u{e9}e")).await[0], "* SEARCH 1\r\n");
    // quoted-printable, Latin-1
    assert_eq!(c.cmd(&utf8("TEXT", "D\u{c9}J\u{c0} DOS")).await[0], "* SEARCH 1\r\n");
    // The encoded form is not the text.
    assert_eq!(c.cmd("SEARCH BODY SMOpbW9n").await[0], "* SEARCH 2\r\n");
    assert_eq!(c.cmd("SEARCH BODY =E9j").await[0], "* SEARCH\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn text_reads_the_header_as_received_and_body_does_not() {
    let w = world("").await;
    let mut c = selected(&w, &[ENCODED.to_owned(), plain("Bilan", "rien")]).await;
    assert_eq!(c.cmd("SEARCH TEXT gregory.house@h").await[0], "* SEARCH 1 2\r\n");
    assert_eq!(c.cmd("SEARCH BODY gregory.house@h").await[0], "* SEARCH\r\n");
    // The header as received: the encoded word, not its decoded text.
    assert_eq!(c.cmd("SEARCH TEXT C3=A9sul").await[0], "* SEARCH 1\r\n");
    assert_eq!(c.cmd("SEARCH TEXT \"Subject: Bil\"").await[0], "* SEARCH 2\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn shared_and_expunged_bodies() {
    let w = world("").await;
    let same = plain("Bilan", "Ferritine basse.");
    let mut c = selected(&w, &[same.clone(), plain("Autre", "rien"), same]).await;
    assert_eq!(c.cmd("SEARCH BODY ferritine").await[0], "* SEARCH 1 3\r\n");
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.cmd("EXPUNGE").await;
    assert_eq!(r[0], "* 1 EXPUNGE\r\n");
    assert_eq!(c.cmd("SEARCH BODY ferritine").await[0], "* SEARCH 2\r\n");
    assert_eq!(c.cmd("UID SEARCH BODY ferritine").await[0], "* SEARCH 3\r\n");
    c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    c.cmd("EXPUNGE").await;
    assert_eq!(c.cmd("SEARCH BODY ferritine").await[0], "* SEARCH\r\n");
    // The body is gone with its last message; the same text stored again is found.
    c.append("INBOX", "()", &plain("Bilan", "Ferritine basse.")).await;
    c.cmd("NOOP").await;
    assert_eq!(c.cmd("UID SEARCH BODY ferritine").await[0], "* SEARCH 4\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn short_needles_are_matched_too() {
    let w = world("").await;
    let mut c = selected(&w, &[
        plain("Bilan", "Taux: 12 mg"),
        plain("Autre", "Vu ce jour"),
    ]).await;
    assert_eq!(c.cmd("SEARCH BODY MG").await[0], "* SEARCH 1\r\n");
    assert_eq!(c.cmd("SEARCH BODY u").await[0], "* SEARCH 1 2\r\n");
    assert_eq!(c.cmd("SEARCH BODY \"\"").await[0], "* SEARCH 1 2\r\n");
    // A short needle and a long one in one search.
    assert_eq!(c.cmd("SEARCH BODY vu TEXT \"ce jour\"").await[0], "* SEARCH 2\r\n");
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn text_inside_not_and_or() {
    let w = world("").await;
    let mut c = selected(&w, &[
        plain("Bilan", "an\u{e9}mie"),
        plain("Suivi", "ferritine"),
        plain("Autre", "rien"),
    ]).await;
    assert_eq!(c.cmd("SEARCH NOT TEXT ferritine").await[0], "* SEARCH 1 3\r\n");
    assert_eq!(c.cmd("SEARCH OR BODY ferritine BODY rien").await[0], "* SEARCH 2 3\r\n");
    assert_eq!(c.cmd("SEARCH OR TEXT ferritine SUBJECT bilan").await[0], "* SEARCH 1 2\r\n");
    assert_eq!(c.cmd("SEARCH NOT OR BODY ferritine BODY rien").await[0], "* SEARCH 1\r\n");
    assert_eq!(c.cmd("SEARCH 2:3 NOT BODY rien").await[0], "* SEARCH 2\r\n");
    w.stop().await;
}
}

/// Bodies stored before the index (its rows taken away here) are read, found, and
/// indexed on the way.
#[tokio::test]
async fn bodies_without_an_index_row_are_found() {
    let w = world("").await;
    let mut c = selected(&w, &[plain("Bilan", "ferritine"), plain("Autre", "rien")]).await;
    database::run(
        &database::file(&w.dir.path().join("data")),
        "DELETE FROM body_search",
    )
    .await;
    assert_eq!(c.cmd("SEARCH BODY ferritine").await[0], "* SEARCH 1\r\n");
    assert_eq!(
        c.cmd("SEARCH NOT BODY ferritine").await[0],
        "* SEARCH 2\r\n"
    );
    w.stop().await;
}
