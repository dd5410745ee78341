//! The file-system half of the static-file app: from a checked relative path to what to send.
//!
//! **Containment.** The root was canonicalised when the app was built. A candidate is joined
//! to it (the relative path holds no `..`, no separator and no NUL, see `path`) and opened
//! (`O_NONBLOCK`, so that a FIFO cannot stall the thread; symlinks followed); the opened
//! file's **canonical path** is then read back from the descriptor (`/proc/self/fd/N` on
//! Linux: one `readlink`, whatever the depth; `realpath` elsewhere) and kept only when it lies
//! under the root **component by component** (`Path::starts_with`): `/srv/www-evil` is not
//! under `/srv/www`, which PAGI's string prefix check accepts. A symlink whose target leaves
//! the root is therefore refused (404) unless following is switched on; one that stays inside
//! is served. tower-http's `ServeDir` follows every symlink. Because the path is taken from
//! the descriptor that was opened, what is checked is what was opened.
//!
//! The metadata comes from the same descriptor (`fstat`), and so does the body of a small
//! file (see [`INLINE_MAX`]): one `openat`, `fstat`, `readlink`, `read`, `close` per request,
//! the bytes sent from memory; a larger file is sent as a region of its canonical path, which
//! the server reads as the client takes it. (A large file replaced between this lookup and
//! the server's read is read anew: a shorter one aborts the response, a longer one is cut at
//! the announced length; see [`crate::response::file`].)

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;

use super::encoding::Encoding;
use super::path::RelPath;

/// Files up to this size are read through the descriptor the lookup opened and sent from
/// memory (when the request wants their bytes); larger ones are sent as file regions.
pub(crate) const INLINE_MAX: u64 = 64 * 1024;

/// What the lookup settled on.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Send this file.
    File(Box<Found>),
    /// A directory asked for without its trailing slash: redirect to it.
    Redirect,
    /// A directory without an index, listing on: list this (canonical) directory.
    List(PathBuf),
    /// Nothing to send (missing, refused, outside the root).
    NotFound,
    /// The file exists but may not be read.
    Forbidden,
    /// Any other failure (logged, 500).
    Failed(io::Error),
}

/// A file to send.
#[derive(Debug)]
pub(crate) struct Found {
    /// The path the request named (its extension gives the content type).
    pub(crate) named: PathBuf,
    /// The file to read (canonical; a precompressed sibling when `encoding` is set).
    pub(crate) path: PathBuf,
    /// Its metadata.
    pub(crate) meta: Metadata,
    /// The coding of the precompressed sibling chosen, if one was.
    pub(crate) encoding: Option<Encoding>,
    /// Its bytes, when it is small and the request wants them.
    pub(crate) contents: Option<Bytes>,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The file name as stored.
    pub(crate) name: OsString,
    /// Whether it is a directory (after following a symlink).
    pub(crate) is_dir: bool,
    /// Its size in bytes (0 for directories).
    pub(crate) size: u64,
    /// Its modification time, when known.
    pub(crate) modified: Option<SystemTime>,
}

/// The settings the lookup needs.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) root: PathBuf,
    pub(crate) follow_symlinks: bool,
    pub(crate) index: Option<OsString>,
    pub(crate) listing: bool,
    pub(crate) dotfiles: bool,
    pub(crate) spa: bool,
    pub(crate) redirect_dirs: bool,
}

/// Why a candidate is not there.
pub(crate) enum Miss {
    NotFound,
    Forbidden,
    Failed(io::Error),
}

impl From<Miss> for Lookup {
    fn from(m: Miss) -> Self {
        match m {
            Miss::NotFound => Lookup::NotFound,
            Miss::Forbidden => Lookup::Forbidden,
            Miss::Failed(e) => Lookup::Failed(e),
        }
    }
}

fn miss(e: io::Error) -> Miss {
    use io::ErrorKind as K;
    // ENAMETOOLONG and ELOOP have no stable `ErrorKind` at this crate's minimum Rust version.
    #[cfg(target_os = "linux")]
    const OS_NOT_FOUND: [i32; 2] = [36, 40];
    #[cfg(all(unix, not(target_os = "linux")))]
    const OS_NOT_FOUND: [i32; 2] = [63, 62];
    #[cfg(not(unix))]
    const OS_NOT_FOUND: [i32; 2] = [206, 1921];
    match e.kind() {
        K::NotFound | K::NotADirectory | K::IsADirectory | K::InvalidInput => Miss::NotFound,
        K::PermissionDenied => Miss::Forbidden,
        _ if e.raw_os_error().is_some_and(|c| OS_NOT_FOUND.contains(&c)) => Miss::NotFound,
        _ => Miss::Failed(e),
    }
}

/// Whether the canonical `path` lies under the canonical `root`, component by component:
/// `root` itself, or `root` followed by a separator. (Both are canonical: absolute, no `.`,
/// `..` or repeated separators, so comparing bytes is comparing components.)
pub(crate) fn is_under(path: &Path, root: &Path) -> bool {
    let (p, r) = (
        path.as_os_str().as_encoded_bytes(),
        root.as_os_str().as_encoded_bytes(),
    );
    if r == b"/" {
        return p.starts_with(b"/");
    }
    p.starts_with(r) && (p.len() == r.len() || p[r.len()] == b'/')
}

/// Opens `path` for reading without blocking on a FIFO or a device.
fn open(path: &Path) -> io::Result<File> {
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK);
    }
    o.open(path)
}

/// The canonical path of the open `file`, which was opened as `opened`.
fn canonical(file: &File, opened: &Path) -> io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // The kernel's name for what the descriptor refers to: symlinks resolved, `..`
        // impossible. A file deleted since has " (deleted)" appended and fails the
        // containment check at worst (a 404), never the other way round.
        if let Ok(p) = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            if p.is_absolute() {
                return Ok(p);
            }
        }
    }
    let _ = file;
    fs::canonicalize(opened)
}

impl Settings {
    /// `full` opened, canonicalised from the descriptor, kept under the root: the file, its
    /// canonical path and its metadata.
    fn locate(&self, full: &Path) -> Result<(File, PathBuf, Metadata), Miss> {
        let file = open(full).map_err(miss)?;
        let meta = file.metadata().map_err(miss)?;
        let canon = canonical(&file, full).map_err(miss)?;
        if !self.follow_symlinks && !is_under(&canon, &self.root) {
            return Err(Miss::NotFound);
        }
        Ok((file, canon, meta))
    }

    /// The lookup for `rel`, trying the precompressed codings `codings` in order; a small
    /// file's bytes are read when `want_body`.
    pub(crate) fn resolve(&self, rel: &RelPath, codings: &[Encoding], want_body: bool) -> Lookup {
        let found = self.resolve_path(rel, codings, want_body);
        if self.spa && matches!(found, Lookup::NotFound) {
            if let Some(index) = &self.index {
                // The app's own index.html, for every path the client-side router owns.
                let named = self.root.join(index);
                return match self.file(named, codings, want_body) {
                    Ok(f) => Lookup::File(Box::new(f)),
                    Err(m) => m.into(),
                };
            }
        }
        found
    }

    fn resolve_path(&self, rel: &RelPath, codings: &[Encoding], want_body: bool) -> Lookup {
        let full = rel.join_to(&self.root);
        let (file, canon, meta) = match self.locate(&full) {
            Ok(x) => x,
            Err(m) => return m.into(),
        };
        if !meta.is_dir() {
            if rel.trailing_slash || !meta.is_file() {
                // `x/` that is a file, or a device, socket or FIFO.
                return Lookup::NotFound;
            }
            let f = self.with_variant(full, file, canon, meta, codings, want_body);
            return Lookup::File(Box::new(f));
        }
        drop(file);
        if !rel.trailing_slash && !rel.is_root() {
            return if self.redirect_dirs {
                Lookup::Redirect
            } else {
                Lookup::NotFound
            };
        }
        if let Some(index) = &self.index {
            match self.file(full.join(index), codings, want_body) {
                Ok(f) => return Lookup::File(Box::new(f)),
                Err(Miss::NotFound) => {}
                Err(m) => return m.into(),
            }
        }
        if self.listing {
            return Lookup::List(canon);
        }
        Lookup::NotFound
    }

    /// The regular file at `named` (or its precompressed sibling).
    fn file(&self, named: PathBuf, codings: &[Encoding], want_body: bool) -> Result<Found, Miss> {
        let (file, canon, meta) = self.locate(&named)?;
        if !meta.is_file() {
            return Err(Miss::NotFound);
        }
        Ok(self.with_variant(named, file, canon, meta, codings, want_body))
    }

    /// The first sibling of `named` in `codings` that exists, is a regular file under the
    /// root, and is not older than the file itself (a stale `.gz` left behind by an old build
    /// is not served for new content); the file itself otherwise.
    fn with_variant(
        &self,
        named: PathBuf,
        file: File,
        canon: PathBuf,
        meta: Metadata,
        codings: &[Encoding],
        want_body: bool,
    ) -> Found {
        for &coding in codings {
            let mut sibling = named.clone().into_os_string();
            sibling.push(".");
            sibling.push(coding.extension());
            let sibling = PathBuf::from(sibling);
            // One stat first: most files have no sibling, and a missing one ends here.
            if !fs::metadata(&sibling).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let Ok((sfile, path, smeta)) = self.locate(&sibling) else {
                continue;
            };
            let fresh = match (smeta.modified(), meta.modified()) {
                (Ok(s), Ok(o)) => s >= o,
                _ => true,
            };
            if smeta.is_file() && fresh {
                let contents = read_small(sfile, &smeta, want_body);
                return Found {
                    named,
                    path,
                    meta: smeta,
                    encoding: Some(coding),
                    contents,
                };
            }
        }
        let contents = read_small(file, &meta, want_body);
        Found {
            named,
            path: canon,
            meta,
            encoding: None,
            contents,
        }
    }

    /// The entries of the directory `dir`: hidden names skipped unless dotfiles are served,
    /// symlinks leading out of the root skipped unless followed, directories first, then by
    /// name.
    pub(crate) fn list(&self, dir: &Path) -> Result<Vec<Entry>, Miss> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(miss)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            if !self.dotfiles && name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let meta = if kind.is_symlink() {
                match self.locate(&entry.path()) {
                    Ok((_, _, m)) => m,
                    Err(_) => continue,
                }
            } else {
                match entry.metadata() {
                    Ok(m) => m,
                    Err(_) => continue,
                }
            };
            let is_dir = meta.is_dir();
            if !is_dir && !meta.is_file() {
                continue;
            }
            out.push(Entry {
                name,
                is_dir,
                size: if is_dir { 0 } else { meta.len() },
                modified: meta.modified().ok(),
            });
        }
        out.sort_by(|a, b| {
            b.is_dir
                .cmp(&a.is_dir)
                .then_with(|| a.name.as_encoded_bytes().cmp(b.name.as_encoded_bytes()))
        });
        Ok(out)
    }
}

/// The whole of a small file through its open descriptor, when the request wants it; `None`
/// (the body is then a file region) for a large file, or when the read does not give exactly
/// the size `fstat` reported (the file is being changed).
fn read_small(mut file: File, meta: &Metadata, want_body: bool) -> Option<Bytes> {
    let len = meta.len();
    if !want_body || len == 0 || len > INLINE_MAX {
        return None;
    }
    // One read of one byte more than announced: a regular file reads short only at its end,
    // so exactly `len` bytes is the whole file, and `len + 1` a file that grew.
    let mut buf = vec![0u8; len as usize + 1];
    match file.read(&mut buf) {
        Ok(n) if n as u64 == len => {
            buf.truncate(n);
            Some(Bytes::from(buf))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_is_by_component() {
        let root = Path::new("/srv/www");
        for (p, under) in [
            ("/srv/www", true),
            ("/srv/www/a", true),
            ("/srv/www/a/b", true),
            ("/srv/www-evil", false),
            ("/srv/www-evil/a", false),
            ("/srv/wwwx", false),
            ("/srv", false),
            ("/srv/ww", false),
            ("/", false),
        ] {
            assert_eq!(is_under(Path::new(p), root), under, "{p}");
            assert_eq!(Path::new(p).starts_with(root), under, "{p} (std)");
        }
        assert!(is_under(Path::new("/anything"), Path::new("/")));
    }
}
