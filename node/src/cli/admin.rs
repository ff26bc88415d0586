//! `portcullis admin …`: each subcommand is one call to a node's admin API.
//!
//! The node is `--node` (or `PORTCULLIS_NODE`), the token is `PORTCULLIS_TOKEN` (an
//! access token with the admin scope; never a flag, so it stays out of shell history
//! and `ps`). Answers are drawn as tables, or printed as the node's JSON with `--json`.
//! Exit status: 0 done, 1 the node refused or could not be reached, 2 bad usage or no
//! token.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{AdminClient, CliError};
use super::render::{human, View};

/// Where the admin API is by default.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:8080";

/// Arguments of `portcullis admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the node's HTTP API.
    #[arg(long, global = true, env = "PORTCULLIS_NODE", default_value = DEFAULT_NODE)]
    node: String,
    /// Print the node's JSON answer as it is, instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Revoke one token, or everything issued so far to a subject, client or refresh family.
    Revoke {
        #[command(subcommand)]
        target: RevokeTarget,
    },
    /// List the revocations in force (address bans included).
    Revocations,
    /// List the address bans in force, cluster-wide.
    Bans,
    /// Ban an address (or an IPv6 /64) from logins and the gate, on every node.
    Ban {
        /// An IPv4 or IPv6 address, or an IPv6 `/64`.
        address: String,
        /// How long: "10m", "2h", at most "30d".
        #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
        duration: String,
    },
    /// Lift the ban on an address, on every node.
    Unban {
        /// The banned address, as it was banned.
        address: String,
    },
    /// Show the signing keys this node trusts and the one it signs with.
    Keys,
    /// Publish a new signing key on this node; it signs once `jwks_max_age` has passed.
    #[command(alias = "rotate")]
    RotateKeys,
    /// Show the cluster membership as this node sees it.
    Cluster,
}

/// What `admin revoke` revokes. Identifiers may start with `-` (a base64url `jti` often
/// does), so they are never taken for options.
#[derive(Debug, Subcommand)]
enum RevokeTarget {
    /// One access token, by its `jti` claim.
    Jti {
        /// The token's `jti`.
        #[arg(allow_hyphen_values = true)]
        jti: String,
    },
    /// Every token issued to this subject (user) until now.
    Subject {
        /// The `sub` claim.
        #[arg(allow_hyphen_values = true)]
        subject: String,
    },
    /// Every token issued to this client until now.
    Client {
        /// The `client_id`.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// A refresh family (the `sid` claim) and the access tokens minted from it.
    Family {
        /// The family id.
        #[arg(allow_hyphen_values = true)]
        family: String,
    },
}

/// Exit status when the operator must fix the invocation (no token).
const USAGE: u8 = 2;

/// Runs one admin subcommand and prints its answer or the reason it failed.
pub fn run(args: &AdminArgs) -> ExitCode {
    let (request, view) = request(&args.command);
    let answer = AdminClient::from_env(&args.node).and_then(|client| request.send(&client));
    match answer {
        Ok(body) if args.json => println!("{body:#}"),
        Ok(body) => print!("{}", human(view, &body)),
        Err(error) => return fail(&error, args.json),
    }
    ExitCode::SUCCESS
}

fn fail(error: &CliError, json: bool) -> ExitCode {
    if let (
        true,
        CliError::Refused {
            body: Some(body), ..
        },
    ) = (json, error)
    {
        println!("{body:#}");
    }
    eprintln!("portcullis admin: {error}");
    match error {
        CliError::MissingToken => ExitCode::from(USAGE),
        _ => ExitCode::FAILURE,
    }
}

/// One call to the admin API.
enum Request {
    Get(&'static str),
    Post(&'static str, Option<Value>),
    Delete(String),
}

impl Request {
    fn send(&self, client: &AdminClient) -> Result<Value, CliError> {
        match self {
            Self::Get(path) => client.get(path),
            Self::Post(path, body) => client.post(path, body.as_ref()),
            Self::Delete(path) => client.delete(path),
        }
    }
}

/// The call a subcommand makes and how its answer is drawn.
fn request(command: &AdminCommand) -> (Request, View) {
    const REVOCATIONS: &str = "/admin/v1/revocations";
    const BANS: &str = "/admin/v1/bans";
    match command {
        AdminCommand::Revoke { target } => (
            Request::Post(REVOCATIONS, Some(revoke_body(target))),
            View::Revoked,
        ),
        AdminCommand::Revocations => (Request::Get(REVOCATIONS), View::Revocations),
        AdminCommand::Bans => (Request::Get(BANS), View::Bans),
        AdminCommand::Ban { address, duration } => {
            let body = json!({ "address": address, "duration": duration });
            (Request::Post(BANS, Some(body)), View::Banned)
        }
        AdminCommand::Unban { address } => {
            let path = format!("{BANS}/{}", path_escape(address));
            (Request::Delete(path), View::Lifted)
        }
        AdminCommand::Keys => (Request::Get("/admin/v1/keys"), View::Keys),
        AdminCommand::RotateKeys => (Request::Post("/admin/v1/keys/rotate", None), View::Rotated),
        AdminCommand::Cluster => (Request::Get("/admin/v1/cluster"), View::Cluster),
    }
}

fn revoke_body(target: &RevokeTarget) -> Value {
    match target {
        RevokeTarget::Jti { jti } => json!({ "kind": "token", "jti": jti }),
        RevokeTarget::Subject { subject } => json!({ "kind": "subject", "subject": subject }),
        RevokeTarget::Client { client_id } => json!({ "kind": "client", "client_id": client_id }),
        RevokeTarget::Family { family } => json!({ "kind": "family", "family": family }),
    }
}

/// Percent-encodes what may not stand in a path segment; `:` and `/` stay (IPv6
/// addresses and `/64` prefixes are routed as they are).
fn path_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' | b':' | b'/' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::path_escape;

    #[test]
    fn addresses_keep_their_colons_and_prefix_and_lose_nothing_else() {
        assert_eq!(path_escape("2001:db8::1/64"), "2001:db8::1/64");
        assert_eq!(path_escape("a b?c"), "a%20b%3Fc");
    }
}
