//! The operator subcommands that talk to a running node over HTTP: `healthcheck` (for
//! container health checks, so it needs no shell or curl) and `admin` (the admin API).
//!
//! - [`health`]: `portcullis healthcheck`.
//! - [`admin`]: `portcullis admin …`, its arguments and what each subcommand calls.
//! - [`client`]: the blocking HTTP client, the admin token and the node's errors.
//! - [`render`]: tables for people, raw JSON for scripts.
//! - [`table`]: column-aligned text tables and timestamps.

pub mod admin;
pub mod client;
pub mod health;
pub mod render;
pub mod table;
