//! `sse_encoder`: the server's SSE encoder against the WHATWG event-stream parser.
//!
//! The input is a script of events and comments: per item a kind byte, then length-prefixed
//! strings (any bytes, read as UTF-8 with replacement, so CR, LF, NUL and U+FEFF all occur):
//!
//! | kind bits | meaning |
//! |---|---|
//! | 0 | a comment (1) or an event (0) |
//! | 1, 2, 3 | the event has a name, an id, a retry |
//!
//! Each item is encoded; an encoding is refused exactly when a field cannot be sent (CR or LF
//! in a name, an id or a comment; NUL in an id), and is otherwise accepted. The accepted
//! bytes, concatenated, are parsed by the HTML standard's algorithm (§9.2.6, written out below)
//! and must give back exactly the accepted events: type (`message` when unnamed or empty),
//! data (line ends normalised to LF), last event id (kept from event to event), and retry.

use ragi::SseEvent;
use ragi_server::__fuzz::sse;

use crate::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "sse_encoder",
    run,
    seeds,
};

fn string<'a>(input: &mut &'a [u8]) -> Option<String> {
    let (&n, rest) = input.split_first()?;
    let n = usize::from(n).min(rest.len());
    *input = &rest[n..];
    Some(String::from_utf8_lossy(&rest[..n]).into_owned())
}

/// What a client's parser dispatches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Dispatched {
    kind: String,
    data: String,
    last_event_id: String,
}

/// The parser of the HTML standard, §9.2.6: lines end with CRLF, LF or CR; a blank line
/// dispatches; fields `event`, `data`, `id` (without NUL), `retry` (digits only).
fn parse(stream: &str) -> (Vec<Dispatched>, Vec<u64>) {
    let stream = stream.strip_prefix('\u{feff}').unwrap_or(stream);
    let (mut events, mut retries) = (Vec::new(), Vec::new());
    let (mut data, mut kind, mut last_id) = (String::new(), String::new(), String::new());
    let mut rest = stream;
    // Only complete lines: a stream cut short leaves its last line unprocessed.
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                events.push(Dispatched {
                    kind: if kind.is_empty() {
                        "message".into()
                    } else {
                        kind.clone()
                    },
                    data: std::mem::take(&mut data),
                    last_event_id: last_id.clone(),
                });
            }
            data.clear();
            kind.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => kind = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => last_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    retries.push(ms);
                }
            }
            _ => {}
        }
    }
    (events, retries)
}

/// The target: see the [module docs](self).
pub fn run(data: &[u8]) {
    let mut input = data;
    let mut stream = String::new();
    let (mut expected, mut retries) = (Vec::new(), Vec::new());
    let mut last_id = String::new();
    while let Some((&kind, rest)) = input.split_first() {
        input = rest;
        let Some(text) = string(&mut input) else {
            break;
        };
        if kind & 1 == 1 {
            let sendable = !text.contains(['\r', '\n']);
            match sse::format_comment(&text) {
                Ok(bytes) => {
                    assert!(sendable, "a comment with a line end was accepted: {text:?}");
                    stream.push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
                }
                Err(_) => assert!(!sendable, "a comment was refused: {text:?}"),
            }
            continue;
        }
        let name = if kind & 2 != 0 {
            string(&mut input)
        } else {
            None
        };
        let id = if kind & 4 != 0 {
            string(&mut input)
        } else {
            None
        };
        let retry = (kind & 8 != 0).then(|| u64::from(kind >> 4) * 997);
        let event = SseEvent {
            event: name.clone(),
            data: text.clone(),
            id: id.clone(),
            retry,
        };
        let sendable = !name.as_deref().is_some_and(|n| n.contains(['\r', '\n']))
            && !id
                .as_deref()
                .is_some_and(|i| i.contains(['\r', '\n', '\0']));
        match sse::format_event(&event) {
            Ok(bytes) => {
                assert!(sendable, "accepted: {event:?}");
                stream.push_str(std::str::from_utf8(&bytes).expect("UTF-8"));
                if let Some(id) = id {
                    last_id = id;
                }
                expected.push(Dispatched {
                    kind: match name.as_deref() {
                        None | Some("") => "message".into(),
                        Some(n) => n.to_owned(),
                    },
                    data: text.replace("\r\n", "\n").replace('\r', "\n"),
                    last_event_id: last_id.clone(),
                });
                retries.extend(retry);
            }
            Err(_) => assert!(!sendable, "refused: {event:?}"),
        }
    }
    let (events, parsed_retries) = parse(&stream);
    assert_eq!(events, expected, "stream {stream:?}");
    assert_eq!(parsed_retries, retries);
}

/// Seeds: plain events, multi-line data with every line end, names, ids, retries, comments,
/// and the fields that must be refused.
pub fn seeds() -> Vec<Vec<u8>> {
    fn item(kind: u8, parts: &[&str]) -> Vec<u8> {
        let mut out = vec![kind];
        for p in parts {
            out.push(p.len() as u8);
            out.extend_from_slice(p.as_bytes());
        }
        out
    }
    vec![
        item(0, &["hello"]),
        [item(0, &["a\nb\r\nc\rd"]), item(2, &["x", "update"])].concat(),
        [
            item(6, &["d", "", "7"]),
            item(0, &["same id"]),
            item(4, &["", ""]),
        ]
        .concat(),
        [item(0x3a, &["r", "n"]), item(1, &["keepalive"])].concat(),
        [
            item(1, &["a\nb"]),
            item(2, &["d", "bad\nname"]),
            item(4, &["d", "n\0l"]),
        ]
        .concat(),
        item(0, &[""]),
        item(2, &["\u{feff}data:  x", " sp"]),
        item(0, &["\n\n\r"]),
    ]
}
