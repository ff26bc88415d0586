//! Added latency on a container's network link, with `tc … netem` on the host side.
//!
//! Each container interface is one end of a veth pair whose other end sits on the
//! host, plugged into the network's bridge. Delaying the host end's egress delays every
//! packet *into* the container on that network, so delaying all the nodes' ends of the
//! shared network delays every node-to-node packet once, in its direction of travel.
//!
//! The host end is found without running anything inside the (shell-less) container:
//! the interface whose MAC address docker reports, read through `/proc/<pid>/root/sys`
//! (the container's own sysfs), names its peer's interface index in `iflink`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::cli::docker;

/// The host-side veth of `container`'s interface on `network`.
pub fn host_veth(container: &str, network: &str) -> String {
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", container]);
    let template = format!("{{{{(index .NetworkSettings.Networks \"{network}\").MacAddress}}}}");
    let mac = docker(&["inspect", "-f", &template, container]);
    let sysfs = Path::new("/proc").join(&pid).join("root/sys/class/net");
    let peer = interfaces(&sysfs)
        .into_iter()
        .find(|dir| read(&dir.join("address")) == mac)
        .map(|dir| read(&dir.join("iflink")))
        .unwrap_or_else(|| panic!("{container} has no interface with MAC {mac} on {network}"));
    let host = interfaces(Path::new("/sys/class/net"))
        .into_iter()
        .find(|dir| read(&dir.join("ifindex")) == peer)
        .unwrap_or_else(|| panic!("no host interface has index {peer} ({container})"));
    let name = host.file_name().expect("a sysfs entry has a name");
    name.to_string_lossy().into_owned()
}

fn interfaces(dir: &Path) -> Vec<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e} (run as root)", dir.display()));
    entries.filter_map(Result::ok).map(|e| e.path()).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A netem delay on one interface's egress, removed on drop.
pub struct Netem {
    dev: String,
}

impl Netem {
    /// Adds `delay` to every packet leaving `dev` (replacing its root qdisc).
    pub fn delay(dev: &str, delay: Duration) -> Self {
        let delay = format!("{}ms", delay.as_millis());
        tc(&[
            "qdisc", "replace", "dev", dev, "root", "netem", "delay", &delay,
        ]);
        let netem = Self {
            dev: dev.to_owned(),
        };
        let shown = tc(&["qdisc", "show", "dev", dev]);
        assert!(shown.contains("netem"), "no netem on {dev}: {shown}");
        netem
    }

    /// The interface the delay is on.
    pub fn dev(&self) -> &str {
        &self.dev
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        // The interface may be gone already with its container; nothing is left then.
        let _ = Command::new("tc")
            .args(["qdisc", "del", "dev", &self.dev, "root"])
            .output();
    }
}

fn tc(args: &[&str]) -> String {
    let output = Command::new("tc")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tc (install iproute2): {e}"));
    assert!(
        output.status.success(),
        "tc {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
