//! The IMAP interface of the LPS API: implicit TLS and STARTTLS listeners, one task per
//! connection, a session state machine driven by imap-codec.
//!
//! Layout: `listener` accepts through `crate::net` (limits, TLS handshake), `connection`
//! turns bytes into complete messages (lines and literals) and responses into bytes,
//! `session` runs the command loop over the states of `state`, and the command families
//! live in `anystate`, `authenticate`, `authenticated` and `selected`, each given the
//! part of the state it works on; `view` is the selected folder as the session sees it;
//! `fetch`, `mime` and `search` do the message work; `ordered` answers SORT and THREAD
//! with the rules kept in `sort` and `thread`; `updates` keeps searches up to date
//! (RFC 5267 contexts) and `notify` tells of changes the client asked to hear of
//! (RFC 5465). `extended` reads the command syntax imap-codec does not
//! (RETURN options and `$`, LIST-EXTENDED, MULTIAPPEND, CATENATE, NOTIFY, IMAP4rev2's
//! UTF-8 quoted strings), before imap-codec
//! reads the rest; it knows nothing of the session, and `list_extended` and
//! `append_extended` run what it read.

mod anystate;
mod append_extended;
mod authenticate;
mod authenticated;
mod binary;
mod capabilities;
mod connection;
mod extended;
mod fetch;
mod list_extended;
mod listener;
mod mime;
mod names;
mod notify;
mod ordered;
mod quota;
mod revocation;
mod search;
mod selected;
mod sequence;
mod session;
mod sort;
mod state;
mod text;
mod thread;
mod updates;
mod view;
mod watch;

use tokio_util::sync::CancellationToken;

use crate::context::Context;

pub use listener::Listening;
#[cfg(feature = "fuzzing")]
pub(crate) use listener::serve_memory;
pub(crate) use listener::start;
#[cfg(feature = "fuzzing")]
pub(crate) use mime::fuzz_structure;

/// What every IMAP session shares.
pub(crate) struct Shared {
    pub(crate) context: Context,
    /// Fired at shutdown: sessions say `* BYE` and close.
    pub(crate) shutdown: CancellationToken,
}
