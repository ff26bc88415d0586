//! Fault tests against containers of the `portcullis:local` image: three nodes in the
//! regions eu, us and ap (see `cluster_tests::docker` for the networks), driven from
//! the host over HTTP while docker unplugs, kills, stops and slows them.
//!
//! The image is built once per run by `scripts/build-image.sh` (a no-op when the binary
//! is unchanged). Every scenario has a cluster of its own, removed with its networks and
//! volumes even when it fails; scenarios take turns (a lock), as they would crowd each
//! other on a small machine. Without a usable docker they fail, unless
//! `CLUSTER_TESTS_SKIP_DOCKER=1` is set. Run as root (netem):
//!
//! ```text
//! cargo test -p cluster-tests --test docker_faults -- --test-threads=1
//! ```

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cluster_tests::api;
use cluster_tests::config::{ALICE, BOB, WEB};
use cluster_tests::docker::load::{Load, Targets};
use cluster_tests::docker::netem::Latency;
use cluster_tests::docker::{self, DockerCluster};
use cluster_tests::{wait_until, PROPAGATION};
use serde_json::json;

/// Scenarios run one at a time, whatever the test-thread count.
static SERIAL: Mutex<()> = Mutex::new(());

/// A client address from the documentation range, believed through `X-Forwarded-For`
/// because the host is each node's one trusted proxy.
const BANNED: &str = "203.0.113.7";
/// How long the failure detector gets to declare an unplugged node dead.
const DEAD_DEADLINE: Duration = Duration::from_secs(60);
/// How long a node plugged back into the mesh gets to enforce what it missed.
const HEAL_DEADLINE: Duration = Duration::from_secs(30);
/// The latency added between regions.
const DELAY: Duration = Duration::from_millis(80);
/// The gossip round interval the containers run with.
const GOSSIP_INTERVAL: Duration = Duration::from_millis(100);
/// Revocations timed per latency setting.
const SAMPLES: usize = 10;

/// The scenario lock, or `None` when the docker tests are skipped.
fn serial() -> Option<MutexGuard<'static, ()>> {
    if docker::skip() {
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(PoisonError::into_inner))
}

#[test]
fn an_unplugged_node_enforces_the_revocations_and_bans_it_missed_once_plugged_back() {
    let Some(_serial) = serial() else { return };
    let cluster = DockerCluster::start();
    let (eu, us, ap) = bases(&cluster);
    let admin = api::admin_token(eu);
    let bystander = api::client_token(eu);
    assert_eq!(
        check_from(ap, BANNED, &bystander),
        200,
        "the address is not banned yet"
    );
    let by_rfc7009 = api::client_token(us);
    let by_jti = api::bob(us).access;
    let by_subject = api::alice(ap).access;

    // Unplugged until its peers give it up as dead: the cut is in force before
    // anything it is to miss is made.
    cluster.disconnect(3);
    let view = |base: &str| member_state(base, &admin, "ap");
    let dead = wait_until("eu to see ap dead", DEAD_DEADLINE, || view(eu) == "dead");
    eprintln!("eu declared ap dead {dead:?} after it was unplugged");

    api::revoke(eu, &by_rfc7009);
    let jti = api::claims(&by_jti)["jti"].clone();
    api::admin_revoke(eu, &admin, &json!({"kind": "token", "jti": jti}));
    let subject = json!({"kind": "subject", "subject": ALICE.0});
    api::admin_revoke(eu, &admin, &subject);
    ban(eu, &admin, BANNED);
    let revoked = [by_rfc7009, by_jti, by_subject];
    let enforces = |base: &str| enforces_all(base, &revoked, &bystander);
    wait_until("us to enforce what eu made", PROPAGATION, || enforces(us));

    // The cut is real: ap, still serving the test, has heard of none of it.
    for token in &revoked {
        let sub = api::claims(token)["sub"].clone();
        let status = api::check(ap, token);
        assert_eq!(
            status, 200,
            "ap is cut off and accepts {sub}'s token it missed"
        );
    }
    assert_eq!(
        check_from(ap, BANNED, &bystander),
        200,
        "ap has not heard of the ban"
    );

    cluster.reconnect(3);
    let healed = wait_until("ap to enforce what it missed", HEAL_DEADLINE, || {
        enforces(ap)
    });
    eprintln!("ap enforced every revocation and the ban {healed:?} after it was plugged back");
    wait_until("eu to see ap live again", HEAL_DEADLINE, || {
        view(eu) == "live"
    });
    let bans = api::admin_get(ap, &admin, "/admin/v1/bans");
    let listed = bans["bans"].as_array().cloned().unwrap_or_default();
    assert!(
        listed.iter().any(|b| b["address"] == BANNED),
        "ap lists the ban: {bans}"
    );

    // Gossip flows both ways again.
    let from_ap = api::client_token(ap);
    api::revoke(ap, &from_ap);
    wait_until("eu to learn ap's revocation", PROPAGATION, || {
        api::rejects(eu, &from_ap)
    });
}

#[test]
fn a_killed_node_restarts_from_its_volume_and_is_ready_only_once_caught_up() {
    let Some(_serial) = serial() else { return };
    let mut cluster = DockerCluster::start();
    let kids = cluster.wait_converged();
    let (eu, us, ap) = bases(&cluster);
    let (eu, us, ap) = (eu.to_owned(), us.to_owned(), ap.to_owned());
    let admin = api::admin_token(&eu);
    let own = api::alice(&ap).access;
    let own_kid = api::kid_of(&own);
    let bystander = api::client_token(&eu);

    // Acknowledged by ap, which is killed at once: only its disk may hold it.
    let acked = api::client_token(&us);
    api::revoke(&ap, &acked);
    cluster.kill(3);

    // Made while ap is down.
    let missed = api::client_token(&eu);
    api::revoke(&eu, &missed);
    let by_jti = api::bob(&us).access;
    let jti = api::claims(&by_jti)["jti"].clone();
    api::admin_revoke(&us, &admin, &json!({"kind": "token", "jti": jti}));
    ban(&eu, &admin, BANNED);

    // Serving HTTP is not being ready: it has peers to catch up from first.
    cluster.start_nodes(&[3]);
    let early = api::ready(cluster.node(3).base());
    assert!(
        !early,
        "ap was ready the moment it served HTTP, before any catch-up"
    );
    let ready = cluster.wait_ready(&[3]);
    eprintln!("ap was ready {ready:?} after it served HTTP again");

    // Ready means caught up: no waiting from here on.
    let ap = cluster.node(3).base();
    assert!(
        api::rejects(ap, &acked),
        "the revocation ap acknowledged survived"
    );
    assert!(
        api::rejects(ap, &missed),
        "the revocation made on eu meanwhile"
    );
    assert!(
        api::rejects(ap, &by_jti),
        "the revocation made on us meanwhile"
    );
    assert_ne!(
        check_from(ap, BANNED, &bystander),
        200,
        "the ban made meanwhile"
    );
    assert_eq!(api::jwks_kids(ap), kids, "ap serves the same keys");
    assert_eq!(
        api::signing_kid(ap),
        own_kid,
        "ap signs with the key it had"
    );
    for base in cluster.bases() {
        assert!(api::accepts(&base, &own), "ap's old token on {base}");
        let what = format!("{base} to enforce the revocation ap acknowledged");
        wait_until(&what, PROPAGATION, || api::rejects(&base, &acked));
    }

    // Docker sees it too: the image's HEALTHCHECK runs without a shell.
    let healthy = Duration::from_secs(15);
    wait_until("docker to report ap healthy", healthy, || {
        cluster.health(3) == "healthy"
    });
}

#[test]
fn a_rolling_restart_with_a_key_rotation_rejects_no_valid_request_and_admits_no_revoked_one() {
    let Some(_serial) = serial() else { return };
    let mut cluster = DockerCluster::start();
    let old_kids = cluster.wait_converged();
    let targets = Targets::new(cluster.bases());
    let load = Load::start(targets.clone());
    await_progress(&load, "the load to get going");
    let mut new_kid = String::new();

    for i in 1..=3 {
        if i == 2 {
            // In the middle: a key rotated on us, published, then signing.
            new_kid = rotate(&cluster, 2);
            await_progress(&load, "the load to run on the new key");
        }
        // Traffic keeps reaching the node while it stops; out of rotation once gone.
        targets.drain(i);
        let parting = revoked_at(cluster.node(i).base());
        let stopped = cluster.stop(&[i]);
        targets.take_out(i);

        // What it acknowledged just before SIGTERM, it published before it left.
        for base in cluster.bases() {
            let what = format!("{base} to enforce what node {i} revoked as it stopped");
            wait_until(&what, PROPAGATION, || api::rejects(&base, &parting));
        }
        let started = Instant::now();
        cluster.start_nodes(&[i]);
        let ready = cluster.wait_ready(&[i]);
        targets.put_back(i, cluster.node(i).base());
        let region = cluster.node(i).region();
        eprintln!(
            "{region}: stopped in {stopped:?}, ready {:?} after start ({ready:?} after HTTP)",
            started.elapsed()
        );
        await_progress(&load, "the load to run with the node back");
    }

    let tally = load.finish();
    eprintln!("load over the rolling restart: {tally:#?}");
    assert!(tally.valid_rejected.is_empty(), "valid requests rejected");
    assert!(tally.revoked_accepted.is_empty(), "revoked tokens accepted");
    assert!(tally.checks >= 300, "enough checks to mean something");
    assert!(tally.revocations >= 5, "enough revocations");
    assert!(tally.revoked_rejected >= 50, "revoked tokens were checked");
    assert!(
        tally.refreshes.iter().all(|n| *n >= 5),
        "refreshes on every node"
    );
    assert!(
        tally.kids.contains(&new_kid),
        "tokens of the rotated key passed"
    );
    assert!(
        tally.kids.iter().any(|k| old_kids.contains(k)),
        "and of the old keys"
    );
}

#[test]
fn revocations_cross_80ms_of_latency_between_regions_within_the_gossip_bound() {
    let Some(_serial) = serial() else { return };
    let cluster = DockerCluster::start();
    let before = node_lag(&cluster);
    let baseline = propagation(&cluster);
    let between = node_lag(&cluster);

    let veths: Vec<String> = (1..=3).map(|i| cluster.mesh_veth(i)).collect();
    let latency = Latency::add(&veths, DELAY);
    let delayed = propagation(&cluster);
    let method = latency.method();
    drop(latency);
    let after = node_lag(&cluster);

    // Up to an interval before the origin publishes, a gossip exchange (SYN, SYN-ACK,
    // ACK: three delayed legs at worst) once the next round starts (up to another
    // interval), and up to an interval before the receiver applies what it got.
    let bound = |delay: Duration| GOSSIP_INTERVAL * 3 + delay * 3;
    eprintln!(
        "revocation propagation eu -> us, ap ({SAMPLES} revocations; {method} on {veths:?}):"
    );
    report(
        "no added latency",
        &baseline,
        mean_lag(before, between),
        bound(Duration::ZERO),
    );
    let label = format!("{DELAY:?} added ({method})");
    report(&label, &delayed, mean_lag(between, after), bound(DELAY));
    let fastest = delayed.iter().min().copied().unwrap_or_default();
    assert!(
        fastest >= DELAY,
        "every gossip packet is delayed (fastest {fastest:?})"
    );
    let slowest = delayed.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < PROPAGATION,
        "within the generous bound (slowest {slowest:?})"
    );
}

#[test]
fn keys_revocations_and_bans_survive_a_full_stop_and_start_of_the_cluster() {
    let Some(_serial) = serial() else { return };
    let mut cluster = DockerCluster::start();
    let kids = cluster.wait_converged();
    let (eu, us, ap) = bases(&cluster);
    let admin = api::admin_token(eu);
    let signing: Vec<String> = cluster
        .bases()
        .iter()
        .map(|b| api::signing_kid(b))
        .collect();
    let valid: Vec<String> = cluster
        .bases()
        .iter()
        .map(|b| api::alice(b).access)
        .collect();
    let bystander = api::client_token(ap);
    let by_rfc7009 = api::client_token(eu);
    api::revoke(us, &by_rfc7009);
    let by_jti = api::bob(eu).access;
    let jti = api::claims(&by_jti)["jti"].clone();
    api::admin_revoke(ap, &admin, &json!({"kind": "token", "jti": jti}));
    ban(eu, &admin, BANNED);
    let revoked = [by_rfc7009, by_jti];
    for base in cluster.bases() {
        let what = format!("{base} to enforce everything before the stop");
        wait_until(&what, PROPAGATION, || {
            enforces_all(&base, &revoked, &bystander)
        });
    }

    let stopped = cluster.stop(&[1, 2, 3]);
    let started = Instant::now();
    cluster.start_nodes(&[1, 2, 3]);
    cluster.wait_ready(&[1, 2, 3]);
    eprintln!(
        "stopped in {stopped:?}; ready {:?} after start",
        started.elapsed()
    );

    // Nobody kept anything in memory: all of it came back from the volumes.
    let now: Vec<String> = cluster
        .bases()
        .iter()
        .map(|b| api::signing_kid(b))
        .collect();
    assert_eq!(now, signing, "every node signs with the key it had");
    for base in cluster.bases() {
        assert_eq!(api::jwks_kids(&base), kids, "{base} serves every key");
        for token in valid.iter().chain([&admin]) {
            assert!(api::accepts(&base, token), "an old token on {base}");
        }
        assert!(
            enforces_all(&base, &revoked, &bystander),
            "{base} still enforces all"
        );
    }
}

fn bases(cluster: &DockerCluster) -> (&str, &str, &str) {
    let [eu, us, ap] = [1, 2, 3].map(|i| cluster.node(i).base());
    (eu, us, ap)
}

/// The state (`live`, `dead`, `left`) in which the node at `base` sees `node_id`.
fn member_state(base: &str, admin: &str, node_id: &str) -> String {
    let view = api::cluster_view(base, admin);
    let members = view["members"].as_array().cloned().unwrap_or_default();
    let member = members.iter().find(|m| m["node_id"] == node_id);
    let state = member.and_then(|m| m["state"].as_str());
    state.unwrap_or("unknown").to_owned()
}

/// Bans `address` on every node for an hour, through `base`'s admin API.
fn ban(base: &str, admin: &str, address: &str) {
    let response = api::client()
        .post(format!("{base}/admin/v1/bans"))
        .bearer_auth(admin)
        .json(&json!({"address": address, "duration": "1h"}))
        .send()
        .unwrap_or_else(|e| panic!("ban at {base} failed: {e}"));
    assert_eq!(response.status(), 201, "ban at {base}");
}

/// The status of a check of `token` made on behalf of the client at `address`.
fn check_from(base: &str, address: &str, token: &str) -> u16 {
    let response = api::client()
        .get(format!("{base}/v1/check"))
        .bearer_auth(token)
        .header("x-forwarded-for", address)
        .send()
        .unwrap_or_else(|e| panic!("check at {base} failed: {e}"));
    response.status().as_u16()
}

/// The status of Bob's login on behalf of the client at `address`.
fn login_from(base: &str, address: &str) -> u16 {
    let form = [
        ("grant_type", "password"),
        ("username", BOB.0),
        ("password", BOB.1),
    ];
    let response = api::client()
        .post(format!("{base}/oauth/token"))
        .basic_auth(WEB.0, Some(WEB.1))
        .header("x-forwarded-for", address)
        .form(&form)
        .send()
        .unwrap_or_else(|e| panic!("login at {base} failed: {e}"));
    response.status().as_u16()
}

/// Whether `base` rejects every revoked token and refuses the banned address both at
/// the gate (with a valid token) and at login.
fn enforces_all(base: &str, revoked: &[String], bystander: &str) -> bool {
    revoked.iter().all(|token| api::rejects(base, token))
        && check_from(base, BANNED, bystander) != 200
        && login_from(base, BANNED) == 429
        && api::accepts(base, bystander)
}

/// A fresh token, revoked (and acknowledged) at `base`.
fn revoked_at(base: &str) -> String {
    let token = api::client_token(base);
    api::revoke(base, &token);
    token
}

/// Rotates node `i`'s key and waits until every node publishes it and `i` signs with
/// it; returns its id.
fn rotate(cluster: &DockerCluster, i: usize) -> String {
    let base = cluster.node(i).base();
    let admin = api::admin_token(base);
    let kid = api::rotate_key(base, &admin);
    wait_until("every JWKS to hold the new key", PROPAGATION, || {
        cluster
            .bases()
            .iter()
            .all(|b| api::jwks_kids(b).contains(&kid))
    });
    let deadline = Duration::from_secs(3) + PROPAGATION;
    wait_until("the node to sign with the new key", deadline, || {
        api::signing_kid(base) == kid
    });
    kid
}

/// Waits until the load generator has had 100 more tokens accepted.
fn await_progress(load: &Load, what: &str) {
    let from = load.checks();
    wait_until(what, Duration::from_secs(60), || {
        load.checks() >= from + 100
    });
}

/// Times [`SAMPLES`] revocations made on eu until us and ap reject them.
fn propagation(cluster: &DockerCluster) -> Vec<Duration> {
    let (eu, us, ap) = bases(cluster);
    let mut samples = Vec::new();
    for _ in 0..SAMPLES {
        let token = api::client_token(eu);
        api::revoke(eu, &token);
        let acked = Instant::now();
        let mut pending = vec![us, ap];
        wait_until("us and ap to reject", PROPAGATION * 2, || {
            pending.retain(|base| {
                let rejects = api::rejects(base, &token);
                if rejects {
                    samples.push(acked.elapsed());
                }
                !rejects
            });
            pending.is_empty()
        });
    }
    samples
}

/// Prints the median and maximum of `samples`, and the nodes' own mean, against `bound`.
fn report(label: &str, samples: &[Duration], node_mean: Duration, bound: Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    let over = sorted.iter().filter(|s| **s > bound).count();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "  {label:<24} median {:6.1} ms  max {:6.1} ms  nodes' mean {:6.1} ms  \
         bound {:5.1} ms  over bound {over}/{}",
        ms(median),
        ms(max),
        ms(node_mean),
        ms(bound),
        sorted.len()
    );
}

/// The sum and count of `portcullis_revocation_propagation_seconds` on us and ap: the
/// lag the nodes measure themselves, from the origin's clock to their own.
fn node_lag(cluster: &DockerCluster) -> (f64, f64) {
    let name = "portcullis_revocation_propagation_seconds";
    let texts: Vec<String> = [2, 3].map(|i| api::metrics(cluster.node(i).base())).into();
    let total = |suffix: &str| {
        let series = format!("{name}_{suffix}");
        texts
            .iter()
            .map(|t| api::metric(t, &series, &[]))
            .sum::<f64>()
    };
    (total("sum"), total("count"))
}

/// The mean lag of the revocations the nodes applied between two [`node_lag`] readings.
fn mean_lag(from: (f64, f64), to: (f64, f64)) -> Duration {
    let count = to.1 - from.1;
    if count <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64((to.0 - from.0) / count)
}
