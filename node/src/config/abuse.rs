//! The anti-abuse settings: `[rate_limits]`, `[login]` and `[heuristics]`.
//!
//! Every limit has a default that suits a small deployment; `docs/abuse.md` and
//! `docs/rate-limits.md` explain what each one trades.

use std::collections::BTreeMap;
use std::time::Duration;

use super::reader::Reader;

/// Default per-minute request budget of a token lineage.
pub const DEFAULT_BUDGET_PER_MINUTE: u64 = 600;
/// Default multiple of its budget at which a lineage is revoked for abuse.
pub const DEFAULT_ABUSE_FACTOR: f64 = 2.0;
/// Default cap on the entries of each counter table.
pub const DEFAULT_MAX_COUNTERS: u64 = 100_000;

/// Default login attempts per minute from one address (IPv4) or /64 (IPv6).
pub const DEFAULT_LOGIN_PER_ADDRESS: u64 = 30;
/// Default login attempts per minute for one user name from one address.
pub const DEFAULT_LOGIN_PER_ADDRESS_USER: u64 = 10;
/// Default login attempts per minute for one user name from networks it has not
/// logged in from recently.
pub const DEFAULT_LOGIN_PER_USER: u64 = 20;
/// Default time a successful login keeps its network trusted for that user.
pub const DEFAULT_TRUSTED_NETWORK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default number of password checks running at once; further logins get 503.
pub const DEFAULT_HASHING_CONCURRENCY: u64 = 4;
/// Default failed logins per minute from one address that earn it a ban.
pub const DEFAULT_BAN_AFTER_FAILURES: u64 = 10;
/// Default ban lengths: the first offence, the second, the third and later.
pub const DEFAULT_BAN_STEPS: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(600),
    Duration::from_secs(3600),
];
/// Default time an address's ban history counts towards the next, longer ban.
pub const DEFAULT_BAN_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Default number of distinct networks a lineage may be used from in the spread window.
pub const DEFAULT_SPREAD_NETWORKS: u64 = 4;
/// Default spread window.
pub const DEFAULT_SPREAD_WINDOW: Duration = Duration::from_secs(600);
/// Default bad tokens per window from one address before it is denied.
pub const DEFAULT_BAD_TOKENS: u64 = 20;
/// Default window for counting bad tokens.
pub const DEFAULT_BAD_TOKEN_WINDOW: Duration = Duration::from_secs(60);
/// Default denial after too many bad tokens.
pub const DEFAULT_BAD_TOKEN_DENIAL: Duration = Duration::from_secs(600);
/// Default tokens issued per minute to one address.
pub const DEFAULT_ISSUANCE_PER_ADDRESS: u64 = 600;
/// Default tokens issued per minute to one client.
pub const DEFAULT_ISSUANCE_PER_CLIENT: u64 = 6_000;

/// How the cluster shares a lineage's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetMode {
    /// Admit while local and gossiped peer counts are under budget; a bounded overshoot.
    Fast,
    /// Admit only within this node's share; shares move by published handoffs, so the
    /// cluster never admits more than the budget while membership is stable.
    Strict,
}

/// `[rate_limits]`: per-lineage budgets on `/v1/check` and introspection.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Whether budgets are enforced at all.
    pub enabled: bool,
    /// Budget-sharing mode.
    pub mode: BudgetMode,
    /// Requests per minute for a lineage with no tighter limit.
    pub per_minute: u64,
    /// Per-client budgets (`client_id` → requests per minute).
    pub clients: BTreeMap<String, u64>,
    /// Per-scope budgets; a token carrying the scope gets at most this.
    pub scopes: BTreeMap<String, u64>,
    /// Past `abuse_factor` × budget in the window, the lineage is revoked.
    pub abuse_factor: f64,
    /// Most counters kept per table.
    pub max_counters: usize,
}

impl RateLimitSettings {
    /// The budget of a token of `client_id` carrying `scopes`: the tightest that applies.
    pub fn budget_for<'a>(&self, client_id: &str, scopes: impl Iterator<Item = &'a str>) -> u64 {
        let mut budget = self.clients.get(client_id).copied();
        for scope in scopes {
            if let Some(&limit) = self.scopes.get(scope) {
                budget = Some(budget.map_or(limit, |b| b.min(limit)));
            }
        }
        budget.unwrap_or(self.per_minute)
    }
}

/// `[login]`: the password grant's flood defence.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Attempts per minute from one address (IPv6: one /64).
    pub per_address: u64,
    /// Attempts per minute for one user name from one address.
    pub per_address_user: u64,
    /// Attempts per minute for one user name from networks without a recent success.
    pub per_user: u64,
    /// How long a successful login keeps its network trusted for the user.
    pub trusted_network_ttl: Duration,
    /// Password checks running at once.
    pub hashing_concurrency: usize,
    /// Failures per minute from one address that earn a ban.
    pub ban_after_failures: u64,
    /// Ban lengths by offence; the last repeats.
    pub ban_steps: Vec<Duration>,
    /// How long past offences make the next ban longer.
    pub ban_memory: Duration,
}

/// `[heuristics]`: signals tied to the token lifecycle.
#[derive(Debug, Clone)]
pub struct HeuristicSettings {
    /// Distinct networks (/24, /64) a lineage may be seen from in `spread_window`.
    pub spread_networks: u64,
    /// Window for `spread_networks`.
    pub spread_window: Duration,
    /// Bad tokens from one address in `bad_token_window` before it is denied.
    pub bad_tokens: u64,
    /// Window for `bad_tokens`.
    pub bad_token_window: Duration,
    /// How long an address that presented too many bad tokens is denied.
    pub bad_token_denial: Duration,
    /// Tokens issued per minute to one address.
    pub issuance_per_address: u64,
    /// Tokens issued per minute to one client.
    pub issuance_per_client: u64,
}

/// Reads `[rate_limits]`.
pub fn read_rate_limits(r: &mut Reader<'_>) -> RateLimitSettings {
    let enabled = r.flag("enabled", true);
    let mode = match r.opt_string("mode").as_deref() {
        None | Some("fast") => BudgetMode::Fast,
        Some("strict") => BudgetMode::Strict,
        Some(other) => {
            r.problem("mode", format!("`{other}` is not a mode (fast, strict)"));
            BudgetMode::Fast
        }
    };
    let per_minute = positive(r, "per_minute", DEFAULT_BUDGET_PER_MINUTE);
    let clients = r.count_map("clients");
    let scopes = r.count_map("scopes");
    let abuse_factor = r.ratio("abuse_factor", DEFAULT_ABUSE_FACTOR, 1.0);
    let max_counters = positive(r, "max_counters", DEFAULT_MAX_COUNTERS) as usize;
    RateLimitSettings {
        enabled,
        mode,
        per_minute,
        clients,
        scopes,
        abuse_factor,
        max_counters,
    }
}

/// Reads `[login]`.
pub fn read_login(r: &mut Reader<'_>) -> LoginSettings {
    let ban_steps = match r.string_list("ban_steps") {
        None => DEFAULT_BAN_STEPS.to_vec(),
        Some(texts) => {
            let steps: Vec<Duration> = texts
                .iter()
                .filter_map(|t| {
                    super::parse_duration(t)
                        .map_err(|message| r.problem("ban_steps", message))
                        .ok()
                })
                .collect();
            if steps.is_empty() || steps.iter().any(Duration::is_zero) {
                r.problem("ban_steps", "needs at least one non-zero duration");
            }
            steps
        }
    };
    LoginSettings {
        per_address: positive(r, "per_address", DEFAULT_LOGIN_PER_ADDRESS),
        per_address_user: positive(r, "per_address_user", DEFAULT_LOGIN_PER_ADDRESS_USER),
        per_user: positive(r, "per_user", DEFAULT_LOGIN_PER_USER),
        trusted_network_ttl: r.duration("trusted_network_ttl", DEFAULT_TRUSTED_NETWORK_TTL),
        hashing_concurrency: positive(r, "hashing_concurrency", DEFAULT_HASHING_CONCURRENCY)
            as usize,
        ban_after_failures: positive(r, "ban_after_failures", DEFAULT_BAN_AFTER_FAILURES),
        ban_steps,
        ban_memory: r.duration("ban_memory", DEFAULT_BAN_MEMORY),
    }
}

/// Reads `[heuristics]`.
pub fn read_heuristics(r: &mut Reader<'_>) -> HeuristicSettings {
    let settings = HeuristicSettings {
        spread_networks: positive(r, "spread_networks", DEFAULT_SPREAD_NETWORKS),
        spread_window: r.duration("spread_window", DEFAULT_SPREAD_WINDOW),
        bad_tokens: positive(r, "bad_tokens", DEFAULT_BAD_TOKENS),
        bad_token_window: r.duration("bad_token_window", DEFAULT_BAD_TOKEN_WINDOW),
        bad_token_denial: r.duration("bad_token_denial", DEFAULT_BAD_TOKEN_DENIAL),
        issuance_per_address: positive(r, "issuance_per_address", DEFAULT_ISSUANCE_PER_ADDRESS),
        issuance_per_client: positive(r, "issuance_per_client", DEFAULT_ISSUANCE_PER_CLIENT),
    };
    for (key, window) in [
        ("spread_window", settings.spread_window),
        ("bad_token_window", settings.bad_token_window),
        ("bad_token_denial", settings.bad_token_denial),
    ] {
        if window < Duration::from_secs(1) {
            r.problem(key, "must be at least 1s");
        }
    }
    settings
}

/// A count that must be at least 1.
fn positive(r: &mut Reader<'_>, key: &str, default: u64) -> u64 {
    let value = r.count(key, default);
    if value == 0 {
        r.problem(key, "must be at least 1");
        return default;
    }
    value
}
