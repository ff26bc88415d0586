//! The anti-abuse layer: request budgets, the login-flood defence, bans and the
//! token-lifecycle heuristics.
//!
//! - [`window`]: sliding-window counts kept as two numbered fixed windows.
//! - [`table`]: the bounded counter map every signal keeps its state in; it evicts cold,
//!   light entries first, so attacker-chosen keys cannot grow memory or hide a hot key.
//! - [`budget`]: per-lineage budgets on `/v1/check` and introspection.
//!
//! Request handlers read and update these structures directly (sharded locks, held for
//! one lookup); what must reach other nodes goes through the gossip actor.

pub mod budget;
pub mod table;
pub mod window;
