//! Byte splices and the check that every splice did only what it meant to.
//!
//! An [`Edit`] replaces one byte range. [`checked_apply`] applies it and
//! proves, with the span-keeping lexer, that the result is still a balanced
//! document and that every non-whitespace token outside the range is the same
//! token at the same (shifted) place. Callers add a semantic check of their
//! own (e.g. "the key now reads back as the new value").

use std::ops::Range;

use super::doc::{Document, ParseError};
use super::lex::{Token, TokenKind};

/// Replace `span` of the source with `bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Byte range replaced, e.g. `812..845` (empty for a pure insertion).
    pub span: Range<usize>,
    /// The new bytes.
    pub bytes: Vec<u8>,
}

/// Why a computed edit was rejected; nothing is written then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The edited bytes no longer form a balanced document.
    #[error("the edited file would not parse: {0}")]
    Reparse(#[from] ParseError),
    /// A token outside the edited range changed or merged with the edit.
    #[error("the edit at bytes {start}..{end} would change tokens outside it (near byte {offset})")]
    OutsideChanged {
        /// Edit start.
        start: usize,
        /// Edit end (in the old bytes).
        end: usize,
        /// Where the difference shows, in the new bytes.
        offset: usize,
    },
    /// The span lies outside the source.
    #[error("edit span {start}..{end} is outside the {len}-byte file")]
    BadSpan {
        /// Edit start.
        start: usize,
        /// Edit end.
        end: usize,
        /// Source length.
        len: usize,
    },
}

/// `src` with `edit` applied (no checks; see [`checked_apply`]).
pub fn apply(src: &[u8], edit: &Edit) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + edit.bytes.len());
    out.extend_from_slice(&src[..edit.span.start]);
    out.extend_from_slice(&edit.bytes);
    out.extend_from_slice(&src[edit.span.end..]);
    out
}

fn kept(t: &Token) -> bool {
    t.kind != TokenKind::Whitespace
}

/// Applies `edit` to `old` and verifies the result:
/// - the new bytes parse (lex + balanced blocks);
/// - every non-whitespace token of `old` that ends before the edit is
///   unchanged, every one that starts after it is unchanged but shifted, any
///   one overlapping it lies wholly inside it;
/// - every non-whitespace token of the result is one of those or lies wholly
///   inside the inserted bytes (so nothing merged across the edges).
///
/// Errors: [`VerifyError`]; the caller must then write nothing.
pub fn checked_apply(old: &[u8], edit: &Edit) -> Result<Vec<u8>, VerifyError> {
    let (s, e) = (edit.span.start, edit.span.end);
    if s > e || e > old.len() {
        return Err(VerifyError::BadSpan {
            start: s,
            end: e,
            len: old.len(),
        });
    }
    let new = apply(old, edit);
    let old_doc = Document::parse(old)?;
    let new_doc = Document::parse(&new)?;
    let ins_end = s + edit.bytes.len();
    let outside = |offset| VerifyError::OutsideChanged {
        start: s,
        end: e,
        offset,
    };
    let mut expect: Vec<(TokenKind, Range<usize>)> = Vec::new();
    for t in old_doc.tokens.iter().filter(|t| kept(t)) {
        if t.span.end <= s && t.span.start < s {
            expect.push((t.kind, t.span.clone()));
        } else if t.span.start >= e && t.span.end > e {
            expect.push((t.kind, t.span.start - e + ins_end..t.span.end - e + ins_end));
        } else if !(t.span.start >= s && t.span.end <= e) {
            return Err(outside(t.span.start));
        }
    }
    let mut got = new_doc
        .tokens
        .iter()
        .filter(|t| kept(t))
        .filter(|t| !(t.span.start >= s && t.span.end <= ins_end && !t.span.is_empty()))
        .map(|t| (t.kind, t.span.clone()));
    for want in &expect {
        match got.next() {
            Some(g) if &g == want => {}
            Some(g) => return Err(outside(g.1.start)),
            None => return Err(outside(new.len())),
        }
    }
    if let Some(g) = got.next() {
        return Err(outside(g.1.start));
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &[u8] = b"\"a\"\n{\n\t\"k\"\t\t\"v\" // note\n}\n";

    #[test]
    fn accepts_a_value_splice_and_an_insertion() {
        let at = SRC.windows(3).position(|w| w == b"\"v\"").unwrap();
        let e = Edit {
            span: at..at + 3,
            bytes: b"\"w \\\" x\"".to_vec(),
        };
        let new = checked_apply(SRC, &e).unwrap();
        assert_eq!(new, b"\"a\"\n{\n\t\"k\"\t\t\"w \\\" x\" // note\n}\n");
        let close = SRC.iter().rposition(|&b| b == b'}').unwrap();
        let ins = Edit {
            span: close..close,
            bytes: b"\t\"n\"\t\t\"1\"\n".to_vec(),
        };
        assert!(checked_apply(SRC, &ins).is_ok());
    }

    #[test]
    fn rejects_edits_that_leak_outside_their_span() {
        let at = SRC.windows(3).position(|w| w == b"\"v\"").unwrap();
        // An unescaped quote swallows the comment and the closing brace.
        let e = Edit {
            span: at..at + 3,
            bytes: b"\"w\" \"".to_vec(),
        };
        assert!(checked_apply(SRC, &e).is_err());
        // Unquoted text glued to a neighbouring token merges with it.
        let k = SRC.windows(3).position(|w| w == b"\"k\"").unwrap();
        let glue = Edit {
            span: k..k,
            bytes: b"x".to_vec(),
        };
        assert!(matches!(
            checked_apply(SRC, &glue),
            Err(VerifyError::Reparse(_) | VerifyError::OutsideChanged { .. })
        ));
        // Inserting after a comment on its line turns the insertion into comment.
        let note_end = SRC.windows(7).position(|w| w == b"// note").unwrap() + 7;
        let hidden = Edit {
            span: note_end..note_end,
            bytes: b" \"n\" \"1\"".to_vec(),
        };
        assert!(checked_apply(SRC, &hidden).is_err());
        // Cutting half a token.
        let half = Edit {
            span: 0..2,
            bytes: Vec::new(),
        };
        assert!(checked_apply(SRC, &half).is_err());
        assert!(matches!(
            checked_apply(
                SRC,
                &Edit {
                    span: 5..500,
                    bytes: vec![]
                }
            ),
            Err(VerifyError::BadSpan { .. })
        ));
    }
}
