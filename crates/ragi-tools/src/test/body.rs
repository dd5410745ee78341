//! Request bodies: in one piece, scripted in chunks with pauses, and `multipart/form-data`.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// One step of a scripted request body.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// A body piece, delivered to the app as one `Request` event.
    Chunk(Bytes),
    /// Wait this long (tokio's clock) before the next step.
    Pause(Duration),
}

/// What the request carries.
#[derive(Clone, Debug, Default)]
pub(crate) enum BodySpec {
    /// No body: the app's first `receive` yields one empty final piece.
    #[default]
    Empty,
    /// A body of known length (`content-length`), delivered as one piece.
    Full(Bytes),
    /// A chunked body (`transfer-encoding: chunked`), delivered piece by piece.
    Script(Vec<Step>),
}

impl BodySpec {
    /// The declared length, when the body is not chunked.
    pub(crate) fn length(&self) -> Option<usize> {
        match self {
            Self::Empty => None,
            Self::Full(b) => Some(b.len()),
            Self::Script(_) => None,
        }
    }

    pub(crate) fn push_step(&mut self, step: Step) {
        match self {
            Self::Script(steps) => steps.push(step),
            other => {
                let mut steps = Vec::new();
                if let Self::Full(b) = other {
                    steps.push(Step::Chunk(b.clone()));
                }
                steps.push(step);
                *other = Self::Script(steps);
            }
        }
    }
}

/// A `multipart/form-data` body (RFC 7578): text fields and files, with a boundary of its own
/// and CRLF line ends.
///
/// ```
/// use ragi_tools::test::{Multipart, Part};
///
/// let form = Multipart::new()
///     .text("title", "holiday")
///     .file("photo", "beach.jpg", "image/jpeg", &b"\xff\xd8..."[..])
///     .part(Part::new("notes").header("x-extra", "1").body("free text"));
/// assert!(form.content_type().starts_with("multipart/form-data; boundary="));
/// let body = form.to_bytes();
/// assert!(body.ends_with(format!("--{}--\r\n", form.boundary()).as_bytes()));
/// // client.post("/upload").multipart(form).send().await
/// ```
#[derive(Clone, Debug)]
pub struct Multipart {
    boundary: Option<String>,
    parts: Vec<Part>,
}

/// One part of a [`Multipart`] body.
#[derive(Clone, Debug)]
pub struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// Quotes a `name` / `filename` parameter as browsers do (HTML's multipart encoding): `"`, CR
/// and LF become `%22`, `%0D`, `%0A`.
fn quote(value: &str) -> String {
    value
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Part {
    /// A part named `name` with an empty body.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filename: None,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Makes it a file part with this `filename` parameter.
    pub fn filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = Some(filename.into());
        self
    }

    /// Its `content-type`.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// An extra header line of the part (written as given: use it for `filename*=` tests by
    /// setting your own `content-disposition`, which then replaces the generated one).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Its content.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    fn write(&self, boundary: &str, out: &mut BytesMut) {
        out.put_slice(b"--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"\r\n");
        let own_disposition = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-disposition"));
        if !own_disposition {
            out.put_slice(b"Content-Disposition: form-data; name=\"");
            out.put_slice(quote(&self.name).as_bytes());
            out.put_u8(b'"');
            if let Some(f) = &self.filename {
                out.put_slice(b"; filename=\"");
                out.put_slice(quote(f).as_bytes());
                out.put_u8(b'"');
            }
            out.put_slice(b"\r\n");
        }
        if let Some(ct) = &self.content_type {
            out.put_slice(b"Content-Type: ");
            out.put_slice(ct.as_bytes());
            out.put_slice(b"\r\n");
        }
        for (n, v) in &self.headers {
            out.put_slice(n.as_bytes());
            out.put_slice(b": ");
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
        out.put_slice(b"\r\n");
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

impl Multipart {
    /// An empty form. Its boundary is chosen when the body is made, so that no part's content
    /// contains it.
    pub fn new() -> Self {
        Self {
            boundary: None,
            parts: Vec::new(),
        }
    }

    /// Uses this boundary (no check that the content lacks it: for tests of broken bodies).
    pub fn with_boundary(mut self, boundary: impl Into<String>) -> Self {
        self.boundary = Some(boundary.into());
        self
    }

    /// Adds a text field.
    pub fn text(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value: String = value.into();
        self.part(Part::new(name).body(value))
    }

    /// Adds a file field.
    pub fn file(
        self,
        name: impl Into<String>,
        filename: impl Into<String>,
        content_type: impl Into<String>,
        content: impl Into<Bytes>,
    ) -> Self {
        self.part(
            Part::new(name)
                .filename(filename)
                .content_type(content_type)
                .body(content),
        )
    }

    /// Adds a part.
    pub fn part(mut self, part: Part) -> Self {
        self.parts.push(part);
        self
    }

    /// The boundary: the one given, or the first of `ragi-test-boundary-N` that no part
    /// contains.
    pub fn boundary(&self) -> String {
        if let Some(b) = &self.boundary {
            return b.clone();
        }
        (0u32..)
            .map(|n| format!("ragi-test-boundary-{n:08x}"))
            .find(|b| {
                let needle = format!("--{b}");
                !self
                    .parts
                    .iter()
                    .any(|p| p.body.windows(needle.len()).any(|w| w == needle.as_bytes()))
            })
            .expect("some boundary is free")
    }

    /// The request's `content-type`: `multipart/form-data; boundary=…`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary())
    }

    /// The encoded body.
    pub fn to_bytes(&self) -> Bytes {
        let boundary = self.boundary();
        let mut out = BytesMut::new();
        for p in &self.parts {
            p.write(&boundary, &mut out);
        }
        out.put_slice(b"--");
        out.put_slice(boundary.as_bytes());
        out.put_slice(b"--\r\n");
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_crlf_and_a_free_boundary() {
        let form = Multipart::new().text("a\"b", "x").file(
            "f",
            "r\nn.txt",
            "text/plain",
            "--ragi-test-boundary-00000000 inside",
        );
        let b = form.boundary();
        assert_eq!(b, "ragi-test-boundary-00000001");
        let body = String::from_utf8(form.to_bytes().to_vec()).unwrap();
        assert_eq!(
            body,
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"a%22b\"\r\n\r\nx\r\n\
                 --{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"r%0An.txt\"\r\n\
                 Content-Type: text/plain\r\n\r\n--ragi-test-boundary-00000000 inside\r\n--{b}--\r\n"
            )
        );
    }
}
