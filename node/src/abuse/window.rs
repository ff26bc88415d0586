//! A sliding-window request count kept as two fixed windows.
//!
//! The count of the current window plus the previous window's count weighted by how
//! much of it still overlaps the sliding window: a good estimate of the last minute's
//! requests that, unlike a plain fixed window, does not let a client spend two budgets
//! across a window boundary. Windows are numbered (`now / length`), so an entry whose
//! window is long gone reads as zero and never needs a timer to be reset.

/// Counts in the current and the previous fixed window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sliding {
    /// Number of the window `current` counts.
    window: u64,
    current: u64,
    previous: u64,
}

/// Where an instant falls among fixed windows of one length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    /// Window number: Unix ms divided by the window length.
    pub window: u64,
    /// Milliseconds elapsed in that window.
    pub into_ms: u64,
    /// The window length in milliseconds.
    pub length_ms: u64,
}

impl Instant {
    /// `now_ms` in windows of `length_ms` (at least 1 ms).
    pub fn at(now_ms: u64, length_ms: u64) -> Self {
        let length_ms = length_ms.max(1);
        Self {
            window: now_ms / length_ms,
            into_ms: now_ms % length_ms,
            length_ms,
        }
    }

    /// Milliseconds until the current window ends.
    pub fn remaining_ms(&self) -> u64 {
        self.length_ms - self.into_ms
    }
}

impl Sliding {
    /// Brings the windows forward to `at` (dropping what fell out) and adds `n`.
    pub fn add(&mut self, at: Instant, n: u64) {
        self.roll(at.window);
        self.current = self.current.saturating_add(n);
    }

    /// Sets the count of window `window` (the gossip actor recomputes peer totals and
    /// sets them whole). Windows older than the previous one are ignored.
    pub fn set(&mut self, window: u64, count: u64) {
        if window > self.window {
            self.roll(window);
        }
        if window == self.window {
            self.current = count;
        } else if window + 1 == self.window {
            self.previous = count;
        }
    }

    /// The estimated count over the sliding window ending at `at`.
    pub fn estimate(&self, at: Instant) -> u64 {
        let (current, previous) = match at.window.checked_sub(self.window) {
            Some(0) => (self.current, self.previous),
            Some(1) => (0, self.current),
            _ => (0, 0),
        };
        let overlap = at.length_ms - at.into_ms;
        let weighted = u128::from(previous) * u128::from(overlap) / u128::from(at.length_ms);
        current.saturating_add(weighted as u64)
    }

    /// The count of window `window` alone, if this entry still holds it.
    pub fn count_in(&self, window: u64) -> u64 {
        if window == self.window {
            self.current
        } else if window + 1 == self.window {
            self.previous
        } else {
            0
        }
    }

    /// The newest window this entry has counted in.
    pub fn window(&self) -> u64 {
        self.window
    }

    fn roll(&mut self, window: u64) {
        match window.checked_sub(self.window) {
            Some(0) | None => {}
            Some(1) => {
                self.previous = self.current;
                self.current = 0;
            }
            Some(_) => {
                self.previous = 0;
                self.current = 0;
            }
        }
        self.window = self.window.max(window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    #[test]
    fn counts_within_one_window() {
        let mut count = Sliding::default();
        let at = Instant::at(10 * MINUTE + 5_000, MINUTE);
        count.add(at, 3);
        count.add(at, 2);
        assert_eq!(count.estimate(at), 5);
        assert_eq!(at.remaining_ms(), 55_000);
    }

    #[test]
    fn weights_the_previous_window_by_its_remaining_overlap() {
        let mut count = Sliding::default();
        count.add(Instant::at(10 * MINUTE + 30_000, MINUTE), 100);
        // A quarter into the next window, three quarters of the old count still apply.
        let next = Instant::at(11 * MINUTE + 15_000, MINUTE);
        assert_eq!(count.estimate(next), 75);
        count.add(next, 10);
        assert_eq!(count.estimate(next), 85);
        // Two windows on, nothing is left.
        assert_eq!(count.estimate(Instant::at(13 * MINUTE, MINUTE)), 0);
    }

    #[test]
    fn rolling_over_a_gap_forgets_both_windows() {
        let mut count = Sliding::default();
        count.add(Instant::at(MINUTE, MINUTE), 50);
        let later = Instant::at(5 * MINUTE + 1, MINUTE);
        count.add(later, 1);
        assert_eq!(count.estimate(later), 1);
        assert_eq!(count.count_in(4), 0);
    }

    #[test]
    fn set_replaces_a_window_and_ignores_stale_ones() {
        let mut peers = Sliding::default();
        peers.set(7, 40);
        peers.set(7, 30);
        assert_eq!(peers.count_in(7), 30);
        peers.set(8, 5);
        assert_eq!((peers.count_in(7), peers.count_in(8)), (30, 5));
        // A late total for the previous window still lands; an older one does not.
        peers.set(7, 45);
        peers.set(6, 99);
        assert_eq!((peers.count_in(7), peers.count_in(8)), (45, 5));
    }
}
