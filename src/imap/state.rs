//! The session's states as types. `NotAuthenticated → Authenticated → Selected ⇄
//! Authenticated → Logout`: the command loop (`session`) keeps the `State` and hands
//! each command family the part it works on (a `User`, and the `View` once a folder is
//! selected), so a command cannot run on a state it does not belong to.

use super::view::View;
use crate::auth::AccessEpoch;
use crate::auth::epoch::POLL_INTERVAL;
use crate::store::Subscription;

/// An authenticated user: the one mailbox (BAL) this session may open, and what the
/// client turned on with ENABLE.
pub(crate) struct User {
    pub(crate) auth: crate::auth::Authenticated,
    pub(crate) condstore: bool,
    pub(crate) qresync: bool,
    pub(crate) changes: Subscription,
    pub(crate) access: AccessWatch,
    /// What NOTIFY asked to hear of, while it is on (RFC 5465).
    pub(crate) notify: Option<Box<super::watch::Watch>>,
    /// Counts this session in `sessions_authenticated` while it lives.
    pub(crate) _counted: crate::metrics::ConnectionGuard,
}

/// A folder is selected: the user, and the folder as this session sees it.
pub(crate) struct Selected {
    pub(crate) user: User,
    pub(crate) view: Box<View>,
}

pub(crate) enum State {
    NotAuthenticated,
    Authenticated(User),
    Selected(Selected),
    Logout,
}

impl State {
    /// Who is logged in, in either authenticated state.
    pub(crate) fn user(&self) -> Option<&User> {
        match self {
            State::Authenticated(u) => Some(u),
            State::Selected(s) => Some(&s.user),
            _ => None,
        }
    }

    pub(crate) fn user_mut(&mut self) -> Option<&mut User> {
        match self {
            State::Authenticated(u) => Some(u),
            State::Selected(s) => Some(&mut s.user),
            _ => None,
        }
    }
}

/// A state change a command asks for; `Session::apply` refuses the illegal ones.
pub(crate) enum Transition {
    None,
    /// With the store's access counter as read before the access decision.
    Authenticate(Box<crate::auth::Authenticated>, Option<i64>),
    Select(Box<View>),
    Unselect,
    Logout,
}

/// What the session last knew about the store's access counter.
pub(crate) struct AccessWatch {
    /// The counter as read before the access decision this session relies on; `None`
    /// when it had not been read, so the first reading decides again.
    epoch: Option<i64>,
}

impl AccessWatch {
    pub(crate) fn new(epoch: Option<i64>) -> Self {
        AccessWatch { epoch }
    }

    /// Whether the counter moved past the session's decision: the decision is due.
    pub(crate) fn due(&self, watch: &AccessEpoch) -> bool {
        matches!(watch.current(), Some(now) if self.epoch != Some(now))
    }
}

/// Resolves when a waiting session (IDLE, or NOTIFY between commands) should decide its
/// access again: a second from now when a decision is already `due` (the last one could
/// not read the store), else when `watch` moves.
pub(crate) async fn check_due(due: bool, watch: &mut AccessEpoch) {
    if due {
        tokio::time::sleep(POLL_INTERVAL).await
    } else {
        watch.moved().await
    }
}
