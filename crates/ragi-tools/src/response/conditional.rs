//! Conditional requests (RFC 9110 §13): entity tags, validators, and the preconditions in the
//! order the RFC evaluates them.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use ragi::Headers;
//! use ragi_tools::response::conditional::{evaluate, EntityTag, Precondition, Validators};
//!
//! let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let validators = Validators::new(Some(EntityTag::strong("v1").unwrap()), Some(modified));
//!
//! // A cache revalidating its copy: the tag matches, so 304 Not Modified.
//! let request = Headers::new().with("if-none-match", r#"W/"v0", "v1""#);
//! assert_eq!(evaluate(&http::Method::GET, &request, &validators), Precondition::NotModified);
//!
//! // A client that only wants to act on the version it saw: another version is a 412.
//! let request = Headers::new().with("if-match", r#""v0""#);
//! assert_eq!(evaluate(&http::Method::GET, &request, &validators), Precondition::Failed);
//! ```
//!
//! [`evaluate`] follows RFC 9110 §13.2.2 step by step:
//!
//! 1. `If-Match` present: false (no member matches the current tag by **strong** comparison;
//!    `*` matches any current representation) → 412.
//! 2. Otherwise `If-Unmodified-Since`, a valid date, and a last-modification date: modified
//!    after it → 412.
//! 3. `If-None-Match` present: a member matches by **weak** comparison (or `*`) → 304 for GET
//!    and HEAD, 412 for any other method.
//! 4. Otherwise, for GET and HEAD only, `If-Modified-Since` with a valid date: not modified
//!    since → 304. It is **ignored whenever `If-None-Match` is present**, matching or not
//!    (Starlette checks it anyway, a violation the tests pin down).
//! 5. Then Range and [`if_range`] (see [`super::range`]).
//!
//! Malformed fields fail safe: a member of `If-Match` / `If-None-Match` that is not an entity
//! tag is skipped (so a garbled `If-Match` answers 412, never "go ahead"; a garbled
//! `If-None-Match` answers 200, never a wrong 304), and a date that is not an HTTP-date (or a
//! field given twice) is ignored, as §13.1.3 and §13.1.4 require. Dates compare in whole
//! seconds, the precision of `Last-Modified`.
//!
//! A [`Validators`] carries what the server knows about the current representation: its tag
//! and its modification time, and whether that time is a *strong* validator (§8.8.2.2: at
//! least one second before the response's `Date`, so that two changes cannot share it). The
//! file responder and any conditional-GET middleware share these functions.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ragi::Headers;

/// An entity tag (RFC 9110 §8.8.3): an opaque string, strong (`"x"`) or weak (`W/"x"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    tag: String,
}

/// A string that cannot be an entity tag's opaque part (it holds a `"`, a space or a control
/// character).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidEntityTag;

impl fmt::Display for InvalidEntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entity tag may hold only visible characters other than '\"'")
    }
}

impl std::error::Error for InvalidEntityTag {}

/// `etagc = %x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

impl EntityTag {
    fn make(weak: bool, tag: String) -> Result<Self, InvalidEntityTag> {
        if tag.bytes().all(is_etagc) {
            Ok(Self { weak, tag })
        } else {
            Err(InvalidEntityTag)
        }
    }

    /// A strong tag with opaque part `tag` (without the quotes).
    pub fn strong(tag: impl Into<String>) -> Result<Self, InvalidEntityTag> {
        Self::make(false, tag.into())
    }

    /// A weak tag with opaque part `tag` (without the quotes).
    pub fn weak(tag: impl Into<String>) -> Result<Self, InvalidEntityTag> {
        Self::make(true, tag.into())
    }

    /// Parses one entity tag as it appears on the wire (`"x"` or `W/"x"`), nothing around it.
    pub fn parse(s: &[u8]) -> Option<Self> {
        match parse_tag(s) {
            Some((tag, [])) => Some(tag),
            _ => None,
        }
    }

    /// Whether the tag is weak.
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque part, without quotes or `W/`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The same opaque part, weak.
    pub fn into_weak(mut self) -> Self {
        self.weak = true;
        self
    }

    /// The tag as a field value (`"x"` or `W/"x"`), as `to_string` writes it, without the
    /// formatting machinery.
    pub fn to_field(&self) -> bytes::Bytes {
        let mut v = Vec::with_capacity(self.tag.len() + 4);
        if self.weak {
            v.extend_from_slice(b"W/");
        }
        v.push(b'"');
        v.extend_from_slice(self.tag.as_bytes());
        v.push(b'"');
        bytes::Bytes::from(v)
    }

    /// Strong comparison (§8.8.3.2): both strong and the same opaque part.
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }

    /// Weak comparison (§8.8.3.2): the same opaque part, either may be weak.
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.tag == other.tag
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.tag)
    }
}

/// One entity tag at the start of `s`; the tag and the rest.
fn parse_tag(s: &[u8]) -> Option<(EntityTag, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let s = s.strip_prefix(b"\"")?;
    let end = s.iter().position(|&b| b == b'"')?;
    let opaque = &s[..end];
    if !opaque.iter().copied().all(is_etagc) {
        return None;
    }
    // etagc admits obs-text; keep the tag only when it is text.
    let tag = std::str::from_utf8(opaque).ok()?.to_owned();
    Some((EntityTag { weak, tag }, &s[end + 1..]))
}

/// The value of an `If-Match` / `If-None-Match` field (every field line of that name, as
/// one list): `*`, or the entity tags it lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagList {
    /// `*`: any current representation.
    Any,
    /// The members that are well-formed entity tags (malformed members are skipped).
    Tags(Vec<EntityTag>),
}

impl TagList {
    /// Parses every field line named `name` of `headers`; `None` when there is none.
    pub fn from_headers(headers: &Headers, name: &str) -> Option<TagList> {
        let mut lines = headers.get_all(name).peekable();
        lines.peek()?;
        let mut tags = Vec::new();
        let mut members = 0usize;
        let mut star = false;
        for line in lines {
            let mut s: &[u8] = line;
            loop {
                s = trim_start(s);
                match s.first() {
                    None => break,
                    Some(b',') => {
                        s = &s[1..];
                        continue;
                    }
                    _ => {}
                }
                members += 1;
                if let Some(rest) = s.strip_prefix(b"*") {
                    let rest = trim_start(rest);
                    if rest.is_empty() || rest[0] == b',' {
                        star = true;
                        s = rest;
                        continue;
                    }
                }
                match parse_tag(s) {
                    Some((tag, rest)) if matches!(trim_start(rest).first(), None | Some(b',')) => {
                        tags.push(tag);
                        s = rest;
                    }
                    // Not an entity tag: skip the member, up to the next comma.
                    _ => s = skip_member(s),
                }
            }
        }
        // `*` is only valid alone; mixed with other members it is a malformed member.
        if star && members == 1 {
            Some(TagList::Any)
        } else {
            Some(TagList::Tags(tags))
        }
    }

    /// Whether `current` (the representation's tag, if it has one) matches by strong
    /// comparison; `*` matches any representation, tagged or not.
    pub fn matches_strong(&self, current: Option<&EntityTag>) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => current.is_some_and(|c| tags.iter().any(|t| t.strong_eq(c))),
        }
    }

    /// Whether `current` matches by weak comparison; `*` matches any representation.
    pub fn matches_weak(&self, current: Option<&EntityTag>) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => current.is_some_and(|c| tags.iter().any(|t| t.weak_eq(c))),
        }
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// Skips a malformed list member: past a quoted string if it opens one, then to the comma.
fn skip_member(s: &[u8]) -> &[u8] {
    let mut in_quotes = false;
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => return &s[i..],
            _ => {}
        }
    }
    &[]
}

/// The date in a field that must hold one HTTP-date (`If-Modified-Since`,
/// `If-Unmodified-Since`): `None` when absent, given more than once, or not an HTTP-date (any
/// of the three formats of RFC 9110 §5.6.7).
pub fn header_date(headers: &Headers, name: &str) -> Option<SystemTime> {
    let mut lines = headers.get_all(name);
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_http_date(first)
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime form).
pub fn parse_http_date(value: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    httpdate::parse_http_date(s).ok()
}

/// Formats `time` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`). Times before 1970 are
/// written as 1970-01-01 and times after 9999 as the last second of 9999 (the format's range).
pub fn fmt_http_date(time: SystemTime) -> String {
    // 9999-12-31T23:59:59Z.
    const LAST: u64 = 253_402_300_799;
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs().min(LAST),
        Err(_) => 0,
    };
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Whole seconds since the epoch (negative before it), the precision of HTTP dates.
fn secs(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        // Round towards the past, like `floor`.
        Err(e) => {
            let d = e.duration();
            -i128::from(d.as_secs()) - i128::from(d.subsec_nanos() > 0)
        }
    }
}

/// What the server knows about the current representation. See the [module
/// documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// The entity tag, if the representation has one.
    pub etag: Option<EntityTag>,
    /// When the representation last changed, if known.
    pub last_modified: Option<SystemTime>,
    /// Whether `last_modified` is a strong validator (RFC 9110 §8.8.2.2): it lies at least one
    /// second before the response's date.
    pub last_modified_strong: bool,
}

impl Validators {
    /// Validators with `etag` and `last_modified`; the date counts as strong when it lies at
    /// least one second in the past now.
    pub fn new(etag: Option<EntityTag>, last_modified: Option<SystemTime>) -> Self {
        Self::at(etag, last_modified, SystemTime::now())
    }

    /// Like [`Validators::new`], with `now` as the response's date.
    pub fn at(etag: Option<EntityTag>, last_modified: Option<SystemTime>, now: SystemTime) -> Self {
        let last_modified_strong = last_modified.is_some_and(|m| is_settled(m, now));
        Self {
            etag,
            last_modified,
            last_modified_strong,
        }
    }
}

/// Whether a change at `modified` lies at least one second before `now`, so that no later
/// change can carry the same second (RFC 9110 §8.8.2.2).
pub(crate) fn is_settled(modified: SystemTime, now: SystemTime) -> bool {
    now.duration_since(modified)
        .is_ok_and(|d| d >= Duration::from_secs(1))
}

/// The outcome of [`evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Every condition holds (or none was sent): answer normally (then consider Range).
    Proceed,
    /// 304 Not Modified (GET and HEAD).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the request's preconditions against the current representation, in RFC 9110
/// §13.2.2's order. See the [module documentation](self).
pub fn evaluate(method: &http::Method, headers: &Headers, current: &Validators) -> Precondition {
    let safe = *method == http::Method::GET || *method == http::Method::HEAD;
    // Step 1, else step 2.
    if let Some(list) = TagList::from_headers(headers, "if-match") {
        if !list.matches_strong(current.etag.as_ref()) {
            return Precondition::Failed;
        }
    } else if let (Some(date), Some(modified)) = (
        header_date(headers, "if-unmodified-since"),
        current.last_modified,
    ) {
        if secs(modified) > secs(date) {
            return Precondition::Failed;
        }
    }
    // Step 3, else step 4.
    if let Some(list) = TagList::from_headers(headers, "if-none-match") {
        if list.matches_weak(current.etag.as_ref()) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe {
        if let (Some(date), Some(modified)) = (
            header_date(headers, "if-modified-since"),
            current.last_modified,
        ) {
            if secs(modified) <= secs(date) {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Whether the `If-Range` value `value` holds for the current representation (RFC 9110
/// §13.1.5), so that a Range may be honoured: an entity tag must match by **strong**
/// comparison (a weak tag never holds); a date must equal the last-modification date exactly,
/// and only when that date is a strong validator. Anything else does not hold: the whole
/// representation is sent.
pub fn if_range(value: &[u8], current: &Validators) -> bool {
    let value = trim_start(value);
    let value = &value[..value.len()
        - value
            .iter()
            .rev()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count()];
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (EntityTag::parse(value), &current.etag) {
            (Some(tag), Some(etag)) => tag.strong_eq(etag),
            _ => false,
        };
    }
    match (parse_http_date(value), current.last_modified) {
        (Some(date), Some(modified)) => {
            current.last_modified_strong && secs(date) == secs(modified)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn v() -> Validators {
        Validators::at(
            Some(EntityTag::strong("abc").unwrap()),
            Some(t(1_000_000) + Duration::from_millis(300)),
            t(2_000_000),
        )
    }

    fn eval(method: http::Method, h: &[(&'static str, &'static str)]) -> Precondition {
        let headers: Headers = h.iter().copied().collect();
        evaluate(&method, &headers, &v())
    }

    const GET: http::Method = http::Method::GET;

    #[test]
    fn entity_tags_parse_and_compare() {
        let s = EntityTag::parse(br#""a,b""#).unwrap();
        assert_eq!(s.tag(), "a,b");
        assert!(!s.is_weak());
        let w = EntityTag::parse(br#"W/"a,b""#).unwrap();
        assert!(w.is_weak());
        assert!(s.weak_eq(&w) && !s.strong_eq(&w) && !w.strong_eq(&w) && s.strong_eq(&s));
        assert_eq!(w.to_string(), r#"W/"a,b""#);
        for bad in [&b"a"[..], b"\"a", b"w/\"a\"", b"\"a\" ", b"\"a b\"", b""] {
            assert_eq!(
                EntityTag::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(EntityTag::strong("a\"b").is_err());
    }

    #[test]
    fn tag_lists_keep_quoted_commas_and_skip_junk() {
        let h = Headers::new()
            .with("if-none-match", r#" "a,b" ,, W/"c", junk, "d"#)
            .with("if-none-match", r#""e""#);
        let TagList::Tags(tags) = TagList::from_headers(&h, "if-none-match").unwrap() else {
            panic!()
        };
        let names: Vec<_> = tags.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, [r#""a,b""#, r#"W/"c""#, r#""e""#]);
        let star = Headers::new().with("if-match", " * ");
        assert_eq!(TagList::from_headers(&star, "if-match"), Some(TagList::Any));
        let mixed = Headers::new().with("if-match", r#"*, "a""#);
        assert_eq!(
            TagList::from_headers(&mixed, "if-match"),
            Some(TagList::Tags(vec![EntityTag::strong("a").unwrap()]))
        );
        assert_eq!(TagList::from_headers(&Headers::new(), "if-match"), None);
    }

    #[test]
    fn if_match_is_strong_and_comes_first() {
        use Precondition::*;
        assert_eq!(eval(GET, &[("if-match", r#""abc""#)]), Proceed);
        assert_eq!(eval(GET, &[("if-match", r#"W/"abc""#)]), Failed);
        assert_eq!(eval(GET, &[("if-match", r#""x", "abc""#)]), Proceed);
        assert_eq!(eval(GET, &[("if-match", "*")]), Proceed);
        assert_eq!(eval(GET, &[("if-match", "garbage")]), Failed);
        // If-Match fails before If-None-Match could give a 304.
        assert_eq!(
            eval(
                GET,
                &[("if-match", r#""x""#), ("if-none-match", r#""abc""#)]
            ),
            Failed
        );
        // A representation without a tag fails every listed tag, passes `*`.
        let none = Validators::at(None, None, t(0));
        let h = Headers::new().with("if-match", r#""abc""#);
        assert_eq!(evaluate(&GET, &h, &none), Failed);
        let h = Headers::new().with("if-match", "*");
        assert_eq!(evaluate(&GET, &h, &none), Proceed);
    }

    #[test]
    fn if_unmodified_since_only_without_if_match() {
        use Precondition::*;
        let before = "Sun, 11 Jan 1970 13:46:39 GMT"; // 999_999
        let same = "Mon, 12 Jan 1970 13:46:40 GMT"; // 1_000_000 (mtime .3 s later)
        assert_eq!(eval(GET, &[("if-unmodified-since", before)]), Failed);
        assert_eq!(eval(GET, &[("if-unmodified-since", same)]), Proceed);
        assert_eq!(eval(GET, &[("if-unmodified-since", "yesterday")]), Proceed);
        assert_eq!(
            eval(
                GET,
                &[("if-unmodified-since", same), ("if-unmodified-since", same)]
            ),
            Proceed
        );
        // With If-Match present (and holding), If-Unmodified-Since is not looked at.
        assert_eq!(
            eval(
                GET,
                &[("if-match", r#""abc""#), ("if-unmodified-since", before)]
            ),
            Proceed
        );
    }

    #[test]
    fn if_none_match_is_weak_and_412_for_unsafe_methods() {
        use Precondition::*;
        assert_eq!(eval(GET, &[("if-none-match", r#"W/"abc""#)]), NotModified);
        assert_eq!(
            eval(http::Method::HEAD, &[("if-none-match", "*")]),
            NotModified
        );
        assert_eq!(eval(http::Method::POST, &[("if-none-match", "*")]), Failed);
        assert_eq!(
            eval(http::Method::PUT, &[("if-none-match", r#""abc""#)]),
            Failed
        );
        assert_eq!(eval(GET, &[("if-none-match", r#""x""#)]), Proceed);
        assert_eq!(eval(GET, &[("if-none-match", "garbage")]), Proceed);
    }

    #[test]
    fn if_modified_since_is_ignored_when_if_none_match_is_present() {
        use Precondition::*;
        let later = "Tue, 13 Jan 1970 00:00:00 GMT";
        let earlier = "Sat, 10 Jan 1970 00:00:00 GMT";
        assert_eq!(eval(GET, &[("if-modified-since", later)]), NotModified);
        // Same second as the mtime (which has a fraction): not modified since.
        let same = "Mon, 12 Jan 1970 13:46:40 GMT";
        assert_eq!(eval(GET, &[("if-modified-since", same)]), NotModified);
        assert_eq!(eval(GET, &[("if-modified-since", earlier)]), Proceed);
        // Starlette's bug: a non-matching If-None-Match with a satisfied If-Modified-Since
        // must still be a 200.
        assert_eq!(
            eval(
                GET,
                &[("if-none-match", r#""x""#), ("if-modified-since", later)]
            ),
            Proceed
        );
        // Only GET and HEAD; bad dates ignored; obsolete formats accepted.
        assert_eq!(
            eval(http::Method::POST, &[("if-modified-since", later)]),
            Proceed
        );
        assert_eq!(eval(GET, &[("if-modified-since", "not a date")]), Proceed);
        assert_eq!(
            eval(
                GET,
                &[("if-modified-since", "Tuesday, 13-Jan-70 00:00:00 GMT")]
            ),
            NotModified
        );
        assert_eq!(
            eval(GET, &[("if-modified-since", "Tue Jan 13 00:00:00 1970")]),
            NotModified
        );
    }

    #[test]
    fn if_range_needs_strong_validators() {
        let mut cur = v();
        assert!(if_range(br#""abc""#, &cur));
        assert!(!if_range(br#"W/"abc""#, &cur));
        assert!(!if_range(br#""other""#, &cur));
        assert!(if_range(b"Mon, 12 Jan 1970 13:46:40 GMT", &cur));
        assert!(!if_range(b"Mon, 12 Jan 1970 13:46:41 GMT", &cur));
        assert!(!if_range(b"garbage", &cur));
        // The same date, but modified less than a second before the response: weak.
        cur.last_modified_strong = false;
        assert!(!if_range(b"Mon, 12 Jan 1970 13:46:40 GMT", &cur));
        // A weak current tag never matches.
        cur.etag = Some(EntityTag::weak("abc").unwrap());
        assert!(!if_range(br#""abc""#, &cur));
    }

    #[test]
    fn strong_dates_need_a_second() {
        let m = t(100);
        assert!(Validators::at(None, Some(m), t(101)).last_modified_strong);
        assert!(
            !Validators::at(None, Some(m), m + Duration::from_millis(999)).last_modified_strong
        );
        assert!(!Validators::at(None, Some(t(200)), t(100)).last_modified_strong);
    }

    #[test]
    fn dates_format_within_range() {
        assert_eq!(
            fmt_http_date(t(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            fmt_http_date(UNIX_EPOCH - Duration::from_secs(5)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            fmt_http_date(t(u64::MAX / 4)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }
}
