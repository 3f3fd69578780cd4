//! Byte splices and the check that every splice did only what it meant to.
//!
//! An [`Edit`] replaces one byte range. [`checked_apply`] applies it and
//! proves, with the span-keeping lexer, that the result is still a balanced
//! document and that every non-whitespace token outside the range is the same
//! token at the same (shifted) place. Callers add a semantic check of their
//! own (e.g. "the key now reads back as the new value").

use std::collections::VecDeque;
use std::ops::Range;

use super::doc::{ParseError, Shape};
use super::lex::{Lexer, Token, TokenKind};

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
/// How, without a token vector: the lexer has no state between tokens, so
/// tokens ending before the edit are the same in both files and are lexed
/// once (from `old`). From the last token boundary before the edit both files
/// are lexed side by side until they reach a token boundary at the same
/// shifted place with the same block depth; from there on the tokens are
/// the same, so only `old` is lexed to its end (which proves the balance of
/// both). Cost: one pass over the file plus the edited region twice.
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
    let ins_end = s + edit.bytes.len();
    let outside = |offset| VerifyError::OutsideChanged {
        start: s,
        end: e,
        offset,
    };
    // 1. The common prefix: tokens of `old` that end before `s`.
    let mut old_shape = Shape::default();
    let mut p = 0;
    for t in Lexer::new(old) {
        let t = t.map_err(ParseError::from)?;
        if t.span.end >= s {
            break;
        }
        old_shape.feed(&t)?;
        p = t.span.end;
    }
    let mut new_shape = old_shape.clone();
    // 2. Side by side from `p`.
    let mut old_lx = Lexer::at(old, p);
    let mut old_pos = p;
    let mut pending: VecDeque<(TokenKind, Range<usize>)> = VecDeque::new();
    // Pulls one raw token of `old`, queueing it (shifted) when it must
    // reappear in `new`. `Ok(false)` at the end of `old`.
    let mut pull = |old_shape: &mut Shape,
                    pending: &mut VecDeque<(TokenKind, Range<usize>)>,
                    old_pos: &mut usize|
     -> Result<bool, VerifyError> {
        let Some(t) = old_lx.next() else {
            return Ok(false);
        };
        let t = t.map_err(ParseError::from)?;
        old_shape.feed(&t)?;
        *old_pos = t.span.end;
        if !kept(&t) || (t.span.start >= s && t.span.end <= e) {
        } else if t.span.end <= s && t.span.start < s {
            pending.push_back((t.kind, t.span));
        } else if t.span.start >= e && t.span.end > e {
            pending.push_back((t.kind, t.span.start - e + ins_end..t.span.end - e + ins_end));
        } else {
            return Err(outside(t.span.start));
        }
        Ok(true)
    };
    let mut synced = false;
    for t in Lexer::at(&new, p) {
        let t = t.map_err(ParseError::from)?;
        if t.span.start >= ins_end {
            let o = t.span.start - ins_end + e;
            while old_pos < o && pull(&mut old_shape, &mut pending, &mut old_pos)? {}
            if old_pos == o && pending.is_empty() && old_shape.same_state(&new_shape) {
                synced = true;
                break;
            }
        }
        new_shape.feed(&t)?;
        if !kept(&t) || (t.span.start >= s && t.span.end <= ins_end) {
            continue;
        }
        while pending.is_empty() && pull(&mut old_shape, &mut pending, &mut old_pos)? {}
        match pending.pop_front() {
            Some(want) if want == (t.kind, t.span.clone()) => {}
            _ => return Err(outside(t.span.start)),
        }
    }
    if synced {
        // The rest is the same tokens in both: finish `old` (the slow path
        // names the exact error in `new` coordinates if there is one).
        let rest = (|| {
            while pull(&mut old_shape, &mut pending, &mut old_pos)? {}
            old_shape.finish().map_err(VerifyError::from)
        })();
        if rest.is_err() {
            super::doc::validate(&new)?;
            rest?;
        }
        return Ok(new);
    }
    new_shape.finish()?;
    while pull(&mut old_shape, &mut pending, &mut old_pos)? {}
    if let Some(extra) = pending.pop_front() {
        return Err(outside(extra.1.start.min(new.len())));
    }
    old_shape.finish()?;
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
