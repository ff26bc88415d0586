//! chitchat's [`Transport`] over UDP with every datagram sealed by the cluster secret.
//!
//! Outgoing envelopes are sealed and framed by [`Sealer`]; incoming datagrams are
//! reassembled, opened, checked against the replay window and the set of nonces seen in
//! it, and only then decoded. Anything that fails is dropped and counted by reason; the
//! gossip loop never sees it.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatMessage, Deserializable, Serializable};

use super::seal::{Reassembler, Rejected, Sealer, MAX_DATAGRAM};
use crate::clock::SharedClock;
use crate::metrics as m;

/// How far a message's send time may be from ours, either way.
pub const REPLAY_WINDOW_MS: u64 = 60_000;
/// Nonces remembered for replay detection; the oldest go first beyond this.
const MAX_REMEMBERED: usize = 1 << 18;

/// The transport chitchat is given.
pub struct SealedTransport {
    sealer: Arc<Sealer>,
    clock: SharedClock,
}

impl SealedTransport {
    /// A transport sealing with `sealer` and timestamping with `clock`.
    pub fn new(sealer: Arc<Sealer>, clock: SharedClock) -> Self {
        Self { sealer, clock }
    }
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("cannot bind gossip socket {listen_addr}/udp"))?;
        Ok(Box::new(SealedSocket {
            socket,
            sealer: self.sealer.clone(),
            clock: self.clock.clone(),
            reassembler: Reassembler::default(),
            replay: ReplayGuard::default(),
            next_message_id: rand::random(),
            buf: vec![0; MAX_DATAGRAM + 1].into_boxed_slice(),
        }))
    }
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    sealer: Arc<Sealer>,
    clock: SharedClock,
    reassembler: Reassembler,
    replay: ReplayGuard,
    next_message_id: u32,
    buf: Box<[u8]>,
}

#[async_trait]
impl Socket for SealedSocket {
    async fn send(&mut self, to: SocketAddr, message: ChitchatMessage) -> anyhow::Result<()> {
        let payload = message.serialize_to_vec();
        self.next_message_id = self.next_message_id.wrapping_add(1);
        let frames = self
            .sealer
            .seal(&payload, self.clock.now_ms(), self.next_message_id);
        let mut sent = 0;
        for frame in &frames {
            match self.socket.send_to(frame, to).await {
                Ok(n) => sent += n,
                // A peer that is down is chitchat's business, not a broken transport.
                Err(error) => {
                    tracing::debug!(%error, peer = %to, "gossip send failed");
                    break;
                }
            }
        }
        metrics::counter!(m::GOSSIP_DATAGRAMS, "direction" => "out").increment(frames.len() as u64);
        metrics::counter!(m::GOSSIP_BYTES, "direction" => "out").increment(sent as u64);
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.buf).await {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, "gossip receive error");
                    continue;
                }
            };
            metrics::counter!(m::GOSSIP_DATAGRAMS, "direction" => "in").increment(1);
            metrics::counter!(m::GOSSIP_BYTES, "direction" => "in").increment(len as u64);
            match self.accept(from, len) {
                Ok(Some(message)) => return Ok((from, message)),
                Ok(None) => {}
                Err(reason) => {
                    metrics::counter!(m::GOSSIP_REJECTED, "reason" => reason.label()).increment(1);
                    tracing::debug!(peer = %from, %reason, "gossip datagram dropped");
                }
            }
        }
    }
}

impl SealedSocket {
    fn accept(
        &mut self,
        from: SocketAddr,
        len: usize,
    ) -> Result<Option<ChitchatMessage>, Rejected> {
        if len > MAX_DATAGRAM {
            return Err(Rejected::Malformed);
        }
        let Some(sealed) = self.reassembler.push(from, &self.buf[..len])? else {
            return Ok(None);
        };
        let (nonce, sent_at, payload) = self.sealer.open(&sealed)?;
        let now = self.clock.now_ms();
        if sent_at.abs_diff(now) > REPLAY_WINDOW_MS {
            return Err(Rejected::Stale);
        }
        if !self.replay.first_sighting(nonce, sent_at, now) {
            return Err(Rejected::Replayed);
        }
        let mut bytes = payload.as_slice();
        let message =
            ChitchatMessage::deserialize(&mut bytes).map_err(|_| Rejected::Undecodable)?;
        if !bytes.is_empty() {
            return Err(Rejected::Undecodable);
        }
        Ok(Some(message))
    }
}

/// Nonces of authentic messages seen within the replay window.
#[derive(Default)]
struct ReplayGuard {
    seen: HashSet<[u8; 24]>,
    /// (send time, nonce) in arrival order, to forget nonces once they leave the window.
    order: VecDeque<(u64, [u8; 24])>,
}

impl ReplayGuard {
    /// Records the nonce; false if it was already seen.
    fn first_sighting(&mut self, nonce: [u8; 24], sent_at: u64, now: u64) -> bool {
        while let Some(&(at, old)) = self.order.front() {
            let expired = at + REPLAY_WINDOW_MS < now;
            if !expired && self.order.len() < MAX_REMEMBERED {
                break;
            }
            self.seen.remove(&old);
            self.order.pop_front();
        }
        if !self.seen.insert(nonce) {
            return false;
        }
        self.order.push_back((sent_at, nonce));
        true
    }
}

#[cfg(test)]
mod tests;
