//! One `portcullis` process: its addresses and data directory, which outlive the
//! process, so that a killed (or gracefully stopped) node can be restarted as the same
//! node.
//!
//! A node is started in two steps, [`Node::spawn`] then [`Node::await_listening`], so
//! that a cluster can launch every process before waiting on any: a node waiting to
//! catch up from its peers must not be held back by peers not yet launched.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a process gets to print its listening line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Lines of a node's log shown when a test fails.
const LOG_TAIL: usize = 60;
/// How often an exiting process is polled.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// What the node prints on stdout once it serves.
const LISTENING: &str = "portcullis: listening on ";

/// A cluster member: fixed identity and addresses, and the process while it runs.
pub struct Node {
    /// 1-based position in the cluster, as scenarios number nodes.
    index: usize,
    /// Configured node id.
    id: String,
    /// Loopback address HTTP and gossip bind; unique to this node among running tests.
    ip: Ipv4Addr,
    /// UDP gossip address; kept across restarts so peers find the node again.
    gossip: SocketAddr,
    /// Holds `node.toml`, `data/` and `node.log`.
    dir: TempDir,
    /// The running process, if any.
    process: Option<Running>,
}

struct Running {
    child: Child,
    /// `http://ip:port`, known once the listening line is printed.
    base: String,
}

/// A launched process that has not yet reported its address; killed if dropped so.
pub struct Starting {
    /// Taken by [`Node::await_listening`].
    child: Option<Child>,
    lines: Receiver<String>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Node {
    /// A node that is not running yet; its configuration is written by the caller to
    /// [`Node::config_path`] before the first start.
    pub fn new(index: usize, id: String, ip: Ipv4Addr, gossip: SocketAddr) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("portcullis-{id}-"))
            .tempdir()
            .expect("a temporary directory can be created");
        Self {
            index,
            id,
            ip,
            gossip,
            dir,
            process: None,
        }
    }

    /// The node's position in its cluster (1-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The configured node id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The loopback address the node binds.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The node's gossip (UDP) address.
    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip
    }

    /// The node's data directory, kept across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the node's configuration is written.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("node.toml")
    }

    /// Where the node's stderr (its log) goes, appended across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// Base URL of the running process (the HTTP port changes on every start).
    pub fn base(&self) -> &str {
        let running = self.process.as_ref();
        let running = running.unwrap_or_else(|| panic!("node {} is not running", self.id));
        &running.base
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Whether a process is running for this node.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// The operating-system process id while the node runs (to read `/proc/<pid>/…`).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|running| running.child.id())
    }

    /// Launches the process; finish with [`Node::await_listening`].
    pub fn spawn(&self) -> Starting {
        assert!(!self.is_running(), "node {} is already running", self.id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the node log can be opened");
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // Settings come from the file alone, whatever the environment of the test run.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PORTCULLIS_") {
                command.env_remove(key);
            }
        }
        let filter = std::env::var("CLUSTER_TESTS_LOG").unwrap_or_else(|_| "info".into());
        command.env("PORTCULLIS_LOG", filter).env("NO_COLOR", "1");
        let mut child = command
            .spawn()
            .expect("the portcullis binary can be started");
        let stdout = child.stdout.take().expect("stdout is piped");
        Starting {
            child: Some(child),
            lines: forward_lines(stdout),
        }
    }

    /// Waits for the launched process to print its listening line.
    pub fn await_listening(&mut self, mut starting: Starting) {
        let child = starting.child.take().expect("a process is awaited once");
        // Owned by the node from here, so a failed start is still killed by `Drop`.
        self.process = Some(Running {
            child,
            base: String::new(),
        });
        let lines = &starting.lines;
        let deadline = Instant::now() + START_DEADLINE;
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => match line.strip_prefix(LISTENING) {
                    Some(base) => break base.trim().to_owned(),
                    None => continue,
                },
                Err(RecvTimeoutError::Timeout) => self.fail_start("printed no listening line"),
                Err(RecvTimeoutError::Disconnected) => self.fail_start("exited"),
            }
        };
        if let Some(running) = self.process.as_mut() {
            running.base = base;
        }
    }

    /// Starts the process again over the same data directory and addresses.
    pub fn restart(&mut self) {
        let starting = self.spawn();
        self.await_listening(starting);
    }

    /// SIGKILL: the process gets no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        let Some(mut running) = self.process.take() else {
            panic!("node {} is not running", self.id);
        };
        running.child.kill().expect("a child process can be killed");
        running.child.wait().expect("a killed child can be reaped");
    }

    /// SIGTERM: the node should drain, leave the cluster and exit; see
    /// [`Node::wait_exit`].
    pub fn sigterm(&self) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("node {} is not running", self.id));
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit by itself and returns its status and how long it
    /// took; SIGKILLs it and panics if it is still running after `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let Some(mut running) = self.process.take() else {
            panic!("node {} is not running", self.id);
        };
        loop {
            if let Some(status) = running.child.try_wait().expect("a child can be polled") {
                return (status, started.elapsed());
            }
            if started.elapsed() > deadline {
                let _ = running.child.kill();
                let _ = running.child.wait();
                panic!(
                    "node {} did not exit within {deadline:?}; log:\n{}",
                    self.id,
                    self.log_tail()
                );
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// The last lines of the node's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }

    fn fail_start(&mut self, what: &str) -> ! {
        let status = self
            .process
            .as_mut()
            .and_then(|running| running.child.try_wait().ok().flatten());
        panic!(
            "node {} {what} (exit status {status:?}); log:\n{}",
            self.id,
            self.log_tail()
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut running) = self.process.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        if std::thread::panicking() {
            let keep = std::env::var_os("CLUSTER_TESTS_KEEP").is_some();
            self.dir.disable_cleanup(keep);
            let dir = self.dir.path().display();
            let fate = if keep {
                "kept"
            } else {
                "removed; set CLUSTER_TESTS_KEEP=1 to keep"
            };
            eprintln!(
                "--- node {} ({}), directory {dir} {fate} ---\n{}",
                self.id,
                self.ip,
                self.log_tail()
            );
        }
    }
}

/// Forwards stdout lines to a channel, and keeps draining after the receiver is gone so
/// that the node never blocks or fails writing to a closed pipe.
fn forward_lines(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The `portcullis` binary: `$CLUSTER_TESTS_BIN`, or `debug/portcullis` in the target
/// directory (`$CARGO_TARGET_DIR`, relative to the workspace root, or `target/`).
pub fn binary() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = match (
        std::env::var_os("CLUSTER_TESTS_BIN"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(bin), _) => PathBuf::from(bin),
        (None, Some(target)) => workspace.join(target).join("debug/portcullis"),
        (None, None) => workspace.join("target/debug/portcullis"),
    };
    assert!(
        path.is_file(),
        "{} is missing: run cargo build -p portcullis first",
        path.display()
    );
    path
}
