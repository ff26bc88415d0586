//! The cluster layer: equal peers sharing revocations, signing keys and refresh-family
//! state over chitchat gossip, with no central store.
//!
//! - [`seal`]: datagram sealing, framing and the reasons a datagram is dropped.
//! - [`transport`]: chitchat's `Transport` over sealed UDP.

pub mod seal;
pub mod transport;
