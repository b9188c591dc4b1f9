//! The HTTP/1.1 listener: accepts connections, bounds them per client address, gives each a
//! header-read timeout (which is also the idle keep-alive timeout) and a write timeout, and stops
//! gracefully. Hostile clients get bounded time and bounded connections: one that never finishes
//! its headers, idles on a keep-alive connection, or leaves an answer unread past its timeout is
//! disconnected, and its call ends without it.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use dashmap::DashMap;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// What the listener allows each connection.
#[derive(Clone)]
pub struct Limits {
    /// Request headers must arrive within this, and an idle keep-alive connection closes after it.
    pub read_timeout: Duration,
    /// A write the client does not take for this long ends the connection.
    pub write_timeout: Duration,
    /// Connections one address may hold (trusted proxies are not counted).
    pub per_ip: usize,
    /// Open connections by client address, shared by every serving thread.
    pub open: Arc<Connections>,
    /// How long a stopping server waits for connections to finish before it closes them.
    pub grace: Duration,
    /// Counts the connections open.
    pub metrics: Arc<perpetuo_core::platform::metrics::Metrics>,
}

/// Open connections per address (only addresses with one open are kept: bounded by the
/// connections themselves).
#[derive(Debug, Default)]
pub struct Connections {
    by_ip: DashMap<IpAddr, usize>,
    /// Addresses whose connections are not counted (trusted proxies carry many clients).
    exempt: Vec<ipnet::IpNet>,
}

impl Connections {
    pub fn new(exempt: Vec<ipnet::IpNet>) -> Self {
        Self { by_ip: DashMap::new(), exempt }
    }

    /// A place for one more connection from `ip`, if it has fewer than `max` open.
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let ip = canonical(ip);
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return Some(Slot { open: None, ip });
        }
        let mut count = self.by_ip.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot { open: Some(Arc::clone(self)), ip })
    }

    /// Connections open from `ip` now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.by_ip.get(&canonical(ip)).map_or(0, |c| *c)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One counted connection, given back when it closes.
struct Slot {
    open: Option<Arc<Connections>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.by_ip.remove_if_mut(&self.ip, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
        }
    }
}

/// Serves `router` on `listener` until `signal`, then stops accepting, lets open connections
/// finish for at most `limits.grace`, and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.read_timeout).keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // keep serving (briefly pausing when the process is out of descriptors).
                    tracing::debug!(error = %e, "accept failed");
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let Some(slot) = limits.open.enter(peer.ip(), limits.per_ip) else {
            // Closed at once: the address holds its share already.
            tracing::debug!(peer = %peer.ip(), "connection refused: too many from this address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        let metrics = Arc::clone(&limits.metrics);
        metrics.connection_opened();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            metrics.connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period were closed");
    }
    Ok(())
}

/// A socket whose writes fail once the peer has taken nothing for `limit`: a client that stops
/// reading cannot hold a connection (and what it holds) open for ever.
pub struct WriteTimeout {
    inner: TcpStream,
    limit: Duration,
    /// Armed while a write waits for the peer.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteTimeout {
    pub fn new(inner: TcpStream, limit: Duration) -> Self {
        Self { inner, limit, stalled: None }
    }

    /// After a write attempt: clears the timer when it went through, arms it (or fails, once it
    /// ran out) while it waits.
    fn check<T>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client took nothing for the write timeout")))
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_address_and_given_back() {
        let open = Arc::new(Connections::new(vec!["10.0.0.0/8".parse().unwrap()]));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = open.enter(ip, 2).unwrap();
        let second = open.enter(ip, 2).unwrap();
        assert!(open.enter(ip, 2).is_none(), "a third is refused");
        assert!(open.enter("192.0.2.2".parse().unwrap(), 2).is_some(), "another address has its own share");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(open.enter(mapped, 2).is_none(), "the same address over IPv6 is the same address");
        drop(first);
        assert_eq!(open.count(ip), 1);
        let third = open.enter(ip, 2).unwrap();
        drop((second, third));
        assert_eq!(open.count(ip), 0);
        assert!(open.by_ip.is_empty(), "nothing kept for an address with no connection");
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| open.enter(proxy, 2).unwrap()).collect();
        assert_eq!(held.len(), 10, "a trusted proxy is not counted");
    }
}
