//! Which scopes a grant yields: least privilege, decided before anything is signed.

use std::collections::BTreeSet;

use crate::config::{Client, Config, User};

/// Scopes a client may obtain: its own, without the admin scope unless it is an admin
/// client.
pub fn client_allowance(config: &Config, client: &Client) -> (BTreeSet<String>, BTreeSet<String>) {
    let is_admin = config.admin_clients.contains(&client.id);
    let keep = |s: &&String| is_admin || **s != config.admin_scope;
    let allowed = client.scopes.iter().filter(keep).cloned().collect();
    let default = client.default_scopes.iter().filter(keep).cloned().collect();
    (allowed, default)
}

/// Scopes a user may obtain through a client: what both allow.
pub fn user_allowance(
    config: &Config,
    client: &Client,
    user: &User,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let (allowed, default) = client_allowance(config, client);
    let allowed = allowed.intersection(&user.scopes).cloned().collect();
    let default = default.intersection(&user.scopes).cloned().collect();
    (allowed, default)
}

/// The granted scope string: the requested scopes if every one is allowed, the default
/// set if none was requested. `Err` names a scope that may not be granted.
pub fn resolve(
    requested: Option<&str>,
    allowed: &BTreeSet<String>,
    default: &BTreeSet<String>,
) -> Result<String, String> {
    let Some(requested) = requested else {
        return Ok(join(default.iter()));
    };
    let mut granted = BTreeSet::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        if !allowed.contains(scope) {
            let shown: String = scope
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            return Err(shown);
        }
        granted.insert(scope.to_owned());
    }
    Ok(join(granted.iter()))
}

/// Whether every scope in `requested` is in the space-separated `original`.
pub fn narrows(requested: &str, original: &str) -> bool {
    requested
        .split(' ')
        .filter(|s| !s.is_empty())
        .all(|s| original.split(' ').any(|o| o == s))
}

fn join<'a>(scopes: impl Iterator<Item = &'a String>) -> String {
    scopes.map(String::as_str).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_requested_scopes_only_when_all_are_allowed() {
        let allowed = set(&["read", "write"]);
        let default = set(&["read"]);
        assert_eq!(
            resolve(Some("write read"), &allowed, &default),
            Ok("read write".into())
        );
        assert_eq!(resolve(None, &allowed, &default), Ok("read".into()));
        assert_eq!(
            resolve(Some("read admin"), &allowed, &default),
            Err("admin".into())
        );
    }

    #[test]
    fn refresh_may_only_narrow() {
        assert!(narrows("read", "read write"));
        assert!(!narrows("read admin", "read write"));
    }
}
