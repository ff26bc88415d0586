//! What `portcullis admin` prints: a table per answer for people, or (with `--json`) the
//! node's JSON as it came, for scripts. Each function takes the answer of one route.

use portcullis::abuse::net::GATE_PREFIX;
use serde_json::Value;

use super::table::{utc, Table};

/// Which answer a body is, so that it is drawn as the right table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `POST /admin/v1/revocations`: the revocation made.
    Revoked,
    /// `GET /admin/v1/revocations`.
    Revocations,
    /// `GET /admin/v1/bans`.
    Bans,
    /// `POST /admin/v1/bans`: the entries imposed.
    Banned,
    /// `DELETE /admin/v1/bans/{address}`: the entries that lift it.
    Lifted,
    /// `GET /admin/v1/keys`.
    Keys,
    /// `POST /admin/v1/keys/rotate`: the new key.
    Rotated,
    /// `GET /admin/v1/cluster`.
    Cluster,
}

/// The text printed for `body`, the answer `view` names.
pub fn human(view: View, body: &Value) -> String {
    match view {
        View::Revoked => {
            let table = revocation_table(std::slice::from_ref(body));
            format!("revoked:\n{}", table.render())
        }
        View::Revocations => listed("revocations", revocation_table(&items(body, "revocations"))),
        View::Bans => listed("bans", ban_table(&items(body, "bans"))),
        View::Banned => format!("banned:\n{}", entry_table(&items(body, "bans")).render()),
        View::Lifted => format!("lifted:\n{}", entry_table(&items(body, "lifted")).render()),
        View::Keys => keys(body),
        View::Rotated => {
            let table = key_table(std::slice::from_ref(body), "");
            format!(
                "new key published (it signs once it activates):\n{}",
                table.render()
            )
        }
        View::Cluster => cluster(body),
    }
}

fn items(body: &Value, field: &str) -> Vec<Value> {
    body[field].as_array().cloned().unwrap_or_default()
}

/// A table, or a line saying there is nothing to list.
fn listed(what: &str, table: Table) -> String {
    if table.is_empty() {
        format!("no {what}\n")
    } else {
        table.render()
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn time(value: &Value) -> String {
    value.as_u64().map(utc).unwrap_or_default()
}

/// What a revocation applies to, whatever its kind.
fn target(entry: &Value) -> String {
    ["jti", "family", "subject", "client_id", "address"]
        .iter()
        .map(|field| text(&entry[*field]))
        .find(|t| !t.is_empty())
        .unwrap_or_default()
}

fn revocation_table(entries: &[Value]) -> Table {
    let mut table = Table::new(&["KIND", "TARGET", "REASON", "CREATED", "EXPIRES"]);
    for entry in entries {
        table.row(vec![
            text(&entry["kind"]),
            target(entry),
            text(&entry["reason"]),
            time(&entry["created_ms"]),
            time(&entry["expires_ms"]),
        ]);
    }
    table
}

fn ban_table(bans: &[Value]) -> Table {
    let header = ["ADDRESS", "SCOPE", "REASON", "OFFENCE", "UNTIL", "CREATED"];
    let mut table = Table::new(&header);
    for ban in bans {
        table.row(vec![
            text(&ban["address"]),
            text(&ban["scope"]),
            text(&ban["reason"]),
            text(&ban["offence"]),
            time(&ban["until_ms"]),
            time(&ban["created_ms"]),
        ]);
    }
    table
}

/// Address entries as the ban routes return them: the gate's carry a prefix.
fn entry_table(entries: &[Value]) -> Table {
    let mut table = Table::new(&["ADDRESS", "SCOPE", "REASON", "UNTIL"]);
    for entry in entries {
        let address = text(&entry["address"]);
        let (scope, shown) = match address.strip_prefix(GATE_PREFIX) {
            Some(rest) => ("gate", rest.to_owned()),
            None => ("login", address.clone()),
        };
        table.row(vec![
            shown,
            scope.into(),
            text(&entry["reason"]),
            time(&entry["until_ms"]),
        ]);
    }
    table
}

fn keys(body: &Value) -> String {
    let signing = text(&body["signing_kid"]);
    let table = key_table(&items(body, "keys"), &signing);
    format!("this node signs with {signing}\n{}", table.render())
}

fn key_table(keys: &[Value], signing: &str) -> Table {
    let header = ["KID", "OWNER", "PHASE", "ACTIVATES", "RETIRES", "EXPIRES"];
    let mut table = Table::new(&header);
    for key in keys {
        let kid = text(&key["kid"]);
        let mark = if !signing.is_empty() && kid == signing {
            " *"
        } else {
            ""
        };
        table.row(vec![
            format!("{kid}{mark}"),
            text(&key["owner"]),
            text(&key["phase"]),
            time(&key["activate_ms"]),
            time(&key["retire_ms"]),
            time(&key["expire_ms"]),
        ]);
    }
    table
}

fn cluster(body: &Value) -> String {
    let mut out = String::new();
    for (label, field) in [
        ("node", "node_id"),
        ("region", "region"),
        ("clustered", "clustered"),
        ("ready", "ready"),
        ("deny list entries", "deny_list_entries"),
        ("trusted keys", "trusted_keys"),
    ] {
        let value = match &body[field] {
            Value::Array(list) => list.len().to_string(),
            other => text(other),
        };
        let value = if value.is_empty() { "-".into() } else { value };
        out.push_str(&format!("{label:<18} {value}\n"));
    }
    let header = [
        "NODE",
        "STATE",
        "REGION",
        "GENERATION",
        "GOSSIP",
        "HTTP",
        "LAST HEARD",
        "KEYS",
    ];
    let mut table = Table::new(&header);
    for member in items(body, "members") {
        let kids = member["kids"].as_array().map_or(0, Vec::len);
        table.row(vec![
            text(&member["node_id"]),
            text(&member["state"]),
            text(&member["region"]),
            text(&member["generation"]),
            text(&member["gossip_addr"]),
            text(&member["http"]),
            time(&member["last_heard_ms"]),
            kids.to_string(),
        ]);
    }
    if !table.is_empty() {
        out.push('\n');
        out.push_str(&table.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_ban_answer_shows_both_scopes_without_the_gate_prefix() {
        let body = json!({"bans": [
            {"kind": "address", "address": "192.0.2.7", "reason": "admin", "until_ms": 1000},
            {"kind": "address", "address": "gate:192.0.2.7", "reason": "admin", "until_ms": 1000},
        ]});
        let shown = human(View::Banned, &body);
        assert!(shown.contains("192.0.2.7  login"), "{shown}");
        assert!(shown.contains("192.0.2.7  gate"), "{shown}");
        assert!(!shown.contains("gate:"), "{shown}");
    }

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(human(View::Bans, &json!({"bans": []})), "no bans\n");
    }
}
