//! Reads the IMAP grammar's small pieces (RFC 3501 §9: atoms, quoted strings, literals,
//! astrings, lists) from one complete message as the `Fragmentizer` framed it: literal
//! data sits inline after its `{n}\r\n`, so a literal is taken by its announced length
//! and its bytes are never read as syntax.

use std::borrow::Cow;

/// The message did not follow the grammar; the command gets `BAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Syntax;

pub(crate) type Parse<T> = Result<T, Syntax>;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// One expected byte.
    pub(crate) fn byte(&mut self, b: u8) -> Parse<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    /// Takes `b` if it comes next.
    pub(crate) fn take(&mut self, b: u8) -> bool {
        self.byte(b).is_ok()
    }

    pub(crate) fn sp(&mut self) -> Parse<()> {
        self.byte(b' ')
    }

    /// The end of the command: CRLF (or a bare LF, as the rest of the server accepts)
    /// and nothing after it.
    pub(crate) fn end(&mut self) -> Parse<()> {
        let rest = &self.bytes[self.pos..];
        if rest == b"\r\n" || rest == b"\n" {
            self.pos = self.bytes.len();
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        matches!(&self.bytes[self.pos..], b"\r\n" | b"\n")
    }

    /// Bytes while `f` holds, at least one.
    fn run(&mut self, f: impl Fn(u8) -> bool) -> Parse<&'a [u8]> {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(Syntax);
        }
        Ok(&self.bytes[start..self.pos])
    }

    pub(crate) fn atom(&mut self) -> Parse<&'a [u8]> {
        self.run(is_atom_char)
    }

    /// The tag: any atom character but `+`.
    pub(crate) fn tag(&mut self) -> Parse<&'a [u8]> {
        self.run(|b| is_atom_char(b) && b != b'+')
    }

    /// An atom equal to `word`, case-insensitively, and not the start of a longer atom.
    pub(crate) fn keyword(&mut self, word: &str) -> bool {
        let start = self.pos;
        match self.atom() {
            Ok(a) if a.eq_ignore_ascii_case(word.as_bytes()) => true,
            _ => {
                self.pos = start;
                false
            }
        }
    }

    pub(crate) fn number(&mut self) -> Parse<u32> {
        let digits = self.run(|b| b.is_ascii_digit())?;
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(Syntax)
    }

    pub(crate) fn quoted(&mut self) -> Parse<Cow<'a, [u8]>> {
        self.byte(b'"')?;
        let start = self.pos;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            let b = self.peek().ok_or(Syntax)?;
            self.pos += 1;
            match b {
                b'"' => {
                    return Ok(match owned {
                        Some(v) => Cow::Owned(v),
                        None => Cow::Borrowed(&self.bytes[start..self.pos - 1]),
                    });
                }
                b'\\' => {
                    let escaped = self.peek().filter(|e| matches!(e, b'"' | b'\\'));
                    let escaped = escaped.ok_or(Syntax)?;
                    let v = owned.get_or_insert_with(|| self.bytes[start..self.pos - 1].to_vec());
                    v.push(escaped);
                    self.pos += 1;
                }
                b'\r' | b'\n' | 0 => return Err(Syntax),
                b => {
                    if let Some(v) = owned.as_mut() {
                        v.push(b);
                    }
                }
            }
        }
    }

    /// `{n}`, `{n+}` or `~{n}` (a literal8, RFC 3516), its CRLF, and its `n` bytes.
    pub(crate) fn literal(&mut self) -> Parse<&'a [u8]> {
        self.take(b'~');
        self.byte(b'{')?;
        let n = usize::try_from(self.number()?).map_err(|_| Syntax)?;
        self.take(b'+');
        self.byte(b'}')?;
        self.take(b'\r');
        self.byte(b'\n')?;
        let end = self.pos.checked_add(n).ok_or(Syntax)?;
        let data = self.bytes.get(self.pos..end).ok_or(Syntax)?;
        self.pos = end;
        Ok(data)
    }

    /// Whether a literal starts here.
    pub(crate) fn at_literal(&self) -> bool {
        matches!(self.peek(), Some(b'{' | b'~'))
    }

    /// A string: quoted or literal (a literal8 is no string).
    pub(crate) fn string(&mut self) -> Parse<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(Cow::Borrowed(self.literal()?)),
            _ => Err(Syntax),
        }
    }

    /// An astring: an atom (where `]` is allowed too) or a string.
    pub(crate) fn astring(&mut self) -> Parse<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => self
                .run(|b| is_atom_char(b) || b == b']')
                .map(Cow::Borrowed),
        }
    }

    /// A LIST pattern: like an astring, with `%` and `*` allowed unquoted.
    pub(crate) fn list_mailbox(&mut self) -> Parse<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => self
                .run(|b| is_atom_char(b) || matches!(b, b']' | b'%' | b'*'))
                .map(Cow::Borrowed),
        }
    }

    /// What is left to read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// A parenthesized run, nested parentheses and quoted strings in it, taken whole
    /// (its parentheses included) for another parser to read.
    pub(crate) fn balanced(&mut self) -> Parse<&'a [u8]> {
        let start = self.pos;
        self.byte(b'(')?;
        let mut depth = 1;
        while depth > 0 {
            match self.peek().ok_or(Syntax)? {
                b'"' => {
                    self.quoted()?;
                    continue;
                }
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'\r' | b'\n' => return Err(Syntax),
                _ => {}
            }
            self.pos += 1;
        }
        Ok(&self.bytes[start..self.pos])
    }

    /// `(` item *(SP item) `)`, or `()` when `empty` allows it.
    pub(crate) fn list<T>(
        &mut self,
        empty: bool,
        mut item: impl FnMut(&mut Self) -> Parse<T>,
    ) -> Parse<Vec<T>> {
        self.byte(b'(')?;
        let mut out = Vec::new();
        if self.take(b')') {
            return if empty { Ok(out) } else { Err(Syntax) };
        }
        loop {
            out.push(item(self)?);
            if self.take(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }
}

/// The folder name a mailbox argument means: INBOX in any case is INBOX; other names
/// are kept as sent (modified UTF-7), as for the commands imap-codec reads.
pub(crate) fn folder_name(bytes: &[u8]) -> Option<String> {
    if bytes.eq_ignore_ascii_case(b"INBOX") {
        return Some("INBOX".to_owned());
    }
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_literals() {
        let mut r = Reader::new(b"\"a\\\"b\" {3}\r\nx y ~{2+}\r\n\0\x01 atom] (A B)\r\n");
        assert_eq!(r.astring().unwrap().as_ref(), b"a\"b");
        r.sp().unwrap();
        assert_eq!(r.astring().unwrap().as_ref(), b"x y");
        r.sp().unwrap();
        assert_eq!(r.literal().unwrap(), b"\0\x01");
        r.sp().unwrap();
        assert_eq!(r.astring().unwrap().as_ref(), b"atom]");
        r.sp().unwrap();
        let items = r.list(false, |r| r.atom().map(<[u8]>::to_vec)).unwrap();
        assert_eq!(items, [b"A".to_vec(), b"B".to_vec()]);
        r.end().unwrap();
    }

    #[test]
    fn refuses_broken_input() {
        assert!(Reader::new(b"\"abc").quoted().is_err());
        assert!(Reader::new(b"\"a\rb\"").quoted().is_err());
        assert!(Reader::new(b"{10}\r\nshort").literal().is_err());
        assert!(Reader::new(b"{99999999999}\r\n").literal().is_err());
        assert!(Reader::new(b"()").list(false, |r| r.atom()).is_err());
        assert!(Reader::new(b"(A ").list(true, |r| r.atom()).is_err());
        let mut r = Reader::new(b"SUBSCRIBEDX");
        assert!(!r.keyword("SUBSCRIBED"));
        assert_eq!(r.atom().unwrap(), b"SUBSCRIBEDX");
    }
}
