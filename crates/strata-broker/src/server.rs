//! The Kafka listener: accepts connections and serves each one's requests in order.
//!
//! Kafka processes one request per connection at a time (the socket is muted until the
//! response is sent), and clients rely on responses arriving in request order; this server
//! does the same, with connections served concurrently.
//!
//! Framing is checked before anything is allocated from a length the peer claimed: a frame's
//! buffer grows only as its bytes arrive, and a length over `socket.request.max.bytes` closes
//! the connection. Any malformed request closes that one connection with a log line.
//!
//! What clients can hold is bounded: connections (`max.connections`, and per address
//! `max.connections.per.ip`, refused as they are accepted), request bytes in flight across
//! all connections (`queued.max.request.bytes`), a connection that sends nothing
//! (`connections.max.idle.ms`), a request that starts and never finishes, and a response the
//! client does not read (each closes that connection).
//!
//! Responses go out as their pieces ([`crate::response`]): encoded bytes through a buffered
//! writer, and fetched records of local segments straight from their files with `sendfile`.
//!
//! Shutdown: when `shutdown` fires, the listener stops accepting; each connection finishes
//! the request it is serving (long-poll fetches return early), writes its response and
//! closes. [`serve`] returns when every connection has closed or `drain_timeout` passed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::os::fd::AsFd;

use strata_log::FileRange;
use tokio::io::{AsyncWriteExt, BufWriter, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::config::ConnectionLimits;
use crate::frame_reader::{FrameReadError, FrameReader};
use crate::handlers::{self, RequestError};
use crate::metrics::Metrics;
use crate::response::{Piece, Response};

/// Serves Kafka clients on `listener` until `shutdown` fires, then drains connections.
/// Answers whether every connection closed within `drain_timeout` (none can write since).
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> bool {
    let connections = TaskTracker::new();
    let admission = Arc::new(Admission::new(
        broker.config.connections,
        broker.config.socket_request_max_bytes,
    ));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(slot) = admission.admit(peer.ip()) else {
                    broker.metrics.connections_refused.inc();
                    debug!(%peer, "connection refused: over max.connections or max.connections.per.ip");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let served = Served {
                    broker: broker.clone(),
                    budget: admission.budget.clone(),
                    shutdown: shutdown.clone(),
                };
                connections.spawn(async move {
                    connection(stream, peer, served).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    connections.close();
    let open = connections.len();
    let started = Instant::now();
    if tokio::time::timeout(drain_timeout, connections.wait())
        .await
        .is_err()
    {
        warn!(
            still_open = connections.len(),
            "connections did not drain in time"
        );
        false
    } else {
        info!(
            connections = open,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "connections drained"
        );
        true
    }
}

/// Who may connect: the connection counts and the request budget all connections share.
struct Admission {
    limits: ConnectionLimits,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    budget: Option<Arc<Semaphore>>,
}

/// A connection's place, given back when it closes.
struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    fn new(limits: ConnectionLimits, max_frame: usize) -> Self {
        // Never below one largest request, or that request could never be read.
        let budget = limits
            .queued_max_request_bytes
            .map(|bytes| Arc::new(Semaphore::new(bytes.max(max_frame))));
        // A connection takes a descriptor: beyond most of the limit, new clients would find
        // `accept` failing and active segments could not roll.
        let by_descriptors = crate::process::fd_limit().map_or(usize::MAX, |limit| {
            usize::try_from(limit / 4 * 3).unwrap_or(usize::MAX)
        });
        let limits = ConnectionLimits {
            max_connections: limits.max_connections.min(by_descriptors),
            ..limits
        };
        Self {
            limits,
            open: Mutex::new((0, HashMap::new())),
            budget,
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self
            .open
            .lock()
            .expect("no code panics holding the connection counts");
        let (total, by_ip) = &mut *open;
        let from_ip = by_ip.get(&ip).copied().unwrap_or(0);
        // Refused addresses leave no entry behind: a flood from many addresses costs nothing.
        if *total >= self.limits.max_connections || from_ip >= self.limits.max_connections_per_ip {
            return None;
        }
        *total += 1;
        by_ip.insert(ip, from_ip + 1);
        Some(Slot {
            admission: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .expect("no code panics holding the connection counts");
        let (total, by_ip) = &mut *open;
        *total -= 1;
        if let Some(from_ip) = by_ip.get_mut(&self.ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// What serving one connection needs.
struct Served {
    broker: Arc<Broker>,
    budget: Option<Arc<Semaphore>>,
    shutdown: CancellationToken,
}

/// Why reading the next request gave up on the connection.
enum Stalled {
    Idle,
    SlowRequest,
}

async fn connection(stream: TcpStream, peer: SocketAddr, served: Served) {
    let Served {
        broker,
        budget,
        shutdown,
    } = served;
    let limits = broker.config.connections;
    broker.metrics.connections_active.inc();
    let (reader, writer) = stream.into_split();
    let mut frames = FrameReader::new(reader, broker.config.socket_request_max_bytes, budget);
    let mut writer = BufWriter::new(writer);
    let mut last_request = Instant::now();
    loop {
        let deadline = match frames.partial_since() {
            Some(since) => since + limits.request_timeout,
            None => last_request + limits.idle_timeout,
        };
        let frame = tokio::select! {
            () = shutdown.cancelled() => break,
            frame = frames.next_frame() => Ok(frame),
            () = tokio::time::sleep_until(deadline.into()) => Err(match frames.partial_since() {
                Some(_) => Stalled::SlowRequest,
                None => Stalled::Idle,
            }),
        };
        let frame = match frame {
            Err(Stalled::Idle) => {
                debug!(%peer, "closing an idle connection (connections.max.idle.ms)");
                break;
            }
            Err(Stalled::SlowRequest) => {
                broker.metrics.connections_rejected.inc();
                warn!(%peer, "closing connection: a request began but did not arrive in time");
                break;
            }
            Ok(frame) => frame,
        };
        last_request = Instant::now();
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameReadError::Io(e)) => {
                debug!(%peer, error = %e, "connection read failed");
                break;
            }
            Err(e) => {
                broker.metrics.connections_rejected.inc();
                warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        let answered = handlers::dispatch(&broker, frame.bytes.clone(), peer, &shutdown).await;
        // The request's bytes (and its share of the budget) go before the response is sent.
        drop(frame);
        match answered {
            Ok(Some(response)) => {
                let written = tokio::time::timeout(
                    limits.write_timeout,
                    write_response(&mut writer, &response, &broker.metrics),
                )
                .await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "connection write failed");
                        break;
                    }
                    Err(_) => {
                        warn!(%peer, bytes = response.len(), "closing connection: the client did not read its response in time");
                        break;
                    }
                }
                last_request = Instant::now();
            }
            Ok(None) => {}
            Err(e @ RequestError::FailedWithoutAcks { .. }) => {
                debug!(%peer, error = %e, "closing connection so the acks=0 producer notices");
                break;
            }
            Err(e @ RequestError::Internal(_)) => {
                warn!(%peer, error = %e, "closing connection: internal error");
                break;
            }
            Err(e) => {
                broker.metrics.connections_rejected.inc();
                warn!(%peer, error = %e, "closing connection: malformed request");
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
    broker.metrics.connections_active.dec();
}

async fn write_response(
    writer: &mut BufWriter<OwnedWriteHalf>,
    response: &Response,
    metrics: &Metrics,
) -> std::io::Result<()> {
    for piece in response.pieces() {
        match piece {
            Piece::Bytes(bytes) => writer.write_all(bytes).await?,
            Piece::File(range) => {
                // What is buffered goes first: the file's bytes follow it on the wire.
                writer.flush().await?;
                send_file(writer.get_ref().as_ref(), range).await?;
                metrics.fetch_sendfile_bytes.inc_by(range.len() as u64);
            }
        }
    }
    writer.flush().await
}

/// Sends `range` from its file to `socket` (`sendfile`), waiting while the socket is full.
async fn send_file(socket: &TcpStream, range: &FileRange) -> std::io::Result<()> {
    let mut sent = 0;
    while sent < range.len() {
        socket.writable().await?;
        match socket.try_io(Interest::WRITABLE, || range.send_to(socket.as_fd(), sent)) {
            Ok(0) => {
                // The frame's length promised these bytes: the connection cannot go on.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "a segment ended before the range a fetch located in it",
                ));
            }
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
