//! The `portcullis` binary: `serve`, `check-config`, `hash-password`,
//! `mint-client-secret`, and the operator subcommands in [`cli`] (`healthcheck`, `admin`).

mod cli;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis::clock::SystemClock;
use portcullis::config::{Config, ConfigError, LogFormat, Mode, DEV};
use portcullis::secrets::{hash_password, mint_client_secret};
use portcullis::{logging, shutdown};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "Auth and anti-abuse node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. Without --config it runs in dev mode with demo credentials.
    Serve {
        /// Configuration file (TOML); PORTCULLIS_* variables override its settings.
        #[arg(long, env = "PORTCULLIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file (with PORTCULLIS_* overrides) the way `serve` would,
    /// touching nothing: exit 0 with a summary, or 2 with every problem named.
    CheckConfig {
        /// Configuration file (TOML) to check.
        #[arg(long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Hash a user password (read from stdin) with argon2id for the `users` table.
    HashPassword,
    /// Mint a random client secret and print it with its `secret_hash`.
    MintClientSecret,
    /// Exit 0 if a node answers 200 (by default on /readyz), 1 otherwise; for HEALTHCHECK.
    Healthcheck(cli::health::HealthArgs),
    /// Call a node's admin API (token in PORTCULLIS_TOKEN).
    Admin(cli::admin::AdminArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve { config } => return Ok(serve(config)),
        Command::CheckConfig { config } => return Ok(check_config(&config)),
        Command::HashPassword => {
            let password = read_password()?;
            println!("{}", hash_password(&password));
        }
        Command::MintClientSecret => {
            let (secret, hash) = mint_client_secret();
            println!("client_secret = {secret}");
            println!("secret_hash   = \"{hash}\"");
        }
        Command::Healthcheck(args) => return Ok(cli::health::run(&args)),
        Command::Admin(args) => return Ok(cli::admin::run(&args)),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprintln!("password (input is echoed; pipe it in to avoid that):");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "empty password");
    Ok(password)
}

/// Exit status when the configuration is refused.
const REFUSED: u8 = 2;

fn serve(path: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(path.as_deref()) {
        Ok(config) => config,
        Err(error) => return refuse(&error),
    };
    logging::init(config.log_format);
    let mode = config.mode;
    let ran = actix_web::rt::System::new().block_on(async move {
        let signals = shutdown::Signals::install()?;
        let node = portcullis::node::start(config, Arc::new(SystemClock)).await?;
        if mode == Mode::Dev {
            announce_dev(&node.addr.to_string());
        }
        tracing::info!(addr = %node.addr, "listening");
        println!("portcullis: listening on http://{}", node.addr);
        shutdown::serve_until_signalled(node, signals).await?;
        anyhow::Ok(())
    });
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "node failed");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(Some(path)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("portcullis: configuration refused: {error}");
            return ExitCode::from(REFUSED);
        }
    };
    println!("{}: ok", path.display());
    println!("  listen      {}", config.listen);
    println!("  issuer      {}", config.issuer);
    println!("  audiences   {}", config.audiences.join(" "));
    println!("  data_dir    {}", config.data_dir.display());
    println!(
        "  users       {}, clients {}, route rules {}",
        config.users.len(),
        config.clients.len(),
        config.routes.len()
    );
    match &config.cluster {
        None => println!("  cluster     none (a single node)"),
        Some(cluster) => println!(
            "  cluster     {} in region {}, gossip {} (advertised {}), {} seeds",
            cluster.cluster_id,
            cluster.region,
            cluster.gossip_listen,
            cluster.gossip_advertise,
            cluster.seeds.len()
        ),
    }
    ExitCode::SUCCESS
}

/// Reports a refused configuration: as text, or as one JSON line when
/// `PORTCULLIS_LOG_FORMAT=json` (the file's `log_format` is unknown when it is refused).
fn refuse(error: &ConfigError) -> ExitCode {
    match LogFormat::from_env() {
        LogFormat::Text => eprintln!("portcullis: refusing to start: {error}"),
        LogFormat::Json => {
            logging::init(LogFormat::Json);
            tracing::error!(problems = %error, "refusing to start");
        }
    }
    ExitCode::from(REFUSED)
}

fn announce_dev(addr: &str) {
    tracing::warn!("DEV MODE: demo credentials are public; never use dev mode in production");
    println!(
        "\nportcullis dev mode (NOT for production)\n\
         demo user:    {user} / {password}\n\
         demo client:  {client} / {secret}\n\
         admin client: {admin} / {admin_secret}\n\n\
         get a token:\n  curl -s -u {client}:{secret} -d grant_type=password \
         -d username={user} -d password={password} http://{addr}/oauth/token\n\
         check it:\n  curl -i -H \"Authorization: Bearer $TOKEN\" http://{addr}/v1/check\n",
        user = DEV.user,
        password = DEV.password,
        client = DEV.client_id,
        secret = DEV.client_secret,
        admin = DEV.admin_id,
        admin_secret = DEV.admin_secret,
    );
}
