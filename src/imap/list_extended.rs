//! Runs LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819) commands `extended::list`
//! read: which folders a selection takes, and what each entry returns.

use std::collections::BTreeSet;

use imap_codec::imap_types::core::{QuotedChar, Tag};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::response::Data;

use super::authenticated::{attribute, list_attributes, wildcard_match};
use super::connection::{ConnError, encode};
use super::extended::list::ListCommand;
use super::names::{self, DELIMITER};
use super::session::Session;
use super::state::{Transition, User};
use super::text;
use crate::store::Folder;

/// One name LIST answers with.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    name: String,
    attributes: Vec<FlagNameAttribute<'static>>,
    /// `("CHILDINFO" ("SUBSCRIBED"))`: a descendant is subscribed (RECURSIVEMATCH).
    childinfo: bool,
    /// A folder that can be selected, so STATUS can be given for it.
    selectable: bool,
}

impl ListCommand {
    fn matches(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| wildcard_match(&format!("{}{p}", self.reference), name))
    }

    /// The names to answer with, in order: the folders as LIST lists them, or under
    /// SUBSCRIBED the subscribed names (existing or not) and, with RECURSIVEMATCH, the
    /// names whose descendants are subscribed.
    fn entries(&self, folders: &[Folder], subscribed: &[String]) -> Vec<Entry> {
        let is_subscribed = |name: &str| subscribed.iter().any(|s| s == name);
        let flag = |name: &str| attribute(name).into_iter();
        let existing = |f: &Folder, sub: bool| {
            let mut attributes = list_attributes(f, folders);
            if sub && self.return_subscribed {
                attributes.extend(flag("Subscribed"));
            }
            attributes
        };
        if !self.subscribed {
            return folders
                .iter()
                .filter(|f| self.matches(&f.name))
                .filter(|f| !self.special_use || f.special_use.is_some())
                .map(|f| Entry {
                    name: f.name.clone(),
                    attributes: existing(f, is_subscribed(&f.name)),
                    childinfo: false,
                    selectable: !f.noselect,
                })
                .collect();
        }
        let mut names: BTreeSet<&str> = subscribed.iter().map(String::as_str).collect();
        if self.recursive {
            for s in subscribed {
                for (i, _) in s.match_indices(DELIMITER) {
                    names.insert(&s[..i]);
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            if !self.matches(name) {
                continue;
            }
            let sub = is_subscribed(name);
            let prefix = format!("{name}{DELIMITER}");
            let childinfo = self.recursive && subscribed.iter().any(|s| s.starts_with(&prefix));
            let folder = folders.iter().find(|f| f.name == name);
            if self.special_use && folder.is_none_or(|f| f.special_use.is_none()) {
                continue;
            }
            let attributes = match folder {
                Some(f) => existing(f, sub),
                None => {
                    let mut a: Vec<_> = flag("NonExistent").collect();
                    if sub {
                        a.extend(flag("Subscribed"));
                    }
                    a
                }
            };
            out.push(Entry {
                name: name.to_owned(),
                attributes,
                childinfo,
                selectable: folder.is_some_and(|f| !f.noselect),
            });
        }
        out
    }
}

impl Session {
    pub(crate) async fn list_extended(
        &mut self,
        tag: &Tag<'static>,
        user: &User,
        c: ListCommand,
    ) -> Result<Transition, ConnError> {
        // RECURSIVEMATCH only qualifies another selection option (RFC 5258 §3).
        if c.recursive && !c.subscribed {
            return self
                .bad(tag, "RECURSIVEMATCH needs another selection option")
                .await;
        }
        let delimiter = QuotedChar::try_from(DELIMITER).ok();
        if c.patterns.iter().all(String::is_empty) && !c.subscribed {
            // As in a base LIST: the delimiter and the root of the hierarchy.
            let r = Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter,
                mailbox: text::mailbox("")
                    .unwrap_or(imap_codec::imap_types::mailbox::Mailbox::Inbox),
            };
            self.conn.send(&text::data(r)).await?;
            return self.ok(tag, "LIST completed").await;
        }
        let store = self.shared.context.store.clone();
        let mailbox_id = user.auth.mailbox.id;
        let folders = match store.folders(mailbox_id).await {
            Ok(f) => self.client_folders(f),
            Err(e) => return self.no_internal(tag, "LIST failed", &e).await,
        };
        let subscribed = if c.return_subscribed {
            match store.subscriptions(mailbox_id).await {
                Ok(s) => s
                    .iter()
                    .map(|n| names::to_client(n, self.imap4rev2))
                    .collect(),
                Err(e) => return self.no_internal(tag, "LIST failed", &e).await,
            }
        } else {
            Vec::new()
        };
        for entry in c.entries(&folders, &subscribed) {
            let Some(mailbox) = text::mailbox(&entry.name) else {
                continue;
            };
            let line = text::data(Data::List {
                items: entry.attributes,
                delimiter,
                mailbox: mailbox.clone(),
            });
            let mut bytes = encode(&line);
            if entry.childinfo && bytes.ends_with(b"\r\n") {
                // imap-codec writes no extended data: it goes after the name, which
                // ends the line imap-codec wrote.
                bytes.truncate(bytes.len() - 2);
                bytes.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
            }
            self.conn.send_raw(&bytes).await?;
            if let (Some(names), true) = (&c.status, entry.selectable)
                && let Some(folder) = folders.iter().find(|f| f.name == entry.name)
            {
                let items = match self.status_items(folder, names).await {
                    Ok(i) => i,
                    Err(e) => return self.no_internal(tag, "LIST failed", &e).await,
                };
                self.conn
                    .send(&text::data(Data::Status {
                        mailbox,
                        items: items.into(),
                    }))
                    .await?;
            }
        }
        self.ok(tag, "LIST completed").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::extended::list::tests::parsed;

    fn folder(name: &str, noselect: bool) -> Folder {
        Folder {
            id: 1,
            mailbox_id: 1,
            name: name.into(),
            special_use: None,
            uidvalidity: 1,
            uidnext: 1,
            highestmodseq: 1,
            recent_from: 1,
            noselect,
        }
    }

    #[test]
    fn subscribed_selection_with_recursive_match() {
        let c = parsed("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"\r\n").unwrap();
        let folders = [
            folder("INBOX", false),
            folder("Lab", false),
            folder("Lab/2025", false),
        ];
        let subscribed = ["Gone".to_owned(), "Lab/2025".to_owned()];
        let e = c.entries(&folders, &subscribed);
        let names: Vec<(&str, bool)> = e.iter().map(|e| (e.name.as_str(), e.childinfo)).collect();
        assert_eq!(names, [("Gone", false), ("Lab", true)]);
        assert_eq!(
            e[0].attributes,
            [
                attribute("NonExistent").unwrap(),
                attribute("Subscribed").unwrap()
            ]
        );
        assert!(!e[0].selectable && e[1].selectable);
    }
}
