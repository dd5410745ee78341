//! TLS as an async byte stream, for protocol stacks that want `AsyncRead + AsyncWrite`
//! (the `h2` crate). The HTTP/1.1 driver does not use it: it drives [`TlsSession`] over the raw
//! socket itself, so that it can watch the socket without reading.
//!
//! Reads pull ciphertext from the socket with `try_read` and decrypt it; writes encrypt into a
//! buffer that `poll_flush` writes out. A write first flushes when more than 64 KiB of
//! ciphertext waits, so a client that does not read pushes back on the writer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::net::Stream;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::tls::TlsSession;

/// Ciphertext waiting beyond this makes `poll_write` flush first.
const OUT_HIGH: usize = 64 * 1024;

/// A TLS connection after its handshake, as an async byte stream.
pub(crate) struct TlsIo {
    tcp: Stream,
    session: TlsSession,
    plain: BytesMut,
    out: Vec<u8>,
    eof: bool,
}

impl TlsIo {
    /// Wraps a connection whose handshake is done; `early` is plaintext that came with it.
    pub(crate) fn new(tcp: Stream, session: TlsSession, early: BytesMut) -> Self {
        Self {
            tcp,
            session,
            plain: early,
            out: Vec::new(),
            eof: false,
        }
    }

    fn pump(&mut self) {
        if self.session.wants_write() {
            let _ = self.session.write_tls_into(&mut self.out);
        }
    }

    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_write(&self.out) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(buf.remaining());
                buf.put_slice(&this.plain[..n]);
                this.plain.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof || this.session.peer_closed() {
                return Poll::Ready(Ok(()));
            }
            ready!(this.tcp.poll_read_ready(cx))?;
            let mut tmp = [0u8; 16 * 1024];
            match this.tcp.try_read(&mut tmp) {
                Ok(0) => this.eof = true,
                Ok(n) => {
                    let fed = this.session.feed(&tmp[..n], &mut this.plain);
                    this.pump();
                    if let Err(e) = fed {
                        let _ = this.poll_flush_out(cx);
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() > OUT_HIGH {
            ready!(this.poll_flush_out(cx))?;
        }
        this.session
            .write_plaintext(data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        this.pump();
        // Start writing now; what the socket does not take waits for `poll_flush`.
        let _ = this.poll_flush_out(cx);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.pump();
        this.poll_flush_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.session.send_close_notify();
        this.pump();
        ready!(this.poll_flush_out(cx))?;
        let _ = socket2::SockRef::from(&this.tcp).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}
