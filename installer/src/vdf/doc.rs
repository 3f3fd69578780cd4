//! A KeyValues document as a tree of pairs that point back into the tokens.
//!
//! Built from [`super::lex`] output, never from a re-rendered string, so every
//! node knows its exact bytes. Comments, whitespace, `#base`/`#include` lines
//! and `[$COND]` conditionals are kept in the token list but skipped by the
//! tree. Duplicate keys stay as separate pairs in file order.

use std::ops::Range;

use super::lex::{self, Decoded, LexError, Token, TokenKind};

/// A value: a string token or a `{ … }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Index of a `Quoted` or `Unquoted` token.
    Str(usize),
    /// A block: indexes of its `{` and `}` tokens and its pairs in file order.
    Block {
        /// Index of the `{` token.
        open: usize,
        /// Index of the matching `}` token.
        close: usize,
        /// The pairs inside, in file order (duplicates kept).
        children: Vec<Pair>,
    },
}

/// `"key" value`: the key's token index and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Index of the key token (`Quoted` or `Unquoted`).
    pub key: usize,
    /// The value.
    pub value: Value,
}

/// Structural problems, with the byte offset where they were noticed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes do not lex.
    #[error(transparent)]
    Lex(#[from] LexError),
    /// A `}` with no open block.
    #[error("unexpected '}}' at byte {offset}")]
    UnexpectedClose {
        /// Offset of the `}`.
        offset: usize,
    },
    /// A `{` where a key was expected.
    #[error("'{{' without a key at byte {offset}")]
    BlockWithoutKey {
        /// Offset of the `{`.
        offset: usize,
    },
    /// A key at the end of its block or of the file, with no value.
    #[error("key at byte {offset} has no value")]
    MissingValue {
        /// Offset of the key.
        offset: usize,
    },
    /// Blocks nested deeper than [`MAX_DEPTH`] (Steam's files use about 8).
    #[error("blocks nested deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep {
        /// Offset of the `{` that is one too deep.
        offset: usize,
    },
    /// A `{` that is never closed.
    #[error("'{{' at byte {offset} is never closed")]
    Unclosed {
        /// Offset of the `{`.
        offset: usize,
    },
}

impl ParseError {
    /// Byte offset where the problem was noticed.
    pub fn offset(&self) -> usize {
        match self {
            ParseError::Lex(
                LexError::UnterminatedString { offset }
                | LexError::UnterminatedConditional { offset },
            ) => *offset,
            ParseError::UnexpectedClose { offset }
            | ParseError::BlockWithoutKey { offset }
            | ParseError::MissingValue { offset }
            | ParseError::TooDeep { offset }
            | ParseError::Unclosed { offset } => *offset,
        }
    }
}

/// Deepest block nesting accepted. The tree is dropped recursively, so a
/// hostile file must not be able to nest without bound.
pub const MAX_DEPTH: usize = 256;

/// The balance rules of [`Document::parse`] checked token by token, with
/// no tree kept: feed every token in order, then [`Shape::finish`].
#[derive(Debug, Default, Clone)]
pub struct Shape {
    /// Offsets of the open `{`s.
    opens: Vec<usize>,
    /// Offset of a key still waiting for its value.
    pending_key: Option<usize>,
}

impl Shape {
    /// Takes the next token.
    ///
    /// Errors: as [`Document::parse`].
    pub fn feed(&mut self, t: &Token) -> Result<(), ParseError> {
        match (t.kind, self.pending_key) {
            (
                TokenKind::Whitespace
                | TokenKind::Comment
                | TokenKind::Directive
                | TokenKind::Conditional,
                _,
            ) => {}
            (TokenKind::Quoted | TokenKind::Unquoted, None) => {
                self.pending_key = Some(t.span.start);
            }
            (TokenKind::Quoted | TokenKind::Unquoted, Some(_)) => self.pending_key = None,
            (TokenKind::Open, Some(_)) => {
                if self.opens.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep {
                        offset: t.span.start,
                    });
                }
                self.opens.push(t.span.start);
                self.pending_key = None;
            }
            (TokenKind::Open, None) => {
                return Err(ParseError::BlockWithoutKey {
                    offset: t.span.start,
                });
            }
            (TokenKind::Close, Some(offset)) => return Err(ParseError::MissingValue { offset }),
            (TokenKind::Close, None) => {
                self.opens.pop().ok_or(ParseError::UnexpectedClose {
                    offset: t.span.start,
                })?;
            }
        }
        Ok(())
    }

    /// True when both are at the same block depth and both do (or do not)
    /// wait for a value: the same tokens from here on are then accepted or
    /// refused alike.
    pub fn same_state(&self, other: &Shape) -> bool {
        self.opens.len() == other.opens.len()
            && self.pending_key.is_some() == other.pending_key.is_some()
    }

    /// Ends the input.
    ///
    /// Errors: a key without value or an unclosed `{`.
    pub fn finish(self) -> Result<(), ParseError> {
        if let Some(offset) = self.pending_key {
            return Err(ParseError::MissingValue { offset });
        }
        if let Some(&offset) = self.opens.last() {
            return Err(ParseError::Unclosed { offset });
        }
        Ok(())
    }
}

/// Checks that `src` lexes and its blocks balance, storing nothing.
///
/// Errors: as [`Document::parse`].
pub fn validate(src: &[u8]) -> Result<(), ParseError> {
    let mut shape = Shape::default();
    for t in lex::Lexer::new(src) {
        shape.feed(&t?)?;
    }
    shape.finish()
}

/// A lexed and structured document borrowing its source bytes.
#[derive(Debug, Clone)]
pub struct Document<'a> {
    /// The source, byte for byte.
    pub src: &'a [u8],
    /// Tokens covering `src` exactly.
    pub tokens: Vec<Token>,
    /// Top-level pairs (normally one, e.g. `UserLocalConfigStore`).
    pub pairs: Vec<Pair>,
}

struct Frame {
    key: usize,
    open: usize,
    children: Vec<Pair>,
}

impl<'a> Document<'a> {
    /// Lexes and structures `src`. Iterative, so deep nesting cannot
    /// overflow the stack.
    ///
    /// Errors: any [`ParseError`]; offsets are bytes into `src`.
    pub fn parse(src: &'a [u8]) -> Result<Self, ParseError> {
        let tokens = lex::lex(src)?;
        let mut stack: Vec<Frame> = Vec::new();
        let mut top: Vec<Pair> = Vec::new();
        let mut pending_key: Option<usize> = None;
        for (i, t) in tokens.iter().enumerate() {
            match (t.kind, pending_key) {
                (
                    TokenKind::Whitespace
                    | TokenKind::Comment
                    | TokenKind::Directive
                    | TokenKind::Conditional,
                    _,
                ) => {}
                (TokenKind::Quoted | TokenKind::Unquoted, None) => pending_key = Some(i),
                (TokenKind::Quoted | TokenKind::Unquoted, Some(key)) => {
                    let pair = Pair {
                        key,
                        value: Value::Str(i),
                    };
                    match stack.last_mut() {
                        Some(f) => f.children.push(pair),
                        None => top.push(pair),
                    }
                    pending_key = None;
                }
                (TokenKind::Open, Some(key)) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ParseError::TooDeep {
                            offset: t.span.start,
                        });
                    }
                    stack.push(Frame {
                        key,
                        open: i,
                        children: Vec::new(),
                    });
                    pending_key = None;
                }
                (TokenKind::Open, None) => {
                    return Err(ParseError::BlockWithoutKey {
                        offset: t.span.start,
                    });
                }
                (TokenKind::Close, Some(key)) => {
                    return Err(ParseError::MissingValue {
                        offset: tokens[key].span.start,
                    });
                }
                (TokenKind::Close, None) => {
                    let f = stack.pop().ok_or(ParseError::UnexpectedClose {
                        offset: t.span.start,
                    })?;
                    let pair = Pair {
                        key: f.key,
                        value: Value::Block {
                            open: f.open,
                            close: i,
                            children: f.children,
                        },
                    };
                    match stack.last_mut() {
                        Some(f) => f.children.push(pair),
                        None => top.push(pair),
                    }
                }
            }
        }
        if let Some(key) = pending_key {
            return Err(ParseError::MissingValue {
                offset: tokens[key].span.start,
            });
        }
        if let Some(f) = stack.last() {
            return Err(ParseError::Unclosed {
                offset: tokens[f.open].span.start,
            });
        }
        Ok(Document {
            src,
            tokens,
            pairs: top,
        })
    }

    /// Like [`Document::parse`], but keeps only what an edit below the key
    /// path `focus` needs, so a 10 MB file costs kilobytes, not a token
    /// vector 2.5× its size. Kept: top-level pairs; inside the first block
    /// pair whose key matches `focus[0]` (case-insensitively, first match as
    /// Valve's lookup), its own pairs; inside the first of those matching
    /// `focus[1]`, its pairs; and so on, with the block at the end of the
    /// path fully listed one level deep. Blocks off the path appear as pairs
    /// with their `{`/`}` tokens and no children. Whitespace tokens are not
    /// kept; comments at kept levels are. Token indexes in the result refer
    /// to the sparse [`Document::tokens`].
    ///
    /// The whole input is still lexed and checked for balance: errors are the
    /// same as [`Document::parse`]'s.
    pub fn parse_focused(src: &'a [u8], focus: &[&str]) -> Result<Self, ParseError> {
        struct FFrame {
            key: Option<usize>,
            open: Option<usize>,
            open_offset: usize,
            children: Vec<Pair>,
            /// Children of this frame are kept.
            kept: bool,
            /// Path level of this frame's children (index into `focus`).
            level: usize,
            /// A child matched `focus[level]` already.
            descended: bool,
        }
        let mut tokens: Vec<Token> = Vec::new();
        let mut stack: Vec<FFrame> = Vec::new();
        let mut top = FFrame {
            key: None,
            open: None,
            open_offset: 0,
            children: Vec::new(),
            kept: true,
            level: 0,
            descended: false,
        };
        // (offset of the key, index in `tokens` if kept)
        let mut pending_key: Option<(usize, Option<usize>)> = None;
        let matches = |t: &Token, name: &str| {
            lex::decode(src, t)
                .bytes
                .eq_ignore_ascii_case(name.as_bytes())
        };
        for t in lex::Lexer::new(src) {
            let t = t?;
            match (t.kind, pending_key) {
                (TokenKind::Whitespace, _) => {}
                (TokenKind::Comment | TokenKind::Directive | TokenKind::Conditional, _) => {
                    if stack.last().unwrap_or(&top).kept {
                        tokens.push(t);
                    }
                }
                (TokenKind::Quoted | TokenKind::Unquoted, None) => {
                    let idx = stack.last().unwrap_or(&top).kept.then(|| {
                        tokens.push(t.clone());
                        tokens.len() - 1
                    });
                    pending_key = Some((t.span.start, idx));
                }
                (TokenKind::Quoted | TokenKind::Unquoted, Some((_, key))) => {
                    if let Some(key) = key {
                        tokens.push(t);
                        stack.last_mut().unwrap_or(&mut top).children.push(Pair {
                            key,
                            value: Value::Str(tokens.len() - 1),
                        });
                    }
                    pending_key = None;
                }
                (TokenKind::Open, Some((_, key))) => {
                    let depth = stack.len();
                    let cur = stack.last_mut().unwrap_or(&mut top);
                    if depth >= MAX_DEPTH {
                        return Err(ParseError::TooDeep {
                            offset: t.span.start,
                        });
                    }
                    let (kept, level) = match key {
                        Some(k)
                            if !cur.descended
                                && cur.level < focus.len()
                                && matches(&tokens[k], focus[cur.level]) =>
                        {
                            cur.descended = true;
                            (true, cur.level + 1)
                        }
                        _ => (false, usize::MAX),
                    };
                    let open = key.map(|_| {
                        tokens.push(t.clone());
                        tokens.len() - 1
                    });
                    stack.push(FFrame {
                        key,
                        open,
                        open_offset: t.span.start,
                        children: Vec::new(),
                        kept,
                        level,
                        descended: false,
                    });
                    pending_key = None;
                }
                (TokenKind::Open, None) => {
                    return Err(ParseError::BlockWithoutKey {
                        offset: t.span.start,
                    });
                }
                (TokenKind::Close, Some((offset, _))) => {
                    return Err(ParseError::MissingValue { offset });
                }
                (TokenKind::Close, None) => {
                    let f = stack.pop().ok_or(ParseError::UnexpectedClose {
                        offset: t.span.start,
                    })?;
                    if let (Some(key), Some(open)) = (f.key, f.open) {
                        tokens.push(t);
                        let pair = Pair {
                            key,
                            value: Value::Block {
                                open,
                                close: tokens.len() - 1,
                                children: f.children,
                            },
                        };
                        stack.last_mut().unwrap_or(&mut top).children.push(pair);
                    }
                }
            }
        }
        if let Some((offset, _)) = pending_key {
            return Err(ParseError::MissingValue { offset });
        }
        if let Some(f) = stack.last() {
            return Err(ParseError::Unclosed {
                offset: f.open_offset,
            });
        }
        Ok(Document {
            src,
            tokens,
            pairs: top.children,
        })
    }

    /// The decoded text of token `tok` (a key or string value).
    pub fn decoded(&self, tok: usize) -> Decoded {
        lex::decode(self.src, &self.tokens[tok])
    }

    /// True when the key of `pair` equals `name`, ASCII case-insensitively
    /// (Steam files mix `Valve`/`valve`, `apps`/`Apps`: STEAM.md §4).
    pub fn key_is(&self, pair: &Pair, name: &str) -> bool {
        self.decoded(pair.key)
            .bytes
            .eq_ignore_ascii_case(name.as_bytes())
    }

    /// The first pair in `pairs` whose key is `name` (case-insensitive).
    /// Valve's KeyValues lookup returns the first match, so duplicates after
    /// it are left alone.
    pub fn find<'p>(&self, pairs: &'p [Pair], name: &str) -> Option<&'p Pair> {
        pairs.iter().find(|p| self.key_is(p, name))
    }

    /// Bytes of a pair: from its key's first byte to its value's last byte.
    pub fn pair_span(&self, pair: &Pair) -> Range<usize> {
        let end = match &pair.value {
            Value::Str(t) => self.tokens[*t].span.end,
            Value::Block { close, .. } => self.tokens[*close].span.end,
        };
        self.tokens[pair.key].span.start..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_nested_pairs_with_duplicates_in_order() {
        let src = b"// c\n\"a\" { \"k\" \"1\" \"K\" \"2\" \"b\" { } }\n";
        let d = Document::parse(src).unwrap();
        assert_eq!(d.pairs.len(), 1);
        let Value::Block { children, .. } = &d.pairs[0].value else {
            panic!()
        };
        assert_eq!(children.len(), 3);
        let k = d.find(children, "k").unwrap();
        let Value::Str(v) = k.value else { panic!() };
        assert_eq!(d.decoded(v).bytes, b"1");
        assert_eq!(&src[d.pair_span(&children[2])], b"\"b\" { }");
    }

    #[test]
    fn structural_errors_carry_offsets() {
        assert_eq!(
            Document::parse(b"\"a\" { }}").unwrap_err(),
            ParseError::UnexpectedClose { offset: 7 }
        );
        assert_eq!(
            Document::parse(b"\"a\" {\n \"b\" {").unwrap_err(),
            ParseError::Unclosed { offset: 11 }
        );
        assert_eq!(
            Document::parse(b"\"a\" { \"b\" }").unwrap_err(),
            ParseError::MissingValue { offset: 6 }
        );
        assert_eq!(
            Document::parse(b"{ }").unwrap_err(),
            ParseError::BlockWithoutKey { offset: 0 }
        );
        assert!(matches!(
            Document::parse(b"\"a\" \"b").unwrap_err(),
            ParseError::Lex(LexError::UnterminatedString { offset: 4 })
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let nest = |n: usize| {
            let mut s = b"k{".repeat(n);
            s.extend(std::iter::repeat_n(b'}', n));
            s
        };
        assert!(Document::parse(&nest(MAX_DEPTH)).is_ok());
        assert_eq!(
            Document::parse(&nest(200_000)).unwrap_err(),
            ParseError::TooDeep {
                offset: 2 * MAX_DEPTH + 1
            }
        );
    }
}
