//! `docs/operations.md`'s configuration reference held to the parser: its tables list
//! exactly the settings `portcullis::config::known_keys()` reports, and every default
//! they write as a literal is the one the parser applies when the setting is absent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use portcullis::config::{known_keys, Config, Mode};
use portcullis::secrets::{hash_password, ClientSecretHash};
use toml::{Table, Value};

fn operations_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
    std::fs::read_to_string(path).expect("docs/operations.md is readable")
}

/// The settings tables of "## Configuration reference", by key path (`tokens.leeway`,
/// `clients[].id`), with the text of each row's default column.
fn documented(text: &str) -> BTreeMap<String, String> {
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Configuration reference"))
        .expect("operations.md has a Configuration reference section");
    let mut settings = BTreeMap::new();
    let mut prefix = None;
    for line in section.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            prefix = table_prefix(heading);
            continue;
        }
        let (Some(prefix), Some(row)) = (&prefix, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let key = cells[0].trim_end_matches('`');
        let default = cells.get(2).copied().unwrap_or_default().trim().to_owned();
        let previous = settings.insert(format!("{prefix}{key}"), default);
        assert!(previous.is_none(), "{prefix}{key} is documented twice");
    }
    settings
}

/// `Top-level settings` → ``, `` `[tokens]` `` → `tokens.`, `` `[[users]]` `` → `users[].`;
/// `None` for a heading that is not a settings table.
fn table_prefix(heading: &str) -> Option<String> {
    if heading.starts_with("Top-level settings") {
        return Some(String::new());
    }
    let name = heading.strip_prefix('`')?.split('`').next()?;
    if let Some(array) = name.strip_prefix("[[").and_then(|n| n.strip_suffix("]]")) {
        return Some(format!("{array}[]."));
    }
    let table = name.strip_prefix('[')?.strip_suffix(']')?;
    Some(format!("{table}."))
}

#[test]
fn every_setting_the_parser_accepts_is_documented_and_nothing_else() {
    let documented: BTreeSet<String> = documented(&operations_md()).into_keys().collect();
    let known = known_keys();
    assert!(
        known.contains("tokens.leeway") && known.contains("clients[].id"),
        "{known:?}"
    );
    let undocumented: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/operations.md lacks {undocumented:?} and lists settings the parser \
         refuses {unknown:?}"
    );
}

#[test]
fn every_documented_setting_is_accepted_by_the_parser() {
    // The same check from the other side: the parser reads each documented key, so a
    // configuration that sets it reports no unknown setting.
    for key in documented(&operations_md()).into_keys() {
        let mut table = base();
        insert(&mut table, &key, Value::String("x".into()));
        let problems = match Config::from_table(table, Mode::Production, std::iter::empty()) {
            Ok(_) => Vec::new(),
            Err(error) => error.0,
        };
        let unknown = problems
            .iter()
            .find(|p| p.message == "unknown setting" && generic(&p.key) == key);
        assert!(
            unknown.is_none(),
            "{key} is documented but refused: {unknown:?}"
        );
    }
}

/// A valid production configuration with a cluster, a user, a client and a route.
fn base() -> Table {
    static HASH: OnceLock<String> = OnceLock::new();
    let hash = HASH.get_or_init(|| hash_password("alice-password"));
    let text = format!(
        r#"
issuer = "https://auth.example.com"
audiences = ["api"]
data_dir = "/var/lib/portcullis"

[cluster]
gossip_listen = "127.0.0.1:7946"
secret = "a-cluster-secret-of-at-least-thirty-two-bytes"

[[users]]
name = "alice"
password_hash = "{hash}"

[[clients]]
id = "web"
secret_hash = "{secret}"
grants = ["client_credentials"]

[[routes]]
prefix = "/internal"
scopes = ["read"]
"#,
        secret = ClientSecretHash::of("web-secret"),
    );
    toml::from_str(&text).expect("the base configuration is valid TOML")
}

/// Sets `path` (`tokens.leeway`, `users[].scopes`) in `table`; array paths set the key
/// in the first element.
fn insert(table: &mut Table, path: &str, value: Value) {
    let (parents, key) = path.rsplit_once('.').unwrap_or(("", path));
    let mut current = table;
    for part in parents.split('.').filter(|p| !p.is_empty()) {
        let entry = match part.strip_suffix("[]") {
            Some(array) => match current.get_mut(array) {
                Some(Value::Array(items)) => &mut items[0],
                _ => panic!("the base configuration has no [[{array}]]"),
            },
            None => current
                .entry(part)
                .or_insert_with(|| Value::Table(Table::new())),
        };
        current = entry.as_table_mut().expect("a table");
    }
    current.insert(key.to_owned(), value);
}

/// `users[0].name` → `users[].name`.
fn generic(key: &str) -> String {
    let mut out = String::new();
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' | ']' => {
                in_index = c == '[';
                out.push(c);
            }
            _ if in_index => {}
            c => out.push(c),
        }
    }
    out
}

/// Everything the parser produced, the cluster settings included (their `Debug` hides
/// the secret and some fields).
fn fingerprint(config: &Config) -> String {
    let cluster = config.cluster.as_ref().map(|c| {
        format!(
            "{:?}",
            (
                &c.node_id,
                &c.cluster_id,
                c.gossip_listen,
                c.gossip_advertise,
                &c.http_advertise,
                &c.seeds,
                c.gossip_interval,
                &c.region,
                c.catchup_timeout,
            )
        )
    });
    format!("{config:?} {cluster:?}")
}

/// A default column that is one TOML literal in backticks (`"5m"`, `600`, `[]`).
fn literal(default: &str) -> Option<Value> {
    let inner = default.strip_prefix('`')?.strip_suffix('`')?;
    if inner.contains('`') {
        return None;
    }
    toml::from_str::<Table>(&format!("v = {inner}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
}

#[test]
fn every_literal_default_in_the_docs_is_the_parsers_default() {
    let plain = Config::from_table(base(), Mode::Production, std::iter::empty())
        .expect("the base configuration is valid");
    let mut checked = 0;
    for (key, default) in documented(&operations_md()) {
        let Some(value) = literal(&default) else {
            continue;
        };
        let mut table = base();
        insert(&mut table, &key, value);
        let explicit = Config::from_table(table, Mode::Production, std::iter::empty())
            .unwrap_or_else(|e| {
                panic!("{key} = {default} (its documented default) is refused: {e}")
            });
        assert!(
            fingerprint(&explicit) == fingerprint(&plain),
            "{key}: the documented default {default} is not what the parser applies"
        );
        checked += 1;
    }
    assert!(
        checked >= 35,
        "only {checked} defaults are written as literals"
    );
}

#[test]
fn the_docs_parser_reads_headings_and_literals() {
    assert_eq!(table_prefix("Top-level settings").as_deref(), Some(""));
    assert_eq!(table_prefix("`[tokens]`").as_deref(), Some("tokens."));
    assert_eq!(
        table_prefix("`[[users]]` (for x)").as_deref(),
        Some("users[].")
    );
    assert_eq!(table_prefix("Example production configuration"), None);
    assert_eq!(literal("`\"5m\"`"), Some(Value::String("5m".into())));
    assert_eq!(literal("`[]`"), Some(Value::Array(Vec::new())));
    assert_eq!(literal("required"), None);
    assert_eq!(literal("`gossip_listen`"), None);
    assert_eq!(generic("clients[12].id"), "clients[].id");
}
