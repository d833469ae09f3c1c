//! MSS 17: a new personal mailbox's holder is told of the other mailboxes in their name.

use super::notice;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{Mailbox, MailboxKind, Notice, NoticeCopy, Store, StoreError};

/// Where copies of a notice go: the mailbox's contact address, filed locally when it is
/// a mailbox hosted here, queued otherwise. A contact that cannot be used is logged and
/// left out: the notice still reaches the mailbox itself.
pub(super) async fn contact_copies(
    store: &Store,
    domains: &[String],
    m: &Mailbox,
) -> Vec<NoticeCopy> {
    let Some(contact) = m.directory.contact_address.as_deref().map(str::trim) else {
        return Vec::new();
    };
    let Some((_, domain)) = contact
        .rsplit_once('@')
        .filter(|(l, d)| !l.is_empty() && d.contains('.'))
    else {
        tracing::warn!(address = %m.address, %contact, "contact address is not a mail address; no copy sent");
        return Vec::new();
    };
    if contact.eq_ignore_ascii_case(&m.address) {
        return Vec::new();
    }
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return vec![NoticeCopy::Remote {
            address: contact.to_owned(),
        }];
    }
    let local = match store.mailbox(contact).await {
        Ok(Some(local)) => store.folder(local.id, "INBOX").await,
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match local {
        Ok(Some(inbox)) => vec![NoticeCopy::Local {
            folder_id: inbox.id,
        }],
        Ok(None) => {
            tracing::warn!(address = %m.address, %contact, "local contact address has no mailbox; no copy sent");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(address = %m.address, %contact, error = %e, "cannot look up the contact mailbox; no copy sent");
            Vec::new()
        }
    }
}

/// The other mailboxes in the name of `idnat`: personal mailboxes it holds and
/// organisational ones granted to it, without `except`, by address.
pub async fn mailboxes_in_name_of(
    store: &Store,
    idnat: &str,
    except: Option<i64>,
) -> Result<Vec<Mailbox>, StoreError> {
    let mut all = store.mailboxes_owned_by(idnat).await?;
    all.extend(store.mailboxes_granted_to(idnat).await?);
    all.retain(|m| Some(m.id) != except);
    all.sort_by(|a, b| a.address.cmp(&b.address));
    all.dedup_by_key(|m| m.id);
    Ok(all)
}

/// After a personal mailbox is created: files a notice in its INBOX (and its contact
/// address) listing the other mailboxes in its holder's name, once. Returns them; an
/// empty list sends nothing.
pub async fn notify_existing_mailboxes(
    config: &Config,
    store: &Store,
    clock: &dyn Clock,
    mailbox: &Mailbox,
) -> Result<Vec<Mailbox>, StoreError> {
    let Some(idnat) = mailbox
        .owner
        .as_deref()
        .filter(|_| mailbox.kind == MailboxKind::Personal)
    else {
        return Ok(Vec::new());
    };
    let others = mailboxes_in_name_of(store, idnat, Some(mailbox.id)).await?;
    if others.is_empty() {
        return Ok(others);
    }
    let at = clock.now();
    let message = notice::existing_mailboxes(mailbox, &others, at, &config.server.hostname);
    let copies = contact_copies(store, &config.server.domains, mailbox).await;
    store
        .send_notice(Notice {
            mailbox_id: mailbox.id,
            kinds: vec!["existing-mailboxes".into()],
            cycle: 0,
            deletion_warning: false,
            message,
            copies,
            at,
        })
        .await?;
    Ok(others)
}
