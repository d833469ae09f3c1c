//! What the server announces, which depends on where the session stands.

use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::{Atom, Vec1};
use imap_codec::imap_types::extensions::quota::Resource;
use imap_codec::imap_types::extensions::sort::SortAlgorithm;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::response::Capability;

/// Where the session stands, as far as capabilities go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// STARTTLS port before the handshake: nothing but STARTTLS.
    Clear,
    /// TLS, not authenticated; `certificate` when the client presented one.
    Tls {
        certificate: bool,
    },
    Authenticated,
}

fn other(name: &'static str) -> Option<Capability<'static>> {
    Atom::try_from(name).ok().map(Capability::from)
}

fn mechanism(name: &'static str) -> Option<Capability<'static>> {
    Atom::try_from(name)
        .ok()
        .map(|a| Capability::Auth(AuthMechanism::from(a)))
}

/// The extensions served once TLS is up; `append_limit` is the largest message APPEND
/// takes (RFC 7889), so clients can refuse a too large message before uploading it.
fn extensions(append_limit: u32) -> Vec<Capability<'static>> {
    let mut caps = vec![
        Capability::Idle,
        Capability::UidPlus,
        Capability::Move,
        Capability::Namespace,
        Capability::Id,
        Capability::Enable,
        Capability::Unselect,
        Capability::LiteralPlus,
        Capability::Binary,
        Capability::CondStore,
        Capability::QResync,
        Capability::Within,
        // RFC 9208; not QUOTASET: limits are the operator's to set.
        Capability::Quota,
        Capability::QuotaRes(Resource::Storage),
        Capability::QuotaRes(Resource::Message),
        // RFC 8438, part of RFC 9051.
        Capability::StatusSize,
    ];
    caps.extend(other("SPECIAL-USE"));
    // RFC 5255: SEARCH and SORT compare with i;unicode-casemap (see `casemap`).
    caps.extend(other("I18NLEVEL=1"));
    caps.extend(other("CHILDREN"));
    // RFC 4731 and RFC 5182: read by our own pre-parser (`extended::search`).
    caps.extend(other("ESEARCH"));
    caps.extend(other("SEARCHRES"));
    caps.push(Capability::ListExtended);
    caps.extend(other("LIST-STATUS"));
    caps.extend(other("MULTIAPPEND"));
    caps.extend(other("CATENATE"));
    // RFC 5465: read by our own pre-parser (`extended::notify`).
    caps.extend(other("NOTIFY"));
    caps.extend(
        Atom::try_from(format!("APPENDLIMIT={append_limit}"))
            .ok()
            .map(Capability::from),
    );
    caps
}

/// SORT and THREAD (RFC 5256, RFC 5957) only mean something once a mailbox can be
/// selected, so they are announced after login, as Dovecot does.
fn ordering() -> Vec<Capability<'static>> {
    // RFC 5267: SORT answers with ESEARCH when asked, and both searching commands keep
    // their results updated (`updates`) and answer PARTIAL.
    let mut caps: Vec<Capability<'static>> = ["ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT"]
        .into_iter()
        .filter_map(other)
        .collect();
    caps.extend([
        Capability::Sort(None),
        Capability::Sort(Some(SortAlgorithm::Display)),
        Capability::Thread(ThreadingAlgorithm::OrderedSubject),
        Capability::Thread(ThreadingAlgorithm::References),
    ]);
    caps
}

pub(crate) fn list(stage: Stage, append_limit: u32) -> Vec1<Capability<'static>> {
    let mut caps = vec![Capability::Imap4Rev1];
    if stage != Stage::Clear {
        // RFC 9051 beside RFC 3501: a client gets IMAP4rev2 only once it ENABLEs it.
        caps.extend(other("IMAP4REV2"));
    }
    match stage {
        Stage::Clear => {
            caps.push(Capability::StartTls);
            caps.push(Capability::LoginDisabled);
        }
        Stage::Tls { certificate } => {
            caps.push(Capability::SaslIr);
            caps.extend(mechanism("XOAUTH2"));
            caps.extend(mechanism("OAUTHBEARER"));
            if certificate {
                caps.extend(mechanism("EXTERNAL"));
            }
            caps.push(Capability::LoginDisabled);
            caps.extend(extensions(append_limit));
        }
        Stage::Authenticated => {
            caps.extend(extensions(append_limit));
            caps.extend(ordering());
        }
    }
    // invariant: the list starts with IMAP4rev1, so it is never empty.
    Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
}
