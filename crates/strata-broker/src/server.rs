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
//! Shutdown: when `shutdown` fires, the listener stops accepting; each connection finishes
//! the request it is serving (long-poll fetches return early), writes its response and
//! closes. [`serve`] returns when every connection has closed or `drain_timeout` passed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::frame_reader::{FrameReadError, FrameReader};
use crate::handlers::{self, RequestError};

/// Serves Kafka clients on `listener` until `shutdown` fires, then drains connections.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, peer, broker.clone(), shutdown.clone()));
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
    } else {
        info!(
            connections = open,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "connections drained"
        );
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    broker.metrics.connections_active.inc();
    let (reader, writer) = stream.into_split();
    let mut frames = FrameReader::new(reader, broker.config.socket_request_max_bytes);
    let mut writer = BufWriter::new(writer);
    loop {
        let frame = tokio::select! {
            () = shutdown.cancelled() => break,
            frame = frames.next_frame() => frame,
        };
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
        match handlers::dispatch(&broker, frame, peer, &shutdown).await {
            Ok(Some(response)) => {
                if let Err(e) = write_response(&mut writer, &response).await {
                    debug!(%peer, error = %e, "connection write failed");
                    break;
                }
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

async fn write_response<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    response: &Bytes,
) -> std::io::Result<()> {
    writer.write_all(response).await?;
    writer.flush().await
}
