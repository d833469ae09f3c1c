//! NOTIFY (RFC 5465): which mailboxes the client wants to hear of, and of what.
//!
//! The fetch attributes of `MessageNew` are imap-codec's: they are handed to it as the
//! item list of a FETCH, so every attribute a FETCH takes is taken here, and no other.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};

use super::reader::{Parse, Reader, Syntax, folder_name};

/// The response code refusing an event, with the events this server reports.
pub(crate) const BADEVENT: &str =
    "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)";

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotifyCommand {
    None,
    Set {
        /// `STATUS`: the client wants the STATUS of every mailbox watched, at once.
        status: bool,
        groups: Vec<Group>,
    },
}

/// Well-formed, but not to be done: `BadEvent` answers `NO [BADEVENT (…)]`, `Invalid`
/// a `BAD` that says why.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadEvent,
    Invalid(&'static str),
}

/// One `(mailboxes events)` group.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub(crate) mailboxes: Specifier,
    /// `None` for `NONE`: nothing is reported for these mailboxes.
    pub(crate) events: Option<Events>,
}

/// Which mailboxes a group names (RFC 5465 §6: the mailbox specifier).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Specifier {
    Selected,
    /// As `Selected`, with expunges kept until a command allows them.
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Events {
    /// MessageNew and MessageExpunge, which RFC 5465 §5 asks for together.
    pub(crate) messages: bool,
    /// What a FETCH of each new message in the selected mailbox returns.
    pub(crate) fetch: Vec<MessageDataItemName<'static>>,
    pub(crate) flags: bool,
    pub(crate) names: bool,
    pub(crate) subscriptions: bool,
}

impl Specifier {
    pub(crate) fn selected(&self) -> bool {
        matches!(self, Specifier::Selected | Specifier::SelectedDelayed)
    }
}

/// Reads what follows `NOTIFY`.
pub(crate) fn parse(r: &mut Reader<'_>) -> Parse<Result<NotifyCommand, Refusal>> {
    r.sp()?;
    if r.keyword("NONE") {
        r.end()?;
        return Ok(Ok(NotifyCommand::None));
    }
    if !r.keyword("SET") {
        return Err(Syntax);
    }
    r.sp()?;
    let status = r.keyword("STATUS");
    if status {
        r.sp()?;
    }
    let mut groups = Vec::new();
    let mut unsupported = false;
    loop {
        r.byte(b'(')?;
        let mailboxes = mailboxes(r)?;
        r.sp()?;
        let events = if r.keyword("NONE") {
            None
        } else {
            let (events, other) = events(r)?;
            unsupported |= other;
            Some(events)
        };
        r.byte(b')')?;
        groups.push(Group { mailboxes, events });
        if r.at_end() {
            break;
        }
        r.sp()?;
    }
    r.end()?;
    if unsupported {
        return Ok(Err(Refusal::BadEvent));
    }
    for g in &groups {
        let Some(e) = &g.events else { continue };
        if !e.fetch.is_empty() && !g.mailboxes.selected() {
            return Ok(Err(Refusal::Invalid(
                "fetch attributes are for the selected mailbox only",
            )));
        }
    }
    Ok(Ok(NotifyCommand::Set { status, groups }))
}

fn mailboxes(r: &mut Reader<'_>) -> Parse<Specifier> {
    let word = r.atom()?.to_ascii_uppercase();
    Ok(match word.as_slice() {
        b"SELECTED" => Specifier::Selected,
        b"SELECTED-DELAYED" => Specifier::SelectedDelayed,
        b"INBOXES" => Specifier::Inboxes,
        b"PERSONAL" => Specifier::Personal,
        b"SUBSCRIBED" => Specifier::Subscribed,
        b"SUBTREE" => Specifier::Subtree(names(r)?),
        b"MAILBOXES" => Specifier::Mailboxes(names(r)?),
        _ => return Err(Syntax),
    })
}

/// One mailbox name, or several in parentheses.
fn names(r: &mut Reader<'_>) -> Parse<Vec<String>> {
    r.sp()?;
    let one = |r: &mut Reader<'_>| folder_name(&r.astring()?).ok_or(Syntax);
    if r.peek() == Some(b'(') {
        r.list(false, one)
    } else {
        Ok(vec![one(r)?])
    }
}

/// The events of a group, and whether any is one this server does not report.
fn events(r: &mut Reader<'_>) -> Parse<(Events, bool)> {
    r.byte(b'(')?;
    let mut e = Events::default();
    let (mut new, mut expunge, mut unsupported) = (false, false, false);
    loop {
        let name = r.atom()?.to_ascii_lowercase();
        match name.as_slice() {
            b"messagenew" => {
                new = true;
                if r.peek() == Some(b' ') && r.rest().get(1) == Some(&b'(') {
                    r.sp()?;
                    e.fetch = fetch_attributes(r)?;
                }
            }
            b"messageexpunge" => expunge = true,
            b"flagchange" => e.flags = true,
            b"mailboxname" => e.names = true,
            b"subscriptionchange" => e.subscriptions = true,
            // The metadata events (RFC 5464, not offered here) and unknown ones.
            _ => unsupported = true,
        }
        if r.take(b')') {
            break;
        }
        r.sp()?;
    }
    if new != expunge {
        return Err(Syntax);
    }
    if e.flags && !new {
        return Err(Syntax);
    }
    e.messages = new;
    Ok((e, unsupported))
}

/// `(fetch-att …)`, read by imap-codec as a FETCH's items.
fn fetch_attributes(r: &mut Reader<'_>) -> Parse<Vec<MessageDataItemName<'static>>> {
    let list = r.balanced()?;
    let mut command = b"A FETCH 1 ".to_vec();
    command.extend_from_slice(list);
    command.extend_from_slice(b"\r\n");
    let (_, c) = CommandCodec::default()
        .decode(&command)
        .map_err(|_| Syntax)?;
    match c.body {
        CommandBody::Fetch {
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(items),
            ..
        } => Ok(items.into_iter().map(IntoStatic::into_static).collect()),
        _ => Err(Syntax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Parse<Result<NotifyCommand, Refusal>> {
        let mut r = Reader::new(s.as_bytes());
        assert!(r.keyword("NOTIFY"));
        parse(&mut r)
    }

    #[test]
    fn groups_and_their_events() {
        let c = parsed(
            "NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (FROM)]) MessageExpunge)) (SUBTREE (\"a b\" c) (MailboxName)) (INBOXES NONE)\r\n",
        )
        .unwrap()
        .unwrap();
        let NotifyCommand::Set { status, groups } = c else {
            panic!("not a SET");
        };
        assert!(status);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].mailboxes, Specifier::Selected);
        let e = groups[0].events.as_ref().unwrap();
        assert!(e.messages && !e.flags);
        assert_eq!(e.fetch.len(), 2);
        assert_eq!(
            groups[1].mailboxes,
            Specifier::Subtree(vec!["a b".into(), "c".into()])
        );
        assert!(groups[1].events.as_ref().unwrap().names);
        assert_eq!(groups[2].events, None);
        assert_eq!(parsed("NOTIFY NONE\r\n"), Ok(Ok(NotifyCommand::None)));
    }

    #[test]
    fn what_is_refused() {
        assert_eq!(
            parsed("NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))\r\n"),
            Ok(Err(Refusal::BadEvent))
        );
        assert!(matches!(
            parsed("NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))\r\n"),
            Ok(Err(Refusal::Invalid(_)))
        ));
        assert_eq!(
            parsed("NOTIFY SET (PERSONAL (MessageNew))\r\n"),
            Err(Syntax)
        );
        assert_eq!(
            parsed("NOTIFY SET (PERSONAL (FlagChange))\r\n"),
            Err(Syntax)
        );
        assert_eq!(parsed("NOTIFY SET (ELSEWHERE NONE)\r\n"), Err(Syntax));
        assert_eq!(parsed("NOTIFY SET\r\n"), Err(Syntax));
    }
}
