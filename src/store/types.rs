//! What the store hands out and takes in.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

pub(crate) fn from_unix(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0).single().unwrap_or_default()
}

/// The three kinds of MSSanté mailbox (BAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    /// One professional, identified by IdNat (PER).
    Personal,
    /// A service: secretariat, ward (ORG).
    Organisational,
    /// Software: a lab system (APP).
    Applicative,
}

impl MailboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxKind::Personal => "personal",
            MailboxKind::Organisational => "organisational",
            MailboxKind::Applicative => "applicative",
        }
    }

    /// The directory's code for this kind.
    pub fn directory_code(self) -> &'static str {
        match self {
            MailboxKind::Personal => "PER",
            MailboxKind::Organisational => "ORG",
            MailboxKind::Applicative => "APP",
        }
    }
}

impl fmt::Display for MailboxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MailboxKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "personal" | "per" => Ok(MailboxKind::Personal),
            "organisational" | "organizational" | "org" => Ok(MailboxKind::Organisational),
            "applicative" | "app" => Ok(MailboxKind::Applicative),
            other => Err(format!(
                "unknown mailbox kind `{other}` (personal, organisational or applicative)"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Mailbox {
    #[serde(skip)]
    pub id: i64,
    pub address: String,
    pub kind: MailboxKind,
    pub owner: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_authenticated_at: Option<DateTime<Utc>>,
    pub published: bool,
    pub unpublished_at: Option<DateTime<Utc>>,
    pub hold: bool,
    pub deletion_warned_at: Option<DateTime<Utc>>,
    pub red_list: bool,
    pub directory: DirectoryFields,
}

/// What the Annuaire Santé shows for a published mailbox.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DirectoryFields {
    pub description: Option<String>,
    pub responsible: Option<String>,
    pub service: Option<String>,
    pub telephone: Option<String>,
    pub dematerialisation: bool,
    pub contact_address: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewMailbox {
    pub address: String,
    pub kind: MailboxKind,
    pub owner: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub red_list: bool,
    pub directory: DirectoryFields,
}

impl NewMailbox {
    /// A mailbox with no display name, off the red list and without directory details;
    /// struct update syntax sets what differs.
    pub fn new(
        address: impl Into<String>,
        kind: MailboxKind,
        owner: Option<String>,
        created_at: DateTime<Utc>,
    ) -> Self {
        NewMailbox {
            address: address.into(),
            kind,
            owner,
            display_name: None,
            created_at,
            red_list: false,
            directory: DirectoryFields::default(),
        }
    }
}

/// Who, besides a personal mailbox's owner, may open a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Grant {
    /// A professional (organisational mailboxes).
    Idnat { idnat: String },
    /// Any certificate with this subject from this issuer: survives renewal.
    CertificateSubject { subject: String, issuer: String },
    /// Exactly one certificate, by SHA-256 fingerprint (hex).
    CertificatePin { fingerprint: String },
}

/// The special-use folders every mailbox gets (RFC 6154).
pub const DEFAULT_FOLDERS: &[(&str, Option<&str>)] = &[
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub id: i64,
    pub mailbox_id: i64,
    pub name: String,
    pub special_use: Option<String>,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// The first UID no session has been told of as \Recent.
    pub recent_from: u32,
    /// Deleted while it had children: a name without messages that cannot be selected.
    pub noselect: bool,
}

/// What SELECT shows of a folder, all read at one moment: the UIDs are those of the
/// folder's HIGHESTMODSEQ, which the session then counts its changes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSnapshot {
    pub folder: Folder,
    /// Every UID, ascending.
    pub uids: Vec<u32>,
    /// The lowest UID without \Seen (`[UNSEEN n]`).
    pub first_unseen: Option<u32>,
    /// Every keyword set on a message of the folder, for `FLAGS`.
    pub keywords: BTreeSet<String>,
}

/// What a session needs to catch up with a folder, all read at one moment: nothing
/// in `vanished` or `changed` is newer than `folder.highestmodseq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChanges {
    pub folder: Folder,
    /// UIDs expunged after the MODSEQ asked for, ascending (empty when not asked).
    pub vanished: Vec<u32>,
    /// Messages new or changed after the session's MODSEQ, by UID.
    pub changed: Vec<MessageMeta>,
}

impl FolderSnapshot {
    /// From the columns both backends read: the UIDs, the lowest without \Seen, and the
    /// messages' distinct keyword lists.
    pub(crate) fn from_columns(
        folder: Folder,
        uids: Vec<i64>,
        first_unseen: Option<i64>,
        keyword_lists: &[String],
    ) -> Result<Self, super::error::StoreError> {
        Ok(FolderSnapshot {
            folder,
            uids: uids_from(uids)?,
            first_unseen: first_unseen
                .map(|u| super::error::stored(u, "first unseen uid"))
                .transpose()?,
            keywords: keyword_lists
                .iter()
                .flat_map(|l| l.split(' '))
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// UIDs as read from a BIGINT column, written from `u32`: one out of range is a corrupt
/// store, not a UID to leave out (a session's sequence numbers would shift silently).
pub(crate) fn uids_from(column: Vec<i64>) -> Result<Vec<u32>, super::error::StoreError> {
    column
        .into_iter()
        .map(|u| super::error::stored(u, "uid"))
        .collect()
}

/// Per-folder counters for STATUS and SELECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderCounts {
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub size: u64,
    /// Bytes an EXPUNGE would free (DELETED-STORAGE, which RFC 9208 asks of a server
    /// announcing QUOTA=RES-STORAGE).
    pub deleted_size: u64,
    /// Messages no session has been told of as \Recent yet.
    pub recent: u32,
}

/// IMAP system flags, stored as bits.
pub mod flag {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
    pub const ALL: u8 = 31;
}

/// A message's flags: the system bits and any keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub system: u8,
    pub keywords: BTreeSet<String>,
}

impl Flags {
    pub fn new(system: u8) -> Self {
        Flags {
            system: system & flag::ALL,
            keywords: BTreeSet::new(),
        }
    }

    pub fn has(&self, bit: u8) -> bool {
        self.system & bit != 0
    }

    pub(crate) fn keywords_text(&self) -> String {
        self.keywords.iter().cloned().collect::<Vec<_>>().join(" ")
    }

    pub(crate) fn from_columns(system: i64, keywords: &str) -> Self {
        Flags {
            system: u8::try_from(system & i64::from(flag::ALL)).unwrap_or(0),
            keywords: keywords.split_whitespace().map(str::to_owned).collect(),
        }
    }

    /// Applies a STORE operation and says whether anything changed.
    pub fn apply(&mut self, op: FlagOp, with: &Flags) -> bool {
        let before = self.clone();
        match op {
            FlagOp::Add => {
                self.system |= with.system;
                self.keywords.extend(with.keywords.iter().cloned());
            }
            FlagOp::Remove => {
                self.system &= !with.system;
                self.keywords.retain(|k| !with.keywords.contains(k));
            }
            FlagOp::Replace => *self = with.clone(),
        }
        *self != before
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// A message as listed in a folder, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub modseq: u64,
    pub flags: Flags,
    pub internal_date: DateTime<Utc>,
    pub size: u32,
    pub body_id: i64,
}

/// One message of an APPEND that carries several (MULTIAPPEND, RFC 3502).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message: Vec<u8>,
    pub flags: Flags,
    pub internal_date: DateTime<Utc>,
}

/// What APPEND and delivery tell the client (UIDPLUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub folder_id: i64,
    pub uidvalidity: u32,
    pub uid: u32,
    pub modseq: u64,
}

/// What a STORE changed, and what it refused under UNCHANGEDSINCE (CONDSTORE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    pub changed: Vec<(u32, u64, Flags)>,
    pub modified: Vec<u32>,
}

/// What an EXPUNGE removed, by UID ascending, and the MODSEQ it took (0 when nothing
/// went and nothing changed): the session that expunged reports it without reading the
/// folder again when that MODSEQ follows the last it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expunged {
    pub uids: Vec<u32>,
    pub modseq: u64,
}

/// UIDs copied or moved: (source UID, destination UID), for COPYUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub uidvalidity: u32,
    pub pairs: Vec<(u32, u32)>,
}

/// What SORT and THREAD need of a message's header (RFC 5256, RFC 5957), computed once
/// per body: strings are already in the form they are compared in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortKeys {
    /// Unix seconds UTC from `Date:`; `None` when it cannot be read.
    pub sent: Option<i64>,
    /// The base subject, upper-cased.
    pub subject: String,
    /// The subject had a reply or forward marker.
    pub reply: bool,
    pub from_mailbox: String,
    pub to_mailbox: String,
    pub cc_mailbox: String,
    pub display_from: String,
    pub display_to: String,
    pub message_id: Option<String>,
    /// References, or else In-Reply-To, oldest first.
    pub references: Vec<String>,
}

/// The [`SortKeys`] fields a SORT or THREAD compares. Those not wanted come back empty
/// and are not read: a SORT by date over 100,000 messages need not copy a million
/// strings it never looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SortFields {
    pub sent: bool,
    pub subject: bool,
    pub from_mailbox: bool,
    pub to_mailbox: bool,
    pub cc_mailbox: bool,
    pub display_from: bool,
    pub display_to: bool,
    /// `reply`, `message_id` and `references`: what THREAD reads besides.
    pub threading: bool,
}

impl SortFields {
    pub const ALL: SortFields = SortFields {
        sent: true,
        subject: true,
        from_mailbox: true,
        to_mailbox: true,
        cc_mailbox: true,
        display_from: true,
        display_to: true,
        threading: true,
    };

    /// The columns of `sort_keys k` in [`SortKeys`] order, a field not wanted read as an
    /// empty constant; `no` is the backend's false.
    pub(crate) fn columns(&self, no: &str, no_time: &str, no_text: &str) -> String {
        let pick = |wanted: bool, column: &str, empty: &str| {
            if wanted {
                format!("k.{column} AS {column}")
            } else {
                format!("{empty} AS {column}")
            }
        };
        [
            pick(self.sent, "sent", no_time),
            pick(self.subject, "subject", "''"),
            pick(self.threading, "reply", no),
            pick(self.from_mailbox, "from_mailbox", "''"),
            pick(self.to_mailbox, "to_mailbox", "''"),
            pick(self.cc_mailbox, "cc_mailbox", "''"),
            pick(self.display_from, "display_from", "''"),
            pick(self.display_to, "display_to", "''"),
            pick(self.threading, "message_id", no_text),
            pick(self.threading, "refs", "''"),
        ]
        .join(", ")
    }
}

/// A raw message split where its header section ends.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub header: Vec<u8>,
    pub content: Vec<u8>,
    pub sha256: [u8; 32],
    /// What the body text index keeps of it, written with the body: computed here, by
    /// whoever hands the message in, so the store's single writer does not parse.
    pub search: super::search_text::SearchText,
    /// Its ENVELOPE, BODY and BODYSTRUCTURE, written with the body, from the same parse.
    pub structure: Box<crate::structure::Structure>,
}

impl RawMessage {
    pub fn new(bytes: &[u8]) -> Self {
        use sha2::Digest;
        let split = header_end(bytes);
        let parsed = mail_parser::MessageParser::default().parse(bytes);
        RawMessage {
            header: bytes[..split].to_vec(),
            content: bytes[split..].to_vec(),
            sha256: sha2::Sha256::digest(bytes).into(),
            search: super::search_text::SearchText::of_parsed(bytes, parsed.as_ref()),
            structure: Box::new(crate::structure::Structure::of(parsed.as_ref())),
        }
    }

    pub fn len(&self) -> usize {
        self.header.len() + self.content.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Offset just past the blank line that ends the header section (or the whole input).
pub fn header_end(bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            match bytes.get(i + 1) {
                Some(b'\n') => return i + 2,
                Some(b'\r') if bytes.get(i + 2) == Some(&b'\n') => return i + 3,
                _ => {}
            }
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_split() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: b\n\nbody"), 6);
        assert_eq!(header_end(b"A: b\r\nC: d"), 10);
        assert_eq!(header_end(b"\r\n\r\n"), 4);
        assert_eq!(header_end(b""), 0);
    }

    #[test]
    fn flag_ops() {
        let mut f = Flags::new(flag::SEEN);
        let mut add = Flags::new(flag::FLAGGED);
        add.keywords.insert("$Label1".into());
        assert!(f.apply(FlagOp::Add, &add));
        assert!(f.has(flag::SEEN) && f.has(flag::FLAGGED));
        assert!(!f.apply(FlagOp::Add, &add));
        assert!(f.apply(FlagOp::Remove, &Flags::new(flag::SEEN)));
        assert_eq!(f.keywords_text(), "$Label1");
        assert!(f.apply(FlagOp::Replace, &Flags::default()));
        assert_eq!(f, Flags::default());
    }
}
