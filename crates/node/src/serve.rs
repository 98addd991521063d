//! The bank's HTTP/1.1 server: the accept loop under the router. It bounds what a client can
//! hold without logging in: at most [`CONNECTIONS_MAX`] connections at once (one more is answered
//! 503 `too_many_connections` and closed), a request's head must arrive within
//! [`HEADER_READ_TIMEOUT`] (a client that sends half a request line and stalls, or a kept-alive
//! connection that stays idle that long, is closed), and a head is at most [`HEADER_BYTES_MAX`].
//!
//! hyper answers a request it cannot parse itself (400 for a bad request line, header or
//! `Content-Length`, 414 for a URI too long, 431 for headers too large), with no body, before any
//! service sees it. [`ProblemIo`] recognises those answers as hyper writes them and puts a
//! problem+json answer with `X-Clock` in their place, so every error this bank answers has the
//! same shape (a `axum::serve` would not let us set the timeouts or see the connection).
//!
//! With TLS (a certificate and key in the bank's configuration) the bank serves HTTPS only: each
//! connection's handshake runs in its own task, bounded by [`TLS_HANDSHAKE_TIMEOUT`], and a
//! connection that does not complete it (plain HTTP included) is closed without an answer.
//! [`ProblemIo`] then sits over the TLS stream, where hyper's answers are still plain HTTP.
//! A connection beyond the cap is closed at once over TLS: a plain 503 would be noise to a TLS
//! client, and a handshake for it would spend what the cap protects.

use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use store::SharedClock;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

/// Connections served at once; one more is answered 503 and closed. Above `bank bench`'s largest
/// run (4,096 clients, one connection each) plus the other banks' pools.
pub const CONNECTIONS_MAX: usize = 8192;
/// A request's head (request line and headers) must arrive within this time of the connection
/// being ready for it; a kept-alive connection idle this long is closed too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's head is at most this many bytes (431 beyond; hyper's default is 400 KiB). Its URI
/// is at most 64 KiB (hyper's own bound, 414 beyond).
pub const HEADER_BYTES_MAX: usize = 96 * 1024;
/// A TLS connection's handshake must finish within this time of its accept; the connection holds
/// one of the [`CONNECTIONS_MAX`] places meanwhile.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server allows each client; tests make them small.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    /// Bounds the TLS handshake ([`TLS_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
}

impl Default for EdgeLimits {
    fn default() -> EdgeLimits {
        EdgeLimits {
            connections_max: CONNECTIONS_MAX,
            header_read_timeout: HEADER_READ_TIMEOUT,
            handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Serves `service` on `listener` until `stop` fires, then lets the requests in progress finish
/// (idle connections close at once) and returns. With `tls`, every connection is HTTPS.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    clock: Arc<SharedClock>,
    limits: EdgeLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: oneshot::Receiver<()>,
) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let connections_max = limits.connections_max.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(connections_max));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(HEADER_BYTES_MAX);
    let acceptor = tls.map(TlsAcceptor::from);
    let (stopping, stopped) = watch::channel(false);
    let mut stop = pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if acceptor.is_none() {
                refuse(stream, &clock);
            }
            continue;
        };
        let connection = Connection {
            builder: builder.clone(),
            service: service.clone(),
            clock: clock.clone(),
            remote,
            stopped: stopped.clone(),
        };
        let acceptor = acceptor.clone();
        let handshake_timeout = limits.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let Some(acceptor) = acceptor else {
                return connection.run(stream).await;
            };
            let mut stopped = connection.stopped.clone();
            let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
            tokio::select! {
                // A failed or slow handshake (plain HTTP, an unknown CA at the client) only
                // closes this connection.
                handshake = handshake => if let Ok(Ok(stream)) = handshake {
                    connection.run(stream).await;
                },
                _ = stopped.changed() => {}
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection's task holds a permit until it ends.
    let all = u32::try_from(connections_max).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

/// What serving one connection takes, its transport aside.
struct Connection<S> {
    builder: hyper::server::conn::http1::Builder,
    service: S,
    clock: Arc<SharedClock>,
    remote: std::net::SocketAddr,
    stopped: watch::Receiver<bool>,
}

impl<S> Connection<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// Serves HTTP/1.1 on `stream` (a TCP socket, or TLS over one) until the client leaves or the
    /// server stops.
    async fn run<I>(self, stream: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            service,
            clock,
            remote,
            mut stopped,
        } = self;
        let io = TokioIo::new(ProblemIo::new(stream, clock));
        let service = TowerToHyperService::new(service.map_request(
            move |request: hyper::Request<Incoming>| {
                // The peer's address, which the login and registration limits key by
                // (`limits.rs`), as `axum::serve` would give it.
                let mut request = request.map(Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                request
            },
        ));
        let mut connection = pin!(builder.serve_connection(io, service));
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = stopped.changed() => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// An error accepting a connection: one that concerns only that connection is ignored; any other
/// (out of file descriptors) is logged and accepting pauses, as `axum::serve` does.
async fn accept_failed(error: &io::Error) {
    use io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A connection beyond [`CONNECTIONS_MAX`]: answered 503 at once, without waiting for its
/// request (the answer fits any socket's empty send buffer), and closed.
fn refuse(stream: TcpStream, clock: &SharedClock) {
    let problem = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the bank is serving as many connections as it takes; retry shortly",
    );
    let answer = raw_answer(&problem, clock, "retry-after: 1\r\n");
    // Through the plain socket, which takes the bytes at once: tokio's `try_write` may answer
    // WouldBlock before its reactor has seen the new socket ready.
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    use std::io::{Read, Write};
    let _ = stream.write(&answer);
    // Read what already came, so closing sends FIN rather than a reset that could overtake the
    // answer (the socket is non-blocking: this never waits).
    let mut sink = [0u8; 4096];
    let _ = stream.read(&mut sink);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// A whole HTTP/1.1 answer carrying `problem`, for the connection to close after it.
fn raw_answer(problem: &ApiError, clock: &SharedClock, extra_headers: &str) -> Vec<u8> {
    let body = serde_json::to_vec(&problem.problem()).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\ncontent-length: {length}\r\nx-clock: {clock}\r\n{extra_headers}connection: close\r\n\r\n",
        status = problem.status,
        length = body.len(),
        clock = clock.tick(),
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&body);
    answer
}

/// The problem in place of hyper's own answer `head`, if it is one: hyper writes, for a request
/// it cannot parse, a bare head of status 400, 414 or 431 with `content-length: 0` and nothing
/// after it; every answer of ours carries `x-clock`, and no body of ours starts with `HTTP/`.
fn instead_of_hyper(head: &[u8], clock: &SharedClock) -> Option<Vec<u8>> {
    let status = match head.get(..13)? {
        b"HTTP/1.1 400 " | b"HTTP/1.0 400 " => StatusCode::BAD_REQUEST,
        b"HTTP/1.1 414 " | b"HTTP/1.0 414 " => StatusCode::URI_TOO_LONG,
        b"HTTP/1.1 431 " | b"HTTP/1.0 431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?.to_ascii_lowercase();
    let end = text.find("\r\n\r\n")?;
    if end + 4 != text.len()
        || text.contains("\r\nx-clock:")
        || !text.contains("\r\ncontent-length: 0\r\n")
    {
        return None;
    }
    let problem = match status {
        StatusCode::URI_TOO_LONG => ApiError::new(
            status,
            "uri_too_long",
            "the request's URI is longer than this bank reads",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::new(
            status,
            "headers_too_large",
            format!("a request's line and headers are at most {HEADER_BYTES_MAX} bytes"),
        ),
        _ => ApiError::new(
            status,
            "malformed_request",
            "the request is not valid HTTP/1.1 (its request line, a header, or its Content-Length)",
        ),
    };
    Some(raw_answer(&problem, clock, ""))
}

/// The connection as hyper sees it: reads pass through; a write of one of hyper's own bare error
/// answers is swapped for the problem+json one (`instead_of_hyper`), reported to hyper as
/// written in full and sent before anything else. `S` is the socket, or the TLS stream over it.
pub struct ProblemIo<S> {
    stream: S,
    clock: Arc<SharedClock>,
    /// The swapped answer and how much of it is sent.
    swapped: Vec<u8>,
    sent: usize,
}

impl<S: AsyncWrite + Unpin> ProblemIo<S> {
    fn new(stream: S, clock: Arc<SharedClock>) -> ProblemIo<S> {
        ProblemIo {
            stream,
            clock,
            swapped: Vec::new(),
            sent: 0,
        }
    }

    /// Sends what is left of a swapped answer.
    fn poll_swapped(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.swapped.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.swapped[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `head` is one of hyper's bare answers; if so it is swapped and counts as written.
    fn swap(&mut self, cx: &mut Context<'_>, head: &[u8]) -> Option<Poll<io::Result<usize>>> {
        let answer = instead_of_hyper(head, &self.clock)?;
        self.swapped = answer;
        self.sent = 0;
        Some(match self.poll_swapped(cx) {
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(head.len())),
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_swapped(cx))?;
        if let Some(written) = this.swap(cx, buf) {
            return written;
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_swapped(cx))?;
        let written: usize = bufs.iter().map(|b| b.len()).sum();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && first.len() == written
            && let Some(swapped) = this.swap(cx, first)
        {
            return swapped;
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_swapped(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_swapped(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_error_answers_are_swapped() {
        let clock = SharedClock::default();
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 23:57:54 GMT\r\n\r\n";
        let swapped = instead_of_hyper(bare, &clock).expect("hyper's answer");
        let text = String::from_utf8(swapped).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("application/problem+json"), "{text}");
        assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
        assert!(text.contains("x-clock: "), "{text}");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nx-clock: 1.0\r\ncontent-length: 0\r\n\r\n";
        assert!(instead_of_hyper(ours, &clock).is_none());
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        assert!(instead_of_hyper(with_body, &clock).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(instead_of_hyper(ok, &clock).is_none());
        assert!(instead_of_hyper(b"HTTP/1.1 4", &clock).is_none());
    }
}
