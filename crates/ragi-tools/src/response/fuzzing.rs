//! Entry points for fuzz targets (feature `fuzzing`; not a stable interface). Each takes
//! arbitrary input, runs one parser the way a request would reach it, and panics only when an
//! invariant breaks.

use bytes::Bytes;
use ragi::Headers;

use super::conditional::{self, EntityTag, Validators};
use super::range::{self, ByteRangesBody, RangeSource, Ranges};

/// `Range`: `value` as the field value against a representation of `size` bytes (and of a few
/// sizes around it), with `max_ranges`. Checks that every range lies in the representation,
/// that ranges are disjoint and do not touch, that at most `max_ranges` specs were honoured,
/// and that the multipart length equals the sum of its pieces.
pub fn range(value: &[u8], size: u64, max_ranges: usize) {
    for size in [size, size.saturating_add(1), size / 2, 0, 1] {
        let Ranges::Partial(rs) = range::resolve(value, size, max_ranges) else {
            continue;
        };
        assert!(!rs.is_empty() && rs.len() <= max_ranges);
        for (i, a) in rs.iter().enumerate() {
            assert!(a.start <= a.end && a.end < size, "{a:?} outside {size}");
            for b in &rs[i + 1..] {
                assert!(
                    a.end.saturating_add(1) < b.start || b.end.saturating_add(1) < a.start,
                    "{a:?} and {b:?} overlap or touch"
                );
            }
        }
        let body = ByteRangesBody::new(
            RangeSource::File(std::path::Path::new("/f")),
            &rs,
            size,
            Some("text/plain"),
            "b",
        );
        let sum = body
            .pieces
            .iter()
            .map(|p| match p {
                ragi::Body::Bytes(b) => b.len() as u64,
                ragi::Body::File { length, .. } => length.expect("ranges have lengths"),
            })
            .fold(0u64, u64::saturating_add);
        assert_eq!(sum, body.length);
    }
}

/// `Range` over bytes in memory: the multipart body built for `value` against `data` is parsed
/// back, and every part must carry exactly the bytes its `Content-Range` names.
pub fn byteranges(value: &[u8], data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    let size = data.len() as u64;
    let Ranges::Partial(rs) = range::resolve(value, size, range::DEFAULT_MAX_RANGES) else {
        return;
    };
    let boundary = range::new_boundary();
    let body = ByteRangesBody::new(RangeSource::Bytes(&data), &rs, size, None, &boundary);
    let mut all = Vec::new();
    for p in &body.pieces {
        let ragi::Body::Bytes(b) = p else {
            panic!("a bytes source gives bytes")
        };
        all.extend_from_slice(b);
    }
    assert_eq!(all.len() as u64, body.length);
    let delimiter = format!("--{boundary}");
    let mut rest = &all[..];
    for r in &rs {
        rest = rest
            .strip_prefix(delimiter.as_bytes())
            .and_then(|x| x.strip_prefix(b"\r\n"))
            .expect("part delimiter");
        let head = format!("Content-Range: {}\r\n\r\n", r.content_range(size));
        rest = rest.strip_prefix(head.as_bytes()).expect("part head");
        let n = r.len() as usize;
        assert_eq!(&rest[..n], &data[r.start as usize..=r.end as usize]);
        rest = rest[n..]
            .strip_prefix(b"\r\n")
            .expect("CRLF before the delimiter");
    }
    assert_eq!(rest, format!("{delimiter}--\r\n").as_bytes());
}

/// The preconditions: `data` split on `\n` gives the values of `If-Match`, `If-None-Match`,
/// `If-Modified-Since`, `If-Unmodified-Since`, `If-Range` and `Range`, in that order (missing
/// lines: absent fields; an empty line: an empty field). Evaluated for GET, HEAD and POST
/// against a fixed representation; checks that a 304 is never the answer to POST, and that
/// parsing never panics.
pub fn conditional(data: &[u8]) {
    const NAMES: [&str; 6] = [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "range",
    ];
    let mut headers = Headers::new();
    for (name, value) in NAMES.iter().zip(data.split(|&b| b == b'\n')) {
        headers.push(*name, Bytes::copy_from_slice(value));
    }
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for etag in [
        Some(EntityTag::strong("abc").expect("a valid tag")),
        Some(EntityTag::weak("abc").expect("a valid tag")),
        None,
    ] {
        let current = Validators::at(
            etag,
            Some(modified),
            modified + std::time::Duration::from_secs(5),
        );
        for method in [http::Method::GET, http::Method::HEAD, http::Method::POST] {
            let outcome = conditional::evaluate(&method, &headers, &current);
            if method == http::Method::POST {
                assert_ne!(outcome, conditional::Precondition::NotModified);
            }
        }
        if let Some(v) = headers.get("if-range") {
            let _ = conditional::if_range(v, &current);
        }
        if let Some(v) = headers.get("range") {
            range(v, 1000, range::DEFAULT_MAX_RANGES);
        }
    }
}

#[cfg(test)]
mod tests {
    /// A small deterministic fuzz run (xorshift), so that the invariants are checked by
    /// `cargo test` too; cargo-fuzz explores further.
    #[test]
    fn invariants_hold_on_generated_inputs() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const ALPHABET: &[u8] = b"bytes=0123456789-, -\t\"W/*abc\nGMT:";
        let mut multi = 0;
        for _ in 0..20_000 {
            let input: Vec<u8> = if next() % 2 == 0 {
                // Noise around the grammar.
                let len = (next() % 40) as usize;
                let mut input: Vec<u8> = b"bytes=".to_vec();
                input.truncate((next() % 7) as usize);
                input.extend((0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]));
                input
            } else {
                // Well-formed range sets of every form, small numbers so that they overlap.
                let specs: Vec<String> = (0..next() % 6 + 1)
                    .map(|_| {
                        let a = next() % 80;
                        match next() % 3 {
                            0 => format!("{a}-{}", a + next() % 30),
                            1 => format!("{a}-"),
                            _ => format!("-{a}"),
                        }
                    })
                    .collect();
                format!("bytes={}", specs.join(", ")).into_bytes()
            };
            if let super::Ranges::Partial(r) = super::range::resolve(&input, 64, 32) {
                multi += usize::from(r.len() > 1);
            }
            let size = match next() % 4 {
                0 => next() % 8,
                1 => next() % 100_000,
                2 => u64::MAX - next() % 4,
                _ => next(),
            };
            super::range(&input, size, (next() % 40) as usize + 1);
            let data: Vec<u8> = (0..(next() % 64) as u8).collect();
            super::byteranges(&input, &data);
            super::conditional(&input);
        }
        assert!(
            multi > 500,
            "the generator reaches multi-range answers: {multi}"
        );
    }
}
