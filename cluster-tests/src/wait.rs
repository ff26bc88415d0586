//! Waiting on conditions with a deadline. Scenarios never sleep a fixed time to let
//! something happen: they poll for it and fail, naming what they waited for, when the
//! deadline passes.

use std::time::{Duration, Instant};

/// How long gossip gets to spread a change to every node: 50 rounds at the 100 ms
/// interval the harness configures, far above the expected two or three.
pub const PROPAGATION: Duration = Duration::from_secs(5);

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds; panics naming `what` once `deadline` has passed.
/// Returns how long it took.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls `condition` for the whole `window` and panics naming `what` the first time it
/// does not hold. For proving that something does *not* happen, e.g. across a partition.
pub fn holds_throughout(what: &str, window: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(
            condition(),
            "{what} stopped holding after {:?}",
            start.elapsed()
        );
        std::thread::sleep(POLL);
    }
}
