//! Every metric the node exports, declared in one place with its description.
//!
//! Labels come from closed sets (grant types, outcomes, endpoint patterns); never a
//! token, jti, user name or address.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Tokens issued, by `grant`.
pub const TOKENS_ISSUED: &str = "portcullis_tokens_issued_total";
/// Token endpoint failures, by OAuth `error` code.
pub const TOKEN_ERRORS: &str = "portcullis_token_errors_total";
/// Access-token verifications, by `outcome` (`valid` or a rejection reason).
pub const VERIFICATIONS: &str = "portcullis_verifications_total";
/// Verification cache lookups, by `result` (`hit`, `miss`).
pub const VERIFY_CACHE: &str = "portcullis_verify_cache_total";
/// Signatures checked together by the gate, one observation per batch.
pub const VERIFY_BATCH_SIZE: &str = "portcullis_verify_batch_size";
/// Signature batches that failed and were re-checked one signature at a time.
pub const VERIFY_BATCH_FALLBACKS: &str = "portcullis_verify_batch_fallbacks_total";
/// Entries in the verification cache.
pub const VERIFY_CACHE_ENTRIES: &str = "portcullis_verify_cache_entries";
/// Revocations made on this node, by `kind` and `reason`.
pub const REVOCATIONS: &str = "portcullis_revocations_total";
/// Refresh tokens presented a second time.
pub const REFRESH_REUSE: &str = "portcullis_refresh_reuse_detected_total";
/// Signing-key rotations.
pub const KEY_ROTATIONS: &str = "portcullis_key_rotations_total";
/// Unix time, in seconds, at which the key that signs now started signing.
pub const SIGNING_KEY_ACTIVATED: &str = "portcullis_signing_key_activated_timestamp_seconds";
/// The configured `rotation_period`, so alerts can compare the signing key's age with it.
pub const KEY_ROTATION_PERIOD: &str = "portcullis_key_rotation_period_seconds";
/// Live entries in the deny list.
pub const DENY_LIST_ENTRIES: &str = "portcullis_deny_list_entries";
/// HTTP request latency, by `endpoint` (route pattern) and `status` class.
pub const HTTP_DURATION: &str = "portcullis_http_request_duration_seconds";
/// Journal appends that failed (disk full, I/O error).
pub const JOURNAL_FAILURES: &str = "portcullis_journal_write_failures_total";

/// Anti-abuse decisions, by `decision` (rate_limited, rate_abuse_revoked,
/// ip_spread_revoked, address_denied, bad_token_denial, login_ban, issuance_address,
/// issuance_client).
pub const ABUSE_DECISIONS: &str = "portcullis_abuse_decisions_total";
/// Password-grant attempts by `outcome`: `success` and `failure` reached password
/// hashing; every other outcome was refused before it.
pub const LOGINS: &str = "portcullis_logins_total";
/// Entries held in the anti-abuse counter tables (not `…_counter_…`: promtool rejects
/// a gauge named like a counter).
pub const ABUSE_COUNTERS: &str = "portcullis_abuse_table_entries";
/// Address bans and denials in force.
pub const BANS_ACTIVE: &str = "portcullis_bans_active";

/// Gossip datagrams sent and received, by `direction`.
pub const GOSSIP_DATAGRAMS: &str = "portcullis_gossip_datagrams_total";
/// Gossip bytes sent and received, by `direction`.
pub const GOSSIP_BYTES: &str = "portcullis_gossip_bytes_total";
/// Gossip datagrams dropped, by `reason` (malformed, bad_mac, stale, replayed,
/// undecodable), and gossip values that did not decode (`bad_value`).
pub const GOSSIP_REJECTED: &str = "portcullis_gossip_rejected_total";

/// Cluster members by `state` (live, dead), as this node sees them.
pub const CLUSTER_MEMBERS: &str = "portcullis_cluster_members";
/// Time from a revocation's creation on its origin node to its application here.
pub const PROPAGATION_LAG: &str = "portcullis_revocation_propagation_seconds";
/// Snapshot catch-ups run, by `outcome`.
pub const CATCHUPS: &str = "portcullis_catchups_total";

/// Latency buckets in seconds, from 50µs to 2.5s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// Batch-size buckets, powers of two up to the batch limit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
                .expect("bucket list is non-empty")
                .set_buckets_for_metric(Matcher::Full(PROPAGATION_LAG.into()), LATENCY_BUCKETS)
                .expect("bucket list is non-empty")
                .set_buckets_for_metric(Matcher::Full(VERIFY_BATCH_SIZE.into()), BATCH_BUCKETS)
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(TOKENS_ISSUED, "Tokens issued, by grant type");
    describe_counter!(TOKEN_ERRORS, "Token endpoint errors, by OAuth error code");
    describe_counter!(VERIFICATIONS, "Access-token verifications, by outcome");
    describe_counter!(VERIFY_CACHE, "Verification cache lookups, by result");
    describe_histogram!(
        VERIFY_BATCH_SIZE,
        "Signatures checked together by the gate, per batch"
    );
    describe_counter!(
        VERIFY_BATCH_FALLBACKS,
        "Signature batches re-checked one by one after a failure"
    );
    describe_gauge!(VERIFY_CACHE_ENTRIES, "Tokens in the verification cache");
    describe_counter!(
        REVOCATIONS,
        "Revocations made on this node, by kind and reason"
    );
    describe_counter!(
        REFRESH_REUSE,
        "Refresh families revoked for reuse or a cross-node fork"
    );
    describe_counter!(KEY_ROTATIONS, "Signing-key rotations");
    describe_gauge!(
        SIGNING_KEY_ACTIVATED,
        Unit::Seconds,
        "Unix time the current signing key started signing"
    );
    describe_gauge!(
        KEY_ROTATION_PERIOD,
        Unit::Seconds,
        "Configured time a key signs before its successor"
    );
    describe_gauge!(DENY_LIST_ENTRIES, "Live entries in the deny list");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by endpoint"
    );
    describe_counter!(JOURNAL_FAILURES, "Journal writes that failed");
    describe_counter!(ABUSE_DECISIONS, "Anti-abuse decisions, by decision");
    describe_counter!(
        LOGINS,
        "Password-grant attempts by outcome; success and failure reached hashing"
    );
    describe_gauge!(ABUSE_COUNTERS, "Entries in the anti-abuse counter tables");
    describe_gauge!(BANS_ACTIVE, "Address bans and denials in force");
    describe_counter!(GOSSIP_DATAGRAMS, "Gossip datagrams, by direction");
    describe_counter!(GOSSIP_BYTES, "Gossip bytes on the wire, by direction");
    describe_counter!(
        GOSSIP_REJECTED,
        "Gossip datagrams and values dropped, by reason"
    );
    describe_gauge!(CLUSTER_MEMBERS, "Cluster members by state");
    describe_histogram!(
        PROPAGATION_LAG,
        Unit::Seconds,
        "Revocation origin-to-apply lag"
    );
    describe_counter!(CATCHUPS, "Snapshot catch-ups, by outcome");
}
