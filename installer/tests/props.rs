//! Property tests for the lossless `LaunchOptions` editor.
//!
//! (a) Random KeyValues trees, rendered the way Steam writes them, are edited
//! with [`localconfig::set`]; the result must parse (with keyvalues-parser, an
//! independent parser) to the tree a simple model predicts, differ from the
//! input only inside one value token or by one pure insertion, be a fixed
//! point of a second `set`, and restore to the exact input bytes.
//!
//! (b) Arbitrary bytes, strings and mutated documents fed to the lexer, the
//! tree builder, the checked splice and the localconfig editor never panic.
//!
//! Case counts are small so the file runs in seconds in a debug build.

use cgsplit_install::steam::localconfig;
use cgsplit_install::vdf::{self, Document, Edit, VerifyError, lex};
use lex::TokenKind;
use proptest::prelude::*;
use std::ops::Range;

/// A model KeyValues node: a string or a block of pairs in file order.
#[derive(Debug, Clone)]
enum Node {
    Str(String),
    Block(Vec<(String, Node)>),
}

type Pairs = Vec<(String, Node)>;

fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(&lex::escape(s.as_bytes()));
    out.push(b'"');
}

fn render_pairs(out: &mut Vec<u8>, pairs: &[(String, Node)], depth: usize, nl: &[u8]) {
    let tabs = |out: &mut Vec<u8>| out.extend(std::iter::repeat_n(b'\t', depth));
    for (k, v) in pairs {
        tabs(out);
        quoted(out, k);
        match v {
            Node::Str(s) => {
                out.extend_from_slice(b"\t\t");
                quoted(out, s);
                out.extend_from_slice(nl);
            }
            Node::Block(c) => {
                out.extend_from_slice(nl);
                tabs(out);
                out.push(b'{');
                out.extend_from_slice(nl);
                render_pairs(out, c, depth + 1, nl);
                tabs(out);
                out.push(b'}');
                out.extend_from_slice(nl);
            }
        }
    }
}

/// Steam-style text of `"root" { children }`.
fn render(root: &str, children: &[(String, Node)], crlf: bool, trailing_nl: bool) -> Vec<u8> {
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::new();
    render_pairs(
        &mut out,
        &[(root.to_owned(), Node::Block(children.to_vec()))],
        0,
        nl,
    );
    if !trailing_nl {
        out.truncate(out.len() - nl.len());
    }
    out
}

fn kv(bytes: &[u8]) -> keyvalues_parser::PartialVdf<'static> {
    keyvalues_parser::parse(std::str::from_utf8(bytes).expect("utf-8"))
        .expect("keyvalues-parser accepts the text")
        .into_owned()
}

/// What `set` should do, on the model: first case-insensitive match per
/// level; missing levels are appended in default spelling. `Err` where the
/// installer must refuse (a string where a block is needed or vice versa).
fn set_model(children: &mut Pairs, path: &[String], value: &str) -> Result<Option<String>, ()> {
    let (first, rest) = path.split_first().expect("non-empty path");
    let hit = children
        .iter_mut()
        .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(first.as_bytes()));
    match (hit, rest.is_empty()) {
        (Some((_, Node::Str(s))), true) => Ok(Some(std::mem::replace(s, value.to_owned()))),
        (Some((_, Node::Block(_))), true) | (Some((_, Node::Str(_))), false) => Err(()),
        (Some((_, Node::Block(c))), false) => set_model(c, rest, value),
        (None, _) => {
            let mut node = Node::Str(value.to_owned());
            for name in rest.iter().rev() {
                node = Node::Block(vec![(name.clone(), node)]);
            }
            children.push((first.clone(), node));
            Ok(None)
        }
    }
}

fn launch_path(appid: u32) -> Vec<String> {
    ["Software", "Valve", "Steam", "apps"]
        .iter()
        .map(|s| s.to_string())
        .chain([appid.to_string(), "LaunchOptions".to_owned()])
        .collect()
}

/// Strings Steam and users put in values: quotes, backslashes, tabs,
/// newlines, UTF-8, `$VARS`, `%command%`, braces and comment markers.
fn text() -> impl Strategy<Value = String> {
    let chunk = prop_oneof![
        Just("a"),
        Just("Z"),
        Just(" "),
        Just("\""),
        Just("\\"),
        Just("\\\""),
        Just("\\n"),
        Just("\t"),
        Just("\n"),
        Just("é"),
        Just("日本"),
        Just("🎮"),
        Just("$HOME"),
        Just("%command%"),
        Just("-novid"),
        Just("{"),
        Just("}"),
        Just("//"),
        Just("[$WIN32]"),
        Just("#base"),
        Just("0"),
    ];
    prop::collection::vec(chunk, 0..8).prop_map(|v| v.concat())
}

/// Keys, biased towards the ones on the edited path in odd spellings.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z_][A-Za-z0-9_ ]{0,7}",
        1 => prop::sample::select(vec![
            "apps", "Apps", "APPS", "aPpS", "Valve", "valve", "VALVE", "Steam", "steam",
            "Software", "software", "LaunchOptions", "launchoptions", "10", "220", "620",
            "4000000", "", "\"q\"", "back\\slash", "tab\there", "ünï",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    text()
        .prop_map(Node::Str)
        .prop_recursive(3, 16, 4, |inner| {
            prop::collection::vec((key(), inner), 0..4).prop_map(Node::Block)
        })
}

fn filler() -> impl Strategy<Value = Pairs> {
    prop::collection::vec((key(), node()), 0..3)
}

fn spell(name: &str, variant: u8) -> String {
    match variant % 4 {
        0 => name.to_owned(),
        1 => name.to_ascii_lowercase(),
        2 => name.to_ascii_uppercase(),
        _ => name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
    }
}

/// A generated localconfig.vdf.
#[derive(Debug, Clone)]
struct Case {
    root: String,
    children: Pairs,
    appid: u32,
    value: String,
    crlf: bool,
    trailing_nl: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            prop::sample::select(vec!["UserLocalConfigStore", "userlocalconfigstore"]),
            0usize..=6,
            prop::collection::vec(any::<u8>(), 6),
            prop::collection::vec((filler(), filler()), 7),
            prop::option::weighted(0.1, 0usize..6),
        ),
        (
            prop::sample::select(vec![10u32, 220, 620, 4_000_000]),
            text(),
            prop::option::weighted(0.2, text()),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((root, present, spellings, fills, string_at), (appid, old, same, crlf, tnl))| {
                let names = launch_path(appid);
                // Innermost existing level first.
                let mut inner: Option<(String, Node)> = None;
                for level in (0..present).rev() {
                    let name = spell(&names[level], spellings[level]);
                    let node = if level == 5 {
                        match string_at {
                            Some(5) => Node::Block(fills[5].0.clone()),
                            _ => Node::Str(old.clone()),
                        }
                    } else if string_at == Some(level) {
                        Node::Str(old.clone())
                    } else {
                        let (before, after) = &fills[level];
                        let mut c = before.clone();
                        c.extend(inner.take());
                        c.extend(after.iter().cloned());
                        Node::Block(c)
                    };
                    inner = Some((name, node));
                }
                let mut children = fills[6].0.clone();
                children.extend(inner);
                children.extend(fills[6].1.iter().cloned());
                // Sometimes set the value the key already has (a no-op).
                let value = if present == 6 && string_at.is_none() {
                    same.map_or_else(|| old.clone() + "x", |_| old.clone())
                } else {
                    same.unwrap_or(old)
                };
                Case {
                    root: root.to_owned(),
                    children,
                    appid,
                    value,
                    crlf,
                    trailing_nl: tnl,
                }
            },
        )
}

/// The bytes of `old` and `new` differ in one region that is either a pure
/// insertion or lies inside one string token of `old`.
fn check_one_region(old: &[u8], new: &[u8], existing: bool) -> Result<(), TestCaseError> {
    let p = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_s = old.len().min(new.len()) - p;
    let s = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_s)
        .take_while(|(a, b)| a == b)
        .count();
    let old_end = old.len() - s;
    if !existing {
        prop_assert_eq!(old_end, p, "a created key must be a pure insertion");
        return Ok(());
    }
    let toks = lex::lex(old).expect("old lexes");
    let touched: Vec<_> = toks
        .iter()
        .filter(|t| t.span.start < old_end.max(p + 1) && t.span.end > p)
        .collect();
    prop_assert_eq!(touched.len(), 1, "edit spans several tokens: {:?}", touched);
    prop_assert!(matches!(
        touched[0].kind,
        lex::TokenKind::Quoted | lex::TokenKind::Unquoted
    ));
    Ok(())
}

/// `cases` test cases (or `PROPTEST_CASES` if set, for longer local runs),
/// no failure files.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(120))]

    /// Set → model tree, one region, idempotent, exact restore.
    #[test]
    fn set_is_lossless_and_reversible(c in case()) {
        let src = render(&c.root, &c.children, c.crlf, c.trailing_nl);
        let _ = kv(&src);
        let mut model = c.children.clone();
        let expect = set_model(&mut model, &launch_path(c.appid), &c.value);
        let got = localconfig::set(&src, c.appid, &c.value);
        let Ok(old) = expect else {
            prop_assert!(got.is_err(), "model refuses, installer accepted: {:?}", got);
            return Ok(());
        };
        let r = match got {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(format!("set failed: {e}"))),
        };
        prop_assert_eq!(r.old.as_ref().map(|o| o.value.clone()), old.clone());
        prop_assert_eq!(r.changed, old.as_deref() != Some(c.value.as_str()));
        let want = render(&c.root, &model, c.crlf, c.trailing_nl);
        prop_assert_eq!(kv(&r.new), kv(&want));
        if r.changed {
            check_one_region(&src, &r.new, old.is_some())?;
        } else {
            prop_assert!(r.new == src);
        }
        let again = localconfig::set(&r.new, c.appid, &c.value).expect("second set");
        prop_assert!(!again.changed);
        prop_assert!(again.new == r.new);
        let back = match (&r.old, r.changed) {
            (_, false) => r.new.clone(),
            (Some(o), true) => localconfig::put_token(&r.new, c.appid, &o.token).expect("restore"),
            (None, true) => localconfig::remove(&r.new, c.appid, r.created_blocks).expect("remove"),
        };
        prop_assert!(back == src, "restore differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&back), String::from_utf8_lossy(&src));
    }
}

fn no_panic(bytes: &[u8], value: &str, appid: u32) {
    if let Ok(toks) = lex::lex(bytes) {
        for t in &toks {
            let _ = lex::decode(bytes, t);
        }
    }
    let _ = Document::parse(bytes);
    let _ = localconfig::read(bytes, appid);
    let _ = localconfig::key_path(bytes, appid);
    if let Ok(r) = localconfig::set(bytes, appid, value) {
        let _ = localconfig::remove(&r.new, appid, r.created_blocks);
        if let Some(o) = &r.old {
            let _ = localconfig::put_token(&r.new, appid, &o.token);
        }
    }
    let _ = localconfig::put_token(bytes, appid, b"\"x\"");
    let _ = localconfig::remove(bytes, appid, 5);
}

/// Bytes made mostly of VDF punctuation, so inputs get past the lexer.
fn vdf_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(b"\"{}\\ \t\r\n/[]#$\0aZ1".to_vec()),
            1 => any::<u8>(),
        ],
        0..64,
    )
}

proptest! {
    #![proptest_config(config(200))]

    /// Arbitrary bytes never panic anything.
    #[test]
    fn arbitrary_bytes_do_not_panic(b in prop::collection::vec(any::<u8>(), 0..64), v in text()) {
        no_panic(&b, &v, 620);
    }

    /// Punctuation-heavy bytes never panic anything.
    #[test]
    fn vdf_like_bytes_do_not_panic(b in vdf_bytes(), v in text()) {
        no_panic(&b, &v, 620);
    }

    /// Arbitrary strings (any unicode) never panic anything.
    #[test]
    fn arbitrary_strings_do_not_panic(s in any::<String>(), v in any::<String>()) {
        no_panic(s.as_bytes(), &v, 10);
    }

}

proptest! {
    #![proptest_config(config(60))]

    /// A valid document with a few bytes inserted or removed never panics,
    /// and neither does a random checked splice of it.
    #[test]
    fn mutated_documents_do_not_panic(
        c in case(),
        muts in prop::collection::vec((any::<prop::sample::Index>(), vdf_bytes(), 0usize..3), 1..4),
        span in (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
        ins in vdf_bytes(),
    ) {
        let mut src = render(&c.root, &c.children, c.crlf, c.trailing_nl);
        for (at, bytes, del) in muts {
            let i = at.index(src.len() + 1);
            let end = (i + del).min(src.len());
            src.splice(i..end, bytes.into_iter().take(3));
        }
        no_panic(&src, &c.value, c.appid);
        let (a, b) = (span.0.index(src.len() + 2), span.1.index(src.len() + 2));
        let _ = vdf::checked_apply(&src, &Edit { span: a..b, bytes: ins });
    }
}

fn kept(t: &lex::Token) -> bool {
    t.kind != TokenKind::Whitespace
}

/// The first, obviously correct form of [`vdf::checked_apply`]: both files
/// lexed to full token vectors and compared. The streaming version must
/// accept and refuse exactly the same edits.
fn reference_checked_apply(old: &[u8], edit: &Edit) -> Result<Vec<u8>, VerifyError> {
    let (s, e) = (edit.span.start, edit.span.end);
    if s > e || e > old.len() {
        return Err(VerifyError::BadSpan {
            start: s,
            end: e,
            len: old.len(),
        });
    }
    let new = vdf::edit::apply(old, edit);
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

/// An edit that replaces one random token of `src` (or inserts before it)
/// with random VDF-ish bytes or a well-formed quoted string.
fn token_edit(
    src: &[u8],
    at: prop::sample::Index,
    ins: Vec<u8>,
    quoted_value: Option<String>,
    insert: bool,
) -> Edit {
    let toks = lex::lex(src).unwrap_or_default();
    let bytes = match quoted_value {
        Some(v) => {
            let mut out = Vec::new();
            quoted(&mut out, &v);
            out
        }
        None => ins,
    };
    if toks.is_empty() {
        return Edit { span: 0..0, bytes };
    }
    let t = &toks[at.index(toks.len())];
    let span = if insert {
        t.span.start..t.span.start
    } else {
        t.span.clone()
    };
    Edit { span, bytes }
}

proptest! {
    #![proptest_config(config(150))]

    /// The streaming check agrees with the full-vector reference.
    #[test]
    fn streaming_check_matches_the_reference(
        c in case(),
        at in any::<prop::sample::Index>(),
        ins in vdf_bytes(),
        value in prop::option::of(text()),
        insert in any::<bool>(),
        mutate in prop::option::of((any::<prop::sample::Index>(), vdf_bytes())),
    ) {
        let mut src = render(&c.root, &c.children, c.crlf, c.trailing_nl);
        if let Some((i, b)) = mutate {
            let i = i.index(src.len() + 1);
            src.splice(i..i, b.into_iter().take(2));
        }
        let edit = token_edit(&src, at, ins, value, insert);
        let got = vdf::checked_apply(&src, &edit);
        let want = reference_checked_apply(&src, &edit);
        prop_assert_eq!(got.is_ok(), want.is_ok(), "streaming {:?} vs reference {:?}", got.as_ref().err(), want.as_ref().err());
        if let (Ok(a), Ok(b)) = (got, want) {
            prop_assert!(a == b);
        }
    }
}

proptest! {
    #![proptest_config(config(120))]

    /// The focused parse (used for every edit) accepts and refuses exactly
    /// what the full parse does, and so does the storage-free `validate`
    /// (with the same error as the focused parse: both stream, so they name
    /// the first problem in file order; the full parse lexes everything
    /// first, so a lexer error later in the file may win there).
    #[test]
    fn focused_parse_and_validate_agree_with_the_full_parse(
        c in case(),
        mutate in prop::option::of((any::<prop::sample::Index>(), vdf_bytes())),
    ) {
        let mut src = render(&c.root, &c.children, c.crlf, c.trailing_nl);
        if let Some((i, b)) = mutate {
            let i = i.index(src.len() + 1);
            src.splice(i..i, b.into_iter().take(3));
        }
        let full = Document::parse(&src).map(|_| ());
        let app = c.appid.to_string();
        let focus = ["UserLocalConfigStore", "Software", "Valve", "Steam", "apps", app.as_str()];
        let focused = Document::parse_focused(&src, &focus).map(|_| ());
        prop_assert_eq!(full.is_ok(), focused.is_ok(), "{:?} vs {:?}", full, focused);
        prop_assert_eq!(&focused, &vdf::doc::validate(&src));
    }
}
