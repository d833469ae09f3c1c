//! CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4.3): searches a client keeps alive with
//! `RETURN (UPDATE)`, and the `ADDTO`/`REMOVEFROM` notifications that keep its copy of
//! their results right as the folder changes, until CANCELUPDATE or the folder is left.
//!
//! A context keeps its result as UIDs in the order the client holds it. The sort keys
//! are fixed per message (headers, dates, size) and ties go by mailbox order, so a fresh
//! result keeps the relative order of the messages it shares with the old one: the
//! difference is a list of removals then insertions, each at a position.

use std::collections::HashSet;

use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::search::SearchKey;

use super::extended::search::set_text;

/// How many contexts one session may keep updated; beyond, the search is answered but
/// not kept (`NO [NOUPDATE]`, RFC 5267 §4.3.1).
pub(crate) const MAX_CONTEXTS: usize = 8;

pub(crate) struct Context {
    /// The tag of the command that asked for updates: the ESEARCH correlator.
    pub(crate) tag: String,
    pub(crate) uid: bool,
    pub(crate) key: SearchKey<'static>,
    /// SORT's criteria; `None` for SEARCH, whose result is in mailbox order.
    pub(crate) sort: Option<Vec<SortCriterion>>,
    /// The result the client holds, as UIDs, in its order.
    pub(crate) result: Vec<u32>,
}

/// The number the client knows `uid` by: itself, or its sequence number in `view_uids`.
fn number(view_uids: &[u32], uid: u32, by_uid: bool) -> Option<u32> {
    if by_uid {
        return Some(uid);
    }
    let p = view_uids.binary_search(&uid).ok()?;
    u32::try_from(p + 1).ok()
}

/// `position set` pairs: one pair at position 0 in mailbox order for SEARCH (§4.3.3);
/// for SORT, each run of neighbours at its own position.
fn pairs(runs: Vec<(usize, Vec<u32>)>, sorted: bool) -> String {
    if !sorted {
        let mut all: Vec<u32> = runs.into_iter().flat_map(|(_, r)| r).collect();
        all.sort_unstable();
        return format!("0 {}", set_text(&all));
    }
    runs.iter()
        .map(|(p, r)| format!("{p} {}", set_text(r)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Moves `context` to `fresh` (UIDs, in the context's order) and says how, as one
/// `* ESEARCH … REMOVEFROM (…) ADDTO (…)` response; `None` when nothing changed.
/// `view_uids`: the view the client holds now, for sequence numbers.
pub(crate) fn change(context: &mut Context, fresh: Vec<u32>, view_uids: &[u32]) -> Option<Vec<u8>> {
    let kept: HashSet<u32> = fresh.iter().copied().collect();
    let old: HashSet<u32> = context.result.iter().copied().collect();
    let by_uid = context.uid;
    let mut removals: Vec<(usize, Vec<u32>)> = Vec::new();
    let mut position = 1;
    let mut last_removed = false;
    for uid in &context.result {
        if kept.contains(uid) {
            position += 1;
            last_removed = false;
            continue;
        }
        let Some(n) = number(view_uids, *uid, by_uid) else {
            continue;
        };
        match removals.last_mut() {
            Some((p, run)) if last_removed && *p == position => run.push(n),
            _ => removals.push((position, vec![n])),
        }
        last_removed = true;
    }
    let mut additions: Vec<(usize, Vec<u32>)> = Vec::new();
    for (i, uid) in fresh.iter().enumerate() {
        if old.contains(uid) {
            continue;
        }
        let Some(n) = number(view_uids, *uid, by_uid) else {
            continue;
        };
        match additions.last_mut() {
            Some((p, run)) if *p + run.len() == i + 1 => run.push(n),
            _ => additions.push((i + 1, vec![n])),
        }
    }
    context.result = fresh;
    if removals.is_empty() && additions.is_empty() {
        return None;
    }
    let sorted = context.sort.is_some();
    let mut out = format!("* ESEARCH (TAG \"{}\")", context.tag);
    if by_uid {
        out.push_str(" UID");
    }
    if !removals.is_empty() {
        out.push_str(&format!(" REMOVEFROM ({})", pairs(removals, sorted)));
    }
    if !additions.is_empty() {
        out.push_str(&format!(" ADDTO ({})", pairs(additions, sorted)));
    }
    out.push_str("\r\n");
    Some(out.into_bytes())
}

/// The REMOVEFROM responses for messages about to be reported expunged: they must come
/// before the EXPUNGE, while their sequence numbers still hold (§4.3.4).
pub(crate) fn before_expunge(
    contexts: &mut [Context],
    gone: &[u32],
    view_uids: &[u32],
) -> Vec<Vec<u8>> {
    let gone: HashSet<u32> = gone.iter().copied().collect();
    contexts
        .iter_mut()
        .filter_map(|c| {
            let fresh = c
                .result
                .iter()
                .copied()
                .filter(|u| !gone.contains(u))
                .collect();
            change(c, fresh, view_uids)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(uid: bool, sorted: bool, result: Vec<u32>) -> Context {
        Context {
            tag: "B01".into(),
            uid,
            key: SearchKey::All,
            sort: sorted.then(Vec::new),
            result,
        }
    }

    fn text(b: Option<Vec<u8>>) -> String {
        String::from_utf8(b.unwrap_or_default()).unwrap()
    }

    #[test]
    fn search_contexts_use_position_zero() {
        let mut c = context(true, false, vec![3, 5, 7]);
        let out = change(&mut c, vec![3, 7, 8, 9], &[]);
        assert_eq!(
            text(out),
            "* ESEARCH (TAG \"B01\") UID REMOVEFROM (0 5) ADDTO (0 8:9)\r\n"
        );
        assert_eq!(c.result, vec![3, 7, 8, 9]);
        assert!(change(&mut c, vec![3, 7, 8, 9], &[]).is_none());
    }

    #[test]
    fn sequence_numbers_come_from_the_view() {
        let mut c = context(false, false, vec![10, 20]);
        let out = change(&mut c, vec![20, 30], &[10, 20, 30]);
        assert_eq!(
            text(out),
            "* ESEARCH (TAG \"B01\") REMOVEFROM (0 1) ADDTO (0 3)\r\n"
        );
    }

    #[test]
    fn sort_contexts_say_where() {
        // Held: 9 4 7 2; now: 9 5 6 7 2 1 (4 went, 5 and 6 came after 9, 1 at the end).
        let mut c = context(true, true, vec![9, 4, 7, 2]);
        let out = change(&mut c, vec![9, 5, 6, 7, 2, 1], &[]);
        assert_eq!(
            text(out),
            "* ESEARCH (TAG \"B01\") UID REMOVEFROM (2 4) ADDTO (2 5:6 6 1)\r\n"
        );
        let mut c = context(true, true, vec![1, 2, 3, 4]);
        let gone = before_expunge(std::slice::from_mut(&mut c), &[2, 3], &[]);
        assert_eq!(
            String::from_utf8(gone.concat()).unwrap(),
            "* ESEARCH (TAG \"B01\") UID REMOVEFROM (2 2:3)\r\n"
        );
        assert_eq!(c.result, vec![1, 4]);
    }
}
