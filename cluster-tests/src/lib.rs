//! Multi-process cluster scenarios; the cluster layer arrives with gossip.
