//! A userspace stand-in for netem, for kernels built without `sch_netem`: packets
//! leaving the chosen host-side veths are handed to an NFQUEUE by iptables rules
//! (`-m physdev --physdev-out`, which sees bridged packets through br_netfilter), and a
//! thread gives each packet its ACCEPT verdict once it has been held for the delay.
//! The effect on the delayed interfaces is netem's: every packet into the container
//! arrives `delay` late, in order.
//!
//! The nfnetlink_queue messages (bind, copy mode, verdict) are built by hand over a
//! netlink socket; see `linux/netfilter/nfnetlink_queue.h` for the layouts. Integers
//! in netlink headers are in host order, those in nfnetlink payloads big-endian.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

const AF_NETLINK: i32 = 16;
const SOCK_RAW: i32 = 3;
const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NF_ACCEPT: u32 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
/// Attribute types carry flag bits above these.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Netlink header, then the nfnetlink header.
const HEADERS: usize = 16 + 4;
/// Prefix of the comment on every queueing rule, followed by the test process id.
const COMMENT: &str = "portcullis-cluster-tests-pid-";
/// Longest wait for a packet when none is held.
const IDLE: Duration = Duration::from_millis(50);

/// Packets out of `devs` held for a delay, until dropped.
pub struct Delayer {
    queue: u16,
    devs: Vec<String>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Binds a queue of its own, starts the thread and adds the iptables rules.
    pub fn start(devs: &[String], delay: Duration) -> io::Result<Self> {
        let queue = 1000 + (std::process::id() % 60_000) as u16;
        let socket = bind(queue)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || hold(&socket, queue, delay, &flag));
        let delayer = Self {
            queue,
            devs: devs.to_vec(),
            stop,
            thread: Some(thread),
        };
        for dev in devs {
            iptables("-I", dev, queue)?;
        }
        Ok(delayer)
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        for dev in &self.devs {
            let _ = iptables("-D", dev, self.queue);
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Inserts (`-I`) or deletes (`-D`) the rule queueing packets out of `dev`. With
/// `--queue-bypass`, packets pass undelayed should the queue have no reader. The rule's
/// comment names the test process, for [`sweep_stale`].
fn iptables(action: &str, dev: &str, queue: u16) -> io::Result<()> {
    let queue = queue.to_string();
    let comment = format!("{COMMENT}{}", std::process::id());
    let rule = [
        "-m",
        "physdev",
        "--physdev-out",
        dev,
        "-m",
        "comment",
        "--comment",
    ];
    let output = Command::new("iptables")
        .args(["-w", action, "FORWARD"])
        .args(rule)
        .args([
            &comment,
            "-j",
            "NFQUEUE",
            "--queue-num",
            &queue,
            "--queue-bypass",
        ])
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(io::Error::other(format!(
        "iptables {action} for {dev}: {stderr}"
    )))
}

/// Deletes the queueing rules of test processes that no longer run (killed before their
/// delayers could drop). Harmless leftovers otherwise (bypass, vanished veths), but
/// clutter.
pub fn sweep_stale() {
    let Ok(output) = Command::new("iptables")
        .args(["-w", "-S", "FORWARD"])
        .output()
    else {
        return;
    };
    for rule in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(pid) = rule.split(COMMENT).nth(1) else {
            continue;
        };
        let pid: String = pid.chars().take_while(char::is_ascii_digit).collect();
        if std::path::Path::new("/proc").join(&pid).exists() {
            continue;
        }
        // `-A FORWARD …` as listed, with the comment's quotes dropped, deletes itself.
        let spec = rule.replace('"', "");
        let mut args: Vec<&str> = spec.split_whitespace().collect();
        args[0] = "-D";
        let _ = Command::new("iptables").arg("-w").args(&args).output();
        eprintln!("removed a queueing rule left by test process {pid}");
    }
}

/// A netlink socket bound to queue `queue`, copying packet metadata only.
fn bind(queue: u16) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::from(AF_NETLINK),
        Type::from(SOCK_RAW),
        Some(Protocol::from(NETLINK_NETFILTER)),
    )?;
    let command = [NFQNL_CFG_CMD_BIND, 0, 0, 0];
    let mut params = 0xffffu32.to_be_bytes().to_vec();
    params.push(NFQNL_COPY_META);
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    for (seq, attr) in [
        (1, (NFQA_CFG_CMD, &command[..])),
        (2, (NFQA_CFG_PARAMS, &params)),
    ] {
        socket.send(&message(NFQNL_MSG_CONFIG, flags, seq, queue, &[attr]))?;
        expect_ack(&socket)?;
    }
    Ok(socket)
}

/// Reads the kernel's answer to a request sent with `NLM_F_ACK`.
fn expect_ack(socket: &Socket) -> io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 512];
    let n = (&*socket).read(&mut buf)?;
    let kind = u16_at(&buf[..n], 4);
    if n < 20 || kind != Some(NLMSG_ERROR) {
        return Err(io::Error::other(
            "nfqueue: no acknowledgement from the kernel",
        ));
    }
    let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    match code {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(-errno)),
    }
}

/// One nfnetlink_queue message with its attributes.
fn message(kind: u16, flags: u16, seq: u32, queue: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![0u8, 0];
    body.extend(queue.to_be_bytes());
    for (attr, payload) in attrs {
        body.extend(((4 + payload.len()) as u16).to_ne_bytes());
        body.extend(attr.to_ne_bytes());
        body.extend(*payload);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend(((16 + body.len()) as u32).to_ne_bytes());
    msg.extend(((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
    msg.extend(flags.to_ne_bytes());
    msg.extend(seq.to_ne_bytes());
    msg.extend(0u32.to_ne_bytes());
    msg.extend(body);
    msg
}

/// Receives queued packets and accepts each `delay` after it arrived; on stop, accepts
/// whatever it still holds.
fn hold(socket: &Socket, queue: u16, delay: Duration, stop: &AtomicBool) {
    let mut held: VecDeque<(u32, Instant)> = VecDeque::new();
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        while held.front().is_some_and(|(_, at)| at.elapsed() >= delay) {
            let (id, _) = held.pop_front().expect("a front was just seen");
            accept(socket, queue, id);
        }
        let wait = held
            .front()
            .map_or(IDLE, |(_, at)| delay.saturating_sub(at.elapsed()));
        let _ = socket.set_read_timeout(Some(wait.max(Duration::from_micros(100))));
        match (&*socket).read(&mut buf) {
            Ok(n) => {
                let arrived = Instant::now();
                held.extend(packet_ids(&buf[..n]).into_iter().map(|id| (id, arrived)));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // ENOBUFS: the kernel dropped queue messages; the packets pass by bypass.
            Err(e) if e.raw_os_error() == Some(105) => {}
            Err(e) => {
                eprintln!("nfqueue: receive failed: {e}");
                break;
            }
        }
    }
    for (id, _) in held {
        accept(socket, queue, id);
    }
}

fn accept(socket: &Socket, queue: u16, id: u32) {
    let mut verdict = NF_ACCEPT.to_be_bytes().to_vec();
    verdict.extend(id.to_be_bytes());
    let attrs = [(NFQA_VERDICT_HDR, &verdict[..])];
    let _ = socket.send(&message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, queue, &attrs));
}

/// The packet ids of the queue messages in one datagram.
fn packet_ids(buf: &[u8]) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            ids.extend(packet_id(&buf[at + HEADERS.min(len)..at + len]));
        }
        at += len.next_multiple_of(4);
    }
    ids
}

/// The id in a packet message's `NFQA_PACKET_HDR` attribute.
fn packet_id(attrs: &[u8]) -> Option<u32> {
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u16_at(attrs, at), u16_at(attrs, at + 2)) {
        let len = len as usize;
        if len < 4 {
            return None;
        }
        if kind & NLA_TYPE_MASK == NFQA_PACKET_HDR {
            let id = attrs.get(at + 4..at + 8)?;
            return Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        }
        at += len.next_multiple_of(4);
    }
    None
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at + 2)?;
    Some(u16::from_ne_bytes([bytes[0], bytes[1]]))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at + 4)?;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_packet_id_in_a_queue_message() {
        let header = [0x12, 0x34, 0x56, 0x78, 0x08, 0x00, 4];
        let mut msg = message(NFQNL_MSG_PACKET, 0, 0, 7, &[(NFQA_PACKET_HDR, &header)]);
        let verdict = message(NFQNL_MSG_VERDICT, 0, 0, 7, &[(NFQA_VERDICT_HDR, &[0; 8])]);
        msg.extend(&verdict);
        assert_eq!(packet_ids(&msg), vec![0x1234_5678]);
        assert_eq!(
            packet_ids(&msg[..10]),
            Vec::<u32>::new(),
            "a truncated message"
        );
    }
}
