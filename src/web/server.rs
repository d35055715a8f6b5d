//! The HTTP/1.1 server: hyper connections with the limits `axum::serve` lacks, so that slow
//! or idle clients cannot hold the server's sockets. A client must send its headers within
//! `header_timeout_seconds` and its body within `body_timeout_seconds`; a connection with
//! nothing to do is closed after `keep_alive_seconds`; at most `max_connections` are open,
//! and at the cap the longest-idle one is closed to make room for a newcomer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ServerSettings;

/// How long connections still busy at shutdown may take to finish their response.
const DRAIN: Duration = Duration::from_secs(30);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The limits, read once from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub keep_alive: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self {
            header_timeout: Duration::from_secs(server.header_timeout_seconds.get()),
            body_timeout: Duration::from_secs(server.body_timeout_seconds.get()),
            keep_alive: Duration::from_secs(server.keep_alive_seconds.get()),
            max_connections: server.max_connections.get() as usize,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then closes idle connections,
/// lets busy ones finish their response (for at most [`DRAIN`]) and returns.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let max = connection_cap(limits.max_connections);
    let permits = Arc::new(Semaphore::new(max));
    let registry = Arc::new(Registry::default());
    let tracker = TaskTracker::new();
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: an idle connection makes way; if all are busy, wait for one.
                registry.evict_longest_idle();
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e, &registry).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Small responses go out at once rather than waiting on Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let conn = registry.open();
        let connection = Connection {
            router: router.clone(),
            limits,
            peer,
            state: conn,
        };
        let (registry, shutdown) = (registry.clone(), shutdown.clone());
        tracker.spawn(async move {
            let id = connection.state.id;
            connection.serve(stream, shutdown).await;
            registry.close(id);
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!(?DRAIN, "connections still busy at shutdown were closed");
        registry.evict_all();
        tracker.wait().await;
    }
    Ok(())
}

/// The connection cap: `max_connections`, but at most half the process's file descriptors,
/// so the database, SMTP connections and the outbox always have some left.
fn connection_cap(configured: usize) -> usize {
    let Some(files) = open_files_limit() else {
        return configured;
    };
    let cap = configured.min((files / 2).max(1));
    if cap < configured {
        tracing::warn!(
            max_connections = configured,
            open_files_limit = files,
            cap,
            "server.max_connections is more than half the open-files limit allows; raise the limit (LimitNOFILE=) to use it"
        );
    }
    cap
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Out of file descriptors (EMFILE, ENFILE) the listener cannot accept; an idle connection is
/// closed to make room. Other errors (a client gone before accept) need nothing but a retry.
async fn accept_failed(error: &io::Error, registry: &Registry) {
    let out_of_files = matches!(error.raw_os_error(), Some(23 | 24));
    if !out_of_files {
        tracing::debug!(%error, "accept failed");
        return;
    }
    let evicted = registry.evict_longest_idle();
    tracing::warn!(%error, evicted, "out of file descriptors: closing an idle connection");
    let pause = if evicted { 10 } else { 500 };
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// What the server knows of one connection, shared by its task, its I/O and its requests.
struct ConnState {
    id: u64,
    epoch: Instant,
    /// Requests whose response has not been fully written yet.
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` at which the last response ended (or the connection opened).
    idle_since: AtomicU64,
    /// Bytes have arrived since then: a request is on its way (the header timeout applies).
    heard: AtomicBool,
    /// Close at once (to make room, or at the end of the drain).
    evict: CancellationToken,
}

impl ConnState {
    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// How long the connection has had nothing to do: no request in flight, nothing heard.
    fn idle_for(&self) -> Option<Duration> {
        if !self.is_idle() || self.heard.load(Ordering::SeqCst) {
            return None;
        }
        let since = self.idle_since.load(Ordering::SeqCst);
        Some(Duration::from_millis(self.millis().saturating_sub(since)))
    }

    /// When to look again whether the connection has been idle for `keep_alive`.
    fn idle_deadline(&self, keep_alive: Duration) -> tokio::time::Instant {
        let idle_for = self.idle_for().unwrap_or_default();
        tokio::time::Instant::now() + keep_alive.saturating_sub(idle_for)
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        self.heard.store(false, Ordering::SeqCst);
        self.idle_since.store(self.millis(), Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every open connection, for choosing one to close when the cap is reached.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn open(&self) -> Arc<ConnState> {
        let state = Arc::new(ConnState {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            heard: AtomicBool::new(false),
            evict: CancellationToken::new(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(state.id, state.clone());
        }
        state
    }

    fn close(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Closes the connection that has had no request in flight for longest; false if every
    /// connection is busy.
    fn evict_longest_idle(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let oldest = open
            .values()
            .filter(|c| c.is_idle() && !c.evict.is_cancelled())
            .min_by_key(|c| c.epoch + Duration::from_millis(c.idle_since.load(Ordering::SeqCst)));
        match oldest {
            Some(conn) => {
                conn.evict.cancel();
                true
            }
            None => false,
        }
    }

    fn evict_all(&self) {
        if let Ok(open) = self.open.lock() {
            open.values().for_each(|c| c.evict.cancel());
        }
    }
}

struct Connection {
    router: Router,
    limits: ConnectionLimits,
    peer: SocketAddr,
    state: Arc<ConnState>,
}

impl Connection {
    async fn serve(self, stream: TcpStream, shutdown: CancellationToken) {
        let Connection {
            router,
            limits,
            peer,
            state,
        } = self;
        let io = TokioIo::new(Tracked {
            stream,
            state: state.clone(),
        });
        let service = {
            let state = state.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                // Counted when the request's head has arrived, before the handler runs.
                state.begin();
                let in_flight = InFlight(state.clone());
                let router = router.clone();
                async move {
                    let expired = Arc::new(AtomicBool::new(false));
                    let mut request = request.map(|body| {
                        if body.is_end_stream() {
                            Body::new(body)
                        } else {
                            Body::new(Deadline {
                                inner: body,
                                sleep: Box::pin(tokio::time::sleep(limits.body_timeout)),
                                expired: expired.clone(),
                            })
                        }
                    });
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let response = match router.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    let mut response = if expired.load(Ordering::SeqCst) {
                        body_timed_out()
                    } else {
                        response
                    };
                    // axum writes `Content-Length: 0` for every empty body, and hyper sends it
                    // with a HEAD's 304: that would claim the document is empty (RFC 9110
                    // §8.6), and a GET's 304 goes without it.
                    if response.status() == StatusCode::NOT_MODIFIED {
                        response.headers_mut().remove(header::CONTENT_LENGTH);
                    }
                    Ok::<_, Infallible>(response.map(|body| Guarded {
                        inner: body,
                        _in_flight: in_flight,
                    }))
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let mut draining = false;
        loop {
            let idle_deadline = state.idle_deadline(limits.keep_alive);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = state.evict.cancelled() => break,
                () = shutdown.cancelled(), if !draining => {
                    if state.is_idle() {
                        break;
                    }
                    // Finish the response in progress, then close.
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = tokio::time::sleep_until(idle_deadline) => {
                    if state.idle_for().is_some_and(|idle| idle >= limits.keep_alive) {
                        break;
                    }
                }
            }
        }
    }
}

/// 408 for a body that did not arrive in time; the connection is closed after it.
fn body_timed_out() -> Response<Body> {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        "The request body took too long to arrive.",
    )
        .into_response()
}

/// Marks a request finished when dropped: with its response body, once that is written.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A response body that keeps its request counted as in flight until it has been written.
struct Guarded {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that must arrive in full before its deadline (set when the headers came).
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err("the request body took too long to arrive".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when bytes arrive so an idle connection can be told from one whose
/// request is on its way.
struct Tracked {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.heard.store(true, Ordering::SeqCst);
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
