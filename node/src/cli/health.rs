//! `portcullis healthcheck`: one GET with a short timeout, exit 0 on 200 and 1 otherwise.
//!
//! It is the `HEALTHCHECK` of the `FROM scratch` image, which has no shell and no curl,
//! so it must work from the static binary alone: plain HTTP, no DNS needed for an IP
//! address, and a reason printed on failure for `docker inspect` to show.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Where a container's node answers readiness by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/readyz";
/// How long the whole request may take by default.
const DEFAULT_TIMEOUT: &str = "3s";

/// Arguments of `portcullis healthcheck`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// URL to GET; healthy means it answers 200.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// Give up after this long ("500ms", "3s").
    #[arg(long, default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    timeout: Duration,
}

/// Runs the check and says why it failed, if it did.
pub fn run(args: &HealthArgs) -> ExitCode {
    match probe(&args.url, args.timeout) {
        Ok(()) => {
            println!("healthy: {} answered 200", args.url);
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok` when `url` answers 200 within `timeout`; otherwise what went wrong.
fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    // The node is local to the check: an HTTP_PROXY in the container's environment must
    // not route the probe elsewhere.
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .map_err(|e| format!("{url}: {}", super::client::describe(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::OK {
        return Ok(());
    }
    // A short body helps: `/readyz` says `not_ready`.
    let body = response.text().unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(format!("{url} answered {status}: {}", body.trim()))
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    portcullis::config::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}` is not a duration like \"500ms\" or \"3s\""))
}
