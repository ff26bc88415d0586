//! A cluster of real nodes on loopback addresses of their own.
//!
//! Every node gets a distinct `127.a.b.c` address: `a.b` is derived from the test
//! process id and a per-process cluster counter, `c` is the node's index. Tests of one
//! binary run in parallel threads, and other test binaries may run at the same time, so
//! a partition (iptables rules on addresses) of one cluster must not touch another's.
//! The cluster id is unique too, so that clusters could never merge even if they met.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::api;
use crate::config::{node_toml, NodeConfig};
use crate::node::Node;
use crate::wait::{wait_until, PROPAGATION};

/// Clusters started by this process; part of each cluster's addresses.
static CLUSTERS: AtomicU32 = AtomicU32::new(0);
/// Clusters one process may start before addresses could repeat.
const CLUSTERS_PER_PROCESS: u32 = 64;
/// Largest cluster: the node index is the last octet.
const MAX_NODES: usize = 250;

/// Settings that scenarios may change.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[keys] jwks_max_age`: how long a rotated key is published before it signs.
    pub jwks_max_age: Duration,
    /// How long a starting node waits for a peer's snapshot before serving anyway.
    pub catchup_timeout: Duration,
    /// Gossip round interval.
    pub gossip_interval: Duration,
    /// Extra TOML sections (`[rate_limits]`, `[login]`, `[heuristics]`); empty keeps
    /// the production defaults.
    pub sections: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            jwks_max_age: Duration::from_secs(3),
            catchup_timeout: Duration::from_secs(3),
            gossip_interval: Duration::from_millis(100),
            sections: String::new(),
        }
    }
}

impl Options {
    /// Budgets and caps far above any load a benchmark generates, so that it measures
    /// the node and not its limits (accounting still runs).
    pub fn unlimited() -> Self {
        Self {
            sections: UNLIMITED.to_owned(),
            ..Self::default()
        }
    }
}

/// Sections that lift every anti-abuse limit out of a benchmark's way.
const UNLIMITED: &str = "
[rate_limits]
per_minute = 1000000000

[login]
per_address = 1000000000
per_address_user = 1000000000
per_user = 1000000000
ban_after_failures = 1000000000

[heuristics]
issuance_per_address = 1000000000
issuance_per_client = 1000000000
bad_tokens = 1000000000
spread_networks = 1000000000
";

/// Running nodes that gossip with each other. Dropping it kills every process.
pub struct Cluster {
    id: String,
    options: Options,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `n` nodes, each seeded with all the others, and waits until every one
    /// reports ready.
    pub fn start(n: usize, options: Options) -> Self {
        assert!((1..=MAX_NODES).contains(&n), "1 to {MAX_NODES} nodes");
        let (id, ips) = allocate(n);
        let nodes: Vec<Node> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| Node::new(i + 1, format!("n{}", i + 1), *ip, free_udp_port(*ip)))
            .collect();
        let mut cluster = Self { id, options, nodes };
        cluster.write_configs();
        let all: Vec<usize> = (1..=n).collect();
        cluster.launch(&all);
        cluster.wait_ready(&all);
        cluster
    }

    /// The cluster id all its nodes share.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Node `i`, counting from 1 as the scenarios do.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i - 1]
    }

    /// Node `i`, mutably (to kill or restart it).
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i - 1]
    }

    /// Every node, running or not.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every node's base URL (`http://ip:port`), in order.
    pub fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base().to_owned()).collect()
    }

    /// The loopback addresses of nodes `indices`, for a [`crate::Partition`].
    pub fn ips(&self, indices: &[usize]) -> Vec<Ipv4Addr> {
        indices.iter().map(|i| self.node(*i).ip()).collect()
    }

    /// SIGKILLs every running node.
    pub fn kill_all(&mut self) {
        for node in self.nodes.iter_mut().filter(|n| n.is_running()) {
            node.kill();
        }
    }

    /// Restarts the stopped nodes `indices` together, over their data directories, and
    /// waits for each to listen (not to be ready: see [`Cluster::wait_ready`]).
    pub fn restart(&mut self, indices: &[usize]) {
        self.launch(indices);
    }

    /// Launches every process before waiting for any: a node catching up from its peers
    /// must not wait on peers that are not launched yet.
    fn launch(&mut self, indices: &[usize]) {
        let starting: Vec<_> = indices.iter().map(|i| self.node(*i).spawn()).collect();
        for (i, starting) in indices.iter().zip(starting) {
            self.node_mut(*i).await_listening(starting);
        }
    }

    /// Waits until nodes `indices` answer `/readyz` with 200. A starting node with
    /// peers becomes ready once it has caught up, or after its catch-up timeout.
    pub fn wait_ready(&self, indices: &[usize]) -> Duration {
        let deadline = self.options.catchup_timeout + Duration::from_secs(10);
        wait_until("nodes to report ready", deadline, || {
            indices.iter().all(|i| api::ready(self.node(*i).base()))
        })
    }

    /// Waits until every running node serves the same JWKS with at least one key per
    /// node, and returns its key ids.
    pub fn wait_converged(&self) -> BTreeSet<String> {
        let mut kids = BTreeSet::new();
        let nodes = self.nodes.len();
        wait_until("every JWKS to hold every node's keys", PROPAGATION, || {
            let sets: Vec<BTreeSet<String>> = self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .map(|n| api::jwks_kids(n.base()))
                .collect();
            kids = sets[0].clone();
            kids.len() >= nodes && sets.iter().all(|set| *set == kids)
        });
        kids
    }

    /// Waits until every other running node has merged all that node `from` published
    /// before the call (a refresh spend, say), which the API does not show directly.
    ///
    /// It revokes a marker token on `from` and waits for every other node to enforce
    /// it, twice. A node's gossip keys reach peers in version order, but a peer applies
    /// one round's revocations before its spends, so a first marker published in the
    /// same round as a spend can show before the spend is merged. The second marker is
    /// published after the first was merged, so it arrives in a later round, by which
    /// time everything older has been applied.
    pub fn wait_merged(&self, from: usize) {
        let origin = self.node(from);
        for _ in 0..2 {
            let marker = api::client_token(origin.base());
            api::revoke(origin.base(), &marker);
            let others = self
                .nodes
                .iter()
                .filter(|n| n.is_running() && n.index() != from);
            for node in others {
                let what = format!("{} to merge what {} published", node.id(), origin.id());
                wait_until(&what, PROPAGATION, || api::rejects(node.base(), &marker));
            }
        }
    }

    fn write_configs(&self) {
        let gossips: Vec<SocketAddr> = self.nodes.iter().map(Node::gossip_addr).collect();
        for node in &self.nodes {
            let seeds: Vec<SocketAddr> = gossips
                .iter()
                .copied()
                .filter(|addr| *addr != node.gossip_addr())
                .collect();
            let data_dir = node.data_dir();
            let region = format!("r{}", 1 + node.index() % 2);
            let toml = node_toml(&NodeConfig {
                node_id: node.id(),
                cluster_id: &self.id,
                ip: node.ip(),
                gossip: node.gossip_addr(),
                seeds: &seeds,
                region: &region,
                data_dir: &data_dir,
                jwks_max_age: self.options.jwks_max_age,
                catchup_timeout: self.options.catchup_timeout,
                gossip_interval: self.options.gossip_interval,
                sections: &self.options.sections,
            });
            std::fs::write(node.config_path(), toml).expect("the node config can be written");
        }
    }
}

/// A cluster id and `n` loopback addresses no other cluster of any test process uses.
fn allocate(n: usize) -> (String, Vec<Ipv4Addr>) {
    let pid = std::process::id();
    let seq = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    assert!(
        seq < CLUSTERS_PER_PROCESS,
        "one test process may start at most {CLUSTERS_PER_PROCESS} clusters"
    );
    // 199 × 256 address blocks: 127.0.x.x is the node tests' home, and 127.200 and above
    // are left to tests of the harness itself.
    let block = (pid.wrapping_mul(CLUSTERS_PER_PROCESS) + seq) % (199 * 256);
    let (a, b) = ((1 + block / 256) as u8, (block % 256) as u8);
    let ips = (1..=n).map(|c| Ipv4Addr::new(127, a, b, c as u8)).collect();
    (format!("pct-{pid}-{seq}"), ips)
}

/// A UDP port free on `ip` just now: chitchat must be told a concrete port.
fn free_udp_port(ip: Ipv4Addr) -> SocketAddr {
    let socket = UdpSocket::bind((ip, 0)).expect("a loopback UDP port can be bound");
    socket.local_addr().expect("a bound socket has an address")
}
