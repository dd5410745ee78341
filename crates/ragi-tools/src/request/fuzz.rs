//! Entry points for fuzzing the request parsers, behind the cargo feature `fuzzing` and
//! re-exported doc-hidden as `ragi_tools::__fuzz`.
//!
//! Not an API: thin wrappers over crate-private code, changed whenever it changes. Each takes
//! arbitrary bytes, never panics on any input (that is what the fuzzer checks), and returns
//! plain values a target can compare.

use ragi::Headers;

pub use super::form::FormError;

/// One part as [`multipart`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuzzPart {
    /// The field name.
    pub name: String,
    /// The sanitised file name (`None` for a non-file part).
    pub filename: Option<String>,
    /// The `filename*`/`filename` as sent (decoded, not sanitised).
    pub raw_filename: Option<String>,
    /// The part's content type.
    pub content_type: Option<String>,
    /// The part's data.
    pub data: Vec<u8>,
}

/// Runs the multipart parser over `body` fed in pieces: `splits` are the lengths of the
/// pieces (each taken modulo what is left, zero meaning one byte; the rest goes in one last
/// piece). `boundary` is the boundary as in the `Content-Type` parameter; part header blocks
/// are limited to `max_header` bytes. Returns the parts, or the reason the body is malformed.
///
/// The parser is split-independent: for any `splits`, the result equals the result for
/// `&[]` (the body in one piece). A target should assert that, and that every `filename`
/// equals `sanitize_filename` of itself and has no `/`, `\` or control character.
pub fn multipart(
    boundary: &[u8],
    body: &[u8],
    splits: &[usize],
    max_header: usize,
) -> Result<Vec<FuzzPart>, String> {
    use super::multipart::{Event, Parser};
    let mut p = Parser::new(boundary, max_header);
    let mut parts: Vec<FuzzPart> = Vec::new();
    let mut fed = 0;
    let mut splits = splits.iter();
    let mut ended = false;
    loop {
        match p.next_event().map_err(|e| e.0.to_owned())? {
            Some(Event::Part(h)) => parts.push(FuzzPart {
                name: h.name().to_owned(),
                filename: h.filename().map(str::to_owned),
                raw_filename: h.raw_filename().map(str::to_owned),
                content_type: h.content_type().map(str::to_owned),
                data: Vec::new(),
            }),
            Some(Event::Data(d)) => {
                assert!(!d.is_empty(), "the parser yielded an empty data event");
                match parts.last_mut() {
                    Some(part) => part.data.extend_from_slice(&d),
                    None => panic!("the parser yielded data before a part"),
                }
            }
            Some(Event::PartEnd) => {}
            Some(Event::End) => {
                assert!(!ended, "the parser yielded End twice");
                ended = true;
            }
            None if fed < body.len() => {
                let left = body.len() - fed;
                let n = match splits.next() {
                    Some(&s) => (s % left).max(1),
                    None => left,
                };
                p.feed(&body[fed..fed + n]);
                fed += n;
            }
            None if !ended && !p.is_closed() => {
                p.end_input();
                // Once the input ended the parser must finish: an event or an error.
                match p.next_event().map_err(|e| e.0.to_owned())? {
                    None => panic!("the parser wants input after the end"),
                    Some(Event::End) => ended = true,
                    Some(Event::Data(d)) => match parts.last_mut() {
                        Some(part) => part.data.extend_from_slice(&d),
                        None => panic!("the parser yielded data before a part"),
                    },
                    Some(Event::Part(_)) => panic!("a part started at the end of the input"),
                    Some(Event::PartEnd) => {}
                }
            }
            None => break,
        }
    }
    if !ended {
        return Err("no closing boundary".to_owned());
    }
    Ok(parts)
}

/// Parses one `Content-Disposition` value as a part's head would: `(name, filename,
/// raw_filename)`, or the reason it is not a form-data disposition.
pub fn content_disposition(
    value: &[u8],
) -> Result<(String, Option<String>, Option<String>), String> {
    let head = super::multipart::PartHead::from_headers(
        Headers::new().with("content-disposition", value.to_vec()),
    )
    .map_err(str::to_owned)?;
    Ok((
        head.name().to_owned(),
        head.filename().map(str::to_owned),
        head.raw_filename().map(str::to_owned),
    ))
}

/// Decodes an RFC 5987 extended value (`UTF-8''%E2%82%AC`).
pub fn rfc5987(value: &str) -> Option<String> {
    super::multipart::decode_rfc5987(value)
}

/// [`sanitize_filename`](super::multipart::sanitize_filename).
pub fn sanitize_filename(name: &str) -> String {
    super::multipart::sanitize_filename(name)
}

/// The cookies of one `Cookie` header value: every valid pair in order (duplicates kept),
/// and the map a request would see (first occurrence wins).
pub fn cookies(header: &[u8]) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let all = super::cookies::parse(header)
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let map = super::Cookies::parse(header)
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    (all, map)
}

/// The strict urlencoded parser the form reader runs first: the decoded pairs, or which pair
/// was not UTF-8. On success its pairs equal `form_urlencoded::parse`'s.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    super::form::parse(body)
}

/// The whole form reader on `body` after its content-type and size checks: deserialised into
/// a map of strings and into a sequence of pairs; `Err(status)` (400 or 422) otherwise.
pub fn form(body: &[u8]) -> Result<Vec<(String, String)>, u16> {
    let pairs: Vec<(String, String)> = super::form::from_bytes(body).map_err(|e| e.status())?;
    let _: std::collections::HashMap<String, String> =
        super::form::from_bytes(body).map_err(|e| e.status())?;
    Ok(pairs)
}
