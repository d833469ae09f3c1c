//! BINARY (RFC 3516) on the wire, byte for byte: decoded parts, sizes, partial answers
//! with their origin, literal8, and `[UNKNOWN-CTE]`.

mod common;

use common::*;

const LAB: &str = "Subject: labo\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nVoir.\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nR=C3=A9sultat norm=\r\nal.\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n";

on_both_backends! {
#[tokio::test]
async fn binary_fetch_decodes_parts() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(r[0].contains(" LITERAL+ BINARY "), "{r:?}");
    let r = c.raw_cmd(format!("APPEND INBOX {{{}+}}\r\n{LAB}\r\n", LAB.len()).as_bytes()).await;
    assert!(r[0].contains(" OK "), "{r:?}");
    // A literal8 APPEND: the NUL byte is kept.
    let r = c.raw_cmd(b"APPEND INBOX ~{19+}\r\nSubject: z\r\n\r\na\0b\r\n\r\n").await;
    assert!(r[0].contains(" OK "), "{r:?}");
    c.cmd("SELECT INBOX").await;

    let r = c.cmd("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])").await;
    assert_eq!(r[0], "* 1 FETCH (BINARY[2] {9}\r\n%PDF-1.4\n BINARY.SIZE[2] 9)\r\n");
    let r = c.cmd("FETCH 1 (BINARY.SIZE[3] BINARY.PEEK[3])").await;
    assert_eq!(
        r[0],
        "* 1 FETCH (BINARY.SIZE[3] 17 BINARY[3] {17}\r\nR\u{e9}sultat normal.)\r\n"
    );
    // NUL in the content: a literal8.
    let r = c.cmd("FETCH 1 BINARY.PEEK[4]").await;
    assert_eq!(r[0], "* 1 FETCH (BINARY[4] ~{3}\r\n\0\u{1}\u{2})\r\n");
    let r = c.cmd("FETCH 2 BINARY.PEEK[]").await;
    assert_eq!(r[0], "* 2 FETCH (BINARY[] ~{19}\r\nSubject: z\r\n\r\na\0b\r\n)\r\n");
    // Partial: the answer names its origin.
    let r = c.cmd("FETCH 1 (UID BINARY.PEEK[2]<5.3>)").await;
    assert_eq!(r[0], "* 1 FETCH (UID 1 BINARY[2]<5> {3}\r\n1.4)\r\n");
    let r = c.cmd("UID FETCH 1 BINARY.PEEK[2]<0.4>").await;
    assert_eq!(r[0], "* 1 FETCH (UID 1 BINARY[2]<0> {4}\r\n%PDF)\r\n");
    let r = c.cmd("FETCH 1 BINARY.PEEK[1]<0.4>").await;
    assert_eq!(r[0], "* 1 FETCH (BINARY[1]<0> {4}\r\nVoir)\r\n");
    let r = c.cmd("FETCH 1 BINARY.PEEK[2]<20.5>").await;
    assert_eq!(r[0], "* 1 FETCH (BINARY[2]<20> {0}\r\n)\r\n");
    // No such part.
    let r = c.cmd("FETCH 1 BINARY.PEEK[9]").await;
    assert_eq!(r[0], "* 1 FETCH (BINARY[9] NIL)\r\n");
    // An encoding this server cannot undo.
    let r = c.cmd("FETCH 1 BINARY.PEEK[5]").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].ends_with(" NO [UNKNOWN-CTE] unknown Content-Transfer-Encoding\r\n"), "{r:?}");
    // Damaged base64 fails the FETCH rather than answer an empty part.
    let damaged = "Subject: d\r\nContent-Transfer-Encoding: base64\r\n\r\nA*==\r\n";
    let r = c
        .raw_cmd(format!("APPEND INBOX {{{}+}}\r\n{damaged}\r\n", damaged.len()).as_bytes())
        .await;
    assert!(r.last().unwrap().contains(" OK "), "{r:?}");
    let r = c.cmd("FETCH 3 BINARY.PEEK[1]").await;
    assert!(
        r.last().unwrap().ends_with(" NO [PARSE] the part's base64 is damaged\r\n"),
        "{r:?}"
    );
    // BINARY without PEEK sets \Seen.
    let r = c.cmd("FETCH 1 BINARY[1]").await;
    assert_eq!(r[0], "* 1 FETCH (BINARY[1] {5}\r\nVoir. FLAGS (\\Recent \\Seen))\r\n");
    w.stop().await;
}
}
