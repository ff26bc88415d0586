//! The store actor: owns the journal and makes records durable.
//!
//! It runs on its own arbiter thread because `fsync` blocks; nothing else waits on that
//! thread. A revocation is acknowledged to a client only after [`Append`] returns `Ok`.

use std::collections::HashMap;
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

/// Records of which only the latest per subject is live.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Latest {
    /// The highest spent generation of a refresh family.
    Family(String),
    /// A peer's key set.
    PeerKeys(String),
}

/// Owns the journal file and the live state it holds.
pub struct Store {
    journal: Journal,
    /// Expiry of every revocation record in the file: enough to count what compaction
    /// would drop. The records themselves live in the deny list and on disk; compaction
    /// reads them back from the file rather than keep a second copy in memory.
    revocation_expiries: Vec<u64>,
    /// Spent generations per family and key sets per peer; earlier records for the same
    /// subject are dead weight.
    latest: HashMap<Latest, Record>,
    /// Records in the file that compaction would drop.
    dead: usize,
    clock: SharedClock,
}

impl Store {
    /// A store over an opened journal and the records replayed from it.
    pub fn new(journal: Journal, replayed: Vec<Record>, clock: SharedClock) -> Self {
        let mut store = Self {
            journal,
            revocation_expiries: Vec::new(),
            latest: HashMap::new(),
            dead: 0,
            clock,
        };
        store.absorb(replayed);
        store
    }

    fn absorb(&mut self, records: Vec<Record>) {
        for record in records {
            let subject = match &record {
                Record::Revoke(entry) | Record::RevokeOwn(entry) => {
                    self.revocation_expiries.push(entry.expires_ms);
                    continue;
                }
                Record::RefreshUsed { family, .. } => Latest::Family(family.clone()),
                Record::PeerKeys { node_id, .. } => Latest::PeerKeys(node_id.clone()),
            };
            let replaces = self
                .latest
                .get(&subject)
                .is_none_or(|kept| newer(&record, kept));
            if replaces {
                self.dead += usize::from(self.latest.insert(subject, record).is_some());
            } else {
                self.dead += 1;
            }
        }
    }

    /// The records a compacted journal keeps: unexpired revocations, read back from the
    /// file, then the latest spend per family and key set per peer.
    fn live(&self, now: u64) -> std::io::Result<Vec<Record>> {
        let mut live: Vec<Record> = self
            .journal
            .records()?
            .into_iter()
            .filter(|r| r.revocation().is_some_and(|r| r.expires_ms > now))
            .collect();
        live.extend(self.latest.values().cloned());
        Ok(live)
    }

    fn maybe_compact(&mut self) {
        let now = self.clock.now_ms();
        let before = self.revocation_expiries.len() + self.latest.len();
        self.revocation_expiries.retain(|expires| *expires > now);
        self.latest.retain(|_, record| record.expires_ms() > now);
        let live = self.revocation_expiries.len() + self.latest.len();
        self.dead += before - live;
        if self.dead < COMPACT_MIN_DEAD.max(live) {
            return;
        }
        match self
            .live(now)
            .and_then(|records| self.journal.compact(&records))
        {
            Ok(()) => {
                tracing::info!(live, dropped = self.dead, "journal compacted");
                self.dead = 0;
            }
            Err(error) => tracing::error!(%error, "journal compaction failed; will retry"),
        }
    }
}

/// Whether `record` should replace `kept`: a later generation of a family (an older
/// one learned late must not roll it back), or any newer key set of a peer.
fn newer(record: &Record, kept: &Record) -> bool {
    match (record, kept) {
        (
            Record::RefreshUsed {
                generation: new, ..
            },
            Record::RefreshUsed {
                generation: old, ..
            },
        ) => new > old,
        _ => true,
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
            metrics::counter!(crate::metrics::JOURNAL_FAILURES).increment(1);
            tracing::error!(%error, "journal append failed; request refused");
        })?;
        self.absorb(msg.0);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::revocation::{Reason, Revocation, Target};

    fn spent(generation: u32) -> Record {
        Record::RefreshUsed {
            family: "fam".into(),
            generation,
            expires_ms: 10_000,
            spender: "n1".into(),
        }
    }

    #[test]
    fn compaction_keeps_the_latest_generation_and_unexpired_revocations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(0);
        let (journal, _) = Journal::open(dir.path()).expect("open");
        let mut store = Store::new(journal, Vec::new(), Arc::new(clock.clone()));
        let revocation = |jti: &str, expires_ms| {
            Record::Revoke(Revocation {
                target: Target::Token { jti: jti.into() },
                reason: Reason::Admin,
                created_ms: 0,
                expires_ms,
            })
        };
        let mut records: Vec<Record> = (0..=COMPACT_MIN_DEAD as u32).map(spent).collect();
        records.push(revocation("short", 500));
        records.push(revocation("long", 50_000));
        store.journal.append(&records).expect("append");
        store.absorb(records);

        clock.advance(std::time::Duration::from_millis(1_000));
        store.maybe_compact();
        drop(store);
        let (_, replayed) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(
            replayed,
            [revocation("long", 50_000), spent(COMPACT_MIN_DEAD as u32)]
        );
    }

    #[test]
    fn a_generation_learned_late_does_not_roll_a_family_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(0);
        let (journal, _) = Journal::open(dir.path()).expect("open");
        let mut store = Store::new(journal, Vec::new(), Arc::new(clock));
        store.absorb(vec![spent(5), spent(3)]);
        assert_eq!(store.live(0).expect("journal readable"), [spent(5)]);
    }
}
