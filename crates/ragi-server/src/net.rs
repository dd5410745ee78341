//! Where connections come from: TCP and Unix-domain listening sockets, and the one stream type
//! the drivers read and write.
//!
//! [`ListenAddr`] is what `--listen` says: `127.0.0.1:8000`, `[::1]:8000`, or
//! `unix:/run/app.sock`. The server binds it; every accepted connection, of either kind, is one
//! stream type with the readiness calls the HTTP/1.1 driver needs (it watches the socket
//! without reading: see the crate documentation on detection). A match on two variants per
//! call is what that costs; a driver generic over the socket would be compiled twice.
//!
//! # Unix-domain sockets
//!
//! * **Stale sockets.** Binding a path where a socket file already exists first tries to
//!   connect to it: refused means no process listens there (a crashed server left it), so the
//!   file is removed and bound again; a live server there is an error, and so is a path that
//!   exists and is not a socket (a regular file is never removed).
//! * **Permissions.** The socket is made `0o660` after binding ([`Config::unix_socket_mode`]):
//!   its owner and group may connect, others may not. A reverse proxy running as another user
//!   connects through the group (e.g. `Group=www-data` in a systemd unit), or the mode is
//!   widened.
//! * **Clean-up.** The socket file is removed when the server stops, unless another socket has
//!   replaced it meanwhile (its device and inode are compared).
//! * **Facts.** A Unix peer has no IP address: the scope's `client` and `server` are `None`,
//!   the lifecycle notices carry the unspecified address `0.0.0.0:0` and the socket's path
//!   ([`Accepted::unix_path`](crate::lifecycle::Accepted::unix_path)), the access log writes
//!   `unix:` as the client, and the address filter does not apply (the socket's permissions
//!   do). HTTP/1.1, HTTP/2 (prior knowledge), TLS and WebSocket work as over TCP.
//!
//! [`Config::unix_socket_mode`]: crate::Config::unix_socket_mode

use std::fmt;
use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf, Ready};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::Error;

/// An address to listen on: a TCP socket address or a Unix-domain socket path.
///
/// Parsed from and displayed as `127.0.0.1:8000`, `[::1]:8000` or `unix:/run/app.sock`.
///
/// ```
/// use ragi_server::ListenAddr;
///
/// let tcp: ListenAddr = "127.0.0.1:8000".parse().unwrap();
/// let unix: ListenAddr = "unix:/run/app.sock".parse().unwrap();
/// assert_eq!(unix.to_string(), "unix:/run/app.sock");
/// assert!(matches!(tcp, ListenAddr::Tcp(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address (port 0 picks a free port).
    Tcp(SocketAddr),
    /// A Unix-domain socket at this path.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("{s:?}: no path after unix:"));
            }
            if path.starts_with('@') || path.contains('\0') {
                return Err(format!(
                    "{s:?}: abstract Unix socket names are not supported; give a file path"
                ));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(ListenAddr::Tcp)
            .map_err(|_| format!("{s:?} is not an address (IP:PORT, [IPv6]:PORT or unix:/PATH)"))
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(a: SocketAddr) -> Self {
        ListenAddr::Tcp(a)
    }
}

/// The address a Unix-domain connection reports where an IP address is expected: `0.0.0.0:0`
/// (port 0 is never a TCP peer's port, so it cannot be mistaken for one).
pub(crate) const NO_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// `Some(addr)` unless it is [`NO_ADDR`] (a Unix-domain connection): the scope's
/// `client`/`server`.
pub(crate) fn known(addr: SocketAddr) -> Option<SocketAddr> {
    (addr != NO_ADDR).then_some(addr)
}

/// A bound listening socket.
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, Arc<UnixPath>),
}

/// A Unix socket file this server created; removed on drop if it is still the one bound.
pub(crate) struct UnixPath {
    pub(crate) path: Arc<Path>,
    dev_ino: Option<(u64, u64)>,
}

impl Drop for UnixPath {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if Some((m.dev(), m.ino())) == self.dev_ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Listener {
    /// Binds `addr`; a Unix socket gets `mode` (see the [module documentation](self)).
    pub(crate) fn bind(addr: &ListenAddr, mode: u32) -> Result<Listener, Error> {
        match addr {
            ListenAddr::Tcp(a) => bind_tcp(*a).map(Listener::Tcp),
            ListenAddr::Unix(p) => bind_unix(p, mode)
                .map(|(l, p)| Listener::Unix(l, Arc::new(p)))
                .map_err(|e| Error::bind(addr, e)),
        }
    }

    /// What it is bound to (the port chosen for port 0).
    pub(crate) fn local(&self) -> Option<ListenAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok().map(ListenAddr::Tcp),
            Listener::Unix(_, p) => Some(ListenAddr::Unix(p.path.to_path_buf())),
        }
    }

    /// The next connection: the stream, the peer's and the local address ([`NO_ADDR`] for a
    /// Unix-domain connection), and the socket's path for a Unix-domain one.
    pub(crate) async fn accept(&self) -> io::Result<Incoming> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let local = s.local_addr().unwrap_or(peer);
                Ok(Incoming {
                    stream: Stream::Tcp(s),
                    peer,
                    local,
                    unix: None,
                })
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                Ok(Incoming {
                    stream: Stream::Unix(s),
                    peer: NO_ADDR,
                    local: NO_ADDR,
                    unix: Some(p.path.clone()),
                })
            }
        }
    }
}

/// An accepted connection.
pub(crate) struct Incoming {
    pub(crate) stream: Stream,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) unix: Option<Arc<Path>>,
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, Error> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| Error::bind(addr, e))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| Error::bind(addr, e))?;
    socket.bind(addr).map_err(|e| Error::bind(addr, e))?;
    socket.listen(4096).map_err(|e| Error::bind(addr, e))
}

fn bind_unix(path: &Path, mode: u32) -> io::Result<(UnixListener, UnixPath)> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // Someone's socket: live, or left by a server that died.
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another server is listening on this socket",
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "removing a stale Unix socket");
                    std::fs::remove_file(path)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket (not removed)",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let dev_ino = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    Ok((
        listener,
        UnixPath {
            path: Arc::from(path),
            dev_ino,
        },
    ))
}

/// An accepted connection's socket: TCP or Unix-domain.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// `$body` with `$s` bound to the TCP stream inline, or the Unix-domain one out of line (see
/// [`unix_arm`]).
macro_rules! hot {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Stream::Tcp($s) => $body,
            Stream::Unix($s) => unix_arm(|| $body),
        }
    };
}

/// The Unix-domain arm of a per-read or per-write call, kept out of line: the TCP arm then
/// compiles into the driver as it did before there were two kinds of stream (measured with
/// `bench/callgrind.sh`: inline, the second arm made the compiler outline the TCP read and its
/// error's drop). A Unix-domain connection pays one call.
#[cold]
#[inline(never)]
fn unix_arm<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `$body` with `$s` bound to the inner stream, whichever it is.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Stream::Tcp($s) => $body,
            Stream::Unix($s) => $body,
        }
    };
}

impl Stream {
    #[inline]
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hot!(self, s => s.poll_read_ready(cx))
    }

    #[inline]
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hot!(self, s => s.poll_write_ready(cx))
    }

    /// Polls `ready(interest)` once (its waker is registered when it is pending).
    pub(crate) fn poll_ready_once(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<Ready>> {
        use std::future::Future;
        hot!(self, s => std::pin::pin!(s.ready(interest)).poll(cx))
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        each!(self, s => s.readable().await)
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        each!(self, s => s.writable().await)
    }

    #[inline]
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        hot!(self, s => s.try_read(buf))
    }

    #[inline]
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        hot!(self, s => s.try_write(buf))
    }

    #[inline]
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        hot!(self, s => s.try_write_vectored(bufs))
    }

    #[inline]
    pub(crate) fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        each!(self, s => s.try_io(interest, f))
    }

    /// `try_read` into `buf`; a short read also clears the read readiness (see
    /// [`read_clearing`]).
    #[inline(always)]
    pub(crate) fn read_clearing(&self, buf: &mut [u8]) -> io::Result<usize> {
        let room = buf.len();
        hot!(self, s => read_clearing(s, room, || s.try_read(buf)))
    }

    /// `try_read_buf` into the spare capacity of `buf`; a short read also clears the read
    /// readiness (see [`read_clearing`]).
    #[inline(always)]
    pub(crate) fn read_clearing_buf(&self, buf: &mut bytes::BytesMut) -> io::Result<usize> {
        let room = buf.capacity() - buf.len();
        hot!(self, s => read_clearing(s, room, || s.try_read_buf(buf)))
    }

    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        each!(self, s => s.take_error())
    }
}

/// The readiness calls [`read_clearing`] needs, on either kind of socket.
trait TryIo {
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

impl TryIo for TcpStream {
    #[inline]
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        TcpStream::try_io(self, interest, f)
    }
}

impl TryIo for UnixStream {
    #[inline]
    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        UnixStream::try_io(self, interest, f)
    }
}

/// Runs `read` (a `try_read` of at most `room` bytes). A short read drained the kernel's
/// buffer: it also clears tokio's read readiness, as tokio's own `poll_read` does, so that the
/// next turn waits for an edge instead of paying a `recv` that says EAGAIN. The readiness is
/// captured (by the outer `try_io`) before the read, so an edge that arrives meanwhile is not
/// cleared with it. Generic over the socket so that each kind's read is one direct call.
#[inline(always)]
fn read_clearing<S: TryIo>(
    io: &S,
    room: usize,
    read: impl FnOnce() -> io::Result<usize>,
) -> io::Result<usize> {
    let mut short = None;
    let r = io.try_io(Interest::READABLE, || match read() {
        Ok(n) if n > 0 && n < room => {
            short = Some(n);
            Err(io::ErrorKind::WouldBlock.into())
        }
        other => other,
    });
    match short {
        Some(n) => {
            // `r` is the `WouldBlock` made above, a plain error kind that owns nothing:
            // forgetting it skips an out-of-line drop on every request's read.
            std::mem::forget(r);
            Ok(n)
        }
        None => r,
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        each!(self, s => s.as_fd())
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A stream that yields `prefix` before reading the socket: the bytes a Unix-domain
/// connection's protocol sniff read (tokio's `UnixStream` cannot peek), given back to the
/// HTTP/2 stack.
pub(crate) struct Rewind<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub(crate) fn new(prefix: bytes::Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_and_print() {
        for s in [
            "127.0.0.1:8000",
            "[::1]:0",
            "unix:/tmp/x.sock",
            "unix:rel.sock",
        ] {
            let a: ListenAddr = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        for bad in [
            "",
            "unix:",
            "unix:@abstract",
            "localhost:80",
            "1.2.3.4",
            "1.2.3.4:99999",
        ] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad:?}");
        }
    }
}
