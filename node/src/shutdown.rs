//! Running a node until SIGTERM or SIGINT, then stopping it gracefully.
//!
//! The steps, each logged once at info:
//! 1. `shutting down`: readiness turns false and the listener closes, so new
//!    connections are refused; idle keep-alive connections are closed.
//! 2. `in-flight requests finished`: every request already accepted is answered
//!    (actix drains its workers, for at most the server's 10 s shutdown timeout).
//!    Nothing is buffered: the journal fsyncs every record before the request that made
//!    it is acknowledged, and key rings are written atomically.
//! 3. `left the cluster`: revocations and spends made during the drain are published,
//!    and the node marks itself as left and pushes that to its live peers
//!    ([`crate::cluster::leave`]), which then show it as `left` rather than `dead`.
//! 4. `stopped`: the function returns and the process exits 0.
//!
//! A second signal during these steps exits at once with status 1: nothing
//! acknowledged is lost, since acknowledged means on disk.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::signal::unix::{signal, SignalKind};

use crate::cluster::gossip::Leave;
use crate::node::{Handles, RunningNode};

/// Why the node stopped other than by a signal, or could not wait for one.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// The signal handlers could not be installed.
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    /// The HTTP server failed on its own.
    #[error("HTTP server failed: {0}")]
    Server(std::io::Error),
    /// The HTTP server task ended abnormally (it panicked).
    #[error("HTTP server task ended abnormally")]
    ServerTask,
}

/// Exit status of a second signal during shutdown.
const IMPATIENT_EXIT: i32 = 1;

/// Serves until one of `signals` arrives, then drains, leaves the cluster and returns.
/// Must run inside the actix system that started the node.
pub async fn serve_until_signalled(
    node: RunningNode,
    mut signals: Signals,
) -> Result<(), ShutdownError> {
    let handle = node.server.handle();
    let mut server = actix_web::rt::spawn(node.server);
    let name = tokio::select! {
        name = signals.next() => name,
        ended = &mut server => return server_ended(ended),
    };
    tracing::info!(signal = name, "shutting down");
    actix_web::rt::spawn(async move {
        let name = signals.next().await;
        tracing::warn!(
            signal = name,
            "second signal; exiting without finishing shutdown"
        );
        std::process::exit(IMPATIENT_EXIT);
    });

    node.handles.ready.store(false, Ordering::Relaxed);
    let draining = Instant::now();
    handle.stop(true).await;
    server_ended(server.await)?;
    let drain_ms = draining.elapsed().as_millis() as u64;
    tracing::info!(elapsed_ms = drain_ms, "in-flight requests finished");

    leave(&node.handles).await;
    tracing::info!("stopped");
    Ok(())
}

/// Leaves the cluster, if the node is in one.
async fn leave(handles: &Arc<Handles>) {
    let Some(gossip) = &handles.gossip else {
        return;
    };
    let leaving = Instant::now();
    match gossip.send(Leave).await {
        Ok(told) => {
            let elapsed_ms = leaving.elapsed().as_millis() as u64;
            tracing::info!(peers = told, elapsed_ms, "left the cluster");
        }
        Err(_) => tracing::warn!("gossip had already stopped; peers will declare this node dead"),
    }
}

fn server_ended(
    ended: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<(), ShutdownError> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ShutdownError::Server(error)),
        Err(_) => Err(ShutdownError::ServerTask),
    }
}

/// SIGTERM and SIGINT, whichever comes first. Install it before announcing that the
/// node listens: a signal that comes earlier would otherwise kill the process outright.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes over SIGTERM and SIGINT. Must run inside a tokio runtime.
    pub fn install() -> Result<Self, ShutdownError> {
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(ShutdownError::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(ShutdownError::Signals)?,
        })
    }

    /// Waits for the next signal and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
