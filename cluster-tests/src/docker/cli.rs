//! The `docker` command line, and the guard that removes what a test created.
//!
//! Everything the harness creates carries the [`LABEL`] with the test process id and is
//! registered with a [`Resources`] guard *before* it is created, so that a test that
//! fails half-way (or a create that fails half-way) still leaves nothing behind. Runs
//! killed outright (no `Drop`) are swept by [`sweep_stale`] at the next run.

use std::fmt;
use std::path::Path;
use std::process::{Command, Output};

/// Label on every container, network and volume the harness creates; its value is the
/// id of the test process that made it.
pub const LABEL: &str = "io.portcullis.cluster-tests.pid";

/// A `docker` invocation that failed.
#[derive(Debug)]
pub struct DockerError {
    /// The arguments, for the message.
    pub args: String,
    /// What docker printed on stderr (or why it could not be run).
    pub stderr: String,
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker {} failed: {}", self.args, self.stderr.trim())
    }
}

impl std::error::Error for DockerError {}

/// Runs `docker args…` and returns its trimmed stdout.
pub fn try_docker(args: &[&str]) -> Result<String, DockerError> {
    let failed = |stderr: String| DockerError {
        args: args.join(" "),
        stderr,
    };
    let output: Output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| failed(format!("cannot run docker: {e}")))?;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `docker args…`; panics with docker's message if it fails.
pub fn docker(args: &[&str]) -> String {
    try_docker(args).unwrap_or_else(|e| panic!("{e}"))
}

/// The `--label` argument every created object carries.
pub fn label_arg() -> String {
    format!("{LABEL}={}", std::process::id())
}

/// Names of what one test created, removed (forcibly, with anonymous volumes) on drop:
/// containers first, then the networks and volumes they used.
#[derive(Default)]
pub struct Resources {
    containers: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl Resources {
    /// Registers a container about to be created.
    pub fn container(&mut self, name: &str) {
        self.containers.push(name.to_owned());
    }

    /// Registers a network about to be created.
    pub fn network(&mut self, name: &str) {
        self.networks.push(name.to_owned());
    }

    /// Registers a named volume about to be created.
    pub fn volume(&mut self, name: &str) {
        self.volumes.push(name.to_owned());
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        let groups: [(&[&str], &Vec<String>); 3] = [
            (&["rm", "-f", "-v"], &self.containers),
            (&["network", "rm"], &self.networks),
            (&["volume", "rm", "-f"], &self.volumes),
        ];
        for (command, names) in groups {
            if names.is_empty() {
                continue;
            }
            let mut args: Vec<&str> = command.to_vec();
            args.extend(names.iter().map(String::as_str));
            if let Err(e) = try_docker(&args) {
                // Some may never have been created; the rest are removed regardless.
                if !e.stderr.contains("No such") && !e.stderr.contains("not found") {
                    eprintln!("cleanup: {e}");
                }
            }
        }
    }
}

/// Removes containers, networks and volumes left by test processes that no longer run
/// (killed before their guards could drop). Those of live processes are left alone.
pub fn sweep_stale() {
    let kinds: [(&[&str], &str); 3] = [
        (&["ps", "-a"], "rm -f -v"),
        (&["network", "ls"], "network rm"),
        (&["volume", "ls"], "volume rm -f"),
    ];
    for (list, remove) in kinds {
        let filter = format!("label={LABEL}");
        let format = format!("{{{{.Name}}}} {{{{.Label \"{LABEL}\"}}}}");
        let format = if list[0] == "ps" {
            format.replace(".Name}}", ".Names}}")
        } else {
            format
        };
        let mut args = list.to_vec();
        args.extend(["--filter", &filter, "--format", &format]);
        let Ok(listing) = try_docker(&args) else {
            continue;
        };
        for line in listing.lines() {
            let Some((name, pid)) = line.split_once(' ') else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let mut args: Vec<&str> = remove.split(' ').collect();
                args.push(name);
                let _ = try_docker(&args);
                eprintln!("removed {name}, left by test process {pid}");
            }
        }
    }
}
