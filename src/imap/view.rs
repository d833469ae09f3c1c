//! The selected folder as one session sees it: its own UID list (sequence numbers are
//! positions in it), how far changes have been reported, and the keywords the client
//! was told of.

use std::collections::{BTreeSet, HashMap};

use imap_codec::imap_types::core::Atom;
use imap_codec::imap_types::flag::{Flag, FlagPerm};
use imap_codec::imap_types::response::{Code, Data, Response};

use super::text;
use crate::store::{Flags, Folder};

pub(crate) struct View {
    pub(crate) folder: Folder,
    pub(crate) read_only: bool,
    pub(crate) uids: Vec<u32>,
    /// Changes up to this MODSEQ have been reported (flags, new messages).
    pub(crate) known_modseq: u64,
    /// Expunges up to this MODSEQ have been reported.
    pub(crate) expunged_modseq: u64,
    /// Flag changes this session made and already reported: (uid → modseq).
    pub(crate) reported: HashMap<u32, u64>,
    /// Something may have changed since the last sync.
    pub(crate) dirty: bool,
    /// The UIDs that are \Recent in this session (RFC 3501 §2.3.2).
    pub(crate) recent: BTreeSet<u32>,
    /// The keywords the client was told of in `FLAGS`: a keyword missing there is
    /// dropped or warned about by clients (RFC 3501 §7.2.6).
    pub(crate) keywords: BTreeSet<String>,
    /// The UIDs a `SAVE` kept for `$` (RFC 5182), ascending. Kept as UIDs so that it
    /// still names the same messages after others are expunged; a new View (SELECT,
    /// EXAMINE) starts it empty, as does leaving the folder.
    pub(crate) saved: Vec<u32>,
    /// The searches kept updated (RFC 5267 §4.3), which die with the view.
    pub(crate) contexts: Vec<super::updates::Context>,
}

impl View {
    pub(crate) fn new(
        folder: Folder,
        read_only: bool,
        uids: Vec<u32>,
        recent_from: u32,
        keywords: BTreeSet<String>,
    ) -> Self {
        let modseq = folder.highestmodseq;
        let recent = uids.iter().copied().filter(|u| *u >= recent_from).collect();
        View {
            folder,
            read_only,
            uids,
            known_modseq: modseq,
            expunged_modseq: modseq,
            reported: HashMap::new(),
            dirty: false,
            recent,
            keywords,
            saved: Vec::new(),
            contexts: Vec::new(),
        }
    }

    /// Whether this session's own write, which took MODSEQs `first` onwards, is the only
    /// change to the folder since the view was brought up to date, so that the session
    /// can report it from what the write returned, without reading the folder again.
    ///
    /// Every change to a folder, on any node, takes the next MODSEQ under the folder's
    /// lock and commits before the next one is taken: a write that took the MODSEQ
    /// right after the last one read had no other change before it. Changes after it
    /// are heard as usual (`Subscription::take`). Expunges not yet reported, and
    /// searches kept updated, need the read.
    pub(crate) fn only_own_change(&self, first: u64) -> bool {
        first == self.known_modseq.saturating_add(1)
            && self.expunged_modseq == self.known_modseq
            && self.contexts.is_empty()
    }

    /// The view has caught up to `modseq` through the session's own write (see
    /// `only_own_change`).
    pub(crate) fn caught_up(&mut self, modseq: u64) {
        self.known_modseq = modseq;
        self.expunged_modseq = modseq;
        self.reported.clear();
    }

    /// Adds the keywords of `flags` the client has not been told of; true when any was
    /// new, and `FLAGS` must then be announced again before the message's flags.
    pub(crate) fn learn_keywords(&mut self, flags: &Flags) -> bool {
        let mut learnt = false;
        for k in &flags.keywords {
            if !self.keywords.contains(k) {
                self.keywords.insert(k.clone());
                learnt = true;
            }
        }
        learnt
    }

    /// `* FLAGS (…)` and `* OK [PERMANENTFLAGS (…)]`: the system flags, every keyword in
    /// use, and `\*` (any new keyword may be stored) unless the folder is read-only.
    pub(crate) fn flags_announcement(&self) -> [Response<'static>; 2] {
        let mut flags = vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        flags.extend(
            self.keywords
                .iter()
                .filter_map(|k| Atom::try_from(k.clone()).ok())
                .map(Flag::Keyword),
        );
        let permanent = if self.read_only {
            Vec::new()
        } else {
            let mut p: Vec<FlagPerm<'static>> = flags.iter().cloned().map(FlagPerm::Flag).collect();
            p.push(FlagPerm::Asterisk);
            p
        };
        [
            text::data(Data::Flags(flags)),
            text::untagged_ok(Some(Code::PermanentFlags(permanent)), "flags permitted"),
        ]
    }
}
