//! Added latency on a container's network link, with `tc … netem` on the host side.
//!
//! Each container interface is one end of a veth pair whose other end sits on the
//! host, plugged into the network's bridge. Delaying the host end's egress delays every
//! packet *into* the container on that network, so delaying all the nodes' ends of the
//! shared network delays every node-to-node packet once, in its direction of travel.
//!
//! Kernels built without netem (`CONFIG_NET_SCH_NETEM`, as on some VM images) get the
//! same effect from [`Delayer`], which holds the packets in userspace.
//!
//! The host end is found without running anything inside the (shell-less) container:
//! the interface whose MAC address docker reports, read through `/proc/<pid>/root/sys`
//! (the container's own sysfs), names its peer's interface index in `iflink`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::cli::docker;
use super::nfqueue::Delayer;

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

/// Added latency on a set of host-side interfaces, removed on drop.
pub enum Latency {
    /// `tc qdisc … netem delay`, one per interface.
    Netem(Vec<Netem>),
    /// The NFQUEUE stand-in, where the kernel has no netem.
    Queue(Delayer),
}

impl Latency {
    /// Delays every packet leaving each of `devs` by `delay`: with netem if the kernel
    /// has it, otherwise with [`Delayer`] (saying so on stderr).
    pub fn add(devs: &[String], delay: Duration) -> Self {
        let mut qdiscs = Vec::new();
        for dev in devs {
            match Netem::delay(dev, delay) {
                Ok(netem) => qdiscs.push(netem),
                Err(e) if qdiscs.is_empty() && e.contains("qdisc kind is unknown") => {
                    eprintln!(
                        "the kernel has no netem ({}); delaying with NFQUEUE",
                        e.trim()
                    );
                    let delayer = Delayer::start(devs, delay);
                    return Self::Queue(delayer.unwrap_or_else(|e| panic!("nfqueue: {e}")));
                }
                Err(e) => panic!("{e}"),
            }
        }
        Self::Netem(qdiscs)
    }

    /// How the latency is added, for reports.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Netem(_) => "tc netem",
            Self::Queue(_) => "NFQUEUE",
        }
    }
}

/// A netem delay on one interface's egress, removed on drop.
pub struct Netem {
    dev: String,
}

impl Netem {
    /// Adds `delay` to every packet leaving `dev` (replacing its root qdisc); the
    /// error is `tc`'s message.
    pub fn delay(dev: &str, delay: Duration) -> Result<Self, String> {
        let delay = format!("{}ms", delay.as_millis());
        tc(&[
            "qdisc", "replace", "dev", dev, "root", "netem", "delay", &delay,
        ])?;
        let netem = Self {
            dev: dev.to_owned(),
        };
        let shown = tc(&["qdisc", "show", "dev", dev])?;
        if !shown.contains("netem") {
            return Err(format!("no netem on {dev}: {shown}"));
        }
        Ok(netem)
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        // The interface may be gone already with its container; nothing is left then.
        let _ = tc(&["qdisc", "del", "dev", &self.dev, "root"]);
    }
}

fn tc(args: &[&str]) -> Result<String, String> {
    let output = Command::new("tc")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tc (install iproute2): {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("tc {} failed: {stderr}", args.join(" ")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
