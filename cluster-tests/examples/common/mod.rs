//! What the cluster benchmarks share: a minimal keep-alive HTTP/1.1 client for the hot
//! loops (polling `/v1/check`, bursts of revocations), percentiles, and reading a
//! process's memory from `/proc`.
//!
//! The hot loops use a raw `TcpStream` instead of reqwest so that one request costs one
//! write and one read on a connection that stays open: the polling resolution is then
//! the node's answer time, not a client runtime's scheduling.

// Each example uses a different subset of these helpers.
#![allow(dead_code)]

pub mod wrk;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cluster_tests::config::WEB;

/// How long one request on a raw connection may take before the benchmark gives up.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One keep-alive HTTP/1.1 connection to a node.
pub struct Conn {
    /// `host:port`, for the `Host` header.
    host: String,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects to the node at `base` (`http://ip:port`).
    pub fn open(base: &str) -> Self {
        Self::open_from(base, None)
    }

    /// Connects to the node at `base` from `source`, a loopback address of the caller's
    /// choosing (every 127.0.0.0/8 address is local on Linux), or from any address.
    pub fn open_from(base: &str, source: Option<Ipv4Addr>) -> Self {
        let host = base
            .strip_prefix("http://")
            .expect("node base URLs are plain http")
            .trim_end_matches('/')
            .to_owned();
        let stream = match source {
            None => TcpStream::connect(&host).expect("the node accepts a connection"),
            Some(source) => connect_from(source, &host),
        };
        stream.set_nodelay(true).expect("TCP_NODELAY can be set");
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("a read timeout can be set");
        let writer = stream.try_clone().expect("a TCP stream can be cloned");
        Self {
            host,
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// The status `GET /v1/check` answers for `token`.
    pub fn check(&mut self, token: &str) -> u16 {
        let request = format!(
            "GET /v1/check HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            self.host
        );
        self.exchange(&request).0
    }

    /// A password-grant login through the `web` client; returns the status.
    pub fn login(&mut self, user: &str, password: &str) -> u16 {
        let body = format!("grant_type=password&username={user}&password={password}");
        self.post_as_web("/oauth/token", &body).0
    }

    /// `POST /oauth/revoke` of `token` as the `web` client; returns the status.
    pub fn revoke(&mut self, token: &str) -> u16 {
        self.post_as_web("/oauth/revoke", &format!("token={token}"))
            .0
    }

    /// `POST /oauth/token` with `client_credentials` as the `web` client; the access
    /// token.
    pub fn client_token(&mut self) -> String {
        let (status, body) = self.post_as_web("/oauth/token", "grant_type=client_credentials");
        assert_eq!(status, 200, "client_credentials answered {status}");
        let json: serde_json::Value =
            serde_json::from_slice(&body).expect("the token response is JSON");
        json["access_token"]
            .as_str()
            .expect("the response holds an access token")
            .to_owned()
    }

    /// `POST`s a form to `path` with the `web` client's Basic credentials.
    pub fn post_as_web(&mut self, path: &str, body: &str) -> (u16, Vec<u8>) {
        let basic = STANDARD.encode(format!("{}:{}", WEB.0, WEB.1));
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {basic}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.exchange(&request)
    }

    /// Writes one request and reads its response: status and body.
    fn exchange(&mut self, request: &str) -> (u16, Vec<u8>) {
        self.writer
            .write_all(request.as_bytes())
            .expect("the request can be written");
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("the status line can be read");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
        let length = self.read_headers();
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .expect("the response body can be read");
        (status, body)
    }

    /// Reads header lines up to the blank one; returns `Content-Length` (0 if absent).
    fn read_headers(&mut self) -> usize {
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .expect("a header line can be read");
            let line = line.trim_end();
            if line.is_empty() {
                return length;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("Content-Length is a number");
            }
            assert!(
                !name.eq_ignore_ascii_case("transfer-encoding"),
                "chunked responses are not expected on the benchmarked endpoints"
            );
        }
    }
}

/// A TCP connection to `host` (`ip:port`) whose source address is `source`.
fn connect_from(source: Ipv4Addr, host: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let target: SocketAddr = host.parse().expect("node hosts are ip:port");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|e| panic!("cannot bind {source}: {e}"));
    socket
        .connect(&target.into())
        .unwrap_or_else(|e| panic!("{source} cannot connect to {host}: {e}"));
    socket.into()
}

/// The `q`-quantile (0..=1) of `sorted`, by nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    assert!(!sorted.is_empty(), "a quantile of nothing");
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with two decimals, for tables.
pub fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`, …).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {field}"))
}

/// CPU time a process has used so far (user + system, all threads), in seconds.
pub fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let (_, rest) = stat
        .rsplit_once(')')
        .expect("/proc/<pid>/stat names the command");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields[i].parse().expect("CPU times are numbers") };
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// `getconf CLK_TCK`: the unit of the CPU times in `/proc/<pid>/stat`.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let output = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .expect("getconf is installed");
        let text = String::from_utf8_lossy(&output.stdout);
        text.trim().parse().expect("CLK_TCK is a number")
    })
}

/// A small deterministic generator (xorshift64*), for jitter that must not be in step
/// with the gossip rounds but must be the same on every run.
pub struct Jitter(u64);

impl Jitter {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A duration uniformly spread over `0..max`.
    pub fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let micros = max.as_micros().max(1) as u64;
        Duration::from_micros(x % micros)
    }
}

/// Mints `count` client-credentials tokens on `base` over `connections` parallel
/// keep-alive connections.
pub fn mint_tokens(base: &str, count: usize, connections: usize) -> Vec<String> {
    let shares: Vec<usize> = (0..connections)
        .map(|i| count / connections + usize::from(i < count % connections))
        .collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = shares
            .iter()
            .map(|&n| {
                scope.spawn(move || {
                    let mut conn = Conn::open(base);
                    (0..n).map(|_| conn.client_token()).collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a minting thread does not panic"))
            .collect()
    })
}

/// The machine and the binary under test, for the header of every report.
pub fn banner(what: &str) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("== {what}");
    println!(
        "   {cpus} CPUs, Linux {}, binary {}",
        kernel.trim(),
        cluster_tests::node::binary().display()
    );
}
