//! LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819) on the wire, byte for byte.

mod common;

use common::*;

/// Lab and Lab/2025 exist; Lab/2025 and Gone (deleted since) are subscribed.
async fn folders(c: &mut Client) {
    for command in [
        "CREATE Lab",
        "CREATE Lab/2025",
        "CREATE Gone",
        "SUBSCRIBE Gone",
        "SUBSCRIBE Lab/2025",
        "SUBSCRIBE INBOX",
        "DELETE Gone",
    ] {
        let r = c.cmd(command).await;
        assert!(last(&r).contains(" OK "), "{command}: {r:?}");
    }
}

on_both_backends! {
#[tokio::test]
async fn list_extended_selection_and_return_options() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(r[0].contains(" LIST-EXTENDED LIST-STATUS "), "{r:?}");
    folders(&mut c).await;

    // Several patterns, one of them a literal; each folder once, in name order.
    let r = c.raw_cmd(b"LIST \"\" (\"INBOX\" Lab* {4+}\r\nSent INBOX)\r\n").await;
    assert_eq!(
        untagged_lines(&r),
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX",
            "* LIST (\\HasChildren) \"/\" Lab",
            "* LIST (\\HasNoChildren) \"/\" Lab/2025",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
        ]
    );
    assert!(last(&r).ends_with(" OK LIST completed\r\n"), "{r:?}");

    // SUBSCRIBED: the subscribed names, a deleted one as \NonExistent (the default
    // folders are subscribed too: the patterns leave them out).
    let r = c.cmd("LIST (SUBSCRIBED) \"\" (Gone INBOX Lab*)").await;
    assert_eq!(
        untagged_lines(&r),
        [
            "* LIST (\\NonExistent \\Subscribed) \"/\" Gone",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" Lab/2025",
        ]
    );
    // RECURSIVEMATCH: Lab is not subscribed, a child of it is.
    let r = c.cmd("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (G% I% L%)").await;
    assert_eq!(
        untagged_lines(&r),
        [
            "* LIST (\\NonExistent \\Subscribed) \"/\" Gone",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX",
            "* LIST (\\HasChildren) \"/\" Lab (\"CHILDINFO\" (\"SUBSCRIBED\"))",
        ]
    );
    // RETURN (SUBSCRIBED) marks; REMOTE changes nothing here.
    let r = c.cmd("LIST (REMOTE) \"\" \"L%\" RETURN (SUBSCRIBED CHILDREN)").await;
    assert_eq!(untagged_lines(&r), ["* LIST (\\HasChildren) \"/\" Lab"]);
    let r = c.cmd("LIST \"\" \"Lab/%\" RETURN (SUBSCRIBED)").await;
    assert_eq!(
        untagged_lines(&r),
        ["* LIST (\\HasNoChildren \\Subscribed) \"/\" Lab/2025"]
    );
    // SPECIAL-USE (RFC 6154): only the folders with a special use.
    let r = c.cmd("LIST (SPECIAL-USE) \"\" \"*\" RETURN (SPECIAL-USE)").await;
    assert_eq!(
        untagged_lines(&r),
        [
            "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
            "* LIST (\\HasNoChildren \\Junk) \"/\" Junk",
            "* LIST (\\HasNoChildren \\Sent) \"/\" Sent",
            "* LIST (\\HasNoChildren \\Trash) \"/\" Trash",
        ]
    );
    // Errors: RECURSIVEMATCH alone, unknown options.
    let r = c.cmd("LIST (RECURSIVEMATCH) \"\" \"*\"").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].ends_with(" BAD RECURSIVEMATCH needs another selection option\r\n"));
    let r = c.cmd("LIST (BOGUS) \"\" \"*\"").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].ends_with(" BAD syntax error\r\n"), "{r:?}");
    let r = c.cmd("LIST \"\" \"*\" RETURN (BOGUS)").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].ends_with(" BAD syntax error\r\n"), "{r:?}");
    // The base form is unchanged.
    let r = c.cmd("LIST \"\" \"Lab*\"").await;
    assert_eq!(
        untagged_lines(&r),
        [
            "* LIST (\\HasChildren) \"/\" Lab",
            "* LIST (\\HasNoChildren) \"/\" Lab/2025",
        ]
    );
    w.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn list_status_follows_each_selectable_folder() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    folders(&mut c).await;
    let message = "Subject: bilan\r\n\r\nTexte.\r\n";
    let r = c
        .raw_cmd(format!("APPEND Lab/2025 (\\Seen) {{{}+}}\r\n{message}\r\n", message.len()).as_bytes())
        .await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    let r = c.raw_cmd(format!("APPEND Lab/2025 {{{}+}}\r\n{message}\r\n", message.len()).as_bytes()).await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    c.cmd("DELETE Lab").await;

    // Lab is \Noselect now: no STATUS for it.
    let r = c
        .cmd("LIST \"\" (Lab* Gone) RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))")
        .await;
    assert_eq!(
        untagged_lines(&r),
        [
            "* LIST (\\HasChildren \\Noselect) \"/\" Lab",
            "* LIST (\\HasNoChildren) \"/\" Lab/2025",
            "* STATUS Lab/2025 (MESSAGES 2 UNSEEN 1 UIDNEXT 3)",
        ]
    );
    let r = c
        .cmd("LIST (SUBSCRIBED) \"\" (Gone INBOX Lab*) RETURN (STATUS (MESSAGES))")
        .await;
    assert_eq!(
        untagged_lines(&r),
        [
            "* LIST (\\NonExistent \\Subscribed) \"/\" Gone",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" INBOX",
            "* STATUS INBOX (MESSAGES 0)",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" Lab/2025",
            "* STATUS Lab/2025 (MESSAGES 2)",
        ]
    );
    // STATUS=SIZE (RFC 8438) is offered, in LIST-STATUS too.
    let r = c.cmd("LIST \"\" INBOX RETURN (STATUS (SIZE))").await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX\r\n",
            "* STATUS INBOX (SIZE 0)\r\n",
            "a14 OK LIST completed\r\n",
        ]
    );
    w.stop().await;
}
}
