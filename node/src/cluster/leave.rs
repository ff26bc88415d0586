//! Leaving the cluster on purpose, so that peers tell a node that stopped from one that
//! died.
//!
//! chitchat 0.11 has no leave message: a node that stops simply falls silent and its
//! peers' failure detectors declare it dead. So a leaving node writes the [`wire::LEFT`]
//! key into its own state and pushes that state to every live peer; peers then show the
//! incarnation as `left`, drop it from their live members at once (strict budgets
//! re-seat, catch-up stops asking it) and keep showing it as left after its heartbeats
//! stop. A restart is a new incarnation without the key.
//!
//! Delivery is best effort: gossip is UDP and there is no acknowledgement to wait for,
//! so the state is pushed [`PUSHES`] times, a round trip apart. A peer that misses every
//! push still learns the key from another peer, or, if none has it, declares the node
//! dead as before.

use std::net::SocketAddr;
use std::time::Duration;

use chitchat::{Chitchat, ChitchatHandle, ChitchatId, NodeState};

use super::gossip::Member;
use super::wire;

/// How many times the leaving state is pushed to each live peer.
pub const PUSHES: u32 = 3;
/// Longest pause between pushes, whatever the gossip interval.
const MAX_PUSH_GAP: Duration = Duration::from_millis(500);

/// Whether a peer's state says it left.
pub fn has_left(state: &NodeState) -> bool {
    state.get(wire::LEFT).is_some()
}

/// The peer incarnations that said they left.
pub fn departed(chitchat: &Chitchat) -> Vec<ChitchatId> {
    let own = chitchat.self_chitchat_id();
    chitchat
        .node_states()
        .iter()
        .filter(|(id, state)| *id != own && has_left(state))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Marks this incarnation as left (at `now_ms`) and returns the gossip addresses of
/// the live peers to tell.
pub fn announce(chitchat: &mut Chitchat, now_ms: u64) -> Vec<SocketAddr> {
    chitchat.self_node_state().set(wire::LEFT, now_ms);
    let own = chitchat.self_chitchat_id().clone();
    let left = departed(chitchat);
    chitchat
        .live_nodes()
        .filter(|id| **id != own && !left.contains(id))
        .map(|id| id.gossip_advertise_addr)
        .collect()
}

/// Gossips with each of `peers` [`PUSHES`] times, then stops the gossip server.
pub async fn push(handle: &ChitchatHandle, peers: &[SocketAddr], interval: Duration) {
    let gap = interval.min(MAX_PUSH_GAP);
    for _ in 0..PUSHES {
        for peer in peers {
            // Fails only if the server has already stopped; then nobody can be told.
            let _ = handle.gossip(*peer);
        }
        tokio::time::sleep(gap).await;
    }
    let _ = handle.initiate_shutdown();
}

/// Members by state for the membership gauge: `live` (this node included), `left` and
/// `dead`. Incarnations replaced by a newer one of the same node are not counted: a
/// restarted node is one live member, not also a dead or left one.
pub fn census(members: &[Member]) -> [(&'static str, usize); 3] {
    let current = members.iter().filter(|m| {
        !members
            .iter()
            .any(|other| other.node_id == m.node_id && other.generation > m.generation)
    });
    let mut counts = [("live", 0), ("left", 0), ("dead", 0)];
    for member in current {
        let slot = match member.state {
            "left" => 1,
            "dead" => 2,
            _ => 0,
        };
        counts[slot].1 += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node_id: &str, generation: u64, state: &'static str) -> Member {
        Member {
            node_id: node_id.into(),
            generation,
            gossip_addr: String::new(),
            region: None,
            http: None,
            state,
            last_heard_ms: None,
            kids: Vec::new(),
            max_version: 0,
        }
    }

    #[test]
    fn a_replaced_incarnation_is_not_counted() {
        let members = [
            member("n1", 1, "self"),
            member("n2", 1, "left"),
            member("n2", 2, "live"),
            member("n3", 1, "dead"),
            member("n4", 5, "left"),
        ];
        assert_eq!(census(&members), [("live", 2), ("left", 1), ("dead", 1)]);
    }
}
