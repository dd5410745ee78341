//! Choosing a precompressed sibling (`x.js.br`, `x.js.gz`, `x.js.zst`) by the request's
//! `Accept-Encoding` (RFC 9110 §12.5.3).
//!
//! Each coding gets the q-value its own member gives, else the one `*` gives, else 0 (not
//! acceptable); `q=0` excludes (PAGI's and Starlette's gzip checks ignore it). `x-gzip` counts
//! as `gzip`. Members whose q-value does not parse are skipped. No `Accept-Encoding` at all
//! means identity only: RFC 9110 allows any coding then, but a client that said nothing may
//! not decode one (curl without `--compressed`), and every reference serves identity.
//!
//! The candidates are the configured codings with q > 0, best q first; ties go to the order
//! the app lists them in (brotli, zstd, gzip by default: the smallest first). Identity wins
//! over a coding with a lower q when the field lists it (`gzip;q=0.5, identity` gets
//! identity); unlisted, it is only the last resort (`br;q=0.5` gets brotli). The static-file app
//! tries the candidates in order and takes the first whose sibling exists, then identity.
//! Identity is sent even when the client excluded it (`identity;q=0`): a 406 for a static
//! file helps no one, and the other references do the same.

/// A content coding a precompressed sibling may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Brotli, `.br`.
    Brotli,
    /// Zstandard, `.zst`.
    Zstd,
    /// gzip, `.gz`.
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// The file-name extension of the sibling, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zst",
            Encoding::Gzip => "gz",
        }
    }

    /// Every coding, in the default order of preference.
    pub const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    fn matches(self, token: &str) -> bool {
        match self {
            Encoding::Brotli => token.eq_ignore_ascii_case("br"),
            Encoding::Zstd => token.eq_ignore_ascii_case("zstd"),
            Encoding::Gzip => {
                token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip")
            }
        }
    }
}

/// A q-value in thousandths (0..=1000).
type Q = u16;

/// The codings of `configured` worth trying for a request whose `Accept-Encoding` field lines
/// are `lines`, best first (see the [module documentation](self)).
pub(crate) fn candidates<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    configured: &[Encoding],
) -> Vec<Encoding> {
    let mut seen_any_line = false;
    let mut own: Vec<Option<Q>> = vec![None; configured.len()];
    let mut star: Option<Q> = None;
    let mut identity: Option<Q> = None;
    for line in lines {
        seen_any_line = true;
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        for member in line.split(',') {
            let mut parts = member.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for p in parts {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = parse_q(v.trim());
                }
            }
            let Some(q) = q else { continue };
            if token == "*" {
                star = Some(star.map_or(q, |s| s.max(q)));
            } else if token.eq_ignore_ascii_case("identity") {
                identity = Some(identity.map_or(q, |s| s.max(q)));
            } else if let Some(i) = configured.iter().position(|e| e.matches(token)) {
                own[i] = Some(own[i].map_or(q, |s| s.max(q)));
            }
        }
    }
    if !seen_any_line || configured.is_empty() {
        return Vec::new();
    }
    // Identity is always acceptable as a last resort; it is *preferred* over a coding only
    // when it is listed (itself or through `*`) with a higher q.
    let identity_q = identity.or(star).unwrap_or(0);
    let mut out: Vec<(Q, usize)> = (0..configured.len())
        .filter_map(|i| {
            let q = own[i].or(star).unwrap_or(0);
            // A tie with identity goes to the coding (fewer bytes for the same preference).
            (q > 0 && q >= identity_q).then_some((q, i))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, i)| configured[i]).collect()
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(v: &str) -> Option<Q> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Q = 0;
    for (k, b) in frac.bytes().enumerate() {
        thousandths += Q::from(b - b'0') * [100, 10, 1][k];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    fn pick(header: &str) -> Vec<Encoding> {
        candidates(std::iter::once(header.as_bytes()), &Encoding::ALL)
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.05"), Some(50));
        assert_eq!(parse_q("0.001"), Some(1));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0.0001"), None);
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("2"), None);
        assert_eq!(parse_q("x"), None);
    }

    #[test]
    fn negotiation() {
        // No field: identity only.
        assert!(candidates(std::iter::empty(), &Encoding::ALL).is_empty());
        assert_eq!(pick("gzip, deflate, br, zstd"), [Brotli, Zstd, Gzip]);
        assert_eq!(pick("br;q=0.5, gzip"), [Gzip, Brotli]);
        assert_eq!(pick("gzip;q=0"), Vec::<Encoding>::new());
        assert_eq!(pick("*"), [Brotli, Zstd, Gzip]);
        assert_eq!(pick("*;q=0.5, br;q=0"), [Zstd, Gzip]);
        assert_eq!(pick("x-gzip"), [Gzip]);
        assert_eq!(pick("GZIP;Q=1"), [Gzip]);
        assert_eq!(pick("identity"), Vec::<Encoding>::new());
        // Identity preferred over a lower-q coding.
        assert_eq!(pick("gzip;q=0.5, identity"), Vec::<Encoding>::new());
        assert_eq!(pick("gzip;q=0.5, identity;q=0.5"), [Gzip]);
        assert_eq!(pick("gzip;q=0.5, identity;q=0"), [Gzip]);
        assert_eq!(pick("gzip;q=0.5, *;q=0"), [Gzip]);
        // A bad q skips the member.
        assert_eq!(pick("br;q=2, gzip"), [Gzip]);
        // Only configured codings.
        assert_eq!(
            candidates(std::iter::once(&b"br, gzip"[..]), &[Gzip]),
            [Gzip]
        );
        assert!(candidates(std::iter::once(&b"br, gzip"[..]), &[]).is_empty());
        // Several field lines are one list.
        assert_eq!(
            candidates(
                [&b"gzip;q=0.2"[..], &b"br;q=0.9"[..]].into_iter(),
                &Encoding::ALL
            ),
            [Brotli, Gzip]
        );
    }
}
