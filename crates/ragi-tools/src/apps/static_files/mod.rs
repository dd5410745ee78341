//! Static files from a directory: conditional requests, ranges, precompressed siblings,
//! directory indexes and listings, with every path-traversal spelling refused.
//!
//! ```no_run
//! use ragi_tools::apps::static_files::StaticFiles;
//! use ragi_tools::router::Router;
//!
//! # fn main() -> std::io::Result<()> {
//! // `/assets/app.js` → `/srv/www/app.js`, with `Cache-Control` on every file it sends.
//! let assets = StaticFiles::new("/srv/www")?
//!     .header("cache-control", "public, max-age=3600");
//! let app = Router::new().mount("/assets", assets);
//!
//! // A single-page app: unknown paths get `index.html`, the client-side router does the rest.
//! let spa = StaticFiles::new("/srv/spa")?.spa(true);
//! # let _ = (app, spa);
//! # Ok(()) }
//! ```
//!
//! # What a request gets
//!
//! * **GET and HEAD** on a regular file: everything of the core's file sending
//!   ([`FileResponse`]): `Content-Type` from the extension (`mime_guess`, with
//!   `; charset=utf-8` on text types), `Content-Length`, `ETag`, `Last-Modified`,
//!   `Accept-Ranges`, the RFC 9110 preconditions in their order (412, 304), single ranges and
//!   multi-range `multipart/byteranges` (206), 416 with `Content-Range: bytes */size`. HEAD
//!   gets GET's fields and no body.
//! * **Other methods**: `405` with `Allow: GET, HEAD` when the path names something this app
//!   would serve to a GET, `404` otherwise (RFC 9110 §15.5.6: the method is not supported by
//!   *the target resource*; and a [`Cascade`](super::cascade::Cascade) with static files in
//!   front of an app passes a POST for an unknown path on to the app).
//! * **Paths** are taken from `raw_path` (what is left after a mount) and decoded once, segment
//!   by segment; `..` and `.` in any spelling (`%2e%2e`), an encoded `/` (`%2f`), a
//!   backslash, a NUL are refused with 404; a double-encoded `%252e%252e` is the literal name
//!   `%2e%2e`. Names that start with `.` are 404 too (dotfiles: `.env`, `.git/`), except a
//!   first segment `.well-known` (RFC 8615), unless [`dotfiles`](StaticFiles::dotfiles) is on.
//! * **Containment**: the root is canonicalised when the app is built; every file is
//!   canonicalised and must lie under it component by component (a root `/srv/www` never
//!   serves `/srv/www-evil`). A symlink leading out of the root is 404 unless
//!   [`follow_symlinks`](StaticFiles::follow_symlinks) is on; one that stays inside is served.
//! * **Directories**: `/dir` → `308` to `/dir/`, keeping the query and the `root_path` (the
//!   Location is built from the normalised path, so `//evil.example` can never become a
//!   protocol-relative redirect); `/dir/` → its `index.html`
//!   ([`index`](StaticFiles::index)); without one, a listing when
//!   [`listing`](StaticFiles::listing) is on, 404 otherwise. `file/` (a file asked as a
//!   directory) is 404.
//! * **Precompressed siblings** (on by default for `.br`, `.zst`, `.gz`;
//!   [`precompressed`](StaticFiles::precompressed)): the best coding by the request's
//!   `Accept-Encoding` q-values (`q=0` excludes) whose sibling exists, is a regular file under
//!   the root and is not older than the file, is sent with `Content-Encoding`, the original's
//!   `Content-Type`, and an `ETag` of its own (the sibling's tag with `-br`/`-zst`/`-gz`
//!   appended, so no cache mixes the variants); ranges and preconditions apply to the
//!   variant's bytes, as they must (the bytes on the wire). `Vary: Accept-Encoding` goes on
//!   every file response while precompression is configured, identity included. A sibling
//!   asked for by name (`/app.js.gz`) is a plain file (`application/gzip`, no
//!   `Content-Encoding`).
//! * **SPA mode** ([`spa`](StaticFiles::spa), `ragi serve --spa`): a GET or HEAD for a path
//!   that names nothing gets the root's `index.html` (200). Refused paths (traversal,
//!   dotfiles) stay 404.
//! * **Other scopes**: a WebSocket handshake gets a 404 denial; an `sse` scope (a request that
//!   also accepts `text/event-stream`) is answered as a plain request; lifespan is declined.
//!
//! # When the client leaves
//!
//! A file larger than 64 KiB is sent as a file region: the server reads it in 64 KiB pieces as
//! the client takes them and stops at the first piece after the client left (in the decline
//! framing of an `sse` scope, the toolkit's writer does the same). A smaller one is read
//! whole with its metadata and sent from memory. A client that left while the lookup ran gets
//! nothing sent.
//!
//! # Blocking
//!
//! A request's lookup is a handful of calls on one inode: `open` (with `O_NONBLOCK`, so a
//! FIFO in the root cannot stall anything), `fstat` and `readlink` on the descriptor, the
//! `read` of a small file, `close`, plus one `stat` per precompressed coding the client
//! accepts. On a local file system they cost microseconds, far less than handing the work to
//! another thread and back (measured with `ragi serve` on a 1 KiB file: 8 µs of CPU per
//! request inline, 11 µs with the hand-off, and half the requests per second), so by default they run on the task that serves the request, as nginx runs them on
//! its event loop. On a network or FUSE file system, where one `open` can stall for long,
//! [`offload_lookups`](StaticFiles::offload_lookups) moves them to tokio's blocking pool.
//! A directory listing (`readdir` of any size, a `stat` per entry) always runs on the blocking
//! pool. Reading a large file's body is the server's.
//!
//! # References
//!
//! tower-http's `ServeDir` (preconditions, precompressed siblings, `/dir` → `/dir/`) is the
//! closest model; ragi departs from it where it is wrong or missing: a multi-range request is
//! served (tower-http answers 416), a malformed `Range` is ignored (tower-http 416),
//! symlinks out of the root are refused (tower-http follows them), dotfiles are hidden,
//! `Allow` goes with the 405, text types carry a charset, the directory redirect is 308
//! (tower-http 307: a permanent move keeps the method too), and directory listings exist
//! (PAGI's `App::Directory`). PAGI's `App::File` accepts a sibling-prefix root
//! (`/srv/www-evil` for `/srv/www`); Starlette puts the multipart boundary in the wrong
//! header and checks `If-Modified-Since` after a failed `If-None-Match`. Each of those is a
//! regression test.

mod encoding;
mod listing;
mod path;
mod resolve;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use ragi::{
    App, AppResult, BoxFuture, Headers, Receiver, Scope, ScopeKind, Sender, UnsupportedScope,
};

pub use encoding::Encoding;

use self::resolve::{Found, Lookup, Settings};
use crate::response::conditional::EntityTag;
use crate::response::file::content_type_for;
use crate::response::FileResponse;
use crate::{Error, IntoResponse, Responder, Response};

/// The static-file app. See the [module documentation](self).
#[derive(Clone)]
pub struct StaticFiles {
    cfg: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    settings: Settings,
    precompressed: Vec<Encoding>,
    headers: Headers,
    offload: bool,
}

impl std::fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.cfg.settings;
        f.debug_struct("StaticFiles")
            .field("root", &s.root)
            .field("index", &s.index)
            .field("listing", &s.listing)
            .field("spa", &s.spa)
            .field("follow_symlinks", &s.follow_symlinks)
            .field("dotfiles", &s.dotfiles)
            .field("precompressed", &self.cfg.precompressed)
            .field("offload_lookups", &self.cfg.offload)
            .finish()
    }
}

impl StaticFiles {
    /// Serves the directory `root`. It is canonicalised now (symlinks in it resolved once):
    /// an error when it does not exist or is not a directory, naming it.
    ///
    /// Defaults: index `index.html`, directory redirects on, precompressed siblings
    /// `.br`, `.zst`, `.gz`; listing, SPA mode, dotfiles and following symlinks out of the
    /// root off.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let given = root.as_ref();
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", given.display()));
        let root = std::fs::canonicalize(given).map_err(named)?;
        if !std::fs::metadata(&root).map_err(named)?.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{}: not a directory", given.display()),
            ));
        }
        Ok(Self {
            cfg: Arc::new(Config {
                settings: Settings {
                    root,
                    follow_symlinks: false,
                    index: Some(OsString::from("index.html")),
                    listing: false,
                    dotfiles: false,
                    spa: false,
                    redirect_dirs: true,
                },
                precompressed: Encoding::ALL.to_vec(),
                headers: Headers::new(),
                offload: false,
            }),
        })
    }

    fn settings(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.cfg)
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.cfg.settings.root
    }

    /// Lists directories that have no index (HTML, or JSON by `Accept`). Off by default.
    pub fn listing(mut self, on: bool) -> Self {
        self.settings().settings.listing = on;
        self
    }

    /// SPA mode: a GET or HEAD for a path that names nothing gets the root's index file.
    /// Off by default.
    pub fn spa(mut self, on: bool) -> Self {
        self.settings().settings.spa = on;
        self
    }

    /// Serves files through symlinks whose target lies outside the root. Off by default:
    /// such a symlink is a 404 (symlinks inside the root are always followed).
    pub fn follow_symlinks(mut self, on: bool) -> Self {
        self.settings().settings.follow_symlinks = on;
        self
    }

    /// Serves names that start with `.` (and lists them). Off by default: they are 404,
    /// except a first segment `.well-known`.
    pub fn dotfiles(mut self, on: bool) -> Self {
        self.settings().settings.dotfiles = on;
        self
    }

    /// The file served for a directory asked with its trailing slash (and in SPA mode), or
    /// `None` for none. `index.html` by default.
    pub fn index(mut self, name: Option<&str>) -> Self {
        self.settings().settings.index = name.map(OsString::from);
        self
    }

    /// Whether `/dir` is redirected (308) to `/dir/`; when off it is a 404. On by default.
    pub fn redirect_directories(mut self, on: bool) -> Self {
        self.settings().settings.redirect_dirs = on;
        self
    }

    /// The precompressed codings looked for, in order of preference on equal q-values
    /// (`&[]` turns precompressed siblings off). Default: brotli, zstd, gzip.
    pub fn precompressed(mut self, codings: &[Encoding]) -> Self {
        let mut list: Vec<Encoding> = Vec::new();
        for c in codings {
            if !list.contains(c) {
                list.push(*c);
            }
        }
        self.settings().precompressed = list;
        self
    }

    /// Runs each request's lookup (open, `fstat`, the descriptor's path, sibling probes, a
    /// small file's read) on tokio's blocking pool instead of the task that serves the
    /// request. Off by default: on a local file system these few calls on one inode cost
    /// microseconds, far less than the hand-off to another thread; switch it on for a
    /// network or FUSE file system, where one `open` can stall for long. Directory listings
    /// always run on the blocking pool.
    pub fn offload_lookups(mut self, on: bool) -> Self {
        self.settings().offload = on;
        self
    }

    /// Adds a header to every file response (200, 206, and 304 for the fields a 304
    /// repeats, such as `Cache-Control`).
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.settings().headers.push(name, value);
        self
    }

    /// The response to `scope`'s request (an `http` or `sse` scope).
    pub async fn respond(&self, scope: &Scope) -> Response {
        self.cfg.clone().respond(scope).await
    }
}

impl App for StaticFiles {
    fn call(
        &self,
        scope: Scope,
        _receive: Receiver,
        send: Sender,
    ) -> BoxFuture<'static, AppResult> {
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let response = match scope.kind {
                ScopeKind::Http | ScopeKind::Sse => cfg.respond(&scope).await,
                ScopeKind::WebSocket => Error::not_found().into_response(),
                other => return Err(UnsupportedScope(other).into()),
            };
            Responder::new(&scope, send).complete(response).await
        })
    }
}

const ALLOW: &str = "GET, HEAD";

impl Config {
    async fn respond(self: Arc<Self>, scope: &Scope) -> Response {
        let method = &scope.method;
        let get_or_head = *method == Method::GET || *method == Method::HEAD;
        let Ok(rel) = path::parse(&scope.raw_path, self.settings.dotfiles) else {
            return Error::not_found().into_response();
        };
        let codings = if get_or_head {
            encoding::candidates(
                scope.headers.get_all("accept-encoding").map(|v| &v[..]),
                &self.precompressed,
            )
        } else {
            Vec::new()
        };
        // A small file's bytes are read with its metadata when the answer will carry them
        // (a GET that is not conditional; ranges are cut from them).
        let want_body = *method == Method::GET
            && ![
                "if-none-match",
                "if-modified-since",
                "if-match",
                "if-unmodified-since",
            ]
            .iter()
            .any(|h| scope.headers.contains(h));
        let lookup = if self.offload {
            let cfg = self.clone();
            let rel = rel.clone();
            match tokio::task::spawn_blocking(move || {
                cfg.settings.resolve(&rel, &codings, want_body)
            })
            .await
            {
                Ok(l) => l,
                Err(e) => return Error::internal(e).into_response(),
            }
        } else {
            self.settings.resolve(&rel, &codings, want_body)
        };
        if !get_or_head {
            return match lookup {
                Lookup::NotFound | Lookup::Forbidden => Error::not_found().into_response(),
                Lookup::Failed(e) => Error::internal(e).into_response(),
                _ => Error::method_not_allowed(ALLOW).into_response(),
            };
        }
        match lookup {
            Lookup::File(found) => self.file(*found, scope),
            Lookup::Redirect => {
                let mut location = encode_root_path(&scope.root_path);
                location.push_str(&rel.raw_normalised(true));
                if !scope.query_string.is_empty() {
                    location.push('?');
                    location.push_str(&String::from_utf8_lossy(&scope.query_string));
                }
                Response::permanent_redirect(location)
            }
            Lookup::List(dir) => {
                // A directory of any size: always read on the blocking pool.
                let cfg = self.clone();
                let entries = match tokio::task::spawn_blocking(move || cfg.settings.list(&dir))
                    .await
                {
                    Ok(Ok(entries)) => entries,
                    Ok(Err(resolve::Miss::NotFound)) => return Error::not_found().into_response(),
                    Ok(Err(resolve::Miss::Forbidden)) => {
                        return Error::new(403, "forbidden").into_response()
                    }
                    Ok(Err(resolve::Miss::Failed(e))) => return Error::internal(e).into_response(),
                    Err(e) => return Error::internal(e).into_response(),
                };
                let mut shown = scope.root_path.clone();
                shown.push('/');
                for s in rel.segments() {
                    shown.push_str(&String::from_utf8_lossy(s));
                    shown.push('/');
                }
                listing::render(
                    &entries,
                    &shown,
                    !rel.is_root(),
                    scope.headers.get("accept").map(|v| &v[..]),
                )
            }
            Lookup::NotFound => Error::not_found().into_response(),
            Lookup::Forbidden => Error::new(403, "forbidden").into_response(),
            Lookup::Failed(e) => Error::internal(e).into_response(),
        }
    }

    fn file(&self, found: Found, scope: &Scope) -> Response {
        let mut f = FileResponse::from_metadata(&found.path, &found.meta);
        // The type is the requested name's (a symlink's target or a `.gz` sibling may have
        // another extension).
        if found.path.extension() != found.named.extension() {
            f = f.content_type(Some(content_type_for(&found.named)));
        }
        if let Some(b) = found.contents {
            f = f.contents(b);
        }
        if let Some(coding) = found.encoding {
            let tag = f.validators().etag.clone().map(|t| variant_tag(&t, coding));
            f = f.etag(tag).header("content-encoding", coding.token());
        }
        if !self.precompressed.is_empty() {
            f = f.header("vary", "accept-encoding");
        }
        for (n, v) in &self.headers {
            f = f.header(n.clone(), v.clone());
        }
        f.respond(&scope.method, &scope.headers)
    }
}

/// The tag of a precompressed variant: the sibling's tag with the coding's extension
/// appended, weak when the sibling's is.
fn variant_tag(tag: &EntityTag, coding: Encoding) -> EntityTag {
    let t = format!("{}-{}", tag.tag(), coding.extension());
    let t = EntityTag::strong(t).expect("an entity tag with an ASCII suffix");
    if tag.is_weak() {
        t.into_weak()
    } else {
        t
    }
}

/// A decoded `root_path` as the start of a Location: each segment percent-encoded.
fn encode_root_path(root: &str) -> String {
    let mut out = String::with_capacity(root.len());
    for &b in root.trim_end_matches('/').as_bytes() {
        if b == b'/' || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
