//! From a request's raw path to a path under the root: decoded once, refused in every
//! traversal spelling.
//!
//! The input is the scope's `raw_path` (what the client sent, after a mount moved its prefix to
//! `root_path`), never the decoded `path`: decoding the raw bytes here, once, is what keeps a
//! double-encoded `%252e%252e` the literal name `%2e%2e` and an encoded `%2f` from becoming a
//! separator. Each `/`-separated segment is percent-decoded on its own, and the request is
//! refused (the app answers 404, as tower-http and Starlette do) when a segment
//!
//! * is `.` or `..` after decoding (`..`, `%2e%2e`, `.%2E`, …);
//! * holds a `/` (from `%2f`), a `\` (raw or `%5c`: a separator on Windows, and never a name a
//!   client means on Unix) or a NUL (raw or `%00`);
//! * on Windows, holds a `:` (a drive prefix or an alternate data stream);
//! * starts with `.` (a dotfile or dot-directory: `.env`, `.git`), unless dotfiles are
//!   allowed, or it is the first segment and equal to `.well-known` (RFC 8615), which is
//!   always allowed.
//!
//! Empty segments (`//`) are skipped, as nginx's `merge_slashes` and the OS do. Invalid
//! escapes (`%zz`, a lone `%`) stay literal. The decoded bytes name the file as they are
//! (Unix file names are bytes), so a file whose name is not UTF-8 can still be served.

use std::path::{Path, PathBuf};

/// A request path accepted as a relative path under the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelPath {
    /// The decoded segments joined with `/` (none empty, none `.`/`..`, none holding a
    /// separator or NUL), without a leading or trailing `/`.
    pub(crate) rel: Vec<u8>,
    /// The raw path it came from (for redirects that keep the client's spelling).
    raw: bytes::Bytes,
    /// Whether the raw path ends with `/` (a directory is asked for).
    pub(crate) trailing_slash: bool,
}

impl RelPath {
    /// `root` joined with this path.
    pub(crate) fn join_to(&self, root: &Path) -> PathBuf {
        if self.rel.is_empty() {
            return root.to_path_buf();
        }
        let mut p = root.as_os_str().to_owned();
        p.reserve(self.rel.len() + 1);
        p.push("/");
        p.push(os_str(&self.rel));
        PathBuf::from(p)
    }

    /// Whether this is the root itself.
    pub(crate) fn is_root(&self) -> bool {
        self.rel.is_empty()
    }

    /// The decoded segments.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.rel.split(|&b| b == b'/').filter(|s| !s.is_empty())
    }

    /// The raw path, normalised (empty segments dropped), with a leading `/` and a trailing
    /// `/` when `dir`.
    pub(crate) fn raw_normalised(&self, dir: bool) -> String {
        let mut out = String::from("/");
        let mut first = true;
        for s in self.raw.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
            if !first {
                out.push('/');
            }
            first = false;
            // Raw request bytes are visible ASCII (the server refuses anything else in a
            // request target); anything else is escaped rather than trusted.
            for &b in s {
                if b.is_ascii_graphic() {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        if dir && !first {
            out.push('/');
        }
        out
    }
}

/// A file-name component from decoded bytes.
#[cfg(unix)]
pub(crate) fn os_str(bytes: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes)
}

/// A file-name component from decoded bytes (they were checked to be UTF-8).
#[cfg(not(unix))]
pub(crate) fn os_str(bytes: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(std::str::from_utf8(bytes).unwrap_or("\u{fffd}"))
}

/// Why a path was refused. Both are answered 404.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A traversal spelling, a separator, a NUL, or not a path at all.
    Invalid,
    /// A dotfile or dot-directory.
    Hidden,
}

/// Parses `raw` (a scope's `raw_path`). `dotfiles`: serve names that start with `.`.
pub(crate) fn parse(raw: &bytes::Bytes, dotfiles: bool) -> Result<RelPath, Refused> {
    let Some(rest) = raw.strip_prefix(b"/") else {
        return Err(Refused::Invalid);
    };
    let mut rel = Vec::with_capacity(rest.len());
    for seg in rest.split(|&b| b == b'/') {
        if seg.is_empty() {
            continue;
        }
        let first = rel.is_empty();
        if !first {
            rel.push(b'/');
        }
        let at = rel.len();
        decode_into(seg, &mut rel);
        let decoded = &rel[at..];
        if decoded == b"." || decoded == b".." {
            return Err(Refused::Invalid);
        }
        if decoded.iter().any(|&b| is_forbidden(b)) {
            return Err(Refused::Invalid);
        }
        #[cfg(not(unix))]
        if std::str::from_utf8(decoded).is_err() {
            return Err(Refused::Invalid);
        }
        if decoded.starts_with(b".") && !dotfiles && !(first && decoded == b".well-known") {
            return Err(Refused::Hidden);
        }
    }
    Ok(RelPath {
        rel,
        raw: raw.clone(),
        trailing_slash: raw.len() > 1 && raw.ends_with(b"/"),
    })
}

/// Bytes no decoded segment may hold.
fn is_forbidden(b: u8) -> bool {
    match b {
        b'/' | b'\\' | 0 => true,
        #[cfg(windows)]
        b':' => true,
        _ => false,
    }
}

/// `%XX` decoded once (appended to `out`); invalid escapes kept literally.
fn decode_into(seg: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < seg.len() {
        if seg[i] == b'%' && i + 2 < seg.len() {
            if let (Some(h), Some(l)) = (hex(seg[i + 1]), hex(seg[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(seg[i]);
        i += 1;
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str, dotfiles: bool) -> Result<RelPath, Refused> {
        parse(&bytes::Bytes::copy_from_slice(raw.as_bytes()), dotfiles)
    }

    fn ok(raw: &str) -> Vec<String> {
        p(raw, false)
            .unwrap_or_else(|e| panic!("{raw:?} refused: {e:?}"))
            .segments()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    fn refused(raw: &str) -> Refused {
        p(raw, false).expect_err(raw)
    }

    #[test]
    fn plain_paths_split_and_decode_once() {
        assert_eq!(ok("/"), Vec::<String>::new());
        assert_eq!(ok("/a/b.txt"), ["a", "b.txt"]);
        assert_eq!(ok("/a%20b/c"), ["a b", "c"]);
        assert_eq!(ok("//a///b"), ["a", "b"]);
        // Double-encoded: decoded once, a literal name.
        assert_eq!(ok("/%252e%252e/x"), ["%2e%2e", "x"]);
        assert_eq!(ok("/%252f"), ["%2f"]);
        // Invalid escapes stay literal.
        assert_eq!(ok("/%zz/%4"), ["%zz", "%4"]);
        assert_eq!(ok("/%"), ["%"]);
        assert_eq!(ok("/a%2"), ["a%2"]);
        assert_eq!(ok("/%E2%82%AC"), ["\u{20ac}"]);
        // Dots that are not a whole segment are names.
        assert_eq!(ok("/a..b/x..."), ["a..b", "x..."]);
        assert_eq!(ok("/.well-known/acme"), [".well-known", "acme"]);
    }

    #[test]
    fn every_traversal_spelling_is_refused() {
        for raw in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/a/..",
            "/.",
            "/./a",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/x",
            "/%2e./x",
            "/%2e",
            "/a%2f..%2f..%2fetc%2fpasswd",
            "/a%2Fb",
            "/..%2fetc",
            "/a\\..\\b",
            "/..\\etc",
            "/%5c..%5cetc",
            "/a%00.txt",
            "/a\0b",
            "a/b",
            "",
            "*",
        ] {
            assert_eq!(refused(raw), Refused::Invalid, "{raw:?}");
        }
    }

    #[test]
    fn dotfiles_are_hidden_unless_allowed() {
        assert_eq!(refused("/.env"), Refused::Hidden);
        assert_eq!(refused("/%2eenv"), Refused::Hidden);
        assert_eq!(refused("/a/.git/config"), Refused::Hidden);
        // `.well-known` only at the top.
        assert_eq!(refused("/a/.well-known/x"), Refused::Hidden);
        assert_eq!(refused("/.well-known/.secret"), Refused::Hidden);
        assert_eq!(p("/a/.git/config", true).unwrap().segments().count(), 3);
        // Traversal stays refused with dotfiles on.
        assert_eq!(p("/..", true), Err(Refused::Invalid));
    }

    #[test]
    fn trailing_slash_and_normalised_raw() {
        let r = p("/a%20b//c/", false).unwrap();
        assert!(r.trailing_slash);
        assert_eq!(r.raw_normalised(true), "/a%20b/c/");
        assert_eq!(r.raw_normalised(false), "/a%20b/c");
        assert_eq!(r.rel, b"a b/c");
        assert_eq!(
            r.join_to(Path::new("/srv/www")),
            PathBuf::from("/srv/www/a b/c")
        );
        assert!(!p("/", false).unwrap().trailing_slash);
        assert_eq!(p("/", false).unwrap().raw_normalised(true), "/");
        assert_eq!(
            p("/", false).unwrap().join_to(Path::new("/r")),
            PathBuf::from("/r")
        );
        // A protocol-relative spelling cannot survive normalisation.
        assert_eq!(
            p("//evil.example", false).unwrap().raw_normalised(true),
            "/evil.example/"
        );
    }
}
