//! The command forms imap-codec does not read, parsed by our own reader from the
//! complete message bytes before imap-codec sees them. A command this module does not
//! claim (every base form) goes to imap-codec unchanged, so its answers stay as they were.

pub(crate) mod append;
pub(crate) mod list;
pub(crate) mod reader;
pub(crate) mod url;

use imap_codec::imap_types::core::Tag;

use super::connection::ConnError;
use super::session::Session;
use super::state::State;
use reader::Reader;

/// A command read here, with its tag.
pub(crate) struct Parsed {
    pub(crate) tag: Tag<'static>,
    pub(crate) command: Extended,
}

pub(crate) enum Extended {
    /// LIST-EXTENDED and LIST-STATUS (RFC 5258, 5819).
    List(list::ListCommand),
    /// MULTIAPPEND and CATENATE (RFC 3502, 4469).
    Append(append::AppendCommand),
}

/// The command in `message` if it is one of the forms read here; `None` hands it to
/// imap-codec (which answers `BAD` if it is malformed).
pub(crate) fn parse(message: &[u8]) -> Option<Parsed> {
    let mut r = Reader::new(message);
    let tag = Tag::try_from(String::from_utf8(r.tag().ok()?.to_vec()).ok()?).ok()?;
    r.sp().ok()?;
    let command = if r.keyword("LIST") {
        list::parse(&mut r).ok()?.map(Extended::List)?
    } else if r.keyword("APPEND") {
        append::parse(&mut r).ok()?.map(Extended::Append)?
    } else {
        return None;
    };
    Some(Parsed { tag, command })
}

impl Session {
    /// Runs a command `parse` read, in the authenticated states only.
    pub(crate) async fn extended(
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
                Extended::List(c) => self.list_extended(&parsed.tag, user, c).await?,
                Extended::Append(c) => self.append_extended(&parsed.tag, user, view, c).await?,
            },
        };
        self.apply(state, transition);
        Ok(())
    }
}
