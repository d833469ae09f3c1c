//! The IMAP interface of the LPS API: implicit TLS and STARTTLS listeners, one task per
//! connection, a session state machine driven by imap-codec.
//!
//! Layout: `listener` accepts and applies the connection limits of `crate::net`, `connection` turns bytes into
//! complete messages (lines and literals) and responses into bytes, `session` holds the
//! state machine, and the command families live in `anystate`, `authenticate`,
//! `authenticated` and `selected`; `fetch`, `mime` and `search` do the message work;
//! `ordered` answers SORT and THREAD with the rules kept in `sort` and `thread`.

mod anystate;
mod authenticate;
mod authenticated;
mod capabilities;
mod connection;
mod fetch;
mod listener;
mod mime;
mod names;
mod ordered;
mod quota;
mod revocation;
mod search;
mod selected;
mod sequence;
mod session;
mod sort;
mod text;
mod thread;

#[cfg(feature = "fuzzing")]
pub(crate) use listener::serve_memory;
pub use listener::{Listening, start};
#[cfg(feature = "fuzzing")]
pub(crate) use mime::fuzz_structure;
