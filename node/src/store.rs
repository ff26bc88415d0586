//! The store actor: owns the journal and makes records durable.
//!
//! It runs on its own arbiter thread because `fsync` blocks; nothing else waits on that
//! thread. A revocation is acknowledged to a client only after [`Append`] returns `Ok`.

use std::time::Duration;

use actix::prelude::*;

use crate::clock::SharedClock;
use crate::journal::{Journal, Record};

/// How often the journal is checked for compaction.
const COMPACT_EVERY: Duration = Duration::from_secs(60);
/// Compact once this many dead records have accumulated (and they outnumber the live).
const COMPACT_MIN_DEAD: usize = 1024;

/// A write to the journal failed; nothing was acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("journal write failed: {0}")]
pub struct StoreError(#[from] std::io::Error);

/// Owns the journal file and the live records it holds.
pub struct Store {
    journal: Journal,
    live: Vec<Record>,
    dead: usize,
    clock: SharedClock,
}

impl Store {
    /// A store over an opened journal and the records replayed from it.
    pub fn new(journal: Journal, live: Vec<Record>, clock: SharedClock) -> Self {
        Self {
            journal,
            live,
            dead: 0,
            clock,
        }
    }

    fn maybe_compact(&mut self) {
        let now = self.clock.now_ms();
        let before = self.live.len();
        self.live.retain(|r| r.expires_ms() > now);
        self.dead += before - self.live.len();
        if self.dead < COMPACT_MIN_DEAD.max(self.live.len()) {
            return;
        }
        match self.journal.compact(&self.live) {
            Ok(()) => {
                tracing::info!(
                    live = self.live.len(),
                    dropped = self.dead,
                    "journal compacted"
                );
                self.dead = 0;
            }
            Err(error) => tracing::error!(%error, "journal compaction failed; will retry"),
        }
    }
}

impl Actor for Store {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(COMPACT_EVERY, |this, _| this.maybe_compact());
    }
}

/// Make records durable. `Ok` means they are on disk.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Append(pub Vec<Record>);

impl Handler<Append> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: Append, _: &mut Self::Context) -> Self::Result {
        self.journal.append(&msg.0).inspect_err(|error| {
            tracing::error!(%error, "journal append failed; request refused");
        })?;
        self.live.extend(msg.0);
        Ok(())
    }
}

/// Compact now if enough records are dead; for tests and operators.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct CompactNow;

impl Handler<CompactNow> for Store {
    type Result = u64;

    fn handle(&mut self, _: CompactNow, _: &mut Self::Context) -> u64 {
        self.maybe_compact();
        self.journal.len()
    }
}
