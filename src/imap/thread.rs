//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3), over what the command
//! read of each message: pure, so the RFC's rules can be checked without a server.
//!
//! Trees live in an arena and are walked with explicit stacks: a mailbox can hold reply
//! chains thousands deep, which recursion would turn into a stack overflow.

use std::collections::HashMap;
use std::num::NonZeroU32;

use imap_codec::imap_types::core::{Vec1, Vec2};
use imap_codec::imap_types::extensions::thread::Thread;

use super::sort::BaseSubject;

/// One message as threading sees it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// What the answer names it by: sequence number or UID.
    pub(crate) number: NonZeroU32,
    /// Its sequence number, which breaks ties between equal dates.
    pub(crate) seq: u32,
    /// Sent date, Unix seconds UTC.
    pub(crate) sent: i64,
    pub(crate) subject: BaseSubject,
    /// Message-ID without its angle brackets, when it has one.
    pub(crate) message_id: Option<String>,
    /// References, or else In-Reply-To, oldest first.
    pub(crate) references: Vec<String>,
}

#[derive(Debug, Default, Clone)]
struct Node {
    /// Index in the items; `None` for a dummy (a message referred to but not here).
    item: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Forest<'a> {
    items: &'a [Item],
    nodes: Vec<Node>,
}

impl Forest<'_> {
    fn new_node(&mut self, item: Option<usize>) -> usize {
        self.nodes.push(Node {
            item,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    /// Whether `a` is `b` or one of its ancestors.
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        let mut at = Some(b);
        while let Some(n) = at {
            if n == a {
                return true;
            }
            at = self.nodes[n].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|c| *c != child);
        }
    }

    /// Links unless that would make a loop.
    fn link(&mut self, parent: usize, child: usize) -> bool {
        if self.is_ancestor(child, parent) {
            return false;
        }
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
        true
    }

    /// The sort key of a node: its message's date and sequence number, or for a dummy
    /// those of its first child (RFC 5256 §3, REFERENCES step 6).
    fn date_key(&self, n: usize) -> (i64, u32) {
        let mut at = n;
        loop {
            let node = &self.nodes[at];
            if let Some(i) = node.item {
                return (self.items[i].sent, self.items[i].seq);
            }
            match node.children.first() {
                Some(c) => at = *c,
                None => return (i64::MAX, u32::MAX),
            }
        }
    }

    fn subject(&self, n: usize) -> Option<&BaseSubject> {
        let node = &self.nodes[n];
        let i = node
            .item
            .or_else(|| node.children.first().and_then(|c| self.nodes[*c].item))?;
        Some(&self.items[i].subject)
    }

    fn is_dummy(&self, n: usize) -> bool {
        self.nodes[n].item.is_none()
    }

    fn is_reply(&self, n: usize) -> bool {
        self.nodes[n]
            .item
            .is_some_and(|i| self.items[i].subject.reply_or_forward)
    }

    /// Sorts every node's children by sent date, deepest first so that a dummy's date
    /// is that of its earliest child.
    fn sort_children(&mut self, roots: &[usize]) {
        let mut order = Vec::new();
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(n) = stack.pop() {
            order.push(n);
            stack.extend(self.nodes[n].children.iter().copied());
        }
        for n in order.into_iter().rev() {
            let mut children = std::mem::take(&mut self.nodes[n].children);
            children.sort_by_key(|c| self.date_key(*c));
            self.nodes[n].children = children;
        }
    }

    /// The answer for one root: chains of single replies become one list of numbers,
    /// a fork becomes nested lists (RFC 5256 §4, `thread-list`).
    fn to_thread(&self, root: usize) -> Option<Thread> {
        enum Step {
            Enter(usize),
            Leave {
                prefix: Vec<NonZeroU32>,
                count: usize,
            },
        }
        let mut stack = vec![Step::Enter(root)];
        let mut done: Vec<Option<Thread>> = Vec::new();
        while let Some(step) = stack.pop() {
            match step {
                Step::Enter(n) => {
                    let mut prefix = Vec::new();
                    let mut at = n;
                    loop {
                        let node = &self.nodes[at];
                        if let Some(i) = node.item {
                            prefix.push(self.items[i].number);
                        }
                        match node.children.as_slice() {
                            [only] => at = *only,
                            _ => break,
                        }
                    }
                    let children = &self.nodes[at].children;
                    stack.push(Step::Leave {
                        prefix,
                        count: children.len(),
                    });
                    stack.extend(children.iter().rev().map(|c| Step::Enter(*c)));
                }
                Step::Leave { prefix, count } => {
                    let answers = done.split_off(done.len().saturating_sub(count));
                    done.push(join(prefix, answers.into_iter().flatten().collect()));
                }
            }
        }
        done.pop().flatten()
    }
}

/// A `thread-list`: messages one below the other, then the branches under the last.
fn join(mut prefix: Vec<NonZeroU32>, mut answers: Vec<Thread>) -> Option<Thread> {
    if answers.len() == 1 {
        match answers.pop()? {
            Thread::Members {
                prefix: more,
                answers,
            } => {
                prefix.extend(more.as_ref().iter().copied());
                return Some(Thread::Members {
                    prefix: Vec1::try_from(prefix).ok()?,
                    answers,
                });
            }
            nested @ Thread::Nested { .. } => answers.push(nested),
        }
    }
    let branches = Vec2::try_from(answers).ok();
    match (Vec1::try_from(prefix).ok(), branches) {
        (Some(prefix), answers) => Some(Thread::Members { prefix, answers }),
        (None, Some(answers)) => Some(Thread::Nested { answers }),
        (None, None) => None,
    }
}

/// RFC 5256 §3, ORDEREDSUBJECT: messages grouped by base subject; in each group the
/// earliest is the parent of all the others; groups in the order of their first message.
pub(crate) fn ordered_subject(items: &[Item]) -> Vec<Thread> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| {
        let (a, b) = (&items[*a], &items[*b]);
        (&a.subject.key, a.sent, a.seq).cmp(&(&b.subject.key, b.sent, b.seq))
    });
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some(g)
                if g.first()
                    .is_some_and(|f| items[*f].subject.key == items[i].subject.key) =>
            {
                g.push(i)
            }
            _ => groups.push(vec![i]),
        }
    }
    groups.sort_by_key(|g| g.first().map(|f| (items[*f].sent, items[*f].seq)));
    groups
        .into_iter()
        .filter_map(|g| {
            let (first, rest) = g.split_first()?;
            let leaves = rest
                .iter()
                .filter_map(|i| join(vec![items[*i].number], Vec::new()))
                .collect();
            join(vec![items[*first].number], leaves)
        })
        .collect()
}

/// RFC 5256 §3, REFERENCES, steps 1 to 7.
pub(crate) fn references(items: &[Item]) -> Vec<Thread> {
    let mut f = Forest {
        items,
        nodes: Vec::with_capacity(items.len() * 2),
    };
    // Step 1: the id table. A message without a Message-ID, or whose Message-ID an
    // earlier message already took, gets a container of its own nobody can refer to.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut own = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let container = match item.message_id.as_deref() {
            Some(id) => match ids.get(id) {
                Some(&n) if f.nodes[n].item.is_none() => {
                    f.nodes[n].item = Some(i);
                    n
                }
                Some(_) => f.new_node(Some(i)),
                None => {
                    let n = f.new_node(Some(i));
                    ids.insert(id, n);
                    n
                }
            },
            None => f.new_node(Some(i)),
        };
        own.push(container);
        // 1A: each reference is the parent of the next, unless it has one already.
        let mut previous: Option<usize> = None;
        for r in &item.references {
            let n = match ids.get(r.as_str()) {
                Some(&n) => n,
                None => {
                    let n = f.new_node(None);
                    ids.insert(r.as_str(), n);
                    n
                }
            };
            if let Some(p) = previous
                && f.nodes[n].parent.is_none()
            {
                f.link(p, n);
            }
            previous = Some(n);
        }
        // 1B: the last reference is the parent, replacing any earlier guess.
        match previous {
            Some(p) => {
                f.link(p, container);
            }
            None => f.unlink(container),
        }
    }
    // Step 2: the roots, in the order their containers were made.
    let roots: Vec<usize> = (0..f.nodes.len())
        .filter(|n| f.nodes[*n].parent.is_none())
        .collect();
    // Step 4: dummies go, their children taking their place; at the top only when
    // there is a single child, or a dummy would hold several roots together.
    let roots = prune(&mut f, roots);
    f.sort_children(&roots);
    // Step 5: roots with the same base subject are merged.
    let roots = merge_by_subject(&mut f, roots);
    // Step 6: siblings by sent date, at every level.
    f.sort_children(&roots);
    let mut roots = roots;
    roots.sort_by_key(|r| f.date_key(*r));
    roots.into_iter().filter_map(|r| f.to_thread(r)).collect()
}

fn prune(f: &mut Forest<'_>, roots: Vec<usize>) -> Vec<usize> {
    // Below the top: replace every dummy by its children, bottom-up.
    let mut order = Vec::new();
    let mut stack = roots.clone();
    while let Some(n) = stack.pop() {
        order.push(n);
        stack.extend(f.nodes[n].children.iter().copied());
    }
    for n in order.into_iter().rev() {
        let children = std::mem::take(&mut f.nodes[n].children);
        let mut kept = Vec::with_capacity(children.len());
        for c in children {
            if f.is_dummy(c) {
                let grandchildren = std::mem::take(&mut f.nodes[c].children);
                for g in &grandchildren {
                    f.nodes[*g].parent = Some(n);
                }
                kept.extend(grandchildren);
                f.nodes[c].parent = None;
            } else {
                kept.push(c);
            }
        }
        f.nodes[n].children = kept;
    }
    // At the top: an empty dummy goes, a dummy with one child gives way to it.
    let mut out = Vec::with_capacity(roots.len());
    for r in roots {
        if !f.is_dummy(r) {
            out.push(r);
            continue;
        }
        match f.nodes[r].children.as_slice() {
            [] => {}
            [only] => {
                let only = *only;
                f.nodes[r].children.clear();
                f.nodes[only].parent = None;
                out.push(only);
            }
            _ => out.push(r),
        }
    }
    out
}

fn merge_by_subject(f: &mut Forest<'_>, roots: Vec<usize>) -> Vec<usize> {
    // 5A–C: the representative of each subject.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some(subject) = f.subject(r).map(|s| s.key.clone()) else {
            continue;
        };
        if subject.is_empty() {
            continue;
        }
        match table.get(&subject) {
            None => {
                table.insert(subject, r);
            }
            Some(&old) => {
                if !f.is_dummy(old) && (f.is_dummy(r) || (f.is_reply(old) && !f.is_reply(r))) {
                    table.insert(subject, r);
                }
            }
        }
    }
    // 5D: the others join it.
    let mut dummies = Vec::new();
    for &r in &roots {
        if f.nodes[r].parent.is_some() {
            continue;
        }
        let Some(subject) = f.subject(r).map(|s| s.key.clone()) else {
            continue;
        };
        if subject.is_empty() {
            continue;
        }
        let Some(&old) = table.get(&subject) else {
            continue;
        };
        if old == r {
            continue;
        }
        if f.is_dummy(old) && f.is_dummy(r) {
            let children = std::mem::take(&mut f.nodes[r].children);
            for c in &children {
                f.nodes[*c].parent = Some(old);
            }
            f.nodes[old].children.extend(children);
        } else if f.is_dummy(old) || (f.is_reply(r) && !f.is_reply(old)) {
            f.link(old, r);
        } else {
            let dummy = f.new_node(None);
            f.link(dummy, old);
            f.link(dummy, r);
            table.insert(subject, dummy);
            dummies.push(dummy);
        }
    }
    // What is left at the top: roots not merged under another, dummies not emptied.
    roots
        .into_iter()
        .chain(dummies)
        .filter(|r| {
            let node = &f.nodes[*r];
            node.parent.is_none() && (node.item.is_some() || !node.children.is_empty())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::sort::base_subject;

    fn item(n: u32, sent: i64, subject: &str, id: &str, refs: &[&str]) -> Item {
        Item {
            number: NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN),
            seq: n,
            sent,
            subject: base_subject(subject),
            message_id: (!id.is_empty()).then(|| id.to_owned()),
            references: refs.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn wire(threads: &[Thread]) -> String {
        threads.iter().map(|t| t.to_string()).collect()
    }

    fn t(threads: &[Thread]) -> String {
        wire(threads)
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let items = [
            item(1, 1, "A", "", &[]),
            item(2, 3, "Re: A", "", &[]),
            item(3, 2, "B", "", &[]),
            item(4, 4, "RE: a", "", &[]),
            item(5, 5, "C", "", &[]),
            item(6, 6, "Re: C", "", &[]),
        ];
        assert_eq!(t(&ordered_subject(&items)), "(1 (2)(4))(3)(5 6)");
    }

    #[test]
    fn references_links_replies_dummies_and_subjects() {
        let items = [
            item(1, 1, "Hello", "a", &[]),
            item(2, 2, "Re: Hello", "b", &["a"]),
            item(3, 3, "Re: Hello", "c", &["a"]),
            item(4, 4, "Re: Hello", "d", &["a", "b"]),
            item(5, 5, "Lost", "e", &["x"]),
            item(6, 6, "Re: Lost", "f", &["x"]),
            item(7, 7, "Re: Hello", "g", &[]),
            item(8, 8, "Single", "h", &["y"]),
        ];
        assert_eq!(t(&references(&items)), "(1 (2 4)(3)(7))((5)(6))(8)");
    }

    #[test]
    fn references_sorts_siblings_by_sent_date() {
        let items = [
            item(1, 10, "Hello", "a", &[]),
            item(2, 30, "Re: Hello", "b", &["a"]),
            item(3, 20, "Re: Hello", "c", &["a"]),
            item(4, 5, "Other", "d", &[]),
        ];
        assert_eq!(t(&references(&items)), "(4)(1 (3)(2))");
    }

    #[test]
    fn originals_with_one_subject_meet_under_a_dummy() {
        let items = [item(1, 1, "Hello", "a", &[]), item(2, 2, "Hello", "b", &[])];
        assert_eq!(t(&references(&items)), "((1)(2))");
    }

    #[test]
    fn loops_and_duplicate_ids_are_harmless() {
        let items = [
            item(1, 1, "x", "a", &["b"]),
            item(2, 2, "y", "b", &["a"]),
            item(3, 3, "z", "a", &["a", "a"]),
            item(4, 4, "w", "c", &["c"]),
        ];
        assert_eq!(t(&references(&items)), "(2 1 3)(4)");
    }

    #[test]
    fn a_linked_reference_keeps_its_parent() {
        // 3 lists b under z, but b (2) already has a as parent: that link stays.
        let items = [
            item(1, 1, "p", "a", &[]),
            item(2, 2, "q", "b", &["a"]),
            item(3, 3, "r", "c", &["z", "b"]),
        ];
        assert_eq!(t(&references(&items)), "(1 2 3)");
    }

    #[test]
    fn deep_chains_do_not_recurse() {
        let ids: Vec<String> = (0..5_000).map(|i| format!("m{i}")).collect();
        let items: Vec<Item> = (0..5_000u32)
            .map(|i| Item {
                number: NonZeroU32::new(i + 1).unwrap_or(NonZeroU32::MIN),
                seq: i + 1,
                sent: i64::from(i),
                subject: base_subject("s"),
                message_id: Some(ids[i as usize].clone()),
                references: ids[..i as usize].iter().rev().take(1).cloned().collect(),
            })
            .collect();
        let threads = references(&items);
        assert_eq!(threads.len(), 1);
    }

    #[test]
    fn encoding_matches_the_rfc_examples() {
        use imap_codec::ResponseCodec;
        use imap_codec::encode::Encoder;
        use imap_codec::imap_types::response::{Data, Response};
        let n = |v: &[u32]| {
            Vec1::try_from(
                v.iter()
                    .filter_map(|n| NonZeroU32::new(*n))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or(Vec1::from(NonZeroU32::MIN))
        };
        let leaf = |v: &[u32]| Thread::Members {
            prefix: n(v),
            answers: None,
        };
        let threads = vec![
            leaf(&[2]),
            Thread::Members {
                prefix: n(&[3, 6]),
                answers: Vec2::try_from(vec![leaf(&[4, 23]), leaf(&[44, 7, 96])]).ok(),
            },
        ];
        let bytes = ResponseCodec::default()
            .encode(&Response::Data(Data::Thread(threads)))
            .dump();
        assert_eq!(bytes, b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n");
        let nested = vec![Thread::Nested {
            answers: Vec2::unvalidated(vec![leaf(&[3]), leaf(&[5])]),
        }];
        let bytes = ResponseCodec::default()
            .encode(&Response::Data(Data::Thread(nested)))
            .dump();
        assert_eq!(bytes, b"* THREAD ((3)(5))\r\n");
    }
}
