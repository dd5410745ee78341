//! Route patterns: parsing, and building paths back from them (`url_for`).
//!
//! A pattern is a path made of `/`-separated segments; each segment is one of
//!
//! * literal text (`users`), compared with the request's *decoded* segment;
//! * `{name}`: any non-empty segment;
//! * `{name:regex}`: a segment whose decoded value matches `regex` whole (the `regex` crate's
//!   syntax, anchored at both ends: `{id:\d+}` matches `42`, not `42a`);
//! * `{*name}`: the rest of the path, slashes included (possibly empty); last segment only.
//!
//! A parameter is always a whole segment (`/files/{name}.txt` is refused). Braces may nest inside
//! a constraint (`{code:[a-z]{3}}`), and a constraint may contain `/` (which can only ever match
//! a decoded `%2F`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::Error;

/// One segment of a pattern.
#[derive(Clone, Debug)]
pub(crate) enum Segment {
    /// Literal text.
    Static(Box<str>),
    /// `{name}` or `{name:regex}`.
    Param {
        name: Box<str>,
        constraint: Option<Constraint>,
    },
    /// `{*name}`.
    Tail { name: Box<str> },
}

/// A compiled `{name:regex}` constraint.
#[derive(Clone, Debug)]
pub(crate) struct Constraint {
    /// The regex as written in the pattern (two constraints with the same source share a trie
    /// node).
    pub(crate) source: Box<str>,
    re: regex::Regex,
    /// The common shape "one character class, repeated" (`\d+`, `[a-z0-9-]{2,16}`), checked
    /// on ASCII values with a table instead of the regex engine.
    class: Option<ClassRepeat>,
}

/// A class repeated `min..=max` times, with its ASCII members as a bit set.
#[derive(Clone, Copy, Debug)]
struct ClassRepeat {
    ascii: u128,
    min: u32,
    max: Option<u32>,
}

impl ClassRepeat {
    /// The class-repeat shape of `source`, if it has it.
    fn of(source: &str) -> Option<Self> {
        use regex_syntax::hir::{Class, HirKind};
        let mut hir = regex_syntax::Parser::new().parse(source).ok()?;
        while let HirKind::Capture(c) = hir.kind() {
            hir = (*c.sub).clone();
        }
        let HirKind::Repetition(rep) = hir.kind() else {
            return None;
        };
        let HirKind::Class(class) = rep.sub.kind() else {
            return None;
        };
        let mut ascii = 0u128;
        let mut add = |lo: u32, hi: u32| {
            for c in lo..=hi.min(127) {
                ascii |= 1 << c;
            }
        };
        match class {
            Class::Unicode(u) => u
                .ranges()
                .iter()
                .for_each(|r| add(r.start().into(), r.end().into())),
            Class::Bytes(b) => b
                .ranges()
                .iter()
                .for_each(|r| add(r.start().into(), r.end().into())),
        }
        Some(Self {
            ascii,
            min: rep.min,
            max: rep.max,
        })
    }

    /// Whether the ASCII `value` matches.
    fn matches_ascii(&self, value: &[u8]) -> bool {
        let n = value.len() as u64;
        n >= u64::from(self.min)
            && self.max.is_none_or(|m| n <= u64::from(m))
            && value.iter().all(|&b| self.ascii & (1 << b) != 0)
    }
}

impl Constraint {
    fn new(source: &str) -> Result<Self, String> {
        let re = regex::Regex::new(&format!("^(?:{source})$"))
            .map_err(|e| format!("invalid constraint regex {source:?}: {e}"))?;
        Ok(Self {
            source: source.into(),
            re,
            class: ClassRepeat::of(source),
        })
    }

    /// Whether the decoded segment `value` satisfies the constraint.
    pub(crate) fn is_match(&self, value: &str) -> bool {
        self.is_match_bytes(value.as_bytes())
    }

    /// Whether the decoded segment `value` (bytes, lossily UTF-8) satisfies the constraint.
    pub(crate) fn is_match_bytes(&self, value: &[u8]) -> bool {
        match &self.class {
            // For ASCII text the class's ASCII members decide, exactly as the regex would.
            Some(c) if value.is_ascii() => c.matches_ascii(value),
            _ => self.re.is_match(&String::from_utf8_lossy(value)),
        }
    }
}

/// A parsed pattern.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    /// The segments; the pattern `/` is one empty literal segment, like the path `/`.
    pub(crate) segments: Vec<Segment>,
}

impl Pattern {
    /// Parses a route pattern.
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        let Some(mut rest) = source.strip_prefix('/') else {
            return Err(format!("a route pattern starts with '/': {source:?}"));
        };
        let mut segments = Vec::new();
        loop {
            let (segment, after) = if let Some(inner) = rest.strip_prefix('{') {
                let close = closing_brace(inner)
                    .ok_or_else(|| format!("unclosed '{{' in pattern {source:?}"))?;
                let (body, after) = (&inner[..close], &inner[close + 1..]);
                if !(after.is_empty() || after.starts_with('/')) {
                    return Err(format!(
                        "a parameter must be a whole segment in pattern {source:?}"
                    ));
                }
                (parse_param(body, source)?, after)
            } else {
                let end = rest.find('/').unwrap_or(rest.len());
                let text = &rest[..end];
                if text.contains(['{', '}']) {
                    return Err(format!(
                        "a parameter must be a whole segment in pattern {source:?}"
                    ));
                }
                (Segment::Static(text.into()), &rest[end..])
            };
            if matches!(segments.last(), Some(Segment::Tail { .. })) {
                return Err(format!(
                    "a tail parameter {{*name}} must come last in pattern {source:?}"
                ));
            }
            segments.push(segment);
            match after.strip_prefix('/') {
                Some(next) => rest = next,
                None => break,
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for s in &segments {
            if let Segment::Param { name, .. } | Segment::Tail { name } = s {
                if names.contains(&&**name) {
                    return Err(format!(
                        "parameter {name:?} appears twice in pattern {source:?}"
                    ));
                }
                names.push(name);
            }
        }
        Ok(Self { segments })
    }

    /// Parses a mount prefix: a pattern without a tail, where `/` and the empty string mean
    /// "everything" (no segment) and a trailing `/` is ignored.
    pub(crate) fn parse_prefix(source: &str) -> Result<Self, String> {
        let trimmed = source.strip_suffix('/').unwrap_or(source);
        if trimmed.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let p = Self::parse(trimmed)?;
        if p.has_tail() {
            return Err(format!("a mount prefix has no tail parameter: {source:?}"));
        }
        Ok(p)
    }

    /// `prefix` then `self`: a prefix before the pattern `/` gives the prefix alone (so a group
    /// at `/api` with a route `/` answers `/api`, as axum's `nest` does).
    pub(crate) fn prefixed(&self, prefix: &Pattern) -> Pattern {
        if prefix.segments.is_empty() {
            return self.clone();
        }
        let root = matches!(&self.segments[..], [Segment::Static(s)] if s.is_empty());
        let mut segments = prefix.segments.clone();
        if !root {
            segments.extend(self.segments.iter().cloned());
        }
        Pattern { segments }
    }

    /// Whether the pattern ends in `{*name}`.
    pub(crate) fn has_tail(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::Tail { .. }))
    }

    /// The parameter names in order.
    pub(crate) fn param_names(&self) -> Vec<Arc<str>> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param { name, .. } | Segment::Tail { name } => Some(Arc::from(&**name)),
                Segment::Static(_) => None,
            })
            .collect()
    }

    /// The pattern as text, normalised (`/users/{id:\d+}`).
    pub(crate) fn to_text(&self) -> String {
        if self.segments.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Static(t) => out.push_str(t),
                Segment::Param {
                    name,
                    constraint: None,
                } => {
                    let _ = write!(out, "{{{name}}}");
                }
                Segment::Param {
                    name,
                    constraint: Some(c),
                } => {
                    let _ = write!(out, "{{{name}:{}}}", c.source);
                }
                Segment::Tail { name } => {
                    let _ = write!(out, "{{*{name}}}");
                }
            }
        }
        out
    }

    /// The pattern's shape without parameter names (`/users/{}`), to find two routes that
    /// would match the same paths.
    pub(crate) fn shape(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Static(t) => out.push_str(t),
                Segment::Param {
                    constraint: None, ..
                } => out.push_str("{}"),
                Segment::Param {
                    constraint: Some(c),
                    ..
                } => {
                    let _ = write!(out, "{{:{}}}", c.source);
                }
                Segment::Tail { .. } => out.push_str("{*}"),
            }
        }
        out
    }

    /// The path this pattern gives for `params` (percent-encoded), without a root path.
    /// Every parameter must be given, no other may be, and each value must satisfy its
    /// constraint (so the path routes back here).
    pub(crate) fn build(&self, name: &str, params: &[(&str, &str)]) -> Result<String, Error> {
        for (k, _) in params {
            let known = self.segments.iter().any(|s| {
                matches!(s, Segment::Param { name: n, .. } | Segment::Tail { name: n } if &**n == *k)
            });
            if !known {
                return Err(Error::internal(format!(
                    "url_for({name:?}): the route has no parameter {k:?}"
                )));
            }
        }
        let value = |n: &str| -> Result<&str, Error> {
            params
                .iter()
                .rev()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    Error::internal(format!("url_for({name:?}): parameter {n:?} is missing"))
                })
        };
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Static(t) => encode_segment_into(t, &mut out),
                Segment::Param {
                    name: n,
                    constraint,
                } => {
                    let v = value(n)?;
                    if v.is_empty() {
                        return Err(Error::internal(format!(
                            "url_for({name:?}): parameter {n:?} is empty"
                        )));
                    }
                    if let Some(c) = constraint {
                        if !c.is_match(v) {
                            return Err(Error::internal(format!(
                                "url_for({name:?}): {v:?} does not match {{{n}:{}}}",
                                c.source
                            )));
                        }
                    }
                    encode_segment_into(v, &mut out);
                }
                Segment::Tail { name: n } => {
                    let v = value(n)?;
                    let v = v.strip_prefix('/').unwrap_or(v);
                    for (i, piece) in v.split('/').enumerate() {
                        if i > 0 {
                            out.push('/');
                        }
                        encode_segment_into(piece, &mut out);
                    }
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        Ok(out)
    }
}

/// Where the `}` closing a parameter is, counting nested braces and skipping `\`-escapes.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_param(body: &str, source: &str) -> Result<Segment, String> {
    let (tail, body) = match body.strip_prefix('*') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let (name, constraint) = match body.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (body, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "invalid parameter name {name:?} in pattern {source:?} (letters, digits, '_')"
        ));
    }
    if tail {
        if constraint.is_some() {
            return Err(format!(
                "a tail parameter takes no constraint in pattern {source:?}"
            ));
        }
        return Ok(Segment::Tail { name: name.into() });
    }
    let constraint = match constraint {
        Some("") => {
            return Err(format!("empty constraint in pattern {source:?}"));
        }
        Some(c) => Some(Constraint::new(c)?),
        None => None,
    };
    Ok(Segment::Param {
        name: name.into(),
        constraint,
    })
}

/// Whether `b` may stand unencoded in a path segment (RFC 3986 `pchar` less `%`).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// Appends `text` percent-encoded as one path segment (`/`, `%`, `?`, `#`, spaces and
/// non-ASCII bytes are escaped).
pub(crate) fn encode_segment_into(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        if is_pchar(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `path` (decoded text such as a `root_path`) percent-encoded segment by segment, `/` kept.
pub(crate) fn encode_path(path: &str) -> Cow<'_, str> {
    if path.bytes().all(|b| b == b'/' || is_pchar(b)) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 8);
    for (i, piece) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode_segment_into(piece, &mut out);
    }
    Cow::Owned(out)
}

/// The names of parameters as shared by every match of one route.
pub(crate) type ParamNames = Arc<[Arc<str>]>;

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: &str) -> String {
        Pattern::parse(p).unwrap().to_text()
    }

    #[test]
    fn parses_every_kind_of_segment() {
        assert_eq!(text("/"), "/");
        assert_eq!(text("/users/{id}"), "/users/{id}");
        assert_eq!(text(r"/users/{id:\d+}/"), r"/users/{id:\d+}/");
        assert_eq!(text("/files/{*rest}"), "/files/{*rest}");
        assert_eq!(text("/c/{code:[a-z]{3}}"), "/c/{code:[a-z]{3}}");
        assert_eq!(text(r"/x/{p:[^/]+}"), r"/x/{p:[^/]+}");
        let p = Pattern::parse(r"/a/{x}/{y:\d+}/{*z}").unwrap();
        let names: Vec<String> = p.param_names().iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["x", "y", "z"]);
        assert_eq!(p.shape(), r"/a/{}/{:\d+}/{*}");
    }

    #[test]
    fn refuses_bad_patterns_with_a_reason() {
        for (bad, why) in [
            ("users", "starts with '/'"),
            ("/files/{name}.txt", "whole segment"),
            ("/files/a{name}", "whole segment"),
            ("/{*rest}/more", "must come last"),
            ("/{id", "unclosed"),
            ("/{1d}", "invalid parameter name"),
            ("/{a}/{a}", "twice"),
            ("/{x:(}", "invalid constraint"),
            ("/{*x:\\d+}", "no constraint"),
            ("/{x:}", "empty constraint"),
        ] {
            let e = Pattern::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn constraints_are_anchored() {
        let p = Pattern::parse(r"/{id:\d+}").unwrap();
        let Segment::Param {
            constraint: Some(c),
            ..
        } = &p.segments[0]
        else {
            panic!()
        };
        assert!(c.is_match("42"));
        assert!(!c.is_match("42a"));
        assert!(!c.is_match("a42"));
        assert!(!c.is_match(""));
        assert!(c.class.is_some(), "\\d+ takes the table path");
    }

    #[test]
    fn the_class_table_agrees_with_the_regex() {
        let sources = [
            r"\d+",
            r"[a-z0-9-]{2,4}",
            r"[^/]+",
            r"\w*",
            r"(\d{3})",
            r"[[:alpha:]]?",
            r"\d+|new",
            r"x\d+",
            r"\p{Greek}+",
        ];
        let values = [
            "",
            "1",
            "42",
            "abc",
            "a-b",
            "abcde",
            "ab",
            "a/b",
            "x1",
            "new",
            "\u{660}\u{661}",
            "\u{3b1}\u{3b2}",
            "_",
            "A",
            "123456789",
        ];
        for src in sources {
            let c = Constraint::new(src).unwrap();
            for v in values {
                assert_eq!(c.is_match(v), c.re.is_match(v), "{src} on {v:?}");
            }
        }
        assert!(Constraint::new(r"\d+|new").unwrap().class.is_none());
        assert!(Constraint::new(r"[^/]+").unwrap().class.is_some());
    }

    #[test]
    fn prefixes_join_like_nest() {
        let api = Pattern::parse_prefix("/api/").unwrap();
        assert_eq!(
            Pattern::parse("/").unwrap().prefixed(&api).to_text(),
            "/api"
        );
        assert_eq!(
            Pattern::parse("/users").unwrap().prefixed(&api).to_text(),
            "/api/users"
        );
        assert!(Pattern::parse_prefix("/").unwrap().segments.is_empty());
        assert!(Pattern::parse_prefix("/{*x}").is_err());
    }

    #[test]
    fn builds_percent_encoded_paths() {
        let p = Pattern::parse(r"/users/{id}/files/{*rest}").unwrap();
        assert_eq!(
            p.build("f", &[("id", "a/b c"), ("rest", "x y/z%")])
                .unwrap(),
            "/users/a%2Fb%20c/files/x%20y/z%25"
        );
        assert_eq!(
            Pattern::parse("/caf\u{e9}/{x}")
                .unwrap()
                .build("f", &[("x", "\u{e9}?#")])
                .unwrap(),
            "/caf%C3%A9/%C3%A9%3F%23"
        );
        let c = Pattern::parse(r"/u/{id:\d+}").unwrap();
        assert!(c.build("u", &[("id", "x")]).is_err());
        assert!(c.build("u", &[]).is_err());
        assert!(c.build("u", &[("id", "1"), ("other", "2")]).is_err());
        assert!(c.build("u", &[("id", "")]).is_err());
        assert_eq!(c.build("u", &[("id", "7")]).unwrap(), "/u/7");
        assert_eq!(encode_path("/a b/c"), "/a%20b/c");
        assert_eq!(encode_path("/sub"), "/sub");
    }
}
