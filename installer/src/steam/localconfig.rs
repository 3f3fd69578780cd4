//! `userdata/<account>/config/localconfig.vdf`: reading and rewriting one
//! game's `LaunchOptions`, changing no byte outside the spliced span.
//!
//! Key path (STEAM.md §4; SMAPI#267, ProtonPlus#367):
//! `UserLocalConfigStore/Software/Valve/Steam/apps/<appid>/LaunchOptions`,
//! matched ASCII case-insensitively (`Valve`/`valve`, `Steam`/`steam`,
//! `apps`/`Apps` all occur). The *top-level* `UserLocalConfigStore/Apps`
//! block (non-Steam shortcut settings written by SteamTinkerLaunch) is a
//! different thing and never touched (ProtonPlus#503).
//!
//! Layout of inserted text, as Steam writes it: one pair per line, tab
//! indentation copied from the surrounding block, `"Key"\t\t"value"`, the
//! file's own line ending (`\r\n` if it has any). Every edit is applied with
//! [`vdf::checked_apply`] and then read back.

use std::ops::Range;

use crate::vdf::{self, Document, Edit, Pair, ParseError, Value, VerifyError, lex};

/// The root key of the file.
pub const ROOT: &str = "UserLocalConfigStore";
/// Blocks between the root and the per-app blocks, in default spelling.
pub const APPS_PATH: [&str; 4] = ["Software", "Valve", "Steam", "apps"];
/// The key cgsplit edits.
pub const KEY: &str = "LaunchOptions";

/// Problems with a localconfig.vdf text; the caller adds the file path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalConfigError {
    /// The text does not lex or its blocks do not balance.
    #[error("not valid KeyValues text: {0}")]
    Parse(#[from] ParseError),
    /// No top-level block of the expected name (e.g. `UserLocalConfigStore`).
    #[error("no top-level \"{0}\" block; this is not the file cgsplit expected")]
    NoRoot(String),
    /// A key on the path holds a string where a block is needed.
    #[error("\"{path}\" (byte {offset}) is a string, expected a {{ block }}")]
    NotABlock {
        /// Key path as spelled in the file, e.g. `UserLocalConfigStore/Software/valve`.
        path: String,
        /// Offset of the key.
        offset: usize,
    },
    /// `LaunchOptions` holds a block.
    #[error("\"{path}\" (byte {offset}) is a {{ block }}, expected a string")]
    NotAString {
        /// Key path as spelled in the file.
        path: String,
        /// Offset of the key.
        offset: usize,
    },
    /// The current value is not UTF-8.
    #[error("\"{path}\" (byte {offset}) is not valid UTF-8")]
    NotUtf8 {
        /// Key path as spelled in the file.
        path: String,
        /// Offset of the value.
        offset: usize,
    },
    /// The lexer check of the computed edit failed.
    #[error("refusing the computed edit: {0}")]
    Verify(#[from] VerifyError),
    /// The edited text did not read back as intended.
    #[error("the edited text does not read back as intended at {path}")]
    ReadBack {
        /// Key path.
        path: String,
    },
}

impl LocalConfigError {
    /// Byte offset of the problem in the file, when known.
    pub fn offset(&self) -> Option<usize> {
        match self {
            LocalConfigError::Parse(p) => Some(p.offset()),
            LocalConfigError::NotABlock { offset, .. }
            | LocalConfigError::NotAString { offset, .. }
            | LocalConfigError::NotUtf8 { offset, .. } => Some(*offset),
            LocalConfigError::Verify(VerifyError::Reparse(p)) => Some(p.offset()),
            LocalConfigError::Verify(VerifyError::OutsideChanged { start, .. }) => Some(*start),
            _ => None,
        }
    }
}

/// 1-based line and column of byte `offset` in `src`.
pub fn line_col(src: &[u8], offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset.min(src.len())
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

/// The offset of binary data in a file that should be text: the first NUL
/// byte that is followed by anything but more NULs (Valve text files may
/// end in a NUL). `None` for text.
pub fn binary_at(src: &[u8]) -> Option<usize> {
    let nul = memchr::memchr(0, src)?;
    src[nul..].iter().any(|&b| b != 0).then_some(nul)
}

/// The current value of `LaunchOptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The value token exactly as in the file, quotes included,
    /// e.g. `"-novid +exec \"my cfg.cfg\""`.
    pub token: Vec<u8>,
    /// Its decoded value, e.g. `-novid +exec "my cfg.cfg"`.
    pub value: String,
    /// Key path as spelled in the file, e.g.
    /// `UserLocalConfigStore/Software/Valve/Steam/apps/620/LaunchOptions`.
    pub path: String,
}

/// Result of [`set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetResult {
    /// The whole new file (equal to the input when nothing changed).
    pub new: Vec<u8>,
    /// The value before, `None` when the key was absent.
    pub old: Option<Current>,
    /// How many blocks were created, counted from the app block upwards
    /// (`0`: key added or changed in an existing app block; `1`: `"<appid>"`
    /// created; `2`: `apps` and `"<appid>"` created; …).
    pub created_blocks: usize,
    /// False when the value already was `value` (nothing to write).
    pub changed: bool,
    /// The value as it now stands in `new`.
    pub now: Current,
}

/// A string key below a chain of blocks, e.g.
/// `UserLocalConfigStore/Software/Valve/Steam/apps/620` + `LaunchOptions`.
/// Block names are matched ASCII case-insensitively, first match per level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    /// Top-level block first, then each nested block, in default spelling
    /// (used when a block has to be created).
    pub blocks: Vec<String>,
    /// The string key inside the last block.
    pub key: String,
}

impl KeyPath {
    /// `blocks` + `key` as owned strings.
    pub fn new(blocks: &[&str], key: &str) -> Self {
        KeyPath {
            blocks: blocks.iter().map(|b| (*b).to_owned()).collect(),
            key: key.to_owned(),
        }
    }

    fn focus(&self) -> Vec<&str> {
        self.blocks.iter().map(String::as_str).collect()
    }
}

/// `UserLocalConfigStore/Software/Valve/Steam/apps/<appid>/LaunchOptions`.
pub fn launch_options_path(appid: u32) -> KeyPath {
    let mut blocks = vec![ROOT.to_owned()];
    blocks.extend(APPS_PATH.iter().map(|s| (*s).to_owned()));
    blocks.push(appid.to_string());
    KeyPath {
        blocks,
        key: KEY.to_owned(),
    }
}

/// Where the lookup of the key path ended.
enum Located<'d> {
    /// The `LaunchOptions` pair, and its app block pair.
    Found { pair: &'d Pair, path: String },
    /// The deepest existing block pair, its level (0 = root) and the path.
    Missing {
        block: &'d Pair,
        level: usize,
        path: String,
    },
}

fn name_of(doc: &Document, p: &Pair) -> String {
    String::from_utf8_lossy(&doc.decoded(p.key).bytes).into_owned()
}

fn children(p: &Pair) -> &[Pair] {
    match &p.value {
        Value::Block { children, .. } => children,
        Value::Str(_) => &[],
    }
}

/// Walks `kp.blocks…/kp.key`, first match per level.
fn locate<'d>(doc: &'d Document, kp: &KeyPath) -> Result<Located<'d>, LocalConfigError> {
    let root = doc
        .pairs
        .iter()
        .find(|p| doc.key_is(p, &kp.blocks[0]) && matches!(p.value, Value::Block { .. }))
        .ok_or_else(|| LocalConfigError::NoRoot(kp.blocks[0].clone()))?;
    let names = &kp.blocks[1..];
    let mut block = root;
    let mut path = name_of(doc, root);
    for (i, name) in names.iter().enumerate() {
        match doc.find(children(block), name) {
            None => {
                return Ok(Located::Missing {
                    block,
                    level: i,
                    path,
                });
            }
            Some(p) => {
                path = format!("{path}/{}", name_of(doc, p));
                if let Value::Str(_) = p.value {
                    return Err(LocalConfigError::NotABlock {
                        path,
                        offset: doc.tokens[p.key].span.start,
                    });
                }
                block = p;
            }
        }
    }
    match doc.find(children(block), &kp.key) {
        Some(p) => Ok(Located::Found {
            pair: p,
            path: format!("{path}/{}", name_of(doc, p)),
        }),
        None => Ok(Located::Missing {
            block,
            level: names.len(),
            path,
        }),
    }
}

fn current(doc: &Document, pair: &Pair, path: String) -> Result<Current, LocalConfigError> {
    let Value::Str(t) = pair.value else {
        return Err(LocalConfigError::NotAString {
            path,
            offset: doc.tokens[pair.key].span.start,
        });
    };
    let span = doc.tokens[t].span.clone();
    let value = String::from_utf8(doc.decoded(t).bytes).map_err(|_| LocalConfigError::NotUtf8 {
        path: path.clone(),
        offset: span.start,
    })?;
    Ok(Current {
        token: doc.src[span].to_vec(),
        value,
        path,
    })
}

/// The `LaunchOptions` of `appid`, `None` when the key (or any block above
/// it) is absent.
///
/// Errors: unparseable text, no `UserLocalConfigStore`, a path key holding a
/// string, `LaunchOptions` holding a block or non-UTF-8 bytes.
pub fn read(src: &[u8], appid: u32) -> Result<Option<Current>, LocalConfigError> {
    read_at(src, &launch_options_path(appid))
}

/// The value at `kp`, `None` when the key (or any block above it) is absent.
/// Only the blocks on the path are kept in memory (see
/// [`Document::parse_focused`]).
///
/// Errors: as [`read`].
pub fn read_at(src: &[u8], kp: &KeyPath) -> Result<Option<Current>, LocalConfigError> {
    let doc = Document::parse_focused(src, &kp.focus())?;
    match locate(&doc, kp)? {
        Located::Found { pair, path } => current(&doc, pair, path).map(Some),
        Located::Missing { .. } => Ok(None),
    }
}

/// The key path `…/apps/<appid>/LaunchOptions` as spelled in `src` where it
/// exists, in default spelling below that.
pub fn key_path(src: &[u8], appid: u32) -> Result<String, LocalConfigError> {
    key_path_at(src, &launch_options_path(appid))
}

/// `kp` as spelled in `src` where it exists, in default spelling below that.
///
/// Errors: as [`read`].
pub fn key_path_at(src: &[u8], kp: &KeyPath) -> Result<String, LocalConfigError> {
    let doc = Document::parse_focused(src, &kp.focus())?;
    Ok(match locate(&doc, kp)? {
        Located::Found { path, .. } => path,
        Located::Missing { level, path, .. } => {
            let mut rest: Vec<&str> = kp.blocks[1..].iter().map(String::as_str).collect();
            rest.push(&kp.key);
            format!("{path}/{}", rest[level..].join("/"))
        }
    })
}

fn newline(src: &[u8]) -> &'static [u8] {
    if src.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

fn line_start(src: &[u8], pos: usize) -> usize {
    src[..pos]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1)
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == b' ' || b == b'\t')
}

/// Indentation of the line holding `pos` if only blanks precede it there.
fn indent_before(src: &[u8], pos: usize) -> Option<&[u8]> {
    let ls = line_start(src, pos);
    is_blank(&src[ls..pos]).then_some(&src[ls..pos])
}

/// One indentation step: the indentation of the first top-level child that
/// starts its line (Steam: a tab).
fn indent_unit<'s>(doc: &Document<'s>) -> Vec<u8> {
    doc.pairs
        .iter()
        .flat_map(children)
        .find_map(|c| indent_before(doc.src, doc.tokens[c.key].span.start))
        .filter(|i| !i.is_empty())
        .map_or(b"\t".to_vec(), <[u8]>::to_vec)
}

/// The text that creates `names` (nested blocks) holding `KEY value`, to be
/// inserted at a line start (`indent` given) or inline (`indent` `None`).
fn creation(
    names: &[String],
    key: &str,
    value: &[u8],
    indent: Option<(&[u8], &[u8])>,
    nl: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let quoted = |s: &[u8]| [&b"\""[..], &lex::escape(s), b"\""].concat();
    match (names.split_first(), indent) {
        (None, Some((ind, _))) => {
            out.extend_from_slice(ind);
            out.extend_from_slice(&quoted(key.as_bytes()));
            out.extend_from_slice(b"\t\t");
            out.extend_from_slice(&quoted(value));
            out.extend_from_slice(nl);
        }
        (None, None) => {
            out.push(b' ');
            out.extend_from_slice(&quoted(key.as_bytes()));
            out.extend_from_slice(b"\t\t");
            out.extend_from_slice(&quoted(value));
        }
        (Some((name, rest)), Some((ind, unit))) => {
            let inner = [ind, unit].concat();
            for part in [ind, &quoted(name.as_bytes()), nl, ind, b"{", nl] {
                out.extend_from_slice(part);
            }
            out.extend(creation(rest, key, value, Some((&inner, unit)), nl));
            for part in [ind, b"}", nl] {
                out.extend_from_slice(part);
            }
        }
        (Some((name, rest)), None) => {
            out.push(b' ');
            out.extend_from_slice(&quoted(name.as_bytes()));
            out.extend_from_slice(b" {");
            out.extend(creation(rest, key, value, None, nl));
            out.push(b'}');
        }
    }
    out
}

/// The edit that inserts `names…/KEY value` into the block `block`.
fn insertion(doc: &Document, block: &Pair, names: &[String], key: &str, value: &[u8]) -> Edit {
    let Value::Block {
        close, children, ..
    } = &block.value
    else {
        unreachable!("locate only returns blocks")
    };
    let close_at = doc.tokens[*close].span.start;
    let nl = newline(doc.src);
    let unit = indent_unit(doc);
    match indent_before(doc.src, close_at) {
        // `}` starts its line: insert whole lines right before that line.
        Some(close_indent) => {
            let inner = children
                .iter()
                .find_map(|c| indent_before(doc.src, doc.tokens[c.key].span.start))
                .map_or_else(|| [close_indent, &unit].concat(), <[u8]>::to_vec);
            let at = line_start(doc.src, close_at);
            Edit {
                span: at..at,
                bytes: creation(names, key, value, Some((&inner, &unit)), nl),
            }
        }
        // `{ … }` on one line: insert ` "K"\t\t"v"` right before `}`.
        None => Edit {
            span: close_at..close_at,
            bytes: creation(names, key, value, None, nl),
        },
    }
}

/// The edit that removes `pair`. A pair alone on its line(s) goes with its
/// whole lines (the inverse of a line insertion); otherwise the pair and one
/// space before it go (the inverse of an inline insertion).
fn removal(doc: &Document, pair: &Pair) -> Edit {
    let src = doc.src;
    let span = doc.pair_span(pair);
    let mut after = span.end;
    while after < src.len() && (src[after] == b' ' || src[after] == b'\t') {
        after += 1;
    }
    let line_end = if src[after..].starts_with(b"\r\n") {
        Some(after + 2)
    } else if src[after..].starts_with(b"\n") {
        Some(after + 1)
    } else if after == src.len() {
        Some(after)
    } else {
        None
    };
    match (indent_before(src, span.start), line_end) {
        (Some(_), Some(end)) => Edit {
            span: line_start(src, span.start)..end,
            bytes: Vec::new(),
        },
        _ => {
            let start = if span.start > 0 && src[span.start - 1] == b' ' {
                span.start - 1
            } else {
                span.start
            };
            Edit {
                span: start..span.end,
                bytes: Vec::new(),
            }
        }
    }
}

/// Byte range of `old` to replace, and the new bytes, so that the value
/// decodes to `new`: only the differing middle is re-encoded, so escapes in
/// the unchanged parts keep their exact bytes.
fn value_splice(old: &lex::Decoded, new: &[u8]) -> (Range<usize>, Vec<u8>) {
    let o = &old.bytes;
    let p = o.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_s = o.len().min(new.len()) - p;
    let s = o
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_s)
        .take_while(|(a, b)| a == b)
        .count();
    let raw = old.inner.start + old.raw_at[p]..old.inner.start + old.raw_at[o.len() - s];
    (raw, lex::escape(&new[p..new.len() - s]))
}

fn read_back(
    new: &[u8],
    kp: &KeyPath,
    want: Option<&[u8]>,
    path: &str,
) -> Result<(), LocalConfigError> {
    let got = read_at(new, kp)?;
    let ok = match (&got, want) {
        (Some(c), Some(w)) => c.token == w,
        (None, None) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(LocalConfigError::ReadBack {
            path: path.to_owned(),
        })
    }
}

/// Sets the `LaunchOptions` of `appid` to `value`, creating the key and any
/// missing blocks (spelled `Software`, `Valve`, `Steam`, `apps`, `<appid>`).
///
/// Shapes: an existing quoted value gets only its changed middle re-encoded;
/// an unquoted one is replaced by a quoted token; a missing key becomes a
/// `"LaunchOptions"\t\t"<escaped>"` line before the app block's `}`.
///
/// Errors: see [`LocalConfigError`]; nothing is returned to write then.
pub fn set(src: &[u8], appid: u32, value: &str) -> Result<SetResult, LocalConfigError> {
    set_at(src, &launch_options_path(appid), value)
}

/// Sets the string at `kp` to `value`, as [`set`] does for `LaunchOptions`.
///
/// Errors: see [`LocalConfigError`].
pub fn set_at(src: &[u8], kp: &KeyPath, value: &str) -> Result<SetResult, LocalConfigError> {
    update_at(src, kp, |_| value.to_owned())
}

/// Sets the string at `kp` to `f(current value)`, in one pass over the
/// file (so a 10 MB file is lexed for the lookup, the check and the
/// read-back only).
///
/// Errors: as [`set`].
pub fn update_at(
    src: &[u8],
    kp: &KeyPath,
    f: impl FnOnce(Option<&Current>) -> String,
) -> Result<SetResult, LocalConfigError> {
    let doc = Document::parse_focused(src, &kp.focus())?;
    let located = locate(&doc, kp)?;
    let old = match &located {
        Located::Found { pair, path } => Some(current(&doc, pair, path.clone())?),
        Located::Missing { .. } => None,
    };
    let value = f(old.as_ref());
    let value = value.as_str();
    let (edit, old, created_blocks, path) = match located {
        Located::Found { pair, path } => {
            let old = old.expect("found above");
            if old.value == value {
                return Ok(SetResult {
                    new: src.to_vec(),
                    now: old.clone(),
                    old: Some(old),
                    created_blocks: 0,
                    changed: false,
                });
            }
            let Value::Str(t) = pair.value else {
                unreachable!("current() checked")
            };
            let tok = &doc.tokens[t];
            // The edit covers the whole value token (so the lexer check sees
            // one token replaced), but inside it only the changed middle is
            // re-encoded.
            let edit = if tok.kind == lex::TokenKind::Quoted {
                let (mid, bytes) = value_splice(&doc.decoded(t), value.as_bytes());
                let token = [
                    &src[tok.span.start..mid.start],
                    &bytes,
                    &src[mid.end..tok.span.end],
                ]
                .concat();
                Edit {
                    span: tok.span.clone(),
                    bytes: token,
                }
            } else {
                Edit {
                    span: tok.span.clone(),
                    bytes: [&b"\""[..], &lex::escape(value.as_bytes()), b"\""].concat(),
                }
            };
            (edit, Some(old), 0, path)
        }
        Located::Missing { block, level, path } => {
            let names = &kp.blocks[1 + level..];
            let edit = insertion(&doc, block, names, &kp.key, value.as_bytes());
            let path = format!(
                "{path}/{}",
                [names, std::slice::from_ref(&kp.key)].concat().join("/")
            );
            (edit, None, names.len(), path)
        }
    };
    drop(doc);
    let new = vdf::checked_apply(src, &edit)?;
    let want = [&b"\""[..], &lex::escape(value.as_bytes()), b"\""].concat();
    // Read the value back. A replaced value token: `checked_apply` proved
    // every token outside it unchanged, so the key path still leads to the
    // token that starts where the old one did; lex just that one. An
    // insertion: look the key up again in the whole new file.
    let now = if old.is_some() {
        let at = edit.span.start;
        let tok = lex::Lexer::at(&new, at)
            .next()
            .and_then(Result::ok)
            .filter(|t| t.kind == lex::TokenKind::Quoted && t.span.end == at + edit.bytes.len());
        match tok {
            Some(t) => Current {
                value: String::from_utf8_lossy(&lex::decode(&new, &t).bytes).into_owned(),
                token: new[t.span].to_vec(),
                path: path.clone(),
            },
            None => return Err(LocalConfigError::ReadBack { path }),
        }
    } else {
        read_at(&new, kp)?.ok_or_else(|| LocalConfigError::ReadBack { path: path.clone() })?
    };
    // An existing token keeps its own escapes, so compare decoded values.
    if now.value != value {
        return Err(LocalConfigError::ReadBack { path });
    }
    if old.is_none() && now.token != want {
        return Err(LocalConfigError::ReadBack { path });
    }
    Ok(SetResult {
        new,
        old,
        created_blocks,
        changed: true,
        now,
    })
}

/// The bytes of the pair named `kp.key` in `kp.blocks` (a string pair or a
/// `"key" { … }` block, from its key's first byte to its value's last
/// byte); `None` when absent.
///
/// Errors: as [`read`].
pub fn pair_bytes_at(src: &[u8], kp: &KeyPath) -> Result<Option<Vec<u8>>, LocalConfigError> {
    let doc = Document::parse_focused(src, &kp.focus())?;
    Ok(match locate(&doc, kp)? {
        Located::Found { pair, .. } => Some(src[doc.pair_span(pair)].to_vec()),
        Located::Missing { .. } => None,
    })
}

/// Replaces the pair named `kp.key` with `bytes` (a whole pair, e.g. a
/// recorded `"620" { … }` block): the byte-for-byte restore of a block.
///
/// Errors: as [`set`]; [`LocalConfigError::ReadBack`] when the pair is
/// absent or the result does not hold `bytes` there.
pub fn replace_pair_at(
    src: &[u8],
    kp: &KeyPath,
    bytes: &[u8],
) -> Result<Vec<u8>, LocalConfigError> {
    let doc = Document::parse_focused(src, &kp.focus())?;
    let (span, path) = match locate(&doc, kp)? {
        Located::Found { pair, path } => (doc.pair_span(pair), path),
        Located::Missing { path, .. } => return Err(LocalConfigError::ReadBack { path }),
    };
    drop(doc);
    let new = vdf::checked_apply(
        src,
        &Edit {
            span,
            bytes: bytes.to_vec(),
        },
    )?;
    if pair_bytes_at(&new, kp)?.as_deref() != Some(bytes) {
        return Err(LocalConfigError::ReadBack { path });
    }
    Ok(new)
}

/// Replaces the existing `LaunchOptions` value token of `appid` with `token`
/// (exact bytes, quotes included): the byte-for-byte restore.
///
/// Errors: as [`set`]; also [`LocalConfigError::ReadBack`] when the key is
/// absent or `token` is not a single string token.
pub fn put_token(src: &[u8], appid: u32, token: &[u8]) -> Result<Vec<u8>, LocalConfigError> {
    put_token_at(src, &launch_options_path(appid), token)
}

/// [`put_token`] for any key path.
///
/// Errors: as [`put_token`].
pub fn put_token_at(src: &[u8], kp: &KeyPath, token: &[u8]) -> Result<Vec<u8>, LocalConfigError> {
    let doc = Document::parse_focused(src, &kp.focus())?;
    let (pair, path) = match locate(&doc, kp)? {
        Located::Found { pair, path } => (pair, path),
        Located::Missing { path, .. } => return Err(LocalConfigError::ReadBack { path }),
    };
    current(&doc, pair, path.clone())?;
    let Value::Str(t) = pair.value else {
        unreachable!("current() checked")
    };
    let edit = Edit {
        span: doc.tokens[t].span.clone(),
        bytes: token.to_vec(),
    };
    drop(doc);
    let new = vdf::checked_apply(src, &edit)?;
    read_back(&new, kp, Some(token), &path)?;
    Ok(new)
}

/// Removes the `LaunchOptions` pair of `appid`, then up to `created_blocks`
/// enclosing blocks (app block first) while they are empty (nothing but
/// whitespace between `{` and `}`). Used when cgsplit created the key: on a
/// file cgsplit last wrote, the result is byte-identical to the file before.
///
/// Errors: as [`set`]; returns the input unchanged when the key is absent.
pub fn remove(src: &[u8], appid: u32, created_blocks: usize) -> Result<Vec<u8>, LocalConfigError> {
    remove_at(src, &launch_options_path(appid), created_blocks)
}

/// [`remove`] for any key path.
///
/// Errors: as [`remove`].
pub fn remove_at(
    src: &[u8],
    kp: &KeyPath,
    created_blocks: usize,
) -> Result<Vec<u8>, LocalConfigError> {
    let focus = kp.focus();
    let doc = Document::parse_focused(src, &focus)?;
    let (pair, path) = match locate(&doc, kp)? {
        Located::Found { pair, path } => (pair, path),
        Located::Missing { .. } => return Ok(src.to_vec()),
    };
    let edit = removal(&doc, pair);
    drop(doc);
    let mut new = vdf::checked_apply(src, &edit)?;
    read_back(&new, kp, None, &path)?;
    let names = &kp.blocks[1..];
    for depth in (names.len() + 1 - created_blocks.min(names.len())..=names.len()).rev() {
        let doc = Document::parse_focused(&new, &focus)?;
        let Some(root) = doc.pairs.iter().find(|p| doc.key_is(p, &kp.blocks[0])) else {
            return Err(LocalConfigError::NoRoot(kp.blocks[0].clone()));
        };
        let mut pair = root;
        for name in &names[..depth] {
            match doc.find(children(pair), name) {
                Some(p) => pair = p,
                None => return Ok(new),
            }
        }
        let Value::Block { open, close, .. } = &pair.value else {
            return Ok(new);
        };
        let inside = &doc.tokens[open + 1..*close];
        if !inside.iter().all(|t| t.kind == lex::TokenKind::Whitespace) {
            return Ok(new);
        }
        let edit = removal(&doc, pair);
        drop(doc);
        new = vdf::checked_apply(&new, &edit)?;
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyvalues_parser::Obj;

    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIX}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn mexus() -> Vec<u8> {
        fixture("corpus/mexus__steam-vdf-parser__tests__fixtures__localconfig.vdf")
    }

    fn demo() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../demo/steam/userdata/39734273/config/localconfig.vdf"
        ))
        .unwrap()
    }

    /// Removes `Software/Valve/Steam/apps/<appid>/LaunchOptions` (first
    /// case-insensitive match per level) from a keyvalues-parser tree, then the
    /// app and apps blocks if that left them empty; returns the removed value.
    fn strip(obj: &mut Obj<'_>, path: &[&str]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        let key = obj.keys().find(|k| k.eq_ignore_ascii_case(first))?.clone();
        if rest.is_empty() {
            let v = obj.remove(&key)?;
            return v.into_iter().next().map(|v| v.unwrap_str().into_owned());
        }
        let vals = obj.get_mut(&key)?;
        let inner = vals.iter_mut().find_map(|v| v.get_mut_obj())?;
        let got = strip(inner, rest);
        if inner.is_empty() {
            obj.remove(&key);
        }
        got
    }

    /// keyvalues-parser trees of `old` and `new` are equal once the edited
    /// key is taken out of both; returns (old value, new value).
    fn trees_equal_except_key(
        old: &[u8],
        new: &[u8],
        appid: u32,
    ) -> (Option<String>, Option<String>) {
        let parse = |b: &[u8]| {
            keyvalues_parser::parse(std::str::from_utf8(b).unwrap())
                .unwrap()
                .into_owned()
        };
        let (mut a, mut b) = (parse(old), parse(new));
        let app = appid.to_string();
        let path = ["Software", "Valve", "Steam", "apps", &app, KEY];
        let strip_root = |v: &mut keyvalues_parser::PartialVdf<'static>| {
            strip(v.value.get_mut_obj().unwrap(), &path)
        };
        let (va, vb) = (strip_root(&mut a), strip_root(&mut b));
        assert_eq!(a, b, "trees differ outside {KEY}");
        (va, vb)
    }

    /// Set, check everything, then unset with the recorded data and check
    /// the original bytes come back.
    fn roundtrip(src: &[u8], appid: u32, value: &str) -> Vec<u8> {
        let r = set(src, appid, value).unwrap();
        assert!(r.changed);
        let (old_v, new_v) = trees_equal_except_key(src, &r.new, appid);
        assert_eq!(new_v.as_deref(), Some(value));
        assert_eq!(old_v, r.old.as_ref().map(|c| c.value.clone()));
        assert_eq!(read(&r.new, appid).unwrap().unwrap().value, value);
        // Idempotent.
        let again = set(&r.new, appid, value).unwrap();
        assert!(!again.changed);
        assert_eq!(again.new, r.new);
        // Restore byte for byte.
        let back = match &r.old {
            Some(c) => put_token(&r.new, appid, &c.token).unwrap(),
            None => remove(&r.new, appid, r.created_blocks).unwrap(),
        };
        assert_eq!(
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(src),
            "restore"
        );
        assert_eq!(back, src);
        r.new
    }

    /// Bytes outside one contiguous changed region are identical.
    fn changed_region(old: &[u8], new: &[u8]) -> (usize, usize, usize) {
        let p = old.iter().zip(new).take_while(|(a, b)| a == b).count();
        let s = old[p..]
            .iter()
            .rev()
            .zip(new[p..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        (p, old.len() - s, new.len() - s)
    }

    const WRAPPED: &str =
        "'/home/me/.local/share/Steam/compatibilitytools.d/cgsplit/cgsplit-shim' -- %command%";

    #[test]
    fn existing_launch_options_only_the_value_changes() {
        let src = demo();
        let old = read(&src, 620).unwrap().unwrap();
        assert_eq!(
            old.value,
            "DEMO_GREETING='hello from Steam' %command% -novid"
        );
        assert_eq!(
            old.path,
            "UserLocalConfigStore/Software/Valve/Steam/apps/620/LaunchOptions"
        );
        let value = cgsplit_core::launch::wrap(
            &old.value,
            &cgsplit_core::launch::shim_prefix("/p q/cgsplit-shim", &[]),
        );
        let new = roundtrip(&src, 620, &value);
        let (p, e_old, e_new) = changed_region(&src, &new);
        // The splice is pure insertion inside the value token.
        assert_eq!(e_old, p);
        assert_eq!(&new[p..e_new], b"'/p q/cgsplit-shim' -- ");
        // App 400 and the top-level Apps/620 decoy are untouched.
        assert_eq!(
            read(&new, 400).unwrap().unwrap().value,
            "-novid +exec \"my cfg.cfg\""
        );
    }

    #[test]
    fn app_block_without_launch_options_gets_a_line() {
        let src = demo();
        let src = String::from_utf8(src)
            .unwrap()
            .replace(
                "\t\t\t\t\t\t\"LaunchOptions\"\t\t\"DEMO_GREETING='hello from Steam' %command% -novid\"\n",
                "",
            )
            .into_bytes();
        assert_eq!(read(&src, 620).unwrap(), None);
        let new = roundtrip(&src, 620, WRAPPED);
        let want = String::from_utf8(src).unwrap().replace(
            "\t\t\t\t\t\t}\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t\t\"running\"",
            &format!("\t\t\t\t\t\t}}\n\t\t\t\t\t\t\"LaunchOptions\"\t\t\"{WRAPPED}\"\n\t\t\t\t\t}}\n\t\t\t\t}}\n\t\t\t\t\"running\""),
        );
        assert_eq!(String::from_utf8(new).unwrap(), want);
    }

    #[test]
    fn missing_app_block_is_created_in_steam_layout() {
        let src = demo();
        let new = roundtrip(&src, 570, "-novid");
        let text = String::from_utf8(new).unwrap();
        assert!(text.contains(
            "\t\t\t\t\t}\n\t\t\t\t\t\"570\"\n\t\t\t\t\t{\n\t\t\t\t\t\t\"LaunchOptions\"\t\t\"-novid\"\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t\t\"running\""
        ), "{text}");
    }

    #[test]
    fn no_apps_block_mexus_corpus_file() {
        let src = mexus();
        let new = roundtrip(&src, 620, WRAPPED);
        let text = String::from_utf8(new).unwrap();
        assert!(text.contains(&format!(
            "\t\t\t\t}}\n\t\t\t\t\"apps\"\n\t\t\t\t{{\n\t\t\t\t\t\"620\"\n\t\t\t\t\t{{\n\t\t\t\t\t\t\"LaunchOptions\"\t\t\"{WRAPPED}\"\n\t\t\t\t\t}}\n\t\t\t\t}}\n\t\t\t}}\n"
        )));
        assert_eq!(
            key_path(&src, 620).unwrap(),
            "UserLocalConfigStore/Software/Valve/Steam/apps/620/LaunchOptions"
        );
    }

    #[test]
    fn lowercase_valve_steam_and_capital_apps_are_followed() {
        let src = b"\"UserLocalConfigStore\"\n{\n\t\"Apps\"\n\t{\n\t\t\"620\"\n\t\t{\n\t\t\t\"LaunchOptions\"\t\t\"decoy\"\n\t\t}\n\t}\n\t\"Software\"\n\t{\n\t\t\"valve\"\n\t\t{\n\t\t\t\"steam\"\n\t\t\t{\n\t\t\t\t\"Apps\"\n\t\t\t\t{\n\t\t\t\t\t\"620\"\n\t\t\t\t\t{\n\t\t\t\t\t\t\"LaunchOptions\"\t\t\"a \\\"b\\\" %command%\"\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n";
        let cur = read(src, 620).unwrap().unwrap();
        assert_eq!(cur.value, "a \"b\" %command%");
        assert_eq!(
            cur.path,
            "UserLocalConfigStore/Software/valve/steam/Apps/620/LaunchOptions"
        );
        let new = roundtrip(src, 620, "a \"b\" X %command%");
        assert!(
            String::from_utf8(new)
                .unwrap()
                .contains("\"LaunchOptions\"\t\t\"decoy\"")
        );
    }

    #[test]
    fn top_level_apps_decoy_is_not_used_when_the_real_block_is_missing() {
        let src = b"\"UserLocalConfigStore\"\n{\n\t\"Apps\"\n\t{\n\t\t\"620\"\n\t\t{\n\t\t\t\"LaunchOptions\"\t\t\"decoy\"\n\t\t}\n\t}\n\t\"Software\"\n\t{\n\t\t\"valve\"\n\t\t{\n\t\t\t\"steam\"\n\t\t\t{\n\t\t\t}\n\t\t}\n\t}\n}\n";
        assert_eq!(read(src, 620).unwrap(), None);
        let new = roundtrip(src, 620, WRAPPED);
        assert!(
            String::from_utf8(new)
                .unwrap()
                .contains("\"LaunchOptions\"\t\t\"decoy\"")
        );
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let src = String::from_utf8(mexus())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        let new = roundtrip(&src, 620, WRAPPED);
        let text = String::from_utf8(new).unwrap();
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "a bare LF was inserted"
        );
        let crlf_demo = String::from_utf8(demo())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        roundtrip(&crlf_demo, 620, WRAPPED);
        roundtrip(&crlf_demo, 999, WRAPPED);
    }

    #[test]
    fn comments_odd_spacing_and_duplicates_survive() {
        let src = b"// written by hand\n\"UserLocalConfigStore\"   // root\n{\n  \"Software\" { \"Valve\"\n  {\n    \"Steam\"\n    {\n      \"apps\"\n      {\n        \"620\"  // portal 2\n        {\n          \"LaunchOptions\"    \"first\" // keep me\n          \"LaunchOptions\"    \"second\"\n        }\n        \"620\"\n        {\n          \"LaunchOptions\" \"dup block\"\n        }\n      }\n    }\n  } }\n}\n";
        let r = set(src, 620, "first X").unwrap();
        let text = String::from_utf8(r.new.clone()).unwrap();
        assert!(text.contains(
            "\"LaunchOptions\"    \"first X\" // keep me\n          \"LaunchOptions\"    \"second\""
        ));
        assert!(text.contains("\"dup block\""));
        assert!(text.starts_with("// written by hand\n\"UserLocalConfigStore\"   // root\n"));
        let (p, e_old, e_new) = changed_region(src, &r.new);
        assert_eq!((e_old - p, e_new - p), (0, 2));
        let back = put_token(&r.new, 620, &r.old.unwrap().token).unwrap();
        assert_eq!(back, src);
        // A missing key in a 2-space file: indentation copied from siblings.
        let new = roundtrip(src, 400, "x");
        assert!(String::from_utf8(new).unwrap().contains(
            "        \"400\"\n        {\n          \"LaunchOptions\"\t\t\"x\"\n        }\n      }"
        ));
    }

    #[test]
    fn inline_blocks_get_inline_insertions_that_remove_exactly() {
        let src = b"\"UserLocalConfigStore\" { \"Software\" { \"Valve\" { \"Steam\" { \"apps\" { \"620\" { \"x\" \"1\" } } } } } }";
        let new = roundtrip(src, 620, WRAPPED);
        assert!(
            String::from_utf8(new)
                .unwrap()
                .contains("\"x\" \"1\"  \"LaunchOptions\"\t\t\"")
        );
        roundtrip(src, 7, "-a");
        roundtrip(b"\"UserLocalConfigStore\"{}", 7, "-a");
        roundtrip(b"UserLocalConfigStore { Software { Valve { Steam { apps { 7 { LaunchOptions -x } } } } } }", 7, "-a");
    }

    #[test]
    fn awkward_values_escape_and_restore() {
        let long = format!("{} %command%", "X=1 ".repeat(5000));
        let values = [
            r#""/home/deck/My Games/run it.sh" %command% -console"#,
            r#"C:\Games\tool.exe \\server\share %command%"#,
            "LD_PRELOAD=$LD_PRELOAD:/usr/\\$LIB/libgamemodeauto.so.0 %command%",
            "A=\tB\t%command%",
            r#"{"ePersonaState":1,"strName":"x\\"} %command%"#,
            "ünïcödé 'quoted' %command%",
            "ends with backslash\\",
            long.as_str(),
        ];
        for v in values {
            roundtrip(&demo(), 620, v);
            roundtrip(&mexus(), 620, v);
            let wrapped = cgsplit_core::launch::wrap(
                v,
                &cgsplit_core::launch::shim_prefix("/home/a b/it's/cgsplit-shim", &[]),
            );
            let r = set(&demo(), 620, v).unwrap();
            roundtrip(&r.new, 620, &wrapped);
        }
    }

    #[test]
    fn escapes_in_untouched_parts_of_a_value_keep_their_bytes() {
        // `\t` (escape) and `\q` (unknown) are not how cgsplit would encode
        // them; only the inserted middle is encoded.
        let src = b"\"UserLocalConfigStore\"\n{\n\t\"Software\"\n\t{\n\t\t\"Valve\"\n\t\t{\n\t\t\t\"Steam\"\n\t\t\t{\n\t\t\t\t\"apps\"\n\t\t\t\t{\n\t\t\t\t\t\"620\"\n\t\t\t\t\t{\n\t\t\t\t\t\t\"LaunchOptions\"\t\t\"A=\\tB \\q %command%\"\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n";
        let old = read(src, 620).unwrap().unwrap();
        assert_eq!(old.value, "A=\tB \\q %command%");
        let v = cgsplit_core::launch::wrap(&old.value, "s --");
        let r = set(src, 620, &v).unwrap();
        assert!(String::from_utf8_lossy(&r.new).contains("\"A=\\tB \\q s -- %command%\""));
    }

    #[test]
    fn bad_input_is_refused_with_where() {
        assert!(matches!(
            read(b"\"a\" \"b", 1),
            Err(LocalConfigError::Parse(_))
        ));
        assert!(matches!(
            read(b"\"Other\" {}", 1),
            Err(LocalConfigError::NoRoot(_))
        ));
        assert!(matches!(
            set(b"\"UserLocalConfigStore\" { \"Software\" \"oops\" }", 1, "x"),
            Err(LocalConfigError::NotABlock { ref path, offset: 25 }) if path == "UserLocalConfigStore/Software"
        ));
        assert!(matches!(
            set(b"\"UserLocalConfigStore\"{\"Software\"{\"Valve\"{\"Steam\"{\"apps\"{\"1\"{\"LaunchOptions\"{}}}}}}}", 1, "x"),
            Err(LocalConfigError::NotAString { .. })
        ));
        assert!(matches!(
            read(b"\"UserLocalConfigStore\"{\"Software\"{\"Valve\"{\"Steam\"{\"apps\"{\"1\"{\"LaunchOptions\" \"\xff\"}}}}}}", 1),
            Err(LocalConfigError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn lines_and_binary_detection() {
        assert_eq!(line_col(b"a\nbc\nd", 0), (1, 1));
        assert_eq!(line_col(b"a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col(b"a\nbc\nd", 5), (3, 1));
        assert_eq!(line_col(b"a\r\nb", 3), (2, 1));
        assert_eq!(binary_at(b"\"a\" \"b\""), None);
        // Valve text files may end in NULs.
        assert_eq!(binary_at(b"\"a\" \"b\"\0\0"), None);
        assert_eq!(binary_at(b"\0shortcuts\0"), Some(0));
        let shortcuts = fixture(
            "corpus/WilliamVenner__steamlocate-rs__tests__assets__shortcuts_different_key_case.vdf",
        );
        assert!(binary_at(&shortcuts).is_some());
        assert_eq!(binary_at(&mexus()), None);
    }

    #[test]
    fn remove_keeps_blocks_steam_filled_in_since() {
        let src = mexus();
        let r = set(&src, 620, WRAPPED).unwrap();
        assert_eq!(r.created_blocks, 2);
        // Steam added LastPlayed to the app block we created.
        let text = String::from_utf8(r.new).unwrap().replace(
            "\t\t\t\t\t\t\"LaunchOptions\"",
            "\t\t\t\t\t\t\"LastPlayed\"\t\t\"1\"\n\t\t\t\t\t\t\"LaunchOptions\"",
        );
        let back = remove(text.as_bytes(), 620, 2).unwrap();
        let back = String::from_utf8(back).unwrap();
        assert!(
            back.contains("\"620\"\n\t\t\t\t\t{\n\t\t\t\t\t\t\"LastPlayed\"\t\t\"1\"\n\t\t\t\t\t}")
        );
        assert_eq!(read(back.as_bytes(), 620).unwrap(), None);
    }
}
