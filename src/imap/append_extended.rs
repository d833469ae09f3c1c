//! Runs MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) commands `extended::append` read:
//! the set is stored in one transaction, all or none, the quota counted across it, each
//! message within APPENDLIMIT.

use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, CodeOther, StatusKind};

use super::connection::ConnError;
use super::extended::append::{AppendCommand, CatPart, Content};
use super::extended::search::set_text;
use super::extended::url::{self, MessageUrl};
use super::mime;
use super::names;
use super::selected::store_flags;
use super::session::Session;
use super::state::{Transition, User};
use super::text;
use super::view::View;
use crate::store::{Flags, NewMessage, StoreError};

/// Why a message could not be put together.
enum Refusal {
    /// `[BADURL url]`: the URL names nothing this session can read.
    BadUrl(String),
    /// `[TOOBIG]`: over APPENDLIMIT, or the whole set over what one command may carry.
    TooBig,
    Store(StoreError),
}

impl Session {
    pub(crate) async fn append_extended(
        &mut self,
        tag: &Tag<'static>,
        user: &mut User,
        mut view: Option<&mut View>,
        c: AppendCommand,
    ) -> Result<Transition, ConnError> {
        let mailbox_id = user.auth.mailbox.id;
        let store = self.shared.context.store.clone();
        let name = names::to_store(&c.folder, self.imap4rev2);
        let folder = match store.folder(mailbox_id, &name).await {
            Ok(Some(f)) if !f.noselect => f,
            Ok(_) => return self.no_such_target(tag).await,
            Err(e) => return self.no_internal(tag, "cannot look a folder up", &e).await,
        };
        let now = self.shared.context.clock.now();
        let mut messages = Vec::with_capacity(c.messages.len());
        let mut total = 0usize;
        for m in c.messages {
            let bytes = match self.assemble(mailbox_id, m.content).await {
                Ok(b) => b,
                Err(Refusal::BadUrl(u)) => {
                    // Only printable ASCII other than `]` can go back inside the code.
                    let u: String = u
                        .chars()
                        .map(|c| {
                            if c.is_ascii_graphic() && c != ']' {
                                c
                            } else {
                                '?'
                            }
                        })
                        .collect();
                    let code =
                        Code::Other(CodeOther::unvalidated(format!("BADURL {u}").into_bytes()));
                    return self
                        .complete(
                            tag,
                            StatusKind::No,
                            Some(code),
                            "CATENATE cannot read that URL",
                        )
                        .await;
                }
                Err(Refusal::TooBig) => return self.no_too_big(tag).await,
                Err(Refusal::Store(e)) => return self.no_internal(tag, "APPEND failed", &e).await,
            };
            total = total.saturating_add(bytes.len());
            let limit = usize::try_from(self.conn.max_literal()).unwrap_or(usize::MAX);
            if bytes.len() > limit || total > self.conn.max_message() {
                return self.no_too_big(tag).await;
            }
            if bytes.is_empty() {
                return self.no(tag, "an empty message cannot be appended").await;
            }
            messages.push(NewMessage {
                message: bytes,
                flags: store_flags(&m.flags),
                internal_date: m.date.unwrap_or(now),
            });
        }
        let count = messages.len();
        let flags: Vec<Flags> = messages.iter().map(|m| m.flags.clone()).collect();
        let appended = match store.append_many(folder.id, messages).await {
            Ok(a) => a,
            Err(StoreError::OverQuota) => return self.no_over_quota(tag).await,
            Err(e) => return self.no_internal(tag, "APPEND failed", &e).await,
        };
        self.shared
            .context
            .metrics
            .messages_appended
            .inc_by(count as u64);
        let uids: Vec<u32> = appended.iter().map(|a| a.uid).collect();
        let code = appended.first().map(|a| {
            Code::Other(CodeOther::unvalidated(
                format!("APPENDUID {} {}", a.uidvalidity, set_text(&uids)).into_bytes(),
            ))
        });
        if let Some(v) = view.as_deref_mut() {
            let flags: Vec<&Flags> = flags.iter().collect();
            self.own_append(v, &appended, &flags).await?;
        }
        if let Some(t) = self.sync_selected(user, view, true).await? {
            return Ok(t);
        }
        self.conn
            .send(&text::tagged_ok(tag, code, "APPEND completed"))
            .await?;
        Ok(Transition::None)
    }

    async fn no_too_big(&mut self, tag: &Tag<'static>) -> Result<Transition, ConnError> {
        self.complete(tag, StatusKind::No, Some(Code::TooBig), "message too large")
            .await
    }

    /// The bytes of one message: its literal, or its CATENATE parts joined.
    async fn assemble(
        &self,
        mailbox_id: i64,
        content: Content<'static>,
    ) -> Result<Vec<u8>, Refusal> {
        let parts = match content {
            Content::Literal(bytes) => return Ok(bytes.into_owned()),
            Content::Catenate(parts) => parts,
        };
        let limit = usize::try_from(self.conn.max_literal()).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for part in parts {
            match part {
                CatPart::Text(t) => out.extend_from_slice(&t),
                CatPart::Url(u) => {
                    let Some(parsed) = url::parse(&u) else {
                        return Err(Refusal::BadUrl(u));
                    };
                    match self.url_data(mailbox_id, &parsed).await {
                        Ok(Some(data)) => out.extend_from_slice(&data),
                        Ok(None) => return Err(Refusal::BadUrl(u)),
                        Err(e) => return Err(Refusal::Store(e)),
                    }
                }
            }
            if out.len() > limit {
                return Err(Refusal::TooBig);
            }
        }
        Ok(out)
    }

    /// What a URL names in the session's own mailbox; `None` when it names nothing:
    /// no such folder or message, another UIDVALIDITY, no such section.
    async fn url_data(
        &self,
        mailbox_id: i64,
        u: &MessageUrl,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let store = &self.shared.context.store;
        let Some(folder) = store
            .folder(mailbox_id, &u.folder)
            .await?
            .filter(|f| !f.noselect)
        else {
            return Ok(None);
        };
        if u.uidvalidity.is_some_and(|v| v != folder.uidvalidity) {
            return Ok(None);
        }
        let metas = store.messages_in_range(folder.id, u.uid, u.uid).await?;
        let Some(meta) = metas.first() else {
            return Ok(None);
        };
        let body = store.body(meta.body_id).await?;
        let data = match &u.section {
            None => Some(body),
            Some(section) => {
                let parsed = mime::parse(&body);
                mime::section(&body, parsed.as_ref(), Some(section))
            }
        };
        Ok(data.map(|d| match u.partial {
            None => d,
            Some((offset, length)) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(d.len());
                let end = length.map_or(d.len(), |n| {
                    start
                        .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
                        .min(d.len())
                });
                d[start..end].to_vec()
            }
        }))
    }
}
