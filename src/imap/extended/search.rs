//! ESEARCH (RFC 4731), SEARCHRES (RFC 5182), ESORT and CONTEXT (RFC 5267): the parts of
//! their syntax imap-codec does not read.
//!
//! `[UID] SEARCH|SORT RETURN (…)` loses its RETURN clause, which is kept as [`Returns`];
//! `$` where a sequence set may stand (search keys, FETCH, STORE, COPY, MOVE, UID EXPUNGE)
//! becomes the saved result written out, as UIDs or sequence numbers, for the messages
//! of the saved result still in the session's view. The command is found by reading the
//! message into tokens (atoms, quoted strings, literals, parentheses), so a `$` or a
//! `RETURN` inside a string or literal is never touched.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::Tag;

/// The RETURN options of a searching command (RFC 4731 §3.1, RFC 5182 §2, RFC 5267 §4).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Returns {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) all: bool,
    pub(crate) count: bool,
    pub(crate) save: bool,
    /// A hint only (RFC 5267 §4.2): servers may ignore it.
    pub(crate) context: bool,
    pub(crate) update: bool,
    /// `PARTIAL a:b` as the client wrote it (the answer repeats it).
    pub(crate) partial: Option<(u32, u32)>,
}

impl Returns {
    /// Whether an ESEARCH response is due: SAVE alone asks for none (RFC 5182 §2.4).
    fn answers(&self) -> bool {
        self.min || self.max || self.all || self.count || self.partial.is_some() || self.update
    }
}

/// What [`decode`] made of a message.
#[derive(Debug)]
pub(crate) enum Extended {
    /// A command imap-codec read once rewritten, with the RETURN options it cannot carry.
    Command {
        command: Command<'static>,
        returns: Option<Returns>,
    },
    /// `$` named no message of the view: the command has nothing to do and succeeds
    /// (RFC 5182 §2.1).
    Nothing { tag: Tag<'static>, name: String },
    /// Bad syntax. `saving`: the command asked to SAVE, so the saved result is forgotten
    /// (RFC 5182 §2.1: a failed SAVE leaves `$` empty).
    Bad {
        tag: Tag<'static>,
        saving: bool,
        why: &'static str,
    },
    /// `CANCELUPDATE "tag" …` (RFC 5267 §4.3.5), with the tags named.
    CancelUpdate {
        tag: Tag<'static>,
        tags: Vec<Vec<u8>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Atom,
    Quoted,
    Literal,
    Open,
    Close,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// The tokens of one message; `None` when it cannot be read as IMAP (imap-codec then
/// says what is wrong with it).
fn lex(bytes: &[u8]) -> Option<Vec<Token>> {
    let end = bytes.len()
        - if bytes.ends_with(b"\r\n") {
            2
        } else {
            usize::from(bytes.ends_with(b"\n"))
        };
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < end {
        let start = i;
        let kind = match bytes[i] {
            b' ' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i)? {
                        b'\\' => i += 2,
                        b'"' => break,
                        b'\r' | b'\n' => return None,
                        _ => i += 1,
                    }
                }
                i += 1;
                Kind::Quoted
            }
            b'{' => {
                let close = i + bytes[i..end].iter().position(|b| *b == b'}')?;
                let digits = bytes[i + 1..close]
                    .strip_suffix(b"+")
                    .unwrap_or(&bytes[i + 1..close]);
                let length: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
                let after = &bytes[close + 1..];
                let eol = if after.starts_with(b"\r\n") {
                    2
                } else if after.starts_with(b"\n") {
                    1
                } else {
                    return None;
                };
                i = (close + 1 + eol).checked_add(length)?;
                if i > end {
                    return None;
                }
                Kind::Literal
            }
            b'\r' | b'\n' => return None,
            _ => {
                while i < end && !matches!(bytes[i], b' ' | b'(' | b')' | b'"' | b'\r' | b'\n') {
                    i += 1;
                }
                Kind::Atom
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Some(tokens)
}

/// The tokens of a message and the message itself.
struct Message<'a> {
    bytes: &'a [u8],
    tokens: Vec<Token>,
}

impl Message<'_> {
    fn text(&self, i: usize) -> Option<&[u8]> {
        self.tokens.get(i).map(|t| &self.bytes[t.start..t.end])
    }

    fn atom(&self, i: usize) -> Option<&[u8]> {
        self.tokens
            .get(i)
            .filter(|t| t.kind == Kind::Atom)
            .map(|t| &self.bytes[t.start..t.end])
    }

    fn is_atom(&self, i: usize, name: &str) -> bool {
        self.atom(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
    }

    fn kind(&self, i: usize) -> Option<Kind> {
        self.tokens.get(i).map(|t| t.kind)
    }

    /// The index after the parenthesised list opening at `i`.
    fn after_list(&self, i: usize) -> Option<usize> {
        if self.kind(i)? != Kind::Open {
            return None;
        }
        let mut depth = 0usize;
        for (j, t) in self.tokens.iter().enumerate().skip(i) {
            match t.kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(j + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// A replacement of the bytes `start..end`.
struct Edit {
    start: usize,
    end: usize,
    with: Vec<u8>,
}

fn apply(bytes: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|e| e.start);
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for e in edits {
        out.extend_from_slice(&bytes[at..e.start]);
        out.extend_from_slice(&e.with);
        at = e.end;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// Numbers as a sequence set, in the order given: runs of consecutive ascending numbers
/// become ranges (`1:3,5`), so an ESORT answer keeps its order (RFC 5267 §3.2).
pub(crate) fn set_text(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && Some(numbers[i + 1]) == end.checked_add(1) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// What `$` reads of the selected folder: the saved result (RFC 5182, by UID) and the
/// UIDs the session's view holds, ascending. Plain slices, so this parser stays apart
/// from the session that owns them.
#[derive(Clone, Copy)]
pub(crate) struct Selection<'a> {
    pub(crate) saved: &'a [u32],
    pub(crate) uids: &'a [u32],
}

impl Selection<'_> {
    /// The saved result as the view sees it now: the positions of its messages still in
    /// the view, ascending.
    fn saved_positions(&self) -> Vec<usize> {
        self.saved
            .iter()
            .filter_map(|u| self.uids.binary_search(u).ok())
            .collect()
    }
}

/// The search keys that take arguments, and how many (RFC 3501 §6.4.4, RFC 5032, RFC
/// 7162): their arguments are strings, dates or numbers, never a sequence set.
fn key_arguments(key: &[u8]) -> usize {
    const ONE: [&str; 19] = [
        "BCC",
        "BEFORE",
        "BODY",
        "CC",
        "FROM",
        "KEYWORD",
        "LARGER",
        "ON",
        "SENTBEFORE",
        "SENTON",
        "SENTSINCE",
        "SINCE",
        "SMALLER",
        "SUBJECT",
        "TEXT",
        "TO",
        "UNKEYWORD",
        "OLDER",
        "YOUNGER",
    ];
    if key.eq_ignore_ascii_case(b"HEADER") {
        2
    } else if ONE.iter().any(|k| key.eq_ignore_ascii_case(k.as_bytes())) {
        1
    } else {
        0
    }
}

/// Reads the RETURN list opening at `i`; the index after it.
fn returns(m: &Message<'_>, i: usize) -> Result<(Returns, usize), &'static str> {
    let end = m.after_list(i).ok_or("RETURN wants a list")?;
    let mut r = Returns::default();
    let mut j = i + 1;
    while j + 1 < end {
        let option = m
            .atom(j)
            .ok_or("unknown RETURN option")?
            .to_ascii_uppercase();
        match option.as_slice() {
            b"MIN" => r.min = true,
            b"MAX" => r.max = true,
            b"ALL" => r.all = true,
            b"COUNT" => r.count = true,
            b"SAVE" => r.save = true,
            b"CONTEXT" => r.context = true,
            b"UPDATE" => r.update = true,
            b"PARTIAL" => {
                j += 1;
                let range = m.atom(j).ok_or("PARTIAL wants a range")?;
                r.partial = Some(partial_range(range).ok_or("PARTIAL wants a range")?);
            }
            _ => return Err("unknown RETURN option"),
        }
        j += 1;
    }
    if r.partial.is_some() && r.all {
        return Err("PARTIAL and ALL exclude each other");
    }
    let given = r.min || r.max || r.all || r.count || r.save || r.update || r.partial.is_some();
    if !given {
        // `RETURN ()` asks for ALL (RFC 4731 §3.1); CONTEXT alone is only a hint.
        r.all = true;
    }
    Ok((r, end))
}

/// `n:m`, two non-zero numbers, no `*` (RFC 5267 §5).
fn partial_range(range: &[u8]) -> Option<(u32, u32)> {
    let text = std::str::from_utf8(range).ok()?;
    let (a, b) = text.split_once(':')?;
    let number = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<u32>().ok())
            .flatten()
            .filter(|n| *n > 0)
    };
    Some((number(a)?, number(b)?))
}

/// What `$` stands for in a search key: the saved messages by UID (which does not change
/// as other messages are expunged), or a key no message matches.
fn search_dollar(view: Option<Selection<'_>>) -> Vec<u8> {
    let uids: Vec<u32> = view
        .map(|v| v.saved_positions().iter().map(|p| v.uids[*p]).collect())
        .unwrap_or_default();
    if uids.is_empty() {
        b"NOT ALL".to_vec()
    } else {
        format!("UID {}", set_text(&uids)).into_bytes()
    }
}

/// The `$` edits in the search keys from token `i` on.
fn search_keys(m: &Message<'_>, mut i: usize, view: Option<Selection<'_>>, edits: &mut Vec<Edit>) {
    while i < m.tokens.len() {
        let Some(word) = m.atom(i) else {
            i += 1;
            continue;
        };
        if word == b"$" {
            let t = m.tokens[i];
            edits.push(Edit {
                start: t.start,
                end: t.end,
                with: search_dollar(view),
            });
            i += 1;
        } else if word.eq_ignore_ascii_case(b"UID") {
            if m.atom(i + 1) == Some(b"$") {
                edits.push(Edit {
                    start: m.tokens[i].start,
                    end: m.tokens[i + 1].end,
                    with: search_dollar(view),
                });
            }
            i += 2;
        } else if word.eq_ignore_ascii_case(b"MODSEQ") {
            // `MODSEQ [entry-name entry-type] value` (RFC 7162 §3.1.5).
            let named = matches!(m.kind(i + 1), Some(Kind::Quoted | Kind::Literal));
            i += if named { 4 } else { 2 };
        } else if word.eq_ignore_ascii_case(b"CHARSET") {
            i += 2;
        } else {
            i += 1 + key_arguments(word);
        }
    }
}

fn tag(m: &Message<'_>) -> Option<Tag<'static>> {
    let text = std::str::from_utf8(m.atom(0)?).ok()?;
    Tag::try_from(text.to_owned()).ok()
}

/// Recognises the syntax of this module in one complete message; `None` when there is
/// none of it (imap-codec reads the message as it is).
pub(crate) fn decode(bytes: &[u8], view: Option<Selection<'_>>) -> Option<Extended> {
    let m = Message {
        bytes,
        tokens: lex(bytes)?,
    };
    let tag = tag(&m)?;
    let uid = m.is_atom(1, "UID");
    let at = 1 + usize::from(uid);
    let name = m.atom(at)?.to_ascii_uppercase();
    let mut edits = Vec::new();
    let mut returned = None;
    let keys_from = match name.as_slice() {
        b"CANCELUPDATE" if !uid => return Some(cancel_update(&m, tag)),
        b"SEARCH" | b"SORT" => {
            let mut i = at + 1;
            if m.is_atom(i, "RETURN") {
                match returns(&m, i + 1) {
                    Ok((r, end)) => {
                        let cut_to = m.tokens.get(end).map_or(bytes.len(), |t| t.start);
                        edits.push(Edit {
                            start: m.tokens[i].start,
                            end: cut_to,
                            with: Vec::new(),
                        });
                        returned = Some(r);
                        i = end;
                    }
                    Err(why) => {
                        let saving = m.tokens[i..]
                            .iter()
                            .take_while(|t| t.kind != Kind::Close)
                            .any(|t| bytes[t.start..t.end].eq_ignore_ascii_case(b"SAVE"));
                        return Some(Extended::Bad { tag, saving, why });
                    }
                }
            }
            if name == b"SORT" {
                // The sort criteria, then the charset.
                m.after_list(i).map(|j| j + 1)
            } else {
                Some(i)
            }
        }
        // `THREAD algorithm charset keys`.
        b"THREAD" => Some(at + 3),
        b"FETCH" | b"STORE" | b"COPY" | b"MOVE" | b"EXPUNGE" => {
            if m.atom(at + 1) == Some(b"$") && (uid || name != b"EXPUNGE") {
                let v = view?;
                let positions = v.saved_positions();
                let numbers: Vec<u32> = if uid {
                    positions.iter().map(|p| v.uids[*p]).collect()
                } else {
                    positions
                        .iter()
                        .map(|p| u32::try_from(p + 1).unwrap_or(u32::MAX))
                        .collect()
                };
                if numbers.is_empty() {
                    let mut name = String::from_utf8_lossy(&name).into_owned();
                    if uid {
                        name.insert_str(0, "UID ");
                    }
                    return Some(Extended::Nothing { tag, name });
                }
                let t = m.tokens[at + 1];
                edits.push(Edit {
                    start: t.start,
                    end: t.end,
                    with: set_text(&numbers).into_bytes(),
                });
            }
            None
        }
        _ => None,
    };
    if let Some(i) = keys_from {
        search_keys(&m, i, view, &mut edits);
    }
    if edits.is_empty() {
        return None;
    }
    let saving = returned.as_ref().is_some_and(|r| r.save);
    let rewritten = apply(bytes, edits);
    match CommandCodec::default().decode(&rewritten) {
        Ok(([], command)) => Some(Extended::Command {
            command: command.into_static(),
            returns: returned,
        }),
        _ => Some(Extended::Bad {
            tag,
            saving,
            why: "syntax error",
        }),
    }
}

/// `CANCELUPDATE 1*(SP quoted)`.
fn cancel_update(m: &Message<'_>, tag: Tag<'static>) -> Extended {
    let mut tags = Vec::new();
    for i in 2..m.tokens.len() {
        match (m.kind(i), m.text(i)) {
            (Some(Kind::Quoted), Some(q)) => tags.push(unquote(q)),
            _ => {
                return Extended::Bad {
                    tag,
                    saving: false,
                    why: "CANCELUPDATE wants quoted tags",
                };
            }
        }
    }
    if tags.is_empty() {
        return Extended::Bad {
            tag,
            saving: false,
            why: "CANCELUPDATE wants quoted tags",
        };
    }
    Extended::CancelUpdate { tag, tags }
}

fn unquote(quoted: &[u8]) -> Vec<u8> {
    let inner = &quoted[1..quoted.len().saturating_sub(1).max(1)];
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for b in inner {
        if escaped || *b != b'\\' {
            out.push(*b);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// One message a searching command found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Sequence number or UID, as the command asked.
    pub(crate) number: u32,
    pub(crate) uid: u32,
}

/// `* ESEARCH (TAG "t") [UID] …` (RFC 4731 §3.1, RFC 5267 §3.1 and §4.4) for `found`, in
/// the order the command answers with: mailbox order for SEARCH, sort order for SORT.
/// `None` when no response is due (SAVE alone). `modseq`: the highest MODSEQ of the
/// matches, for a search that used a MODSEQ key (RFC 7162 §3.1.5).
pub(crate) fn esearch(
    tag: &Tag<'_>,
    uid: bool,
    returns: &Returns,
    found: &[Hit],
    modseq: Option<u64>,
) -> Option<Vec<u8>> {
    if !returns.answers() {
        return None;
    }
    let mut out = format!("* ESEARCH (TAG \"{}\")", tag.inner());
    if uid {
        out.push_str(" UID");
    }
    let numbers: Vec<u32> = found.iter().map(|h| h.number).collect();
    if returns.min
        && let Some(first) = numbers.first()
    {
        out.push_str(&format!(" MIN {first}"));
    }
    if returns.max
        && let Some(last) = numbers.last()
    {
        out.push_str(&format!(" MAX {last}"));
    }
    if returns.count {
        out.push_str(&format!(" COUNT {}", numbers.len()));
    }
    if returns.all && !numbers.is_empty() {
        out.push_str(&format!(" ALL {}", set_text(&numbers)));
    }
    if let Some((a, b)) = returns.partial {
        let (lo, hi) = (a.min(b) as usize, a.max(b) as usize);
        let window = numbers
            .get(lo - 1..hi.min(numbers.len()))
            .unwrap_or_default();
        let set = if window.is_empty() {
            "NIL".to_owned()
        } else {
            set_text(window)
        };
        out.push_str(&format!(" PARTIAL ({a}:{b} {set})"));
    }
    if let Some(modseq) = modseq.filter(|_| !numbers.is_empty()) {
        out.push_str(&format!(" MODSEQ {modseq}"));
    }
    out.push_str("\r\n");
    Some(out.into_bytes())
}

/// The UIDs SAVE keeps (RFC 5182 §2.4): with MIN or MAX and neither ALL nor COUNT, only
/// those messages; otherwise every match. Ascending.
pub(crate) fn to_save(returns: &Returns, found: &[Hit]) -> Vec<u32> {
    let only_ends = (returns.min || returns.max) && !(returns.all || returns.count);
    let mut uids: Vec<u32> = if only_ends {
        let mut ends = Vec::new();
        if returns.min {
            ends.extend(found.first().map(|h| h.uid));
        }
        if returns.max {
            ends.extend(found.last().map(|h| h.uid));
        }
        ends
    } else {
        found.iter().map(|h| h.uid).collect()
    };
    uids.sort_unstable();
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(bytes: &[u8]) -> Vec<String> {
        lex(bytes)
            .unwrap()
            .iter()
            .map(|t| String::from_utf8_lossy(&bytes[t.start..t.end]).into_owned())
            .collect()
    }

    #[test]
    fn lexes_strings_and_literals_as_single_tokens() {
        assert_eq!(
            texts(b"a SEARCH SUBJECT \"$ (x\\\")\" BODY {3}\r\n$ )\r\n"),
            [
                "a",
                "SEARCH",
                "SUBJECT",
                "\"$ (x\\\")\"",
                "BODY",
                "{3}\r\n$ )"
            ]
        );
        assert_eq!(
            texts(b"a SEARCH RETURN (MIN) $\r\n"),
            ["a", "SEARCH", "RETURN", "(", "MIN", ")", "$"]
        );
        assert!(lex(b"a SEARCH {5}\r\nab\r\n").is_none());
        assert!(lex(b"a SEARCH \"open\r\n").is_none());
    }

    fn rewritten(bytes: &[u8]) -> (String, Option<Returns>) {
        match decode(bytes, None) {
            Some(Extended::Command { command, returns }) => {
                let out = imap_codec::CommandCodec::default().encode(&command).dump();
                (String::from_utf8(out).unwrap(), returns)
            }
            other => panic!("{other:?}"),
        }
    }

    use imap_codec::encode::Encoder;

    #[test]
    fn takes_the_return_clause_out() {
        let (c, r) = rewritten(b"A1 UID SEARCH RETURN (MIN MAX COUNT SAVE) UNSEEN\r\n");
        assert_eq!(c, "A1 UID SEARCH UNSEEN\r\n");
        let r = r.unwrap();
        assert!(r.min && r.max && r.count && r.save && !r.all);
        let (c, r) = rewritten(b"A2 SEARCH RETURN () SUBJECT \"RETURN (x)\"\r\n");
        assert_eq!(c, "A2 SEARCH SUBJECT \"RETURN (x)\"\r\n");
        assert!(r.unwrap().all);
        let (c, r) = rewritten(b"A3 SORT RETURN (PARTIAL 5:1 CONTEXT UPDATE) (DATE) UTF-8 ALL\r\n");
        assert_eq!(c, "A3 SORT (DATE) UTF-8 ALL\r\n");
        let r = r.unwrap();
        assert_eq!(r.partial, Some((5, 1)));
        assert!(r.update && r.context && !r.all);
    }

    #[test]
    fn refuses_bad_return_options() {
        for (line, saving) in [
            (&b"A1 SEARCH RETURN (FOO) ALL\r\n"[..], false),
            (b"A1 SEARCH RETURN (SAVE PARTIAL 1:*) ALL\r\n", true),
            (b"A1 SEARCH RETURN (ALL PARTIAL 1:5) ALL\r\n", false),
            (b"A1 SEARCH RETURN (PARTIAL 0:5) ALL\r\n", false),
            (b"A1 SEARCH RETURN MIN ALL\r\n", false),
        ] {
            match decode(line, None) {
                Some(Extended::Bad { saving: s, .. }) => assert_eq!(s, saving),
                other => panic!("{other:?}"),
            }
        }
        // imap-codec refuses the keys: a BAD that still forgets the saved result.
        match decode(b"A1 SEARCH RETURN (SAVE) NOSUCHKEY\r\n", None) {
            Some(Extended::Bad { saving: true, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn leaves_other_commands_to_imap_codec() {
        for line in [
            &b"A1 SEARCH UNSEEN\r\n"[..],
            b"A1 SEARCH KEYWORD $ SUBJECT $\r\n",
            b"A1 STORE 1 +FLAGS ($)\r\n",
            b"A1 FETCH 1 BODY[]\r\n",
        ] {
            assert!(decode(line, None).is_none());
        }
    }

    #[test]
    fn dollar_without_a_saved_result_matches_nothing() {
        let (c, _) = rewritten(b"A1 SEARCH $ UID $ OR $ SUBJECT \"$\"\r\n");
        assert_eq!(c, "A1 SEARCH NOT ALL NOT ALL OR NOT ALL SUBJECT \"$\"\r\n");
    }

    #[test]
    fn cancel_update_names_quoted_tags() {
        match decode(b"A9 CANCELUPDATE \"B01\" \"a\\\"b\"\r\n", None) {
            Some(Extended::CancelUpdate { tags, .. }) => {
                assert_eq!(tags, vec![b"B01".to_vec(), b"a\"b".to_vec()])
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(b"A9 CANCELUPDATE B01\r\n", None),
            Some(Extended::Bad { .. })
        ));
    }

    fn hits(numbers: &[u32]) -> Vec<Hit> {
        numbers
            .iter()
            .map(|n| Hit {
                number: *n,
                uid: n + 10,
            })
            .collect()
    }

    #[test]
    fn writes_esearch_responses() {
        let tag = Tag::try_from("x").unwrap();
        let all = Returns {
            min: true,
            max: true,
            count: true,
            all: true,
            ..Returns::default()
        };
        let out = esearch(&tag, true, &all, &hits(&[1, 2, 3, 5, 9]), None).unwrap();
        assert_eq!(
            out,
            b"* ESEARCH (TAG \"x\") UID MIN 1 MAX 9 COUNT 5 ALL 1:3,5,9\r\n"
        );
        let out = esearch(&tag, false, &all, &[], None).unwrap();
        assert_eq!(out, b"* ESEARCH (TAG \"x\") COUNT 0\r\n");
        let sorted = esearch(&tag, false, &all, &hits(&[4, 5, 2, 1, 2]), Some(7)).unwrap();
        assert_eq!(
            sorted,
            b"* ESEARCH (TAG \"x\") MIN 4 MAX 2 COUNT 5 ALL 4:5,2,1:2 MODSEQ 7\r\n"
        );
        let partial = Returns {
            partial: Some((3, 2)),
            ..Returns::default()
        };
        let out = esearch(&tag, false, &partial, &hits(&[4, 6, 7]), None).unwrap();
        assert_eq!(out, b"* ESEARCH (TAG \"x\") PARTIAL (3:2 6:7)\r\n");
        let far = Returns {
            partial: Some((10, 20)),
            ..Returns::default()
        };
        let out = esearch(&tag, false, &far, &hits(&[4]), None).unwrap();
        assert_eq!(out, b"* ESEARCH (TAG \"x\") PARTIAL (10:20 NIL)\r\n");
        let save = Returns {
            save: true,
            ..Returns::default()
        };
        assert!(esearch(&tag, false, &save, &hits(&[1]), None).is_none());
    }

    #[test]
    fn save_keeps_min_and_max_alone_only_without_all_or_count() {
        let found = hits(&[3, 1, 2]);
        let ends = Returns {
            min: true,
            max: true,
            save: true,
            ..Returns::default()
        };
        assert_eq!(to_save(&ends, &found), vec![12, 13]);
        let with_count = Returns {
            count: true,
            ..ends
        };
        assert_eq!(to_save(&with_count, &found), vec![11, 12, 13]);
    }
}
