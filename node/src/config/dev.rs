//! The embedded development configuration behind `portcullis serve` with no `--config`.
//!
//! It carries a demo user, a demo client and a demo admin client whose passwords are
//! printed at start-up. Dev mode is for trying Portcullis on one machine, never for
//! production: the credentials are public.

use toml::{Table, Value};

use crate::secrets::{hash_password, ClientSecretHash};

/// The demo credentials that dev mode loads and prints.
#[derive(Debug, Clone, Copy)]
pub struct DevCredentials {
    /// Demo user name.
    pub user: &'static str,
    /// Demo user password.
    pub password: &'static str,
    /// Demo client id (password, refresh and client-credentials grants).
    pub client_id: &'static str,
    /// Demo client secret.
    pub client_secret: &'static str,
    /// Demo admin client id (client credentials with the admin scope).
    pub admin_id: &'static str,
    /// Demo admin client secret.
    pub admin_secret: &'static str,
}

/// The one set of dev credentials.
pub const DEV: DevCredentials = DevCredentials {
    user: "demo",
    password: "demo-password",
    client_id: "demo-client",
    client_secret: "demo-secret",
    admin_id: "demo-admin",
    admin_secret: "demo-admin-secret",
};

const DEV_TOML: &str = r#"
listen = "127.0.0.1:8080"
audiences = ["demo-api"]
data_dir = "portcullis-data"
admin_clients = ["demo-admin"]

[[routes]]
method = "POST"
prefix = "/api/orders"
scopes = ["orders:write"]
"#;

/// The dev configuration as a table, with freshly hashed demo credentials.
pub fn dev_table() -> Table {
    let mut table: Table = toml::from_str(DEV_TOML).expect("embedded dev configuration is valid");
    let user = toml::toml! {
        name = "demo"
        scopes = ["profile", "orders:read", "orders:write"]
    };
    let client = toml::toml! {
        id = "demo-client"
        grants = ["password", "refresh_token", "client_credentials"]
        scopes = ["profile", "orders:read", "orders:write"]
        default_scopes = ["profile", "orders:read"]
    };
    let admin = toml::toml! {
        id = "demo-admin"
        grants = ["client_credentials"]
        scopes = ["portcullis:admin"]
        default_scopes = ["portcullis:admin"]
    };
    let user = with(user, "password_hash", hash_password(DEV.password));
    let client = with(
        client,
        "secret_hash",
        ClientSecretHash::of(DEV.client_secret).to_string(),
    );
    let admin = with(
        admin,
        "secret_hash",
        ClientSecretHash::of(DEV.admin_secret).to_string(),
    );
    table.insert("users".into(), Value::Array(vec![Value::Table(user)]));
    table.insert(
        "clients".into(),
        Value::Array(vec![Value::Table(client), Value::Table(admin)]),
    );
    table
}

fn with(mut table: Table, key: &str, value: String) -> Table {
    table.insert(key.into(), Value::String(value));
    table
}
