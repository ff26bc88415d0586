//! Network partitions between loopback addresses, made with iptables.
//!
//! A [`Partition`] puts its DROP rules in a chain of its own, `PCT-<pid>-<n>`, jumped
//! to from `INPUT`, so parallel tests never touch each other's rules. Dropping the guard
//! (also when the test panics) removes the jump and deletes the chain. Chains left by a
//! test process that died without unwinding are swept the next time a partition is
//! made, once their process is gone.
//!
//! Only UDP is cut, which is all gossip uses. Snapshot catch-up travels over HTTP, but
//! a node learns whom to ask only through gossip, and HTTP between nodes cannot be told
//! apart from the test's own requests (both come from 127.0.0.1).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// Prefix of every chain this harness creates.
const PREFIX: &str = "PCT-";

/// Partitions made by this process; part of each chain name.
static PARTITIONS: AtomicU32 = AtomicU32::new(0);

/// While alive, UDP between the two sides is dropped in both directions.
pub struct Partition {
    chain: String,
}

impl Partition {
    /// Cuts UDP between every address of `side_a` and every address of `side_b`.
    pub fn cut(side_a: &[Ipv4Addr], side_b: &[Ipv4Addr]) -> Self {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_abandoned);
        let seq = PARTITIONS.fetch_add(1, Ordering::Relaxed);
        let chain = format!("{PREFIX}{}-{seq}", std::process::id());
        iptables(&["-N", &chain]).expect("an iptables chain can be created");
        // From here `Drop` cleans up, whatever fails next.
        let partition = Self { chain };
        for a in side_a {
            for b in side_b {
                partition.drop_udp(*a, *b);
                partition.drop_udp(*b, *a);
            }
        }
        iptables(&["-I", "INPUT", "1", "-j", &partition.chain])
            .expect("the partition chain can be jumped to from INPUT");
        partition
    }

    /// Restores traffic (the same as dropping the guard).
    pub fn heal(self) {}

    /// The iptables chain holding this partition's rules.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    fn drop_udp(&self, from: Ipv4Addr, to: Ipv4Addr) {
        let (from, to) = (from.to_string(), to.to_string());
        let rule = [
            "-A",
            &self.chain,
            "-p",
            "udp",
            "-s",
            &from,
            "-d",
            &to,
            "-j",
            "DROP",
        ];
        iptables(&rule).expect("a partition rule can be added");
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Err(problem) = remove_chain(&self.chain) {
            // Never panic here: this may run while a failed test unwinds.
            eprintln!("could not remove iptables chain {}: {problem}", self.chain);
        }
    }
}

/// Unhooks `chain` from INPUT (every jump to it), empties and deletes it.
fn remove_chain(chain: &str) -> Result<(), String> {
    while iptables(&["-D", "INPUT", "-j", chain]).is_ok() {}
    iptables(&["-F", chain])?;
    iptables(&["-X", chain])
}

/// Removes chains whose creating process no longer exists.
fn sweep_abandoned() {
    let Ok(rules) = iptables_output(&["-S"]) else {
        return;
    };
    for line in rules.lines() {
        let Some(chain) = line.strip_prefix("-N ") else {
            continue;
        };
        let owner = chain
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if owner.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = remove_chain(chain);
        }
    }
}

fn iptables(args: &[&str]) -> Result<(), String> {
    iptables_output(args).map(drop)
}

/// Runs `iptables -w …`; panics if iptables is not installed at all.
fn iptables_output(args: &[&str]) -> Result<String, String> {
    let output = Command::new("iptables").arg("-w").args(args).output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "iptables is not installed: partition tests need it, and root \
             (e.g. apt-get install iptables)"
        ),
        Err(e) => panic!("iptables could not be run: {e}"),
    };
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "iptables {} failed ({}): {} (partition tests must run as root)",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
