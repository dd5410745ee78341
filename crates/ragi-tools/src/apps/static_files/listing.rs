//! Directory listings, HTML or JSON (PAGI's `App::Directory` is the model; Starlette and
//! tower-http have none).
//!
//! * HTML by default; JSON (`[{"name","is_dir","size","mtime"}]`, `mtime` in Unix seconds)
//!   when the request's `Accept` ranks `application/json` above `text/html`. `Vary: Accept`.
//! * Directories first, then files, each by name (byte order); names that start with `.`
//!   are left out unless dotfiles are served; symlinks leading out of the root are left out
//!   unless followed (the lookup does that).
//! * Names are HTML-escaped in text (`<`, `>`, `&`, `"`, `'`) and **percent-encoded in
//!   hrefs**, every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`), so a name such as
//!   `javascript:x` or `a"b` stays a relative link to itself. Hrefs are relative (`name`,
//!   `dir/`, `../`), which is why directories are redirected to their trailing-slash form.
//! * The body is built whole, so its `Content-Length` counts bytes, non-ASCII names included
//!   (PAGI's counts characters).

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use super::resolve::Entry;
use crate::response::conditional::fmt_http_date;
use crate::Response;

/// The listing of `entries` for the directory shown as `shown` (decoded, for the title), as
/// HTML or JSON by `accept`; `parent`: whether to link `../`.
pub(crate) fn render(
    entries: &[Entry],
    shown: &str,
    parent: bool,
    accept: Option<&[u8]>,
) -> Response {
    let response = if wants_json(accept) {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name.to_string_lossy(),
                    "is_dir": e.is_dir,
                    "size": e.size,
                    "mtime": e.modified
                        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs()),
                })
            })
            .collect();
        Response::json(&list)
    } else {
        Response::html(html(entries, shown, parent))
    };
    response.header("vary", "accept")
}

fn html(entries: &[Entry], shown: &str, parent: bool) -> String {
    let title = escape(shown);
    let mut out = String::with_capacity(512 + entries.len() * 160);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Index of {title}</title>\n</head>\n<body>\n<h1>Index of {title}</h1>\n\
         <table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if parent {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        let bytes = e.name.as_encoded_bytes();
        let mut href = encode_href(bytes);
        let mut text = escape(&e.name.to_string_lossy());
        if e.is_dir {
            href.push('/');
            text.push('/');
        }
        let size = if e.is_dir {
            String::new()
        } else {
            e.size.to_string()
        };
        let modified = e.modified.map(fmt_http_date).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{href}\">{text}</a></td><td>{size}</td><td>{modified}</td></tr>"
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}

/// Whether `accept` ranks `application/json` strictly above `text/html`.
fn wants_json(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    let (mut json, mut html) = (0.0f32, 0.0f32);
    for part in accept.split(',') {
        let mut params = part.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|v| v.trim().parse::<f32>().ok())
            })
            .next()
            .unwrap_or(1.0);
        match media.as_str() {
            "application/json" => json = json.max(q),
            "text/html" => html = html.max(q),
            "*/*" | "text/*" => html = html.max(q * 0.999),
            _ => {}
        }
    }
    json > html
}

/// HTML text: `&`, `<`, `>`, `"`, `'` escaped.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A file name as one relative path segment: every byte but the unreserved ones escaped.
pub(crate) fn encode_href(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn entry(name: &str, is_dir: bool) -> Entry {
        Entry {
            name: OsString::from(name),
            is_dir,
            size: 3,
            modified: None,
        }
    }

    #[test]
    fn names_are_escaped_and_hrefs_encoded() {
        let body = html(
            &[
                entry("<script>", true),
                entry("a\"b&c.txt", false),
                entry("javascript:alert(1)", false),
                entry("é ü.txt", false),
            ],
            "/x<y>/",
            true,
        );
        assert!(body.contains("<title>Index of /x&lt;y&gt;/</title>"));
        assert!(body.contains("<a href=\"%3Cscript%3E/\">&lt;script&gt;/</a>"));
        assert!(body.contains("<a href=\"a%22b%26c.txt\">a&quot;b&amp;c.txt</a>"));
        assert!(body.contains("<a href=\"javascript%3Aalert%281%29\">"));
        assert!(body.contains("<a href=\"%C3%A9%20%C3%BC.txt\">é ü.txt</a>"));
        assert!(body.contains("<a href=\"../\">"));
        assert!(!body.contains("<script>"));
    }

    #[test]
    fn json_only_when_preferred() {
        assert!(!wants_json(None));
        assert!(!wants_json(Some(b"*/*")));
        assert!(wants_json(Some(b"application/json")));
        assert!(wants_json(Some(b"application/json, */*;q=0.5")));
        assert!(!wants_json(Some(b"text/html, application/json;q=0.9")));
        assert!(!wants_json(Some(
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
    }
}
