//! Command syntax imap-codec does not read, read here first from the bytes of a complete
//! message (lines and literals).
//!
//! `search` takes out what imap-codec cannot parse (`RETURN (…)`, `$`) and hands the rest
//! to imap-codec as a command it knows, so search keys and fetch items stay imap-codec's;
//! `list`, `append` and `notify` read the LIST-EXTENDED, MULTIAPPEND, CATENATE and NOTIFY
//! forms whole with our own `reader`. `utf8` turns an IMAP4rev2 session's 8-bit quoted
//! strings into literals first, so that every reader takes them. A message no submodule
//! claims (every base form) goes to imap-codec
//! untouched, so its answers stay as they were.

pub(crate) mod append;
pub(crate) mod list;
pub(crate) mod notify;
pub(crate) mod reader;
pub(crate) mod search;
pub(crate) mod url;
pub(crate) mod utf8;

use imap_codec::imap_types::core::Tag;

use reader::Reader;
pub(crate) use search::Selection;

/// A message one of the submodules recognised.
pub(crate) enum Extended {
    Search(search::Extended),
    /// A folder command read whole here, with its tag.
    Folder(Parsed),
}

/// A folder command read here, with its tag.
pub(crate) struct Parsed {
    pub(crate) tag: Tag<'static>,
    pub(crate) command: FolderCommand,
}

pub(crate) enum FolderCommand {
    /// LIST-EXTENDED and LIST-STATUS (RFC 5258, 5819).
    List(list::ListCommand),
    /// MULTIAPPEND and CATENATE (RFC 3502, 4469).
    Append(append::AppendCommand),
    /// NOTIFY (RFC 5465), or why it is refused.
    Notify(Result<notify::NotifyCommand, notify::Refusal>),
}

/// Reads `bytes` (one complete message) when a submodule recognises it; `None` leaves it
/// to imap-codec as it is (which answers `BAD` if it is malformed).
pub(crate) fn decode(bytes: &[u8], selection: Option<Selection<'_>>) -> Option<Extended> {
    search::decode(bytes, selection)
        .map(Extended::Search)
        .or_else(|| parse(bytes).map(Extended::Folder))
}

fn parse(message: &[u8]) -> Option<Parsed> {
    let mut r = Reader::new(message);
    let tag = Tag::try_from(String::from_utf8(r.tag().ok()?.to_vec()).ok()?).ok()?;
    r.sp().ok()?;
    let command = if r.keyword("LIST") {
        list::parse(&mut r).ok()?.map(FolderCommand::List)?
    } else if r.keyword("APPEND") {
        append::parse(&mut r).ok()?.map(FolderCommand::Append)?
    } else if r.keyword("NOTIFY") {
        FolderCommand::Notify(notify::parse(&mut r).ok()?)
    } else {
        return None;
    };
    Some(Parsed { tag, command })
}
