//! `multipart/form-data` request bodies: fields and files, streamed or collected, with limits;
//! large files spooled to temporary files that never outlive the request.
//!
//! ```
//! use ragi_tools::prelude::*;
//!
//! // Collected: every part, small ones in memory, files above the threshold on disk.
//! async fn upload(mut cx: HttpContext) -> Result<Response, Error> {
//!     let form = cx.multipart_all().await?;
//!     let title = form.field("title").unwrap_or("untitled").to_owned();
//!     let summary: Vec<_> = form
//!         .iter()
//!         .map(|p| serde_json::json!({ "name": p.name(), "filename": p.filename(), "size": p.size() }))
//!         .collect();
//!     Ok(Response::json(&serde_json::json!({ "title": title, "parts": summary })))
//! } // the form is dropped here: its temporary files are removed
//!
//! // Streamed: each part's data as it arrives (to hash it, or send it elsewhere).
//! async fn checksum(mut cx: HttpContext) -> Result<String, Error> {
//!     let mut mp = cx.multipart()?; // 415, 400 (no boundary) or 413 (Content-Length) here
//!     let mut out = String::new();
//!     while let Some(mut field) = mp.next_field().await? {
//!         let mut sum = 0u64;
//!         while let Some(chunk) = field.chunk().await? {
//!             sum = chunk.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
//!         }
//!         out += &format!("{} {sum}\n", field.name());
//!     }
//!     Ok(out)
//! }
//! # let _ = (upload, checksum);
//! ```
//!
//! # Limits and statuses
//!
//! | limit ([`MultipartLimits`]) | default | beyond it |
//! |---|---|---|
//! | `max_total_size`: the whole body | 32 MiB | 413 (a declared `Content-Length` over it: before any read) |
//! | `max_file_size`: one file part | 16 MiB | 413 |
//! | `max_part_size`: one non-file part (a field) | 1 MiB | 413 |
//! | `max_parts`: parts in all | 1000 | 400 |
//! | `max_files`: file parts | 100 | 400 |
//! | `max_fields`: non-file parts | 1000 | 400 |
//! | `max_header_size`: one part's header block | 8 KiB | 400 |
//! | `spool_threshold`: a file larger than this goes to a temporary file | 256 KiB | — |
//!
//! Sizes are 413 (the body is too large); counts are 400 (the body is not too large, it is
//! not a form this server takes). A body that is not `multipart/form-data` is 415; a missing
//! or invalid `boundary` parameter, or a malformed body, is 400. Limits come from the call
//! ([`HttpContext::multipart_with`]), else a [`MultipartLimits`] in the scope's stash, else
//! the defaults.
//!
//! # Files and names
//!
//! A part is a file when its `Content-Disposition` has a `filename` (or `filename*`)
//! parameter. `filename*` (RFC 5987: `UTF-8''%E2%82%AC.txt`) is decoded and preferred; the
//! name is then made safe by [`sanitize_filename`] (no directories, no control characters,
//! never `.` or `..`). Each part keeps its `Content-Type` and all its headers.
//!
//! # Temporary files and the departed client
//!
//! A file part larger than `spool_threshold` is written to a temporary file (mode 0600, in
//! `temp_dir` or the system's). The file is removed when its [`Part`] is dropped, and at the
//! latest when the request ends — the response delivered (`on_complete`) or the client gone
//! (`on_disconnect`) — so a panicking or cancelled handler, or a client that leaves
//! mid-upload, leaves nothing behind. [`Part::persist`] keeps one.
//!
//! Every method that reads meets a departed client with [`Error::disconnected`] (its reason),
//! never with a partial part; the parts read before stay valid until the request ends.
//! After the closing boundary the reader reads the (ignored) epilogue to the body's end, so
//! [`HttpContext::receive`] then waits for — and still yields — a later `Disconnect`.
//!
//! # Why our own parser
//!
//! `multer` (axum's) is well kept, but streams only: no spooling, no file/field distinction in
//! its limits, no `filename*`, and its errors would have to be mapped back onto our statuses
//! and disconnect reasons. The framing is small (RFC 2046 §5.1.1); a sans-I/O parser
//! ([`parser`](self) module, private) is tested deterministically on every split of its input
//! and is easy to fuzz (feature `fuzzing`).

mod disposition;
mod parser;
mod spool;

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use crate::request::body::PieceSource;
use crate::{Context, Error, HttpContext};

pub use disposition::{sanitize_filename, PartHead};
pub use spool::TempFile;

#[cfg(feature = "fuzzing")]
pub(crate) use disposition::decode_rfc5987;
pub(crate) use parser::{Event, ParseError, Parser};

/// The limits of a multipart body. See the [module documentation](self) for the defaults and
/// the statuses.
///
/// ```
/// use ragi_tools::request::multipart::MultipartLimits;
///
/// let limits = MultipartLimits { max_file_size: 100 << 20, max_files: 5, ..MultipartLimits::default() };
/// # let _ = limits;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartLimits {
    /// The whole body, in bytes.
    pub max_total_size: u64,
    /// One file part's data, in bytes.
    pub max_file_size: u64,
    /// One non-file part's data, in bytes.
    pub max_part_size: u64,
    /// Parts in all.
    pub max_parts: usize,
    /// File parts.
    pub max_files: usize,
    /// Non-file parts.
    pub max_fields: usize,
    /// One part's header block, in bytes.
    pub max_header_size: usize,
    /// A file part larger than this is spooled to a temporary file ([`HttpContext::multipart_all`],
    /// [`Multipart::next_part`]).
    pub spool_threshold: u64,
    /// Where temporary files go (`None`: the system's temporary directory).
    pub temp_dir: Option<PathBuf>,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        Self {
            max_total_size: 32 << 20,
            max_file_size: 16 << 20,
            max_part_size: 1 << 20,
            max_parts: 1000,
            max_files: 100,
            max_fields: 1000,
            max_header_size: 8 << 10,
            spool_threshold: 256 << 10,
            temp_dir: None,
        }
    }
}

/// The boundary of a `multipart/form-data` content type: 415 for another type, 400 without a
/// valid boundary (1 to 70 characters, no CR or LF).
pub(crate) fn boundary_of(content_type: Option<&str>) -> Result<Vec<u8>, Error> {
    let ct = content_type.unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err(Error::unsupported_media_type("multipart/form-data"));
    }
    let boundary = crate::request::body::media_type_param(ct, "boundary")
        .ok_or_else(|| Error::malformed_body("multipart/form-data without a boundary"))?;
    if boundary.is_empty() || boundary.len() > 70 || boundary.contains(['\r', '\n']) {
        return Err(Error::malformed_body("invalid multipart boundary"));
    }
    Ok(boundary.into_bytes())
}

impl HttpContext {
    /// The `multipart/form-data` body, read part by part, with the request's limits (a
    /// [`MultipartLimits`] in the stash, or the defaults). Checks the content type, the
    /// boundary and a declared `Content-Length` before anything is read.
    pub fn multipart(&mut self) -> Result<Multipart<'_>, Error> {
        let limits = self
            .stash()
            .get::<MultipartLimits>()
            .map(|l| (*l).clone())
            .unwrap_or_default();
        self.multipart_with(limits)
    }

    /// [`multipart`](Self::multipart) with `limits` for this call.
    pub fn multipart_with(&mut self, limits: MultipartLimits) -> Result<Multipart<'_>, Error> {
        let boundary = boundary_of(self.header("content-type"))?;
        self.check_declared(limits.max_total_size)?;
        let source = self.piece_source()?;
        Ok(Multipart {
            parser: Parser::new(&boundary, limits.max_header_size),
            limits,
            source,
            input_done: false,
            total: 0,
            parts: 0,
            files: 0,
            fields: 0,
            current: None,
            finished: false,
            failed: None,
            spool: None,
            cx: self,
        })
    }

    /// Every part of the `multipart/form-data` body, collected (files above the spool
    /// threshold on disk). See the [module documentation](self).
    pub async fn multipart_all(&mut self) -> Result<MultipartForm, Error> {
        self.multipart()?.collect().await
    }
}

/// The part being read.
#[derive(Debug)]
struct Current {
    is_file: bool,
    size: u64,
    /// Its data ended (`PartEnd` seen).
    ended: bool,
}

/// A `multipart/form-data` body being read; made by [`HttpContext::multipart`]. See the
/// [module documentation](self).
pub struct Multipart<'a> {
    cx: &'a mut HttpContext,
    parser: Parser,
    limits: MultipartLimits,
    source: PieceSource,
    input_done: bool,
    total: u64,
    parts: usize,
    files: usize,
    fields: usize,
    current: Option<Current>,
    finished: bool,
    /// The first error; every later call returns it again (as a copy).
    failed: Option<(
        crate::ErrorKind,
        u16,
        String,
        Option<ragi::DisconnectReason>,
    )>,
    spool: Option<spool::Spool>,
}

impl std::fmt::Debug for Multipart<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multipart")
            .field("parser", &self.parser)
            .field("limits", &self.limits)
            .field("total", &self.total)
            .field("parts", &self.parts)
            .finish()
    }
}

impl<'a> Multipart<'a> {
    /// Records `e` as the reader's failure and returns it.
    fn fail(&mut self, e: Error) -> Error {
        if self.failed.is_none() {
            self.failed = Some((
                e.kind(),
                e.status(),
                e.message().to_owned(),
                e.disconnect_reason().cloned(),
            ));
        }
        e
    }

    fn check_failed(&self) -> Result<(), Error> {
        match &self.failed {
            None => Ok(()),
            Some((_, _, _, Some(reason))) => Err(Error::disconnected(reason.clone())),
            Some((crate::ErrorKind::MalformedBody, _, message, None)) => {
                Err(Error::malformed_body(message.clone()))
            }
            Some((_, status, message, None)) => Err(Error::new(*status, message.clone())),
        }
    }

    /// Feeds the parser the next piece of the body.
    async fn fill(&mut self) -> Result<(), Error> {
        let (piece, more) = match &mut self.source {
            PieceSource::Kept(kept) => {
                let piece = kept.take().unwrap_or_default();
                (piece, false)
            }
            PieceSource::Live => self.cx.next_piece().await?,
            PieceSource::Start | PieceSource::Done => (Bytes::new(), false),
        };
        self.total += piece.len() as u64;
        if self.total > self.limits.max_total_size {
            return Err(Error::body_too_large(self.limits.max_total_size));
        }
        self.parser.feed(&piece);
        if !more {
            self.input_done = true;
            self.source = PieceSource::Done;
            self.parser.end_input();
        }
        Ok(())
    }

    /// The parser's next event, reading more of the body as needed, with the limits applied.
    async fn event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let event = self
                .parser
                .next_event()
                .map_err(|ParseError(why)| Error::malformed_body(why))?;
            match event {
                Some(Event::Part(head)) => {
                    self.parts += 1;
                    if self.parts > self.limits.max_parts {
                        return Err(Error::bad_request(format!(
                            "too many multipart parts (at most {})",
                            self.limits.max_parts
                        )));
                    }
                    if head.is_file() {
                        self.files += 1;
                        if self.files > self.limits.max_files {
                            return Err(Error::bad_request(format!(
                                "too many files (at most {})",
                                self.limits.max_files
                            )));
                        }
                    } else {
                        self.fields += 1;
                        if self.fields > self.limits.max_fields {
                            return Err(Error::bad_request(format!(
                                "too many form fields (at most {})",
                                self.limits.max_fields
                            )));
                        }
                    }
                    self.current = Some(Current {
                        is_file: head.is_file(),
                        size: 0,
                        ended: false,
                    });
                    return Ok(Some(Event::Part(head)));
                }
                Some(Event::Data(data)) => {
                    let Some(cur) = &mut self.current else {
                        return Err(Error::malformed_body("multipart data outside a part"));
                    };
                    cur.size += data.len() as u64;
                    let (limit, what) = if cur.is_file {
                        (self.limits.max_file_size, "file")
                    } else {
                        (self.limits.max_part_size, "form field")
                    };
                    if cur.size > limit {
                        return Err(Error::new(
                            413,
                            format!("multipart {what} larger than {limit} bytes"),
                        ));
                    }
                    return Ok(Some(Event::Data(data)));
                }
                Some(Event::PartEnd) => {
                    if let Some(cur) = &mut self.current {
                        cur.ended = true;
                    }
                    return Ok(Some(Event::PartEnd));
                }
                Some(Event::End) => {
                    // Read the epilogue to the body's end, so that `receive()` is left with
                    // nothing but a later `Disconnect`.
                    while !self.input_done {
                        self.fill().await?;
                    }
                    return Ok(Some(Event::End));
                }
                None if self.input_done => return Ok(None),
                None => self.fill().await?,
            }
        }
    }

    async fn event_or_fail(&mut self) -> Result<Option<Event>, Error> {
        self.check_failed()?;
        match self.event().await {
            Ok(e) => Ok(e),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The next part, its data to be read with [`Field::chunk`] (what is left unread is skipped
    /// by the next call); `None` after the last part.
    pub async fn next_field(&mut self) -> Result<Option<Field<'_, 'a>>, Error> {
        if self.finished {
            return Ok(None);
        }
        // Skip what is left of the current part.
        while self.current.as_ref().is_some_and(|c| !c.ended) {
            if self.event_or_fail().await?.is_none() {
                break;
            }
        }
        loop {
            match self.event_or_fail().await? {
                Some(Event::Part(head)) => return Ok(Some(Field { mp: self, head })),
                Some(Event::End) | None => {
                    self.finished = true;
                    return Ok(None);
                }
                Some(Event::Data(_) | Event::PartEnd) => {}
            }
        }
    }

    /// The next part, read whole: a field or a small file in memory, a file larger than the
    /// spool threshold in a [`TempFile`]. `None` after the last part.
    pub async fn next_part(&mut self) -> Result<Option<Part>, Error> {
        let threshold = self.limits.spool_threshold;
        let Some(mut field) = self.next_field().await? else {
            return Ok(None);
        };
        let head = field.head.clone();
        let mut mem = BytesMut::new();
        let mut single: Option<Bytes> = None;
        let mut file: Option<(tokio::fs::File, TempFile)> = None;
        let mut size = 0u64;
        while let Some(chunk) = field.chunk().await? {
            size += chunk.len() as u64;
            if let Some((f, _)) = &mut file {
                f.write_all(&chunk).await.map_err(spool_error)?;
                continue;
            }
            if head.is_file() && size > threshold {
                let dir = field.mp.limits.temp_dir.clone();
                let (mut f, temp) = field.mp.spool().create(dir.as_deref()).await?;
                // From here a failure drops `temp`, which removes the file.
                if let Some(s) = single.take() {
                    f.write_all(&s).await.map_err(spool_error)?;
                }
                f.write_all(&mem).await.map_err(spool_error)?;
                f.write_all(&chunk).await.map_err(spool_error)?;
                mem = BytesMut::new();
                file = Some((f, temp));
                continue;
            }
            // Keep a part that arrives in one piece without copying it.
            match single.take() {
                None if mem.is_empty() => single = Some(chunk),
                Some(s) => {
                    mem.extend_from_slice(&s);
                    mem.extend_from_slice(&chunk);
                }
                None => mem.extend_from_slice(&chunk),
            }
        }
        let data = match file {
            Some((mut f, temp)) => {
                f.flush().await.map_err(spool_error)?;
                drop(f);
                Data::File(temp)
            }
            None => Data::Memory(single.unwrap_or_else(|| mem.freeze())),
        };
        Ok(Some(Part { head, size, data }))
    }

    /// Every remaining part, collected as by [`next_part`](Self::next_part).
    pub async fn collect(mut self) -> Result<MultipartForm, Error> {
        let mut parts = Vec::new();
        while let Some(part) = self.next_part().await? {
            parts.push(part);
        }
        Ok(MultipartForm { parts })
    }

    /// The request's spool, made (and its callbacks registered) on first use.
    fn spool(&mut self) -> &spool::Spool {
        let conn = self.cx.connection();
        self.spool.get_or_insert_with(|| spool::Spool::new(conn))
    }
}

fn spool_error(e: std::io::Error) -> Error {
    Error::internal(format!("writing an upload's temporary file: {e}"))
}

/// One part of a multipart body, its data read as it arrives; made by
/// [`Multipart::next_field`].
pub struct Field<'m, 'a> {
    mp: &'m mut Multipart<'a>,
    head: PartHead,
}

impl std::fmt::Debug for Field<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field").field("head", &self.head).finish()
    }
}

impl Field<'_, '_> {
    /// The part's head: name, filename, content type, headers.
    pub fn head(&self) -> &PartHead {
        &self.head
    }

    /// The form field's name.
    pub fn name(&self) -> &str {
        self.head.name()
    }

    /// The file name, made safe (`None` for a non-file part). See [`PartHead::filename`].
    pub fn filename(&self) -> Option<&str> {
        self.head.filename()
    }

    /// The part's `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        self.head.content_type()
    }

    /// Whether the part is a file.
    pub fn is_file(&self) -> bool {
        self.head.is_file()
    }

    /// The next piece of the part's data; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.mp.current.as_ref().is_none_or(|c| c.ended) {
            return Ok(None);
        }
        match self.mp.event_or_fail().await? {
            Some(Event::Data(d)) => Ok(Some(d)),
            Some(Event::PartEnd) | Some(Event::End) | None => Ok(None),
            // The parser ends a part before it starts another.
            Some(Event::Part(_)) => Err(self
                .mp
                .fail(Error::malformed_body("multipart part without an end"))),
        }
    }

    /// The rest of the part's data, in memory (bounded by the part and file limits).
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }

    /// The rest of the part's data as UTF-8 text (400 when it is not).
    pub async fn text(self) -> Result<String, Error> {
        let b = self.bytes().await?;
        String::from_utf8(Vec::from(b))
            .map_err(|_| Error::malformed_body("multipart field is not UTF-8"))
    }
}

/// Where a collected part's data is.
#[derive(Debug)]
enum Data {
    Memory(Bytes),
    File(TempFile),
}

/// One collected part: a field or a file, in memory or in a temporary file. Dropping it
/// removes its temporary file.
#[derive(Debug)]
pub struct Part {
    head: PartHead,
    size: u64,
    data: Data,
}

impl Part {
    /// The part's head: name, filename, content type, headers.
    pub fn head(&self) -> &PartHead {
        &self.head
    }

    /// The form field's name.
    pub fn name(&self) -> &str {
        self.head.name()
    }

    /// The file name, made safe (`None` for a non-file part). See [`PartHead::filename`].
    pub fn filename(&self) -> Option<&str> {
        self.head.filename()
    }

    /// The part's `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        self.head.content_type()
    }

    /// Whether the part is a file.
    pub fn is_file(&self) -> bool {
        self.head.is_file()
    }

    /// The data's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The temporary file holding the data, when it was spooled.
    pub fn path(&self) -> Option<&Path> {
        match &self.data {
            Data::File(t) => Some(t.path()),
            Data::Memory(_) => None,
        }
    }

    /// Whether the data is in a temporary file.
    pub fn is_spooled(&self) -> bool {
        matches!(self.data, Data::File(_))
    }

    /// The data, when it is in memory.
    pub fn memory(&self) -> Option<&Bytes> {
        match &self.data {
            Data::Memory(b) => Some(b),
            Data::File(_) => None,
        }
    }

    /// The data as text, when it is in memory and UTF-8 (fields always are in memory).
    pub fn text(&self) -> Option<&str> {
        self.memory().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The data, read from the temporary file if it was spooled. After the client left (and
    /// the file with it), [`Error::disconnected`] with the reason.
    pub async fn bytes(&self) -> Result<Bytes, Error> {
        match &self.data {
            Data::Memory(b) => Ok(b.clone()),
            Data::File(t) => match tokio::fs::read(t.path()).await {
                Ok(v) => Ok(Bytes::from(v)),
                Err(e) => Err(t.error(e)),
            },
        }
    }

    /// Writes the data to `to` and keeps it there: a spooled file is moved (renamed), data in
    /// memory is written.
    pub async fn persist(self, to: impl AsRef<Path>) -> Result<(), Error> {
        match self.data {
            Data::Memory(b) => tokio::fs::write(to, &b).await?,
            Data::File(t) => {
                let keep = t.spool_ended();
                if let Some(e) = keep {
                    return Err(e);
                }
                t.persist(to).await?
            }
        }
        Ok(())
    }

    /// The temporary file, to keep or move it yourself (`None` when the data is in memory).
    pub fn into_temp_file(self) -> Option<TempFile> {
        match self.data {
            Data::File(t) => Some(t),
            Data::Memory(_) => None,
        }
    }
}

/// Every part of a multipart body, in order; made by [`HttpContext::multipart_all`].
/// Dropping it removes the temporary files of the parts it still holds.
#[derive(Debug, Default)]
pub struct MultipartForm {
    parts: Vec<Part>,
}

impl MultipartForm {
    /// The text of the first non-file part named `name` (if it is UTF-8).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| !p.is_file() && p.name() == name)
            .and_then(Part::text)
    }

    /// The first file part named `name`.
    pub fn file(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.is_file() && p.name() == name)
    }

    /// Every part named `name`, in order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Part> + 's {
        self.parts.iter().filter(move |p| p.name() == name)
    }

    /// Every part, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Part> {
        self.parts.iter()
    }

    /// The parts, to own them.
    pub fn into_parts(self) -> Vec<Part> {
        self.parts
    }

    /// How many parts there are.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

impl<'s> IntoIterator for &'s MultipartForm {
    type Item = &'s Part;
    type IntoIter = std::slice::Iter<'s, Part>;
    fn into_iter(self) -> Self::IntoIter {
        self.parts.iter()
    }
}

impl IntoIterator for MultipartForm {
    type Item = Part;
    type IntoIter = std::vec::IntoIter<Part>;
    fn into_iter(self) -> Self::IntoIter {
        self.parts.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let b = |ct: &str| boundary_of(Some(ct)).map_err(|e| e.status());
        assert_eq!(b("multipart/form-data; boundary=abc").unwrap(), b"abc");
        assert_eq!(
            b("Multipart/Form-Data; boundary=\"a b:c\"").unwrap(),
            b"a b:c"
        );
        assert_eq!(b("multipart/form-data"), Err(400));
        assert_eq!(b("multipart/form-data; boundary="), Err(400));
        assert_eq!(
            b(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            Err(400)
        );
        assert_eq!(b("multipart/mixed; boundary=abc"), Err(415));
        assert_eq!(b("application/json"), Err(415));
        assert_eq!(boundary_of(None).map_err(|e| e.status()), Err(415));
    }
}
