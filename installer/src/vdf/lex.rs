//! A span-keeping lexer for text KeyValues (VDF).
//!
//! Why not keyvalues-parser for writes: it stores objects in a `BTreeMap`
//! (key order lost), drops comments and re-renders whitespace and escapes, so
//! rendering its tree would rewrite a user's whole `localconfig.vdf`. This
//! lexer instead covers every input byte with exactly one token, so an edit can
//! splice bytes and leave everything else as it was
//! (`concat(token texts) == input` for every input that lexes).
//!
//! Token shapes (byte spans into the input):
//! - [`TokenKind::Whitespace`]: a run of ` \t\r\n\x0b\x0c\0` (a trailing NUL
//!   occurs in some Valve files), or a UTF-8 BOM at offset 0;
//! - [`TokenKind::Comment`]: `//` up to, not including, the line end (`\n` or `\r\n`);
//! - [`TokenKind::Quoted`]: `"…"`; a backslash escapes the next byte, so `\"`
//!   does not end the string (Steam writes `"` as `\"` and `\` as `\\`);
//! - [`TokenKind::Unquoted`]: a run of bytes up to whitespace, `"`, `{` or `}`;
//! - [`TokenKind::Open`] `{`, [`TokenKind::Close`] `}`;
//! - [`TokenKind::Directive`]: a `#base` / `#include` line, up to the line end;
//! - [`TokenKind::Conditional`]: `[$WIN32]`-style conditionals, `[` up to `]`.
//!
//! Sources: Valve Developer Community "KeyValues" format; keyvalues-parser
//! 0.2.4 grammar (`src/text/parse/escaped.rs`); STEAM.md §4 (escaping).

use std::ops::Range;

/// What a [`Token`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Blanks, line ends, a BOM at offset 0 or NUL bytes.
    Whitespace,
    /// `// …` to the end of the line (line end not included).
    Comment,
    /// `"…"` including both quotes.
    Quoted,
    /// A bare word such as `LaunchOptions` or `1`.
    Unquoted,
    /// `{`
    Open,
    /// `}`
    Close,
    /// `#base "file.vdf"` or `#include "file.vdf"`: the whole line.
    Directive,
    /// `[$WIN32]`, `[!$X360]`: a platform conditional after a key or value.
    Conditional,
}

/// One token: its kind and the bytes it covers, e.g. `Quoted` at `12..27`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What the bytes are.
    pub kind: TokenKind,
    /// Where they are in the input.
    pub span: Range<usize>,
}

impl Token {
    /// True for tokens that carry structure (not whitespace or comments).
    pub fn is_significant(&self) -> bool {
        !matches!(self.kind, TokenKind::Whitespace | TokenKind::Comment)
    }
}

/// Input the lexer cannot cover with tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    /// A `"` without a closing `"`; `offset` is the opening quote.
    #[error("unterminated quoted string starting at byte {offset}")]
    UnterminatedString {
        /// Byte offset of the opening `"`.
        offset: usize,
    },
    /// A `[` conditional without `]` on the same line.
    #[error("unterminated [conditional] starting at byte {offset}")]
    UnterminatedConditional {
        /// Byte offset of the `[`.
        offset: usize,
    },
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c | 0)
}

/// Bytes that end an unquoted word: whitespace, `"`, `{`, `}` (one table
/// lookup per byte instead of two comparisons chains).
const ENDS_WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = matches!(
            c,
            b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c | 0 | b'"' | b'{' | b'}'
        );
        b += 1;
    }
    t
};

/// End of the line that contains `from`: the offset of its `\r\n` or `\n`, or
/// the input length.
fn line_end(input: &[u8], from: usize) -> usize {
    let nl = input[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(input.len(), |p| from + p);
    if nl > from && nl < input.len() && input[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    }
}

fn starts_directive(rest: &[u8]) -> bool {
    [&b"#base"[..], b"#include"].iter().any(|d| {
        rest.len() > d.len()
            && rest[..d.len()].eq_ignore_ascii_case(d)
            && (is_space(rest[d.len()]) || rest[d.len()] == b'"')
    })
}

/// Splits `input` into tokens that cover it exactly, in order.
///
/// Errors: [`LexError::UnterminatedString`] (with the opening quote's byte
/// offset) and [`LexError::UnterminatedConditional`].
pub fn lex(input: &[u8]) -> Result<Vec<Token>, LexError> {
    Lexer::new(input).collect()
}

/// The tokens of `input` one at a time, without storing them: what [`lex`]
/// collects. Edits of a 10 MB `localconfig.vdf` walk it this way so memory
/// stays near the file size (a `Vec<Token>` of it is ~2.5× the file).
/// After the first error the iterator ends.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    input: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self::at(input, 0)
    }

    /// A lexer starting at byte `at`, which must be a token boundary (the
    /// lexer keeps no state between tokens, so it then yields exactly the
    /// tokens [`lex`] yields from there).
    pub fn at(input: &'a [u8], at: usize) -> Self {
        Lexer {
            input,
            at,
            failed: false,
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<Token, LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        let input = self.input;
        let mut i = self.at;
        if self.failed || i >= input.len() {
            return None;
        }
        let start = i;
        if i == 0 && input.starts_with(BOM) {
            self.at = BOM.len();
            return Some(Ok(Token {
                kind: TokenKind::Whitespace,
                span: 0..BOM.len(),
            }));
        }
        let b = input[i];
        let mut fail = |e| {
            self.failed = true;
            Some(Err(e))
        };
        let kind = if is_space(b) {
            i += input[i..]
                .iter()
                .position(|&c| !is_space(c))
                .unwrap_or(input.len() - i);
            TokenKind::Whitespace
        } else if input[i..].starts_with(b"//") {
            i = line_end(input, i);
            TokenKind::Comment
        } else if b == b'"' {
            i += 1;
            // Only `"` and `\\` matter inside a string; a backslash escapes
            // the byte after it. (A plain loop: Steam's JSON values have an
            // escape every few bytes, where a SIMD search per escape was
            // measured slower.)
            loop {
                match input.get(i) {
                    None => return fail(LexError::UnterminatedString { offset: start }),
                    Some(b'\\') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            TokenKind::Quoted
        } else if b == b'{' {
            i += 1;
            TokenKind::Open
        } else if b == b'}' {
            i += 1;
            TokenKind::Close
        } else if starts_directive(&input[i..]) {
            i = line_end(input, i);
            TokenKind::Directive
        } else if b == b'[' {
            let end = line_end(input, i);
            match input[i..end].iter().position(|&c| c == b']') {
                Some(p) => i += p + 1,
                None => return fail(LexError::UnterminatedConditional { offset: start }),
            }
            TokenKind::Conditional
        } else {
            i += input[i..]
                .iter()
                .position(|&c| ENDS_WORD[c as usize])
                .unwrap_or(input.len() - i);
            TokenKind::Unquoted
        };
        self.at = i;
        Some(Ok(Token {
            kind,
            span: start..i,
        }))
    }
}

/// The decoded content of a token used as a key or value: a quoted string
/// without its quotes and with `\"`, `\\`, `\n`, `\r`, `\t` decoded (the
/// escapes keyvalues-parser and Steam know; any other `\x` is kept as the two
/// bytes `\x`); an unquoted word as is.
///
/// `raw_at[i]` is the offset, within the token's *inner* bytes, where decoded
/// byte `i` comes from (every escape decodes to one byte); `raw_at[len]` is the
/// inner length. It lets an edit change a few decoded bytes and splice only
/// their raw counterpart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The value, e.g. `-novid +exec "my cfg.cfg"`.
    pub bytes: Vec<u8>,
    /// Raw inner offset of each decoded byte, plus one final entry.
    pub raw_at: Vec<usize>,
    /// Where the inner bytes start in the input (after a leading `"`).
    pub inner: Range<usize>,
}

/// Decodes the token `tok` of `input` (see [`Decoded`]). Only meaningful for
/// `Quoted` and `Unquoted` tokens.
pub fn decode(input: &[u8], tok: &Token) -> Decoded {
    let inner = if tok.kind == TokenKind::Quoted {
        tok.span.start + 1..tok.span.end - 1
    } else {
        tok.span.clone()
    };
    let raw = &input[inner.clone()];
    let mut bytes = Vec::with_capacity(raw.len());
    let mut raw_at = Vec::with_capacity(raw.len() + 1);
    let mut i = 0;
    while i < raw.len() {
        raw_at.push(i);
        if tok.kind == TokenKind::Quoted && raw[i] == b'\\' && i + 1 < raw.len() {
            let d = match raw[i + 1] {
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                _ => None,
            };
            if let Some(d) = d {
                bytes.push(d);
                i += 2;
                continue;
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    raw_at.push(raw.len());
    Decoded {
        bytes,
        raw_at,
        inner,
    }
}

/// Encodes `value` as the inside of a quoted VDF string the way Steam writes
/// it: `\` → `\\`, `"` → `\"`, every other byte (tabs, newlines, UTF-8) raw.
pub fn escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    for &b in value {
        if b == b'\\' || b == b'"' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<(String, Vec<u8>)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/corpus");
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).expect("corpus dir") {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if (name.ends_with(".vdf") || name.ends_with(".acf")) && !name.contains("shortcuts") {
                files.push((name, std::fs::read(&p).unwrap()));
            }
        }
        assert!(files.len() >= 14, "corpus incomplete: {}", files.len());
        files
    }

    fn concat(input: &[u8], toks: &[Token]) -> Vec<u8> {
        let mut pos = 0;
        let mut out = Vec::new();
        for t in toks {
            assert_eq!(t.span.start, pos, "gap or overlap before {t:?}");
            out.extend_from_slice(&input[t.span.clone()]);
            pos = t.span.end;
        }
        out
    }

    #[test]
    fn round_trips_every_corpus_file() {
        for (name, bytes) in corpus() {
            let toks = lex(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(concat(&bytes, &toks), bytes, "{name}");
        }
    }

    #[test]
    fn round_trips_crlf_and_its_variants() {
        for (name, bytes) in corpus() {
            let s = String::from_utf8(bytes).unwrap();
            let crlf = s.replace('\n', "\r\n").into_bytes();
            let toks = lex(&crlf).unwrap();
            assert_eq!(concat(&crlf, &toks), crlf, "{name} as CRLF");
        }
    }

    fn kinds(input: &str) -> Vec<(TokenKind, &str)> {
        lex(input.as_bytes())
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, &input[t.span]))
            .collect()
    }

    #[test]
    fn token_shapes() {
        use TokenKind::*;
        assert_eq!(
            kinds("\"a\\\"b\"\t// c \"x\r\n{k v}"),
            vec![
                (Quoted, "\"a\\\"b\""),
                (Whitespace, "\t"),
                (Comment, "// c \"x"),
                (Whitespace, "\r\n"),
                (Open, "{"),
                (Unquoted, "k"),
                (Whitespace, " "),
                (Unquoted, "v"),
                (Close, "}"),
            ]
        );
        assert_eq!(
            kinds("#base \"x.vdf\"\n#include y\nk [$WIN32]"),
            vec![
                (Directive, "#base \"x.vdf\""),
                (Whitespace, "\n"),
                (Directive, "#include y"),
                (Whitespace, "\n"),
                (Unquoted, "k"),
                (Whitespace, " "),
                (Conditional, "[$WIN32]"),
            ]
        );
        // A backslash at the end of a value (`/Hexalitos\\`) is an escaped
        // backslash, not an escaped quote.
        assert_eq!(
            kinds(r#""/Hexalitos\\""#),
            vec![(Quoted, r#""/Hexalitos\\""#)]
        );
        assert_eq!(
            kinds("\u{feff}x"),
            vec![(Whitespace, "\u{feff}"), (Unquoted, "x")]
        );
    }

    #[test]
    fn unterminated_string_reports_the_opening_quote() {
        assert_eq!(
            lex(b"\"k\" \"never closed"),
            Err(LexError::UnterminatedString { offset: 4 })
        );
        // An escaped quote right before the end does not close it.
        assert_eq!(
            lex(b"\"k\" \"ends in \\\""),
            Err(LexError::UnterminatedString { offset: 4 })
        );
        assert_eq!(
            lex(b"\"trailing backslash\\"),
            Err(LexError::UnterminatedString { offset: 0 })
        );
    }

    #[test]
    fn decode_and_escape() {
        let input = br#""a\"b\\c\n\q	x""#;
        let toks = lex(input).unwrap();
        let d = decode(input, &toks[0]);
        assert_eq!(d.bytes, b"a\"b\\c\n\\q\tx");
        assert_eq!(d.inner, 1..input.len() - 1);
        assert_eq!(d.raw_at, vec![0, 1, 3, 4, 6, 7, 9, 10, 11, 12, 13]);
        assert_eq!(escape(br#"say "hi" C:\x"#), br#"say \"hi\" C:\\x"#);
    }
}
