//! Range requests (RFC 9110 §14): parsing `Range`, resolving it against a representation's
//! size, and the `multipart/byteranges` body for several ranges.
//!
//! ```
//! use ragi_tools::response::range::{resolve, ByteRange, Ranges, DEFAULT_MAX_RANGES};
//!
//! // The last 500 bytes of a 10 000-byte file, and two ranges that overlap (coalesced).
//! assert_eq!(
//!     resolve(b"bytes=-500", 10_000, DEFAULT_MAX_RANGES),
//!     Ranges::Partial(vec![ByteRange { start: 9_500, end: 9_999 }])
//! );
//! assert_eq!(
//!     resolve(b"bytes=0-99, 50-149, 500-", 1_000, DEFAULT_MAX_RANGES),
//!     Ranges::Partial(vec![ByteRange { start: 0, end: 149 }, ByteRange { start: 500, end: 999 }])
//! );
//! // Nothing overlaps the file: 416 with `Content-Range: bytes */1000`.
//! assert_eq!(resolve(b"bytes=1000-", 1_000, DEFAULT_MAX_RANGES), Ranges::Unsatisfiable);
//! // Not a valid byte-range set: ignored, the whole file is sent.
//! assert_eq!(resolve(b"bytes=5-1", 1_000, DEFAULT_MAX_RANGES), Ranges::Whole);
//! ```
//!
//! The rules, with the RFC's reasons:
//!
//! * Only the `bytes` unit is understood; any other unit, and any syntactically invalid value
//!   (including `first > last`), is **ignored** (§14.2: "MAY ignore"), so the whole
//!   representation is sent with 200. Starlette answers 400 and tower-http 416 here.
//! * `a-b` is clamped to the end (`b` past the end means "to the end"); `a-` runs to the end;
//!   the suffix `-N` is the last `N` bytes, and **`N` larger than the size selects the whole
//!   representation** (§14.1.2: "If the selected representation is shorter than the specified
//!   suffix-length, the entire representation is used"), served as a 206 of `0-(size-1)` —
//!   PAGI's Middleware::Static computes a negative start there and App::File serves `0-N`.
//!   Numbers too large for `u64` saturate, which keeps their meaning (a huge first position
//!   is past the end; a huge suffix is the whole representation).
//! * Ranges that start at or past the end are unsatisfiable and dropped; `-0` is
//!   unsatisfiable. When none is left: [`Ranges::Unsatisfiable`] (416 with
//!   `Content-Range: bytes */size`). A zero-length representation can satisfy only a suffix
//!   range, and a 206 cannot describe an empty range, so that case is sent whole (200).
//! * Several ranges: those that overlap or touch are **coalesced** into one (§14.2 allows it;
//!   it also defeats the overlapping-ranges amplification attack of CVE-2011-3192), and the
//!   others keep the order the client gave (§14.6: "SHOULD send the parts in the same order").
//!   More than `max_ranges` range specs ([`DEFAULT_MAX_RANGES`] = 32) are treated as a broken
//!   or hostile client (§14.2) and the whole representation is sent. One range left after
//!   coalescing is a single-part 206; two or more a `multipart/byteranges` body
//!   ([`ByteRangesBody`]).

use std::path::Path;

use bytes::Bytes;

/// How many range specs a `Range` field may list before it is ignored (the whole
/// representation is sent). Apache's `MaxRanges` defaults to 200; 32 is ample for every
/// client in use (PDF viewers and download managers ask for one or a handful).
pub const DEFAULT_MAX_RANGES: usize = 32;

/// One range spec as written (RFC 9110 §14.1.1), before it meets a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` (`last` absent: to the end).
    FromTo(u64, Option<u64>),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// A satisfiable byte range, `start..=end` (both inclusive, as in `Content-Range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// The last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// How many bytes it holds.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never empty (a range holds at least one byte); here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value for this range of a `size`-byte representation:
    /// `bytes start-end/size`.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, size)
    }
}

/// What a `Range` field asks of a representation of a given size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranges {
    /// Ignore the field: send the whole representation (200).
    Whole,
    /// Send these ranges (206): one as a single part, several as `multipart/byteranges`.
    /// Never empty; disjoint and not touching.
    Partial(Vec<ByteRange>),
    /// None of the ranges overlaps the representation: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Parses a `Range` value: the range specs of a `bytes=` range set, or `None` when the value
/// is not one (another unit, or invalid syntax), which means "ignore the field".
pub fn parse(value: &[u8]) -> Option<Vec<RangeSpec>> {
    let value = trim(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // `1#range-spec`: empty members are allowed, at least one real member is needed.
    for member in value[eq + 1..].split(|&b| b == b',') {
        let member = trim(member);
        if member.is_empty() {
            continue;
        }
        let dash = member.iter().position(|&b| b == b'-')?;
        let (first, last) = (&member[..dash], &member[dash + 1..]);
        let spec = if first.is_empty() {
            RangeSpec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            RangeSpec::FromTo(first, last)
        };
        specs.push(spec);
    }
    if specs.is_empty() {
        None
    } else {
        Some(specs)
    }
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    let s = &s[start..];
    let end = s.len()
        - s.iter()
            .rev()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    &s[..end]
}

/// Resolves parsed specs against `size`. See the [module documentation](self).
pub fn resolve_specs(specs: &[RangeSpec], size: u64, max_ranges: usize) -> Ranges {
    if specs.len() > max_ranges {
        return Ranges::Whole;
    }
    if size == 0 {
        // Only a non-zero suffix is satisfiable, and its range is empty: send it whole.
        return if specs
            .iter()
            .any(|s| matches!(s, RangeSpec::Suffix(n) if *n > 0))
        {
            Ranges::Whole
        } else {
            Ranges::Unsatisfiable
        };
    }
    let mut out: Vec<ByteRange> = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut r = match *spec {
            RangeSpec::FromTo(first, _) if first >= size => continue,
            RangeSpec::FromTo(first, last) => ByteRange {
                start: first,
                end: last.map_or(size - 1, |l| l.min(size - 1)),
            },
            RangeSpec::Suffix(0) => continue,
            RangeSpec::Suffix(n) => ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        };
        // Coalesce with every range it overlaps or touches (the grown range may then reach
        // others); the result takes the place of the earliest range it absorbed.
        let mut at: Option<usize> = None;
        while let Some(i) = out
            .iter()
            .position(|o| o.start <= r.end.saturating_add(1) && r.start <= o.end.saturating_add(1))
        {
            let o = out.remove(i);
            r = ByteRange {
                start: r.start.min(o.start),
                end: r.end.max(o.end),
            };
            at = Some(at.map_or(i, |a| a.min(i)));
        }
        match at {
            Some(a) => out.insert(a, r),
            None => out.push(r),
        }
    }
    if out.is_empty() {
        Ranges::Unsatisfiable
    } else {
        Ranges::Partial(out)
    }
}

/// Parses `value` and resolves it against `size`: [`parse`] then [`resolve_specs`].
pub fn resolve(value: &[u8], size: u64, max_ranges: usize) -> Ranges {
    match parse(value) {
        Some(specs) => resolve_specs(&specs, size, max_ranges),
        None => Ranges::Whole,
    }
}

/// Where the bytes of a ranged body come from.
#[derive(Clone, Copy, Debug)]
pub enum RangeSource<'a> {
    /// A file (its regions are sent as [`ragi::Body::File`], read by the server).
    File(&'a Path),
    /// Bytes in memory.
    Bytes(&'a Bytes),
}

impl RangeSource<'_> {
    /// The body piece for `range`.
    pub fn piece(&self, range: ByteRange) -> ragi::Body {
        match *self {
            RangeSource::File(path) => ragi::Body::File {
                path: path.to_owned(),
                offset: range.start,
                length: Some(range.len()),
            },
            RangeSource::Bytes(b) => {
                // Ranges come from `resolve` against `b.len()`, so they fit.
                let start = usize::try_from(range.start)
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                let end = usize::try_from(range.end + 1)
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                ragi::Body::Bytes(b.slice(start..end))
            }
        }
    }
}

/// A `multipart/byteranges` body (RFC 9110 §14.6): its `Content-Type` (with the boundary),
/// its exact length, and its pieces in order.
///
/// Each part is `--boundary CRLF`, the part's `Content-Type` (when known) and `Content-Range`,
/// a blank line, the bytes, and a CRLF that belongs to the next delimiter; the body ends with
/// `--boundary--` CRLF. Every line ends with CRLF. The boundary goes in the response's
/// **Content-Type** (Starlette put it in `Content-Range`, with LF line ends).
#[derive(Debug)]
pub struct ByteRangesBody {
    /// `multipart/byteranges; boundary=<boundary>`.
    pub content_type: String,
    /// The body's exact length, for `Content-Length`.
    pub length: u64,
    /// The pieces: part heads as bytes, data as file regions or byte slices.
    pub pieces: Vec<ragi::Body>,
}

impl ByteRangesBody {
    /// Builds the body for `ranges` of a `size`-byte representation read from `source`, each
    /// part labelled `part_type` (the representation's media type, when known), separated by
    /// `boundary` (see [`new_boundary`]).
    pub fn new(
        source: RangeSource<'_>,
        ranges: &[ByteRange],
        size: u64,
        part_type: Option<&str>,
        boundary: &str,
    ) -> Self {
        let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
        let mut length = 0u64;
        for (i, r) in ranges.iter().enumerate() {
            let mut head = String::with_capacity(boundary.len() + 96);
            if i > 0 {
                head.push_str("\r\n");
            }
            head.push_str("--");
            head.push_str(boundary);
            head.push_str("\r\n");
            if let Some(t) = part_type {
                head.push_str("Content-Type: ");
                head.push_str(t);
                head.push_str("\r\n");
            }
            head.push_str("Content-Range: ");
            head.push_str(&r.content_range(size));
            head.push_str("\r\n\r\n");
            // Saturating: only a representation near 2^64 bytes could reach the limit.
            length = length
                .saturating_add(head.len() as u64)
                .saturating_add(r.len());
            pieces.push(ragi::Body::Bytes(Bytes::from(head)));
            pieces.push(source.piece(*r));
        }
        let tail = format!("\r\n--{boundary}--\r\n");
        length = length.saturating_add(tail.len() as u64);
        pieces.push(ragi::Body::Bytes(Bytes::from(tail)));
        Self {
            content_type: format!("multipart/byteranges; boundary={boundary}"),
            length,
            pieces,
        }
    }
}

/// A fresh boundary: 32 hex digits from a randomly keyed hasher (std's `RandomState`), so
/// neither a file's content nor an observer can predict it.
pub fn new_boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x7261_6769);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn res(v: &str, size: u64) -> Ranges {
        resolve(v.as_bytes(), size, DEFAULT_MAX_RANGES)
    }

    #[test]
    fn parses_every_form() {
        use RangeSpec::*;
        assert_eq!(parse(b"bytes=0-4"), Some(vec![FromTo(0, Some(4))]));
        // No whitespace around "=" in the grammar.
        assert_eq!(parse(b"bytes = 7-"), None);
        assert_eq!(parse(b"BYTES=7-"), Some(vec![FromTo(7, None)]));
        assert_eq!(parse(b"bytes=-3"), Some(vec![Suffix(3)]));
        assert_eq!(
            parse(b"bytes= 0-1 ,, 5-6 , -2 "),
            Some(vec![FromTo(0, Some(1)), FromTo(5, Some(6)), Suffix(2)])
        );
        assert_eq!(
            parse(b"bytes=99999999999999999999999-"),
            Some(vec![FromTo(u64::MAX, None)])
        );
        for bad in [
            &b"bytes=5-1"[..],
            b"bytes=",
            b"bytes=,",
            b"bytes=-",
            b"bytes=a-b",
            b"bytes=1-2-3",
            b"bytes=+1-2",
            b"bytes=0x1-2",
            b"items=0-1",
            b"0-1",
            b"bytes=0-1,x",
            b"bytes=1 -2",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn single_ranges_clamp_and_suffixes_cover_the_whole() {
        assert_eq!(res("bytes=0-0", 10), Ranges::Partial(vec![r(0, 0)]));
        assert_eq!(res("bytes=2-100", 10), Ranges::Partial(vec![r(2, 9)]));
        assert_eq!(res("bytes=9-", 10), Ranges::Partial(vec![r(9, 9)]));
        assert_eq!(res("bytes=-3", 10), Ranges::Partial(vec![r(7, 9)]));
        assert_eq!(res("bytes=-10", 10), Ranges::Partial(vec![r(0, 9)]));
        assert_eq!(res("bytes=-11", 10), Ranges::Partial(vec![r(0, 9)]));
        assert_eq!(
            res("bytes=-99999999999999999999", 10),
            Ranges::Partial(vec![r(0, 9)])
        );
        assert_eq!(res("bytes=10-", 10), Ranges::Unsatisfiable);
        assert_eq!(res("bytes=-0", 10), Ranges::Unsatisfiable);
        assert_eq!(res("bytes=10-20, 30-", 10), Ranges::Unsatisfiable);
        assert_eq!(res("bytes=10-20, 3-4", 10), Ranges::Partial(vec![r(3, 4)]));
        assert_eq!(res("bytes=5-1", 10), Ranges::Whole);
        assert_eq!(res("lines=1-2", 10), Ranges::Whole);
    }

    #[test]
    fn empty_representations() {
        assert_eq!(res("bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(res("bytes=-0", 0), Ranges::Unsatisfiable);
        assert_eq!(res("bytes=-5", 0), Ranges::Whole);
    }

    #[test]
    fn several_ranges_coalesce_and_keep_their_order() {
        assert_eq!(
            res("bytes=50-59, 0-9", 100),
            Ranges::Partial(vec![r(50, 59), r(0, 9)])
        );
        // Touching ranges merge; overlapping ones too.
        assert_eq!(
            res("bytes=0-9, 10-19", 100),
            Ranges::Partial(vec![r(0, 19)])
        );
        assert_eq!(
            res("bytes=0-9, 50-59, 5-14, -5", 100),
            Ranges::Partial(vec![r(0, 14), r(50, 59), r(95, 99)])
        );
        // A later range that bridges two earlier ones merges all three, at the first's place.
        assert_eq!(
            res("bytes=60-69, 20-29, 40-49, 25-65", 100),
            Ranges::Partial(vec![r(20, 69)])
        );
        assert_eq!(
            res("bytes=80-89, 60-69, 20-29, 25-65", 100),
            Ranges::Partial(vec![r(80, 89), r(20, 69)])
        );
        // The Apache-killer shape: many overlapping ranges collapse into one.
        let killer = format!(
            "bytes=0-,{}",
            (1..30)
                .map(|i| format!("{i}-{}", i + 500))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(res(&killer, 1000), Ranges::Partial(vec![r(0, 999)]));
        // Too many specs: ignored.
        let many = (0..33)
            .map(|i| format!("{}-{}", i * 3, i * 3))
            .collect::<Vec<_>>();
        assert_eq!(
            res(&format!("bytes={}", many.join(",")), 1000),
            Ranges::Whole
        );
        assert!(matches!(
            res(&format!("bytes={}", many[..32].join(",")), 1000),
            Ranges::Partial(v) if v.len() == 32
        ));
    }

    #[test]
    fn byteranges_body_is_exact() {
        let data = Bytes::from_static(b"0123456789abcdefghij");
        let ranges = [r(0, 2), r(15, 19)];
        let body = ByteRangesBody::new(
            RangeSource::Bytes(&data),
            &ranges,
            20,
            Some("text/plain"),
            "BOUND",
        );
        assert_eq!(body.content_type, "multipart/byteranges; boundary=BOUND");
        let mut all = Vec::new();
        for p in &body.pieces {
            let ragi::Body::Bytes(b) = p else { panic!() };
            all.extend_from_slice(b);
        }
        let expected = "--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/20\r\n\r\n012\
                        \r\n--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 15-19/20\r\n\r\nfghij\
                        \r\n--BOUND--\r\n";
        assert_eq!(String::from_utf8(all).unwrap(), expected);
        assert_eq!(body.length, expected.len() as u64);
        let file = ByteRangesBody::new(RangeSource::File(Path::new("/x")), &ranges, 20, None, "B");
        assert!(matches!(
            &file.pieces[1],
            ragi::Body::File {
                offset: 0,
                length: Some(3),
                ..
            }
        ));
        assert!(matches!(
            &file.pieces[3],
            ragi::Body::File {
                offset: 15,
                length: Some(5),
                ..
            }
        ));
    }

    #[test]
    fn boundaries_differ() {
        let a = new_boundary();
        let b = new_boundary();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
