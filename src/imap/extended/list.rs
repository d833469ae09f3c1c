//! LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and the SPECIAL-USE options
//! (RFC 6154): selection options, several patterns, return options.
//!
//! Only the extended forms are read here; a base `LIST ref pattern` stays with
//! imap-codec and `authenticated::list`, so its answers do not change.

use imap_codec::imap_types::status::StatusDataItemName;

use super::reader::{Parse, Reader, Syntax};

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListCommand {
    /// Selection option SUBSCRIBED.
    pub(crate) subscribed: bool,
    /// Selection option RECURSIVEMATCH.
    pub(crate) recursive: bool,
    /// Selection option SPECIAL-USE (RFC 6154): only folders with a special use.
    pub(crate) special_use: bool,
    pub(crate) reference: String,
    pub(crate) patterns: Vec<String>,
    /// Return option SUBSCRIBED (implied by the selection option).
    pub(crate) return_subscribed: bool,
    /// Return option STATUS (RFC 5819).
    pub(crate) status: Option<Vec<StatusDataItemName>>,
}

/// Reads what follows `LIST`; `Ok(None)` for the base form, which imap-codec reads.
pub(crate) fn parse(r: &mut Reader<'_>) -> Parse<Option<ListCommand>> {
    let mut c = ListCommand::default();
    let mut extended = false;
    r.sp()?;
    if r.peek() == Some(b'(') {
        extended = true;
        for option in r.list(true, |r| r.atom().map(<[u8]>::to_ascii_uppercase))? {
            match option.as_slice() {
                b"SUBSCRIBED" => c.subscribed = true,
                b"RECURSIVEMATCH" => c.recursive = true,
                b"SPECIAL-USE" => c.special_use = true,
                // No remote folders here: REMOTE lists what a local LIST lists.
                b"REMOTE" => {}
                _ => return Err(Syntax),
            }
        }
        r.sp()?;
    }
    let reference = r.astring()?;
    c.reference = super::reader::folder_name(&reference)
        .filter(|_| !reference.is_empty())
        .unwrap_or_default();
    r.sp()?;
    let patterns = if r.peek() == Some(b'(') {
        extended = true;
        r.list(false, |r| r.list_mailbox().map(|p| p.into_owned()))?
    } else {
        vec![r.list_mailbox()?.into_owned()]
    };
    c.patterns = patterns
        .iter()
        .map(|p| String::from_utf8(p.clone()).map_err(|_| Syntax))
        .collect::<Parse<_>>()?;
    if !r.at_end() {
        extended = true;
        r.sp()?;
        if !r.keyword("RETURN") {
            return Err(Syntax);
        }
        r.sp()?;
        r.list(true, |r| return_option(r, &mut c))?;
    }
    r.end()?;
    if c.subscribed {
        c.return_subscribed = true;
    }
    Ok(extended.then_some(c))
}

fn return_option(r: &mut Reader<'_>, c: &mut ListCommand) -> Parse<()> {
    let name = r.atom()?.to_ascii_uppercase();
    match name.as_slice() {
        b"SUBSCRIBED" => c.return_subscribed = true,
        // Children and special uses are always given (CHILDREN, SPECIAL-USE).
        b"CHILDREN" | b"SPECIAL-USE" => {}
        b"STATUS" => {
            r.sp()?;
            c.status = Some(r.list(false, status_item)?);
        }
        _ => return Err(Syntax),
    }
    Ok(())
}

/// A STATUS item the STATUS command takes (RFC 3501, 7162, 8438, 9208).
fn status_item(r: &mut Reader<'_>) -> Parse<StatusDataItemName> {
    Ok(match r.atom()?.to_ascii_uppercase().as_slice() {
        b"MESSAGES" => StatusDataItemName::Messages,
        b"RECENT" => StatusDataItemName::Recent,
        b"UIDNEXT" => StatusDataItemName::UidNext,
        b"UIDVALIDITY" => StatusDataItemName::UidValidity,
        b"UNSEEN" => StatusDataItemName::Unseen,
        b"DELETED" => StatusDataItemName::Deleted,
        b"DELETED-STORAGE" => StatusDataItemName::DeletedStorage,
        b"HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
        b"SIZE" => StatusDataItemName::Size,
        _ => return Err(Syntax),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn parsed(line: &str) -> Option<ListCommand> {
        let mut r = Reader::new(line.as_bytes());
        r.keyword("LIST").then_some(())?;
        parse(&mut r).ok()?
    }

    #[test]
    fn base_forms_stay_with_imap_codec() {
        let mut r = Reader::new(b"LIST \"\" \"*\"\r\n");
        assert!(r.keyword("LIST"));
        assert_eq!(parse(&mut r), Ok(None));
        let mut r = Reader::new(b"LIST \"\" %\r\n");
        assert!(r.keyword("LIST"));
        assert_eq!(parse(&mut r), Ok(None));
    }

    #[test]
    fn reads_options_patterns_and_status() {
        let c = parsed(
            "LIST (SUBSCRIBED RECURSIVEMATCH remote) \"\" (\"INBOX\" Sent* {3}\r\na/%) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
        )
        .unwrap();
        assert!(c.subscribed && c.recursive && c.return_subscribed);
        assert_eq!(c.patterns, ["INBOX", "Sent*", "a/%"]);
        assert_eq!(
            c.status,
            Some(vec![
                StatusDataItemName::Messages,
                StatusDataItemName::Unseen
            ])
        );
        assert!(parsed("LIST () \"\" \"*\"\r\n").is_some());
        assert!(parsed("LIST \"\" \"*\" RETURN ()\r\n").is_some());
    }

    #[test]
    fn refuses_unknown_options() {
        assert!(parsed("LIST (FOO) \"\" \"*\"\r\n").is_none());
        assert!(parsed("LIST \"\" \"*\" RETURN (FOO)\r\n").is_none());
        assert!(parsed("LIST \"\" \"*\" RETURN (STATUS (SIZES))\r\n").is_none());
        assert!(parsed("LIST \"\" () \r\n").is_none());
        assert!(parsed("LIST \"\" \"*\" RETURN (CHILDREN)junk\r\n").is_none());
    }
}
