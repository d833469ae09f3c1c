//! Command syntax imap-codec does not read, read here first from the bytes of a complete
//! message (lines and literals).
//!
//! `search` takes out what imap-codec cannot parse (`RETURN (…)`, `$`) and hands the rest
//! to imap-codec as a command it knows, so search keys and fetch items stay imap-codec's;
//! `list` and `append` read the LIST-EXTENDED, MULTIAPPEND and CATENATE forms whole with
//! our own `reader`. A message no submodule claims (every base form) goes to imap-codec
//! untouched, so its answers stay as they were.

pub(crate) mod append;
pub(crate) mod list;
pub(crate) mod reader;
pub(crate) mod search;
pub(crate) mod url;

use imap_codec::imap_types::core::Tag;

use super::connection::ConnError;
use super::session::Session;
use super::state::State;
use reader::Reader;

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
}

/// Reads `bytes` (one complete message) when a submodule recognises it; `None` leaves it
/// to imap-codec as it is (which answers `BAD` if it is malformed).
pub(crate) fn decode(bytes: &[u8], state: &State) -> Option<Extended> {
    search::decode(bytes, state)
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
    } else {
        return None;
    };
    Some(Parsed { tag, command })
}

impl Session {
    /// Runs a message [`decode`] recognised.
    pub(crate) async fn extended(
        &mut self,
        state: &mut State,
        extended: Extended,
    ) -> Result<(), ConnError> {
        match extended {
            Extended::Search(e) => self.extended_search(state, e).await,
            Extended::Folder(parsed) => self.extended_folder(state, parsed).await,
        }
    }

    /// Runs a folder command read here, in the authenticated states only.
    async fn extended_folder(
        &mut self,
        state: &mut State,
        parsed: Parsed,
    ) -> Result<(), ConnError> {
        if let Some(user) = state.user_mut()
            && !self.access_still_granted(user).await?
        {
            *state = State::Logout;
            return Ok(());
        }
        let (user, mut view) = match state {
            State::Authenticated(user) => (user, None),
            State::Selected(s) => (&mut s.user, Some(&mut *s.view)),
            State::NotAuthenticated | State::Logout => {
                self.bad(&parsed.tag, "authenticate first").await?;
                return Ok(());
            }
        };
        let transition = match self.sync_selected(user, view.as_deref_mut(), true).await? {
            Some(t) => t,
            None => match parsed.command {
                FolderCommand::List(c) => self.list_extended(&parsed.tag, user, c).await?,
                FolderCommand::Append(c) => {
                    self.append_extended(&parsed.tag, user, view, c).await?
                }
            },
        };
        self.apply(state, transition);
        Ok(())
    }
}
