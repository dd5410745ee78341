//! The file-system half of the static-file app: from a checked relative path to what to send.
//! Everything here blocks (it runs on tokio's blocking pool, one task per request).
//!
//! **Containment.** The root was canonicalised when the app was built. A candidate is joined
//! to it (the relative path holds no `..`, no separator and no NUL, see `path`), then
//! canonicalised (`realpath`: every symlink resolved), and kept only when the result lies
//! under the root **component by component** (`Path::starts_with`): `/srv/www-evil` is not
//! under `/srv/www`, which PAGI's string prefix check accepts. A symlink whose target leaves
//! the root is therefore refused (404) unless following is switched on; one that stays inside
//! is served. tower-http's `ServeDir` follows every symlink.
//!
//! The file is opened once to prove it is readable (a 403 now rather than a response aborted
//! after its head), and its metadata is taken from the open file. The response names the
//! canonical path, so the server's own open does not walk the symlinks again.
//!
//! A file replaced between this lookup and the server's read is read anew (the body is named
//! by path): a shorter one aborts the response, a longer one is cut at the announced length
//! (see [`crate::response::file`]).

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::encoding::Encoding;
use super::path::RelPath;

/// What the lookup settled on.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Send this file.
    File(Box<Found>),
    /// A directory asked for without its trailing slash: redirect to it.
    Redirect,
    /// A directory without an index, listing on: its entries.
    Listing(Vec<Entry>),
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
enum Miss {
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

impl Settings {
    /// `full` canonicalised, kept under the root, opened: its canonical path and metadata.
    fn locate(&self, full: &Path) -> Result<(PathBuf, Metadata), Miss> {
        let canon = fs::canonicalize(full).map_err(miss)?;
        if !self.follow_symlinks && !canon.starts_with(&self.root) {
            return Err(Miss::NotFound);
        }
        let file = File::open(&canon).map_err(miss)?;
        let meta = file.metadata().map_err(miss)?;
        Ok((canon, meta))
    }

    /// The lookup for `rel`, trying the precompressed codings `codings` in order.
    pub(crate) fn resolve(&self, rel: &RelPath, codings: &[Encoding]) -> Lookup {
        let found = self.resolve_path(rel, codings);
        if self.spa && matches!(found, Lookup::NotFound) {
            if let Some(index) = &self.index {
                // The app's own index.html, for every path the client-side router owns.
                let named = self.root.join(index);
                return match self.file(named, codings) {
                    Ok(f) => Lookup::File(Box::new(f)),
                    Err(m) => m.into(),
                };
            }
        }
        found
    }

    fn resolve_path(&self, rel: &RelPath, codings: &[Encoding]) -> Lookup {
        let full = self.root.join(rel.to_path());
        let (canon, meta) = match self.locate(&full) {
            Ok(x) => x,
            Err(m) => return m.into(),
        };
        if !meta.is_dir() {
            if rel.trailing_slash || !meta.is_file() {
                // `x/` that is a file, or a device, socket or FIFO.
                return Lookup::NotFound;
            }
            return Lookup::File(Box::new(self.with_variant(full, canon, meta, codings)));
        }
        if !rel.trailing_slash && !rel.is_root() {
            return if self.redirect_dirs {
                Lookup::Redirect
            } else {
                Lookup::NotFound
            };
        }
        if let Some(index) = &self.index {
            match self.file(full.join(index), codings) {
                Ok(f) => return Lookup::File(Box::new(f)),
                Err(Miss::NotFound) => {}
                Err(m) => return m.into(),
            }
        }
        if self.listing {
            return match self.list(&canon) {
                Ok(entries) => Lookup::Listing(entries),
                Err(m) => m.into(),
            };
        }
        Lookup::NotFound
    }

    /// The regular file at `named` (or its precompressed sibling).
    fn file(&self, named: PathBuf, codings: &[Encoding]) -> Result<Found, Miss> {
        let (canon, meta) = self.locate(&named)?;
        if !meta.is_file() {
            return Err(Miss::NotFound);
        }
        Ok(self.with_variant(named, canon, meta, codings))
    }

    /// The first sibling of `named` in `codings` that exists, is a regular file under the
    /// root, and is not older than the file itself (a stale `.gz` left behind by an old build
    /// is not served for new content); the file itself otherwise.
    fn with_variant(
        &self,
        named: PathBuf,
        canon: PathBuf,
        meta: Metadata,
        codings: &[Encoding],
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
            let Ok((path, smeta)) = self.locate(&sibling) else {
                continue;
            };
            let fresh = match (smeta.modified(), meta.modified()) {
                (Ok(s), Ok(o)) => s >= o,
                _ => true,
            };
            if smeta.is_file() && fresh {
                return Found {
                    named,
                    path,
                    meta: smeta,
                    encoding: Some(coding),
                };
            }
        }
        Found {
            named,
            path: canon,
            meta,
            encoding: None,
        }
    }

    /// The entries of the directory `dir`: hidden names skipped unless dotfiles are served,
    /// symlinks leading out of the root skipped unless followed, directories first, then by
    /// name.
    fn list(&self, dir: &Path) -> Result<Vec<Entry>, Miss> {
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
                    Ok((_, m)) => m,
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
