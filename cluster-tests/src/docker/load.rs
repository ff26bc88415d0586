//! A load generator for rolling restarts: one thread that keeps checking sessions'
//! access tokens on `/v1/check`, refreshing them, and revoking tokens, spread over every
//! node that is in rotation, and counts what a client would call a failure.
//!
//! The rules it judges by:
//! - A valid token must be accepted by whichever node answers; a refresh of an unspent
//!   refresh token must succeed. A node that is down does not answer: a refused
//!   connection (or a 503) sends the request to the next node and is not a failure.
//! - A revoked token must be rejected by the node that acknowledged the revocation from
//!   the acknowledgement on, by every node that was seen rejecting it, and by every node
//!   once [`PROPAGATION`] has passed since the acknowledgement.
//!
//! Before stopping a node the test drains it ([`Targets::drain`]): requests keep going
//! to it while it shuts down, but no revocation is made there, and draining waits for a
//! revocation in progress to be seen on every node. A node is thus never stopped as
//! the only holder of a revocation: that it keeps one across a kill is the restart
//! test's business. Once the node has exited, the test takes it out of rotation
//! ([`Targets::take_out`]), as a load balancer's health check would, and puts it back
//! when it is ready again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};

use crate::api::{self, Tokens};
use crate::config::{ALICE, BOB, WEB};
use crate::wait::PROPAGATION;

/// Sessions the generator keeps alive.
const SESSIONS: usize = 4;
/// Every how many rounds a session is refreshed.
const REFRESH_EVERY: u64 = 3;
/// Every how many rounds a token is revoked.
const REVOKE_EVERY: u64 = 20;
/// How long connecting to a node may take before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request may take once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may find no node answering before that counts as a failure.
const NO_NODE_DEADLINE: Duration = Duration::from_secs(15);

/// The nodes in rotation, by index (0-based), and the lock revocations hold.
pub struct Targets {
    /// Base URLs of the nodes taking requests; `None` while a node is out.
    bases: RwLock<Vec<Option<String>>>,
    /// Nodes about to stop: they still take requests, but no revocation is made there.
    draining: RwLock<Vec<bool>>,
    /// Held while a revocation is made and waited for on every node in rotation.
    revoking: Mutex<()>,
}

impl Targets {
    /// Every node in rotation.
    pub fn new(bases: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            draining: RwLock::new(vec![false; bases.len()]),
            bases: RwLock::new(bases.into_iter().map(Some).collect()),
            revoking: Mutex::new(()),
        })
    }

    /// Marks node `i` (1-based) as about to stop, once no revocation is in progress:
    /// requests keep going to it (and fail over when it refuses them), revocations not.
    pub fn drain(&self, i: usize) {
        let _quiet = self.revoking.lock().unwrap_or_else(PoisonError::into_inner);
        write(&self.draining)[i - 1] = true;
    }

    /// Takes node `i` (1-based) out of rotation once it has stopped, as a load
    /// balancer's health check would.
    pub fn take_out(&self, i: usize) {
        write(&self.bases)[i - 1] = None;
    }

    /// Puts node `i` (1-based) back, at its (possibly new) base URL.
    pub fn put_back(&self, i: usize, base: &str) {
        write(&self.bases)[i - 1] = Some(base.to_owned());
        write(&self.draining)[i - 1] = false;
    }

    /// The nodes in rotation, `(index, base)`, starting from the `turn`-th; with
    /// `revocable`, only those not draining.
    fn up(&self, turn: u64, revocable: bool) -> Vec<(usize, String)> {
        let bases = self.bases.read().unwrap_or_else(PoisonError::into_inner);
        let draining = self.draining.read().unwrap_or_else(PoisonError::into_inner);
        let mut up: Vec<(usize, String)> = bases
            .iter()
            .enumerate()
            .filter(|(i, _)| !(revocable && draining[*i]))
            .filter_map(|(i, b)| b.clone().map(|b| (i, b)))
            .collect();
        if !up.is_empty() {
            let len = up.len();
            up.rotate_left(turn as usize % len);
        }
        up
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// What the generator did and every failure it saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Checks of valid tokens answered 200.
    pub checks: u64,
    /// Refreshes that succeeded, per node.
    pub refreshes: [u64; 3],
    /// Fresh logins (at the start and after an ambiguous refresh).
    pub logins: u64,
    /// Revocations acknowledged.
    pub revocations: u64,
    /// Checks of revoked tokens answered 401.
    pub revoked_rejected: u64,
    /// Requests that found a node down and went on to the next.
    pub retried: u64,
    /// Refreshes whose outcome is unknown (the connection broke after sending).
    pub ambiguous: u64,
    /// Key ids of the valid tokens that were accepted.
    pub kids: BTreeSet<String>,
    /// Failures: a valid token or refresh refused, or no node answering.
    pub valid_rejected: Vec<String>,
    /// Failures: a revoked token accepted where it must not be.
    pub revoked_accepted: Vec<String>,
}

/// The running generator.
pub struct Load {
    stop: Arc<AtomicBool>,
    checks: Arc<AtomicU64>,
    thread: JoinHandle<Tally>,
}

impl Load {
    /// Logs in the sessions and starts the thread.
    pub fn start(targets: Arc<Targets>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let checks = Arc::new(AtomicU64::new(0));
        let mut generator = Generator {
            targets,
            stop: stop.clone(),
            checks: checks.clone(),
            sessions: Vec::new(),
            revoked: Vec::new(),
            tally: Tally::default(),
            turn: 0,
            picks: 0,
        };
        let thread = std::thread::spawn(move || generator.run());
        Self {
            stop,
            checks,
            thread,
        }
    }

    /// Valid-token checks accepted so far: progress to wait on.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Stops the thread and returns its tally.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the load generator does not panic")
    }
}

/// A token revoked by the generator.
struct Revoked {
    token: String,
    /// The node that acknowledged the revocation.
    origin: usize,
    acked: Instant,
    /// Nodes seen rejecting it.
    seen: Vec<usize>,
}

struct Generator {
    targets: Arc<Targets>,
    stop: Arc<AtomicBool>,
    checks: Arc<AtomicU64>,
    sessions: Vec<Tokens>,
    revoked: Vec<Revoked>,
    tally: Tally,
    /// Round counter.
    turn: u64,
    /// Requests sent; picks the node each one starts from.
    picks: u64,
}

/// How a request to one node went.
enum Sent {
    /// The node answered.
    Answered(Response),
    /// The node could not be reached, or answered 503: try the next one.
    Down,
    /// The request may have been processed but its answer was lost.
    Lost(String),
}

impl Generator {
    fn run(&mut self) -> Tally {
        while !self.stop.load(Ordering::Relaxed) {
            self.turn += 1;
            // Sessions lost to an ambiguous refresh are replaced before going on.
            if self.sessions.len() < SESSIONS {
                self.login();
                continue;
            }
            let s = self.turn as usize % self.sessions.len();
            self.check_session(s);
            if self.turn.is_multiple_of(REFRESH_EVERY) {
                self.refresh(s);
            }
            if self.turn.is_multiple_of(REVOKE_EVERY) {
                self.revoke();
            }
            self.check_revoked();
        }
        std::mem::take(&mut self.tally)
    }

    /// Sends `request` to the nodes in rotation, in turn, until one answers.
    fn send(&mut self, what: &str, request: impl Fn(&str) -> Sent) -> Option<(usize, Response)> {
        let started = Instant::now();
        loop {
            self.picks += 1;
            for (i, base) in self.targets.up(self.picks, false) {
                match request(&base) {
                    Sent::Answered(response) => return Some((i, response)),
                    Sent::Down => self.tally.retried += 1,
                    Sent::Lost(error) => {
                        self.tally.ambiguous += 1;
                        eprintln!("load: {what} on node {} lost its answer: {error}", i + 1);
                        return None;
                    }
                }
            }
            if started.elapsed() > NO_NODE_DEADLINE {
                let failure = format!("{what}: no node answered for {NO_NODE_DEADLINE:?}");
                self.tally.valid_rejected.push(failure);
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn login(&mut self) {
        let user = if self.sessions.len().is_multiple_of(2) {
            ALICE
        } else {
            BOB
        };
        let form = [
            ("grant_type", "password"),
            ("username", user.0),
            ("password", user.1),
        ];
        let Some((i, response)) = self.send("login", |base| token_post(base, &form)) else {
            return;
        };
        match tokens_of(response) {
            Ok(tokens) => {
                self.tally.logins += 1;
                self.sessions.push(tokens);
            }
            Err(status) => {
                let failure = format!("login on node {} answered {status}", i + 1);
                self.tally.valid_rejected.push(failure);
            }
        }
    }

    fn check_session(&mut self, s: usize) {
        let token = self.sessions[s].access.clone();
        let Some((i, response)) = self.send("check", |base| check(base, &token)) else {
            return;
        };
        let status = response.status().as_u16();
        if status == 200 {
            self.tally.checks += 1;
            self.checks.fetch_add(1, Ordering::Relaxed);
            self.tally.kids.insert(api::kid_of(&token));
        } else {
            let kid = api::kid_of(&token);
            let failure = format!(
                "a valid token (key {kid}) answered {status} on node {}",
                i + 1
            );
            self.tally.valid_rejected.push(failure);
        }
    }

    /// Spends session `s`'s refresh token on the next node; a lost answer replaces the
    /// session (trying the same refresh token again would be a replay).
    fn refresh(&mut self, s: usize) {
        let refresh = self.sessions[s].refresh().to_owned();
        let form = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
        let sent = self.send("refresh", |base| token_post(base, &form));
        let Some((i, response)) = sent else {
            self.sessions.remove(s);
            self.login();
            return;
        };
        match tokens_of(response) {
            Ok(tokens) => {
                self.tally.refreshes[i] += 1;
                self.sessions[s] = tokens;
            }
            Err(status) => {
                let failure = format!("a refresh answered {status} on node {}", i + 1);
                self.tally.valid_rejected.push(failure);
                self.sessions.remove(s);
                self.login();
            }
        }
    }

    /// Mints a token on one node, revokes it on another, and waits (holding the
    /// revocation lock) until every node in rotation rejects it.
    fn revoke(&mut self) {
        let targets = self.targets.clone();
        let _quiet = targets
            .revoking
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let up = targets.up(self.turn / REVOKE_EVERY, true);
        let [(_, issuer), (origin, at), ..] = up.as_slice() else {
            return;
        };
        let form = [("grant_type", "client_credentials")];
        let Ok(token) = tokens_of_sent(token_post(issuer, &form)) else {
            return;
        };
        let token = token.access;
        if !matches!(revoke(at, &token), Sent::Answered(r) if r.status() == 200) {
            return;
        }
        self.tally.revocations += 1;
        let mut entry = Revoked {
            token,
            origin: *origin,
            acked: Instant::now(),
            seen: Vec::new(),
        };
        while entry.seen.len() < up.len() && entry.acked.elapsed() < PROPAGATION {
            for (i, base) in &up {
                let rejects = check_status(base, &entry.token) == Some(401);
                if rejects && !entry.seen.contains(i) {
                    entry.seen.push(*i);
                }
            }
            self.judge_origin(&entry);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.revoked.push(entry);
    }

    /// The acknowledging node must reject from the acknowledgement on.
    fn judge_origin(&mut self, entry: &Revoked) {
        let up = self.targets.up(0, false);
        let Some((_, base)) = up.iter().find(|(i, _)| *i == entry.origin) else {
            return;
        };
        if check_status(base, &entry.token) == Some(200) {
            let failure = format!("node {} accepted a token it revoked", entry.origin + 1);
            self.tally.revoked_accepted.push(failure);
        }
    }

    /// Checks one revoked token on the next node in rotation.
    fn check_revoked(&mut self) {
        if self.revoked.is_empty() {
            return;
        }
        let r = self.turn as usize % self.revoked.len();
        self.picks += 1;
        let up = self.targets.up(self.picks, false);
        let Some((i, base)) = up.first() else {
            return;
        };
        let Some(status) = check_status(base, &self.revoked[r].token) else {
            return;
        };
        let entry = &self.revoked[r];
        let bound =
            entry.origin == *i || entry.seen.contains(i) || entry.acked.elapsed() > PROPAGATION;
        match status {
            401 => self.tally.revoked_rejected += 1,
            200 if bound => {
                let age = entry.acked.elapsed();
                let failure = format!("node {} accepted a token revoked {age:?} ago", i + 1);
                self.tally.revoked_accepted.push(failure);
            }
            _ => {}
        }
    }
}

/// The generator's client: a node that is gone must not hold a request for long.
fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds")
    })
}

fn classify(result: reqwest::Result<Response>) -> Sent {
    match result {
        Ok(response) if response.status() == 503 => Sent::Down,
        Ok(response) => Sent::Answered(response),
        Err(e) if e.is_connect() => Sent::Down,
        Err(e) => Sent::Lost(e.to_string()),
    }
}

fn check(base: &str, token: &str) -> Sent {
    let request = client().get(format!("{base}/v1/check")).bearer_auth(token);
    match classify(request.send()) {
        // A check changes nothing: whatever broke, ask the next node.
        Sent::Lost(_) => Sent::Down,
        sent => sent,
    }
}

fn check_status(base: &str, token: &str) -> Option<u16> {
    match check(base, token) {
        Sent::Answered(response) => Some(response.status().as_u16()),
        _ => None,
    }
}

fn token_post(base: &str, form: &[(&str, &str)]) -> Sent {
    let request = client()
        .post(format!("{base}/oauth/token"))
        .basic_auth(WEB.0, Some(WEB.1))
        .form(form);
    classify(request.send())
}

fn revoke(base: &str, token: &str) -> Sent {
    let request = client()
        .post(format!("{base}/oauth/revoke"))
        .basic_auth(WEB.0, Some(WEB.1))
        .form(&[("token", token)]);
    classify(request.send())
}

/// The tokens of a 200 answer, or its status.
fn tokens_of(response: Response) -> Result<Tokens, u16> {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().map_err(|_| status)?;
    let access = body["access_token"].as_str().filter(|_| status == 200);
    let access = access.ok_or(status)?;
    Ok(Tokens {
        access: access.to_owned(),
        refresh: body["refresh_token"].as_str().map(str::to_owned),
    })
}

fn tokens_of_sent(sent: Sent) -> Result<Tokens, u16> {
    match sent {
        Sent::Answered(response) => tokens_of(response),
        _ => Err(0),
    }
}
