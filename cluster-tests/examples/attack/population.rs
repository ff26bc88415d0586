//! The real users of the simulations: fifty accounts, each with a home network of its
//! own, hashed once per run.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use portcullis::secrets::hash_password;

/// Real users per simulation.
pub const USERS: usize = 50;

/// The fifty users, their passwords and the `[[users]]` tables that declare them.
pub struct Population {
    /// `(name, password)`, `u00` first: the name attackers go after.
    pub users: Vec<(String, String)>,
    /// TOML to append to every node's configuration.
    pub sections: String,
}

impl Population {
    /// Hashes every password (argon2, so this takes a moment).
    pub fn new() -> Self {
        let users: Vec<(String, String)> = (0..USERS)
            .map(|k| (format!("u{k:02}"), format!("pw-u{k:02}-correct-horse")))
            .collect();
        let sections = users
            .iter()
            .map(|(name, password)| {
                format!(
                    "\n[[users]]\nname = \"{name}\"\npassword_hash = \"{}\"\nscopes = [\"read\"]\n",
                    hash_password(password)
                )
            })
            .collect();
        Self { users, sections }
    }

    /// The user name attackers guess at.
    pub fn victim(&self) -> &str {
        &self.users[0].0
    }
}

/// Host `host` (1..=250) of user `k`'s home network, `127.60.k.0/24`.
pub fn home(k: usize, host: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 60, k as u8, (1 + (host - 1) % 250) as u8)
}

/// Sleeps until `due`; returns at once when it has passed.
pub fn sleep_until(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// `Duration` of `n` × `step`.
pub fn times(step: Duration, n: usize) -> Duration {
    step * u32::try_from(n).expect("schedules stay small")
}
