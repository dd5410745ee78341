//! A part's head: its `Content-Disposition` (name, filename, RFC 5987 `filename*`), its
//! content type, and the filename made safe.

use ragi::Headers;

/// The headers of one part and what they say. Built by the parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartHead {
    name: String,
    filename: Option<String>,
    raw_filename: Option<String>,
    content_type: Option<String>,
    headers: Headers,
}

impl PartHead {
    /// The head of a part with these headers; an error unless they hold
    /// `Content-Disposition: form-data; name=..`.
    pub(crate) fn from_headers(headers: Headers) -> Result<Self, &'static str> {
        let cd = headers
            .get("content-disposition")
            .map(|v| Disposition::parse(v))
            .filter(|d| d.kind.eq_ignore_ascii_case("form-data"))
            .ok_or("multipart part without Content-Disposition: form-data")?;
        let name = cd
            .param("name")
            .ok_or("multipart part without a name")?
            .to_owned();
        let raw_filename = cd
            .param("filename*")
            .and_then(decode_rfc5987)
            .or_else(|| cd.param("filename").map(str::to_owned));
        let filename = raw_filename.as_deref().map(sanitize_filename);
        let content_type = headers
            .get("content-type")
            .map(|v| text(v).trim().to_owned());
        Ok(Self {
            name,
            filename,
            raw_filename,
            content_type,
            headers,
        })
    }

    /// The form field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's name, made safe (see [`sanitize_filename`]); `Some` for a file part (possibly
    /// empty: a browser sends `filename=""` for a file input left empty), `None` for a field.
    /// Taken from `filename*` (RFC 5987) when it is there and decodes, else from `filename`.
    pub fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    /// The file's name as the client sent it (decoded, not made safe). Never use it as a path.
    pub fn raw_filename(&self) -> Option<&str> {
        self.raw_filename.as_deref()
    }

    /// The part's `Content-Type`, if it has one.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Whether this is a file (the disposition has a filename).
    pub fn is_file(&self) -> bool {
        self.filename.is_some()
    }

    /// All the part's headers (lower-case names).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// Header bytes as text: UTF-8 when they are, else ISO-8859-1 (what old browsers sent).
fn text(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) => s.to_owned(),
        Err(_) => v.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A parsed `Content-Disposition` value: its type and `name=value` parameters (names lower
/// case; the first of a name wins).
#[derive(Debug)]
pub(crate) struct Disposition {
    pub(crate) kind: String,
    params: Vec<(String, String)>,
}

impl Disposition {
    /// Parses tolerantly: values are tokens or quoted strings (in which only `\"` and `\\`
    /// are escapes, so a Windows path keeps its backslashes); an unquoted value runs to the
    /// next `;`; an unterminated quote runs to the end.
    pub(crate) fn parse(value: &[u8]) -> Self {
        let s = text(value);
        let mut chars = s.chars().peekable();
        let mut kind = String::new();
        for c in chars.by_ref() {
            if c == ';' {
                break;
            }
            kind.push(c);
        }
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            while chars
                .next_if(|c| *c == ' ' || *c == '\t' || *c == ';')
                .is_some()
            {}
            if chars.peek().is_none() {
                break;
            }
            let mut name = String::new();
            while let Some(c) = chars.next_if(|c| *c != '=' && *c != ';') {
                name.push(c);
            }
            let name = name.trim().to_ascii_lowercase();
            let mut value = String::new();
            if chars.next_if_eq(&'=').is_some() {
                while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
                if chars.next_if_eq(&'"').is_some() {
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' if matches!(chars.peek(), Some('"' | '\\')) => {
                                value.push(chars.next().unwrap_or('\\'))
                            }
                            c => value.push(c),
                        }
                    }
                    // Anything after the closing quote up to `;` is ignored.
                    while chars.next_if(|c| *c != ';').is_some() {}
                } else {
                    while let Some(c) = chars.next_if(|c| *c != ';') {
                        value.push(c);
                    }
                    value = value.trim().to_owned();
                }
            }
            if !name.is_empty() && !params.iter().any(|(n, _)| *n == name) {
                params.push((name, value));
            }
        }
        Self {
            kind: kind.trim().to_owned(),
            params,
        }
    }

    /// The value of parameter `name` (lower case).
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes an RFC 5987 / RFC 8187 extended value, `charset'language'percent-encoded`, in
/// UTF-8 or ISO-8859-1; `None` when it is malformed or in another charset.
pub(crate) fn decode_rfc5987(value: &str) -> Option<String> {
    let (charset, rest) = value.split_once('\'')?;
    let (_language, encoded) = rest.split_once('\'')?;
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let raw = encoded.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let h = hex(*raw.get(i + 1)?)?;
                let l = hex(*raw.get(i + 2)?)?;
                bytes.push(h << 4 | l);
                i += 3;
            }
            // attr-char: what may stand unencoded (RFC 8187 §3.2.1).
            b if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) => {
                bytes.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    match charset.to_ascii_lowercase().as_str() {
        "utf-8" => String::from_utf8(bytes).ok(),
        "iso-8859-1" => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

/// Longest file name kept, in bytes (a common file-system limit).
const MAX_FILENAME: usize = 255;

/// Makes a client's file name safe to show and to use as the last component of a path:
/// everything up to the last `/` or `\` is dropped (and a drive prefix like `C:`), control
/// characters are removed, surrounding spaces trimmed, `.` and `..` become empty, and the
/// result is cut to 255 bytes (at a character boundary, keeping the extension when it can).
///
/// ```
/// use ragi_tools::request::multipart::sanitize_filename;
///
/// assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
/// assert_eq!(sanitize_filename("C:\\Users\\me\\report.pdf"), "report.pdf");
/// assert_eq!(sanitize_filename("a\u{0}b\r\n.txt"), "ab.txt");
/// assert_eq!(sanitize_filename(".."), "");
/// ```
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let base = match base.as_bytes() {
        [d, b':', ..] if d.is_ascii_alphabetic() => &base[2..],
        _ => base,
    };
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned == "." || cleaned == ".." {
        return String::new();
    }
    if cleaned.len() <= MAX_FILENAME {
        return cleaned.to_owned();
    }
    // Too long: keep a short extension, cut the stem.
    let (stem, ext) = match cleaned.rfind('.') {
        Some(dot) if cleaned.len() - dot <= 16 && dot > 0 => cleaned.split_at(dot),
        _ => (cleaned, ""),
    };
    let mut cut = MAX_FILENAME - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ext}", &stem[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(cd: &[u8]) -> Result<PartHead, &'static str> {
        PartHead::from_headers(Headers::new().with("content-disposition", cd.to_vec()))
    }

    #[test]
    fn name_and_filename() {
        let h = head(b"form-data; name=\"upload\"; filename=\"photo.jpg\"").unwrap();
        assert_eq!(h.name(), "upload");
        assert_eq!(h.filename(), Some("photo.jpg"));
        assert!(h.is_file());
        let h = head(b"Form-Data;NAME=title").unwrap();
        assert_eq!(h.name(), "title");
        assert_eq!(h.filename(), None);
        let h = head(b"form-data; name=\"f\"; filename=\"\"").unwrap();
        assert_eq!(h.filename(), Some(""));
    }

    #[test]
    fn quoted_values_keep_semicolons_and_windows_paths() {
        let h = head(b"form-data; name=\"a;b\\\"c\"; filename=\"C:\\dir\\x;y.txt\"").unwrap();
        assert_eq!(h.name(), "a;b\"c");
        assert_eq!(h.raw_filename(), Some("C:\\dir\\x;y.txt"));
        assert_eq!(h.filename(), Some("x;y.txt"));
    }

    #[test]
    fn rfc5987_is_decoded_and_preferred() {
        let h = head(
            b"form-data; name=f; filename=\"euro.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt",
        )
        .unwrap();
        assert_eq!(h.filename(), Some("€ rates.txt"));
        let h = head(b"form-data; name=f; filename*=iso-8859-1'en'caf%E9.txt").unwrap();
        assert_eq!(h.filename(), Some("café.txt"));
        // Malformed or in an unknown charset: `filename` is used.
        for bad in [
            &b"form-data; name=f; filename=\"ok.txt\"; filename*=UTF-8''%E2%82"[..],
            b"form-data; name=f; filename=\"ok.txt\"; filename*=UTF-8''%zz",
            b"form-data; name=f; filename=\"ok.txt\"; filename*=koi8-r''abc",
            b"form-data; name=f; filename=\"ok.txt\"; filename*=nonsense",
            b"form-data; name=f; filename=\"ok.txt\"; filename*=UTF-8''a b",
        ] {
            assert_eq!(head(bad).unwrap().filename(), Some("ok.txt"));
        }
        // A path in the encoded name is made safe too.
        let h = head(b"form-data; name=f; filename*=UTF-8''..%2F..%2Fx").unwrap();
        assert_eq!(h.filename(), Some("x"));
        assert_eq!(h.raw_filename(), Some("../../x"));
    }

    #[test]
    fn raw_latin1_header_bytes() {
        let h = head(b"form-data; name=f; filename=\"caf\xE9.txt\"").unwrap();
        assert_eq!(h.filename(), Some("café.txt"));
        let h = head("form-data; name=f; filename=\"日本.txt\"".as_bytes()).unwrap();
        assert_eq!(h.filename(), Some("日本.txt"));
    }

    #[test]
    fn sanitising() {
        let cases = [
            ("../../etc/passwd", "passwd"),
            ("..\\..\\boot.ini", "boot.ini"),
            ("/abs/path/x.png", "x.png"),
            ("dir/", ""),
            ("..", ""),
            (".", ""),
            ("a/..", ""),
            ("..hidden", "..hidden"),
            ("a..b.txt", "a..b.txt"),
            ("C:evil.exe", "evil.exe"),
            ("  spaced.txt \t", "spaced.txt"),
            ("tab\there\u{7f}\u{85}.txt", "tabhere.txt"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_filename(input), want, "{input:?}");
        }
        let long = format!("{}.tar.gz", "é".repeat(200));
        let s = sanitize_filename(&long);
        assert!(s.len() <= 255 && s.ends_with(".gz"), "{s}");
        let s = sanitize_filename(&"x".repeat(300));
        assert_eq!(s.len(), 255);
    }

    #[test]
    fn content_type_and_headers() {
        let h = PartHead::from_headers(
            Headers::new()
                .with("content-disposition", "form-data; name=f; filename=a")
                .with("content-type", " image/png ")
                .with("x-extra", "1"),
        )
        .unwrap();
        assert_eq!(h.content_type(), Some("image/png"));
        assert_eq!(h.headers().get_str("x-extra"), Some("1"));
    }
}
