//! LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and the SPECIAL-USE options
//! (RFC 6154): selection options, several patterns, return options.
//!
//! Only the extended forms are read here; a base `LIST ref pattern` stays with
//! imap-codec and `authenticated::list`, so its answers do not change.

use std::collections::BTreeSet;

use imap_codec::imap_types::core::{QuotedChar, Tag};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::status::StatusDataItemName;

use super::reader::{Parse, Reader, Syntax};
use crate::imap::authenticated::{attribute, list_attributes, wildcard_match};
use crate::imap::connection::{ConnError, encode};
use crate::imap::names::DELIMITER;
use crate::imap::session::Session;
use crate::imap::state::{Transition, User};
use crate::imap::text;
use crate::store::Folder;

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListCommand {
    /// Selection option SUBSCRIBED.
    subscribed: bool,
    /// Selection option RECURSIVEMATCH.
    recursive: bool,
    /// Selection option SPECIAL-USE (RFC 6154): only folders with a special use.
    special_use: bool,
    reference: String,
    patterns: Vec<String>,
    /// Return option SUBSCRIBED (implied by the selection option).
    return_subscribed: bool,
    /// Return option STATUS (RFC 5819).
    status: Option<Vec<StatusDataItemName>>,
}

/// Reads what follows `LIST`; `Ok(None)` for the base form, which imap-codec reads.
pub(crate) fn parse(r: &mut Reader<'_>) -> Parse<Option<ListCommand>> {
    let mut c = ListCommand::default();
    let mut extended = false;
    r.sp()?;
    if r.peek() == Some(b'(') {
        extended = true;
        for option in r.list(true, |r| r.atom().map(<[u8]>::to_ascii_uppercase))? {
            match option.as_slice() {
                b"SUBSCRIBED" => c.subscribed = true,
                b"RECURSIVEMATCH" => c.recursive = true,
                b"SPECIAL-USE" => c.special_use = true,
                // No remote folders here: REMOTE lists what a local LIST lists.
                b"REMOTE" => {}
                _ => return Err(Syntax),
            }
        }
        r.sp()?;
    }
    let reference = r.astring()?;
    c.reference = super::reader::folder_name(&reference)
        .filter(|_| !reference.is_empty())
        .unwrap_or_default();
    r.sp()?;
    let patterns = if r.peek() == Some(b'(') {
        extended = true;
        r.list(false, |r| r.list_mailbox().map(|p| p.into_owned()))?
    } else {
        vec![r.list_mailbox()?.into_owned()]
    };
    c.patterns = patterns
        .iter()
        .map(|p| String::from_utf8(p.clone()).map_err(|_| Syntax))
        .collect::<Parse<_>>()?;
    if !r.at_end() {
        extended = true;
        r.sp()?;
        if !r.keyword("RETURN") {
            return Err(Syntax);
        }
        r.sp()?;
        r.list(true, |r| return_option(r, &mut c))?;
    }
    r.end()?;
    if c.subscribed {
        c.return_subscribed = true;
    }
    Ok(extended.then_some(c))
}

fn return_option(r: &mut Reader<'_>, c: &mut ListCommand) -> Parse<()> {
    let name = r.atom()?.to_ascii_uppercase();
    match name.as_slice() {
        b"SUBSCRIBED" => c.return_subscribed = true,
        // Children and special uses are always given (CHILDREN, SPECIAL-USE).
        b"CHILDREN" | b"SPECIAL-USE" => {}
        b"STATUS" => {
            r.sp()?;
            c.status = Some(r.list(false, status_item)?);
        }
        _ => return Err(Syntax),
    }
    Ok(())
}

/// A STATUS item the STATUS command takes (RFC 3501, 7162, 9208).
fn status_item(r: &mut Reader<'_>) -> Parse<StatusDataItemName> {
    Ok(match r.atom()?.to_ascii_uppercase().as_slice() {
        b"MESSAGES" => StatusDataItemName::Messages,
        b"RECENT" => StatusDataItemName::Recent,
        b"UIDNEXT" => StatusDataItemName::UidNext,
        b"UIDVALIDITY" => StatusDataItemName::UidValidity,
        b"UNSEEN" => StatusDataItemName::Unseen,
        b"DELETED" => StatusDataItemName::Deleted,
        b"DELETED-STORAGE" => StatusDataItemName::DeletedStorage,
        b"HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
        _ => return Err(Syntax),
    })
}

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
            Ok(f) => f,
            Err(e) => return self.no_internal(tag, "LIST failed", &e).await,
        };
        let subscribed = if c.return_subscribed {
            match store.subscriptions(mailbox_id).await {
                Ok(s) => s,
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

    fn parsed(line: &str) -> Option<ListCommand> {
        let mut r = Reader::new(line.as_bytes());
        r.keyword("LIST").then_some(())?;
        parse(&mut r).ok()?
    }

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
    fn base_forms_stay_with_imap_codec() {
        let mut r = Reader::new(b"LIST \"\" \"*\"\r\n");
        assert!(r.keyword("LIST"));
        assert_eq!(parse(&mut r), Ok(None));
        let mut r = Reader::new(b"LIST \"\" %\r\n");
        assert!(r.keyword("LIST"));
        assert_eq!(parse(&mut r), Ok(None));
    }

    #[test]
    fn reads_options_patterns_and_status() {
        let c = parsed(
            "LIST (SUBSCRIBED RECURSIVEMATCH remote) \"\" (\"INBOX\" Sent* {3}\r\na/%) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n",
        )
        .unwrap();
        assert!(c.subscribed && c.recursive && c.return_subscribed);
        assert_eq!(c.patterns, ["INBOX", "Sent*", "a/%"]);
        assert_eq!(
            c.status,
            Some(vec![
                StatusDataItemName::Messages,
                StatusDataItemName::Unseen
            ])
        );
        assert!(parsed("LIST () \"\" \"*\"\r\n").is_some());
        assert!(parsed("LIST \"\" \"*\" RETURN ()\r\n").is_some());
    }

    #[test]
    fn refuses_unknown_options() {
        assert!(parsed("LIST (FOO) \"\" \"*\"\r\n").is_none());
        assert!(parsed("LIST \"\" \"*\" RETURN (FOO)\r\n").is_none());
        assert!(parsed("LIST \"\" \"*\" RETURN (STATUS (SIZE))\r\n").is_none());
        assert!(parsed("LIST \"\" () \r\n").is_none());
        assert!(parsed("LIST \"\" \"*\" RETURN (CHILDREN)junk\r\n").is_none());
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
