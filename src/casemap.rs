//! The `i;unicode-casemap` collation (RFC 5051), which I18NLEVEL=1 (RFC 5255) makes the
//! comparator of SEARCH and SORT. Case-insensitive matching on lowercased text misses
//! what French mail is full of: a decomposed `é` typed by one client against a
//! precomposed one stored by another, ligatures (`ﬁ`, `œ` in compatibility form),
//! titlecase digraphs. Each character is brought to its titlecase, then replaced by its
//! full decomposition, until nothing changes; equality, substring and order are then
//! those of the resulting UTF-8 octets.

use unicode_normalization::char::decompose_compatible;

/// The titlecased canonical form of `s`.
pub(crate) fn casemap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // ASCII titlecases to its capital, which decomposes to itself: the common case
        // (and most of every body the search index holds) without the tables.
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            push_mapped(c, &mut out, 0);
        }
    }
    out
}

/// Deep enough for any chain in the Unicode data (decompositions are at most a few
/// levels); the bound only keeps a malformed table from recursing without end.
const MAX_DEPTH: u8 = 8;

fn push_mapped(c: char, out: &mut String, depth: u8) {
    let t = titlecase(c);
    let mut parts = Vec::with_capacity(2);
    decompose_compatible(t, |d| parts.push(d));
    if depth >= MAX_DEPTH || (parts.len() == 1 && parts[0] == c) {
        out.extend(parts);
        return;
    }
    for p in parts {
        push_mapped(p, out, depth + 1);
    }
}

/// The simple titlecase mapping of UnicodeData.txt. The standard library offers the full
/// uppercase mapping, which equals the simple titlecase but for: characters whose full
/// mapping is several characters (SpecialCasing: `ß`, `ŉ`, …), which have no simple one
/// and stay as they are; Georgian Mkhedruli letters, whose titlecase is themselves (their
/// uppercase Mtavruli is not used in titles); and the digraphs `Ǆ`/`ǆ`, `Ǉ`/`ǉ`, `Ǌ`/`ǌ`,
/// `Ǳ`/`ǳ`, whose titlecase forms decompose to the same letters as their uppercase ones,
/// so they need no special case here.
fn titlecase(c: char) -> char {
    if matches!(c, '\u{10D0}'..='\u{10FA}' | '\u{10FD}'..='\u{10FF}') {
        return c;
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::casemap;

    #[test]
    fn case_is_ignored() {
        assert_eq!(casemap("Compte rendu"), casemap("COMPTE RENDU"));
    }

    #[test]
    fn precomposed_and_decomposed_accents_are_equal() {
        assert_eq!(casemap("r\u{e9}sum\u{e9}"), casemap("RE\u{301}SUME\u{301}"));
        assert_eq!(casemap("\u{e9}"), "E\u{301}");
    }

    #[test]
    fn compatibility_forms_decompose() {
        assert_eq!(casemap("\u{fb01}nal"), "FINAL");
        assert_eq!(casemap("\u{212b}"), casemap("\u{e5}"), "ANGSTROM SIGN is Å");
        assert_eq!(casemap("\u{2460}"), "1", "circled digit one");
    }

    #[test]
    fn digraphs_meet_whatever_their_case() {
        let forms = ["\u{1c4}", "\u{1c5}", "\u{1c6}", "D\u{17d}", "d\u{17e}"];
        for f in forms {
            assert_eq!(casemap(f), "DZ\u{30c}", "{f}");
        }
    }

    #[test]
    fn characters_without_a_simple_titlecase_stay() {
        assert_eq!(casemap("stra\u{df}e"), "STRA\u{df}E");
        assert_eq!(casemap("\u{10d0}"), "\u{10d0}", "Georgian Mkhedruli an");
    }

    #[test]
    fn order_is_the_octets_of_the_canonical_form() {
        assert!(casemap("abc") < casemap("ABD"));
        assert!(casemap("Zebre") > casemap("\u{e9}t\u{e9}"));
    }
}
