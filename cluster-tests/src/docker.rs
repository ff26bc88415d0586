//! A three-region cluster of `portcullis:local` containers, for fault tests that need
//! what only containers give: network links to unplug, processes to `docker kill` and
//! `docker stop`, named volumes that outlive them, and host-side veths to slow down.
//!
//! Layout of one [`DockerCluster`] (names carry the test pid and a counter):
//!
//! ```text
//!                 mesh network 10.a.b.0/24 (fixed addresses .11 .12 .13)
//!        gossip (udp 7946) and snapshots (http://<name>:8080) between the nodes
//!   ┌──────────────┬───────────────────────┬───────────────────────┐
//!   eu             us                      ap       containers, one named volume each
//!   │              │                       │
//!   eu access      us access               ap access   one network per node:
//!   └──── host ────┴───────────────────────┘           the test's HTTP calls
//! ```
//!
//! The test drives each node over its own access network, so unplugging a node from the
//! mesh (`docker network disconnect`) cuts it off from its peers while the test still
//! sees what it enforces. Seeds are container names, resolved by Docker's DNS on the
//! mesh; `gossip_advertise` is the fixed mesh address, since the node takes an IP
//! there. Configuration is environment only, over the image's file ([`env`]).
//!
//! Module map: [`cli`] runs docker and removes everything on drop; [`env`] is the
//! node's environment; [`netem`] finds host-side veths and delays them (with [`nfqueue`] where the kernel has
//! no netem); [`load`] is the
//! load generator of the rolling-restart test.
//!
//! [`image`] builds the image once per process with `scripts/build-image.sh` (which
//! skips `docker build` when the binary is unchanged). Without a usable docker the
//! tests fail, unless `CLUSTER_TESTS_SKIP_DOCKER=1` is set (see [`skip`]).

pub mod cli;
pub mod env;
pub mod load;
pub mod netem;
pub mod nfqueue;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::api;
use crate::config::CLUSTER_SECRET;
use crate::wait::{wait_until, PROPAGATION};
use cli::{docker, label_arg, try_docker, Resources};
use env::{node_env, NodeEnv, HTTP_PORT, SECRET_PATH};

/// The tag `scripts/build-image.sh` gives the image.
pub const IMAGE: &str = "portcullis:local";
/// The variable that turns the docker tests into a loud no-op on hosts without docker.
pub const SKIP_VAR: &str = "CLUSTER_TESTS_SKIP_DOCKER";
/// The three regions, in node order (node 1 is `eu`).
pub const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// Grace period `docker stop` gives a node before SIGKILL.
const STOP_GRACE_SECS: u32 = 20;
/// How long a started container gets to answer `/healthz`.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a node may take to become ready: its catch-up timeout (15 s) and margin.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How often docker runs the image's HEALTHCHECK in tests.
const HEALTH_INTERVAL: &str = "1s";
/// Lines of each container's log shown when a test fails.
const LOG_TAIL: &str = "80";

/// Clusters started by this process; part of every name and of the mesh subnet.
static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// Whether the docker tests are to be skipped, by `CLUSTER_TESTS_SKIP_DOCKER=1`; says
/// so on stderr. Without the variable, a host without docker fails the tests.
pub fn skip() -> bool {
    let skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{SKIP_VAR}=1: docker fault test skipped");
    }
    skip
}

/// Builds (or confirms) the image once per process and sweeps leftovers of killed runs;
/// panics, naming the skip variable, when docker is not usable.
pub fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if let Err(e) = try_docker(&["info", "--format", "{{.ServerVersion}}"]) {
            panic!("docker is not usable ({e}); set {SKIP_VAR}=1 to skip the docker tests");
        }
        cli::sweep_stale();
        nfqueue::sweep_stale();
        let script = workspace().join("scripts/build-image.sh");
        let started = Instant::now();
        let status = std::process::Command::new(&script)
            .arg(IMAGE)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(status.success(), "{} failed: {status}", script.display());
        eprintln!("image {IMAGE} ready after {:?}", started.elapsed());
    });
    IMAGE
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One container: its fixed names and mesh address, and its HTTP base while it runs.
pub struct DockerNode {
    /// Region label, also the node id.
    region: &'static str,
    /// Container name, unique per run; the DNS name peers seed with.
    name: String,
    /// Fixed address on the mesh network.
    mesh_ip: Ipv4Addr,
    /// The node's own access network.
    access: String,
    /// `http://<access address>:8080` while running: re-read after every start, since
    /// docker may hand out another address.
    base: Option<String>,
}

impl DockerNode {
    /// Region label and node id.
    pub fn region(&self) -> &'static str {
        self.region
    }

    /// Container name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Address on the mesh network.
    pub fn mesh_ip(&self) -> Ipv4Addr {
        self.mesh_ip
    }

    /// HTTP base URL; panics if the container is not running.
    pub fn base(&self) -> &str {
        let base = self.base.as_deref();
        base.unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// Whether the harness started the container and has not stopped it since.
    pub fn is_running(&self) -> bool {
        self.base.is_some()
    }
}

/// Three nodes in three regions. Dropping it removes every container, network and
/// volume it created, after printing the containers' logs if the test is failing.
pub struct DockerCluster {
    /// Prefix of every name: `pcd-<pid>-<counter>`.
    run: String,
    /// The shared network's name.
    mesh: String,
    nodes: Vec<DockerNode>,
    /// Holds the cluster secret file the containers mount.
    _secrets: TempDir,
    /// Removes everything on drop; held for that alone.
    _resources: Resources,
}

impl DockerCluster {
    /// Creates the networks, volumes and containers, starts all three nodes together
    /// and waits until each is ready and every JWKS holds every node's key.
    pub fn start() -> Self {
        let image = image();
        let seq = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let run = format!("pcd-{}-{seq}", std::process::id());
        let mut resources = Resources::default();
        let (mesh, prefix) = create_mesh(&mut resources, &run, seq);
        let secrets = write_secret();
        let names: Vec<String> = REGIONS.iter().map(|r| format!("{run}-{r}")).collect();
        let mut nodes = Vec::new();
        for (i, region) in REGIONS.iter().enumerate() {
            let mesh_ip = Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 11 + i as u8);
            let spec = Spec {
                run: &run,
                region,
                mesh: &mesh,
                mesh_ip,
                names: &names,
                secret: &secrets.path().join("cluster-secret"),
            };
            nodes.push(create_node(&mut resources, &spec, image));
        }
        let mut cluster = Self {
            run,
            mesh,
            nodes,
            _secrets: secrets,
            _resources: resources,
        };
        let all = [1, 2, 3];
        cluster.start_nodes(&all);
        cluster.wait_ready(&all);
        cluster.wait_converged();
        cluster
    }

    /// Node `i`, counting from 1 (`eu`, `us`, `ap`).
    pub fn node(&self, i: usize) -> &DockerNode {
        &self.nodes[i - 1]
    }

    /// Every node.
    pub fn nodes(&self) -> &[DockerNode] {
        &self.nodes
    }

    /// The running nodes' base URLs.
    pub fn bases(&self) -> Vec<String> {
        let running = self.nodes.iter().filter(|n| n.is_running());
        running.map(|n| n.base().to_owned()).collect()
    }

    /// The mesh network's name.
    pub fn mesh(&self) -> &str {
        &self.mesh
    }

    /// The prefix every name of this run starts with.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// `docker start`s the stopped nodes `indices` together and waits until each
    /// serves HTTP (not until it is ready: see [`DockerCluster::wait_ready`]).
    pub fn start_nodes(&mut self, indices: &[usize]) {
        let names: Vec<&str> = indices
            .iter()
            .map(|i| self.node(*i).name.as_str())
            .collect();
        let mut args = vec!["start"];
        args.extend(&names);
        docker(&args);
        for i in indices {
            let base = self.await_serving(*i);
            self.nodes[i - 1].base = Some(base);
        }
    }

    /// `docker kill` (SIGKILL): no chance to flush or to say goodbye.
    pub fn kill(&mut self, i: usize) {
        docker(&["kill", &self.node(i).name]);
        self.await_exit(i);
    }

    /// `docker stop` (SIGTERM, then SIGKILL after the grace period) of nodes `indices`
    /// together; returns how long docker took, and panics if a node had to be killed.
    pub fn stop(&mut self, indices: &[usize]) -> Duration {
        let grace = STOP_GRACE_SECS.to_string();
        let mut args = vec!["stop", "-t", &grace];
        args.extend(indices.iter().map(|i| self.nodes[i - 1].name.as_str()));
        let started = Instant::now();
        docker(&args);
        let took = started.elapsed();
        for i in indices {
            let code = self.await_exit(*i);
            let name = &self.node(*i).name;
            assert_eq!(code, 0, "{name} exited with {code} after SIGTERM");
        }
        took
    }

    /// Unplugs node `i` from the mesh: it keeps running and serving the test.
    pub fn disconnect(&self, i: usize) {
        docker(&["network", "disconnect", &self.mesh, &self.node(i).name]);
    }

    /// Plugs node `i` back into the mesh at its fixed address.
    pub fn reconnect(&self, i: usize) {
        let node = self.node(i);
        let ip = node.mesh_ip.to_string();
        docker(&["network", "connect", "--ip", &ip, &self.mesh, &node.name]);
    }

    /// The host-side veth of node `i`'s mesh interface.
    pub fn mesh_veth(&self, i: usize) -> String {
        netem::host_veth(&self.node(i).name, &self.mesh)
    }

    /// Waits until nodes `indices` answer `/readyz` with 200; returns how long it took.
    pub fn wait_ready(&self, indices: &[usize]) -> Duration {
        wait_until("nodes to report ready", READY_DEADLINE, || {
            indices.iter().all(|i| api::ready(self.node(*i).base()))
        })
    }

    /// Docker's health status of node `i` (`starting`, `healthy`, `unhealthy`), from
    /// the image's HEALTHCHECK (`portcullis healthcheck` against `/readyz`).
    pub fn health(&self, i: usize) -> String {
        let template = "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";
        docker(&["inspect", "-f", template, &self.node(i).name])
    }

    /// Waits until every running node serves the same JWKS with a key of every node;
    /// returns the key ids.
    pub fn wait_converged(&self) -> BTreeSet<String> {
        let bases = self.bases();
        let mut kids = BTreeSet::new();
        wait_until("every JWKS to hold every node's keys", PROPAGATION, || {
            let sets: Vec<BTreeSet<String>> = bases.iter().map(|b| api::jwks_kids(b)).collect();
            kids = sets[0].clone();
            kids.len() >= self.nodes.len() && sets.iter().all(|set| *set == kids)
        });
        kids
    }

    /// The last lines of node `i`'s log (its stderr and stdout, across restarts).
    pub fn logs(&self, i: usize) -> String {
        let name = &self.node(i).name;
        let output = std::process::Command::new("docker")
            .args(["logs", "--tail", LOG_TAIL, name])
            .output();
        output.map_or_else(
            |e| format!("(no logs: {e})"),
            |o| {
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                text
            },
        )
    }

    fn await_serving(&self, i: usize) -> String {
        let node = self.node(i);
        let template = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            node.access
        );
        let ip = docker(&["inspect", "-f", &template, &node.name]);
        let base = format!("http://{ip}:{HTTP_PORT}");
        let started = Instant::now();
        while !healthy(&base) {
            let state = docker(&["inspect", "-f", "{{.State.Status}}", &node.name]);
            let late = started.elapsed() > START_DEADLINE;
            if state != "running" || late {
                panic!(
                    "{} is {state}, not serving at {base}:\n{}",
                    node.name,
                    self.logs(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        base
    }

    /// Waits for node `i`'s container to exit; returns its exit code.
    fn await_exit(&mut self, i: usize) -> i64 {
        let name = self.nodes[i - 1].name.clone();
        let mut code = String::new();
        wait_until(&format!("{name} to exit"), START_DEADLINE, || {
            let state = docker(&[
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.ExitCode}}",
                &name,
            ]);
            let (running, exit) = state.split_once(' ').unwrap_or((&state, ""));
            code = exit.to_owned();
            running == "false"
        });
        self.nodes[i - 1].base = None;
        code.parse().unwrap_or(-1)
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 1..=self.nodes.len() {
                let node = self.node(i);
                eprintln!("--- {} ({}) ---\n{}", node.name, node.region, self.logs(i));
            }
        }
        // The fields drop next: `resources` removes the containers, networks, volumes.
    }
}

fn healthy(base: &str) -> bool {
    let response = api::client().get(format!("{base}/healthz")).send();
    response.is_ok_and(|r| r.status() == 200)
}

/// What one container is created from.
struct Spec<'a> {
    run: &'a str,
    region: &'static str,
    mesh: &'a str,
    mesh_ip: Ipv4Addr,
    /// Every node's container name, this one's included.
    names: &'a [String],
    /// The host file mounted at [`SECRET_PATH`].
    secret: &'a Path,
}

/// Creates the node's access network, volume and container (attached to both
/// networks), without starting it.
fn create_node(resources: &mut Resources, spec: &Spec<'_>, image: &str) -> DockerNode {
    let name = format!("{}-{}", spec.run, spec.region);
    let (access, proxy) = create_access(resources, &name);
    let volume = format!("{name}-data");
    let label = label_arg();
    resources.volume(&volume);
    docker(&["volume", "create", "--label", &label, &volume]);

    let peers: Vec<String> = spec.names.iter().filter(|n| **n != name).cloned().collect();
    let env = node_env(&NodeEnv {
        region: spec.region,
        cluster_id: spec.run,
        name: &name,
        mesh_ip: spec.mesh_ip,
        peers: &peers,
        proxy,
    });
    let ip = spec.mesh_ip.to_string();
    let data = format!("{volume}:/data");
    let secret = format!("{}:{SECRET_PATH}:ro", spec.secret.display());
    let mut args = vec!["create", "--name", &name, "--label", &label, "--hostname"];
    args.extend([spec.region, "--network", spec.mesh, "--ip", &ip]);
    args.extend(["-v", &data, "-v", &secret]);
    // The image's own HEALTHCHECK command, probed more often than its 10 s.
    args.extend(["--health-interval", HEALTH_INTERVAL]);
    for pair in &env {
        args.extend(["-e", pair.as_str()]);
    }
    args.push(image);
    resources.container(&name);
    docker(&args);
    docker(&["network", "connect", &access, &name]);
    DockerNode {
        region: spec.region,
        name,
        mesh_ip: spec.mesh_ip,
        access,
        base: None,
    }
}

/// Creates the node's own access network; returns its name and the host's address on
/// it, which is where the test's requests come from.
fn create_access(resources: &mut Resources, node: &str) -> (String, Ipv4Addr) {
    let access = format!("{node}-access");
    resources.network(&access);
    docker(&["network", "create", "--label", &label_arg(), &access]);
    let template = "{{(index .IPAM.Config 0).Gateway}}";
    let gateway = docker(&["network", "inspect", "-f", template, &access]);
    let host = gateway
        .parse()
        .unwrap_or_else(|_| panic!("{access} has gateway {gateway:?}"));
    (access, host)
}

/// Creates the mesh network on a /24 of 10.200.0.0–10.249.255.0 picked from the pid
/// and counter, moving on when docker reports that one overlaps another network.
fn create_mesh(resources: &mut Resources, run: &str, seq: u32) -> (String, [u8; 3]) {
    let mesh = format!("{run}-mesh");
    resources.network(&mesh);
    let label = label_arg();
    let first = std::process::id().wrapping_mul(64).wrapping_add(seq * 16);
    for attempt in 0..32 {
        let block = first.wrapping_add(attempt) % (50 * 256);
        let prefix = [10, 200 + (block / 256) as u8, (block % 256) as u8];
        let subnet = format!("{}.{}.{}.0/24", prefix[0], prefix[1], prefix[2]);
        let args = [
            "network", "create", "--label", &label, "--subnet", &subnet, &mesh,
        ];
        match try_docker(&args) {
            Ok(_) => return (mesh, prefix),
            Err(e) if e.stderr.contains("overlap") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free /24 for the mesh network in 10.200.0.0-10.249.255.255");
}

/// The cluster secret in a file the containers' user (uid 10001) can read.
fn write_secret() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-docker-")
        .tempdir()
        .expect("a temporary directory can be created");
    let path = dir.path().join("cluster-secret");
    std::fs::write(&path, format!("{CLUSTER_SECRET}\n")).expect("the secret can be written");
    let readable = std::fs::Permissions::from_mode(0o444);
    std::fs::set_permissions(&path, readable).expect("the secret can be made readable");
    dir
}
