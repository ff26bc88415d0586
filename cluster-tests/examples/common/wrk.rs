//! `wrk` runs against one node pinned apart from the load: the figures, and ratios of
//! paired runs so that machine noise falls on both sides of a comparison.

use std::process::Command;
use std::time::Instant;

use super::proc_cpu_seconds;

/// One `wrk` run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Requests completed.
    pub requests: f64,
    /// The node's CPU time per request, µs: its own cost, less sensitive than
    /// throughput to other work on the machine.
    pub cpu_us: f64,
    /// The node's CPU use over the run, in cores (1.0 = its pinned core, saturated).
    pub cores: f64,
}

/// Runs `wrk` (one thread, `connections` keep-alive connections, pinned to CPU 1) for
/// `seconds` with `args`, and measures the CPU time the node `pid` used meanwhile.
pub fn wrk(pid: u32, seconds: u64, connections: usize, label: &str, args: &[&str]) -> Run {
    let duration = format!("{seconds}s");
    let connections = format!("-c{connections}");
    let (cpu_before, started) = (proc_cpu_seconds(pid), Instant::now());
    let output = Command::new("taskset")
        .args([
            "-c",
            "1",
            "wrk",
            "-t1",
            &connections,
            "-d",
            &duration,
            "--latency",
        ])
        .args(args)
        .output()
        .expect("taskset and wrk are installed");
    let cpu = proc_cpu_seconds(pid) - cpu_before;
    let wall = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    assert!(!text.contains("Non-2xx"), "wrk saw failed checks:\n{text}");
    let field = |prefix: &str, index: usize| -> f64 {
        let line = text.lines().map(str::trim).find(|l| l.starts_with(prefix));
        let value = line.and_then(|l| l.split_whitespace().nth(index));
        value.map_or(f64::NAN, parse_figure)
    };
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .map_or(f64::NAN, parse_figure);
    let run = Run {
        rps: field("Requests/sec:", 1),
        p50_ms: field("50%", 1),
        p99_ms: field("99%", 1),
        requests,
        cpu_us: cpu * 1e6 / requests,
        cores: cpu / wall,
    };
    println!(
        "wrk {label}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms; node {:.1} µs CPU/request, \
         {:.0}% of its core",
        run.rps,
        run.p50_ms,
        run.p99_ms,
        run.cpu_us,
        100.0 * run.cores
    );
    run
}

/// Pins every thread of `pid` to `cpus`, so that `wrk` and the node do not share a core.
pub fn pin(pid: u32, cpus: &str) {
    let status = Command::new("taskset")
        .args(["-a", "-cp", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset is installed");
    assert!(status.success(), "taskset could not pin the node");
}

/// A `wrk` figure in milliseconds (latencies) or a plain number (requests/s).
pub fn parse_figure(text: &str) -> f64 {
    let unit = |suffix: &str, scale: f64| {
        text.strip_suffix(suffix)
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n * scale)
    };
    unit("us", 0.001)
        .or_else(|| unit("ms", 1.0))
        .or_else(|| unit("s", 1000.0))
        .or_else(|| text.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The median over rounds of `figure(full) ÷ figure(empty)`, each from the two adjacent
/// runs of one round.
pub fn paired_ratio(empty: &[Run], full: &[Run], figure: fn(&Run) -> f64) -> f64 {
    let mut ratios: Vec<f64> = empty
        .iter()
        .zip(full)
        .map(|(e, f)| figure(f) / figure(e))
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// The median of one figure over runs.
pub fn median_of(runs: &[Run], figure: fn(&Run) -> f64) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(figure).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
