//! Sequence sets against a session's UID list, without ever expanding `1:4294967295`.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// Positions (0-based indexes into `uids`) named by a sequence set, ascending, unique.
/// `None` when a message sequence number is beyond the mailbox (RFC 3501: BAD).
pub(crate) fn resolve(set: &SequenceSet, uids: &[u32], by_uid: bool) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(x) => (x, x),
            Sequence::Range(a, b) => (a, b),
        };
        if by_uid {
            let largest = uids.last().copied().unwrap_or(0);
            let value = |v: &SeqOrUid| match v {
                SeqOrUid::Value(n) => n.get(),
                SeqOrUid::Asterisk => largest,
            };
            let (lo, hi) = ordered(value(a), value(b));
            let start = uids.partition_point(|u| *u < lo);
            let end = uids.partition_point(|u| *u <= hi);
            out.extend(start..end);
        } else {
            let len = u32::try_from(uids.len()).unwrap_or(u32::MAX);
            let value = |v: &SeqOrUid| match v {
                SeqOrUid::Value(n) => n.get(),
                SeqOrUid::Asterisk => len,
            };
            let (lo, hi) = ordered(value(a), value(b));
            if lo == 0 || hi > len {
                return None;
            }
            out.extend((lo as usize - 1)..(hi as usize));
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn ordered(a: u32, b: u32) -> (u32, u32) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Splits ascending positions into runs of neighbours (at most `max` long), so each run
/// is one range query on the store.
pub(crate) fn runs(positions: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=positions.len() {
        let breaks =
            i == positions.len() || positions[i] != positions[i - 1] + 1 || i - start >= max;
        if breaks {
            out.push(start..i);
            start = i;
        }
    }
    out
}

/// A UID set for COPYUID/VANISHED, compressed into ranges.
pub(crate) fn uid_set(uids: &[u32]) -> Option<SequenceSet> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut seqs = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        let s = std::num::NonZeroU32::new(start)?;
        let e = std::num::NonZeroU32::new(end)?;
        seqs.push(if s == e {
            Sequence::Single(SeqOrUid::Value(s))
        } else {
            Sequence::Range(SeqOrUid::Value(s), SeqOrUid::Value(e))
        });
        i += 1;
    }
    SequenceSet::try_from(seqs).ok()
}

/// Whether a UID is in a set (for VANISHED filtering), `*` meaning `largest`.
pub(crate) fn contains(set: &SequenceSet, uid: u32, largest: u32) -> bool {
    set.0.as_ref().iter().any(|seq| {
        let value = |v: &SeqOrUid| match v {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk => largest,
        };
        let (lo, hi) = match seq {
            Sequence::Single(x) => (value(x), value(x)),
            Sequence::Range(a, b) => ordered(value(a), value(b)),
        };
        (lo..=hi).contains(&uid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_uids_and_sequence_numbers() {
        let uids = [3, 5, 9, 10];
        let set = SequenceSet::try_from("4:*").unwrap();
        assert_eq!(resolve(&set, &uids, true), Some(vec![1, 2, 3]));
        let set = SequenceSet::try_from("2,4").unwrap();
        assert_eq!(resolve(&set, &uids, false), Some(vec![1, 3]));
        let set = SequenceSet::try_from("5").unwrap();
        assert_eq!(resolve(&set, &uids, false), None);
        let set = SequenceSet::try_from("20:*").unwrap();
        assert_eq!(resolve(&set, &uids, true), Some(vec![3]));
        let set = SequenceSet::try_from("1:4294967295").unwrap();
        assert_eq!(resolve(&set, &uids, true), Some(vec![0, 1, 2, 3]));
    }

    #[test]
    fn runs_and_sets() {
        assert_eq!(runs(&[0, 1, 2, 5, 6, 9], 2), vec![0..2, 2..3, 3..5, 5..6]);
        let s = uid_set(&[1, 2, 3, 7]).unwrap();
        assert!(contains(&s, 2, 7) && contains(&s, 7, 7) && !contains(&s, 5, 7));
    }
}
