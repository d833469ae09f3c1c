//! RFC 9208 QUOTA. A mailbox (BAL) with a limit is one quota root over all its folders,
//! named `""`: a session reaches only its own mailbox, so there is nothing to tell
//! roots apart by, and the empty name is the one RFC 9208 shows for a user's root.
//! A mailbox without a limit has no root at all. Limits are the operator's to set
//! (`mssante mailbox quota`), so SETQUOTA is refused and QUOTASET not announced.

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{AString, Vec1};
use imap_codec::imap_types::extensions::quota::{QuotaGet, Resource};
use imap_codec::imap_types::response::{Data, StatusKind};

use super::connection::ConnError;
use super::session::Session;
use super::state::{Transition, User};
use super::text;
use crate::store::Quota;

/// The one root name there is.
const ROOT: &str = "";

fn root() -> AString<'static> {
    AString::String(text::istring(ROOT))
}

/// STORAGE in units of 1024 octets, rounded up so that a mailbox holding anything never
/// shows as empty (RFC 9208 §5); only the resources that have a limit are listed.
pub(crate) fn resources(q: &Quota) -> Option<Vec1<QuotaGet<'static>>> {
    let mut out = Vec::new();
    if let Some(limit) = q.quota_storage {
        out.push(QuotaGet::new(
            Resource::Storage,
            q.used_bytes.div_ceil(1024),
            limit / 1024,
        ));
    }
    if let Some(limit) = q.quota_messages {
        out.push(QuotaGet::new(Resource::Message, q.used_messages, limit));
    }
    Vec1::try_from(out).ok()
}

impl Session {
    /// APPEND, COPY or MOVE would take the mailbox over a limit: nothing was stored, and
    /// `[OVERQUOTA]` tells the client why (RFC 9208 §4.3, §6.2.1).
    pub(crate) async fn no_over_quota(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
    ) -> Result<Transition, ConnError> {
        let code = Some(imap_codec::imap_types::response::Code::OverQuota);
        self.complete(tag, StatusKind::No, code, "mailbox is over its quota")
            .await
    }

    pub(crate) async fn quota_command(
        &mut self,
        user: &User,
        c: Command<'static>,
    ) -> Result<Transition, ConnError> {
        let tag = c.tag;
        let mailbox_id = user.auth.mailbox.id;
        let store = self.shared.context.store.clone();
        match c.body {
            CommandBody::GetQuotaRoot { mailbox } => {
                match self.target_folder(mailbox_id, &mailbox).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return self.no_nonexistent(&tag).await,
                    Err(e) => return self.no_internal(&tag, "cannot look a folder up", &e).await,
                }
                let quota = match store.quota(mailbox_id).await {
                    Ok(q) => q.unwrap_or_default(),
                    Err(e) => return self.no_internal(&tag, "GETQUOTAROOT failed", &e).await,
                };
                let limited = resources(&quota);
                let roots = if limited.is_some() {
                    vec![root()]
                } else {
                    Vec::new()
                };
                self.conn
                    .send(&text::data(Data::QuotaRoot {
                        mailbox: text::echo(mailbox),
                        roots,
                    }))
                    .await?;
                if let Some(quotas) = limited {
                    self.conn
                        .send(&text::data(Data::Quota {
                            root: root(),
                            quotas,
                        }))
                        .await?;
                }
                self.ok(&tag, "GETQUOTAROOT completed").await
            }
            CommandBody::GetQuota { root: asked } => {
                let quota = match store.quota(mailbox_id).await {
                    Ok(q) => q.unwrap_or_default(),
                    Err(e) => return self.no_internal(&tag, "GETQUOTA failed", &e).await,
                };
                let quotas = match resources(&quota) {
                    Some(q) if asked.as_ref() == ROOT.as_bytes() => q,
                    _ => {
                        let code = Some(text::code("NONEXISTENT"));
                        return self
                            .complete(&tag, StatusKind::No, code, "no such quota root")
                            .await;
                    }
                };
                self.conn
                    .send(&text::data(Data::Quota {
                        root: root(),
                        quotas,
                    }))
                    .await?;
                self.ok(&tag, "GETQUOTA completed").await
            }
            CommandBody::SetQuota { .. } => {
                let code = Some(text::code("NOPERM"));
                self.complete(&tag, StatusKind::No, code, "quotas are set by the operator")
                    .await
            }
            _ => self.bad(&tag, "unexpected command").await,
        }
    }
}
