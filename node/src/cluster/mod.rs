//! The cluster layer: equal peers sharing revocations, signing keys and refresh-family
//! state over chitchat gossip, with no central store.
//!
//! - [`seal`]: datagram sealing, framing and the reasons a datagram is dropped.
//! - [`transport`]: chitchat's `Transport` over sealed UDP.
//! - [`wire`]: what each gossip key holds and how values are encoded.
//! - [`gossip`]: the actor that publishes local state and merges peers'.
//! - [`merge`]: what peers publish, journaled before it takes effect.
//! - [`leave`]: leaving on shutdown, so that peers show the node as left, not dead.
//! - [`rates`]: budget counts near their limit, shared between nodes (fast mode).
//! - [`snapshot`]: catch-up of a starting node from a live peer over sealed HTTP.

pub mod gossip;
pub mod leave;
pub mod merge;
pub mod rates;
pub mod seal;
pub mod snapshot;
pub mod transport;
pub mod wire;
