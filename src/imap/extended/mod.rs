//! Command syntax imap-codec does not read, read here first.
//!
//! Each submodule recognises its own commands in the bytes of a complete message (lines
//! and literals), takes out what imap-codec cannot parse, and hands the rest to
//! imap-codec as a command it knows, so the parsing of everything else (search keys,
//! fetch items, mailbox names, literals) stays imap-codec's. A message no submodule
//! recognises goes to imap-codec untouched.

pub(crate) mod search;

use super::state::State;

/// A message one of the submodules recognised.
pub(crate) enum Extended {
    Search(search::Extended),
}

/// Reads `bytes` (one complete message) when a submodule recognises it; `None` leaves it
/// to imap-codec as it is.
pub(crate) fn decode(bytes: &[u8], state: &State) -> Option<Extended> {
    search::decode(bytes, state).map(Extended::Search)
}

impl super::session::Session {
    /// Runs a message [`decode`] recognised.
    pub(crate) async fn extended(
        &mut self,
        state: &mut State,
        extended: Extended,
    ) -> Result<(), super::connection::ConnError> {
        match extended {
            Extended::Search(e) => self.extended_search(state, e).await,
        }
    }
}
