//! `config/dashboard.toml`: where the dashboard listens, where the recorder's log is, and who may
//! log in.
//!
//! The one rule serde cannot express is checked in [`Config::validate`]: a dashboard listening on
//! anything but loopback must have a login (an Argon2id password hash or a token), because the
//! page arms and disarms the alarm.

use std::net::SocketAddr;
use std::path::PathBuf;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{ConfigError, MqttConfig, Secret};
use serde::{Deserialize, Serialize};

/// Where the dashboard listens when nothing else is configured: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `config/dashboard.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// The address and port the web server binds.
    pub listen: SocketAddr,
    /// The recorder's SQLite file, opened read-only for history.
    pub database: PathBuf,
    /// An Argon2id PHC string (`$argon2id$v=19$…`); with it, the page asks for this password.
    pub password_hash: Option<String>,
    /// A login token (better given by environment, `DASHBOARD_TOKEN`); an alternative to `password_hash`.
    pub token: Option<Secret>,
    /// How long a login lasts, in seconds (12h, 30m, or seconds).
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub session_s: u64,
    /// Wrong logins allowed per client address per minute; the next ones are answered 429.
    pub login_attempts_per_minute: u32,
    /// Add `Secure` to the session cookie (set it when a TLS proxy stands in front).
    pub secure_cookie: bool,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How many of the panel's recent events the page is sent with the home.
    pub recent_events: usize,
    /// Host names the dashboard answers to besides `localhost` and IP addresses (the name of a TLS
    /// proxy in front, `dashboard.example.org`). A request for any other name is refused: a web
    /// page on a name that resolves to this machine (DNS rebinding) cannot read or drive it.
    pub allowed_hosts: Vec<String>,
    /// Connections open at once, over all clients; more are closed as they come.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_client: usize,
    /// How long a request's head may take to arrive, counted from when the server waits for it
    /// (an idle or trickling connection is dropped then), in seconds.
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub header_read_timeout_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mqtt: MqttConfig::with_id("dashboard"),
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            database: PathBuf::from(store::DEFAULT_DATABASE),
            password_hash: None,
            token: None,
            session_s: 12 * 3600,
            login_attempts_per_minute: 5,
            secure_cookie: false,
            max_body_bytes: 4096,
            recent_events: 50,
            allowed_hosts: Vec::new(),
            max_connections: 256,
            max_connections_per_client: 32,
            header_read_timeout_s: 10,
        }
    }
}

impl Config {
    /// Whether the page asks for a login.
    pub fn login_required(&self) -> bool {
        self.password_hash.is_some() || self.token.is_some()
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "dashboard";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        if !self.listen.ip().is_loopback() && !self.login_required() {
            return Err(ConfigError::Invalid(format!(
                "listen = {} is not a loopback address, and no login is configured: set password_hash \
                 (an Argon2id hash, e.g. from `security-controller hash-pin`) or token, or listen on 127.0.0.1",
                self.listen
            )));
        }
        if let Some(hash) = &self.password_hash {
            let ok = argon2::PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str() == "argon2id");
            if !ok {
                return Err(ConfigError::Invalid(
                    "password_hash is not an Argon2id PHC string like $argon2id$v=19$m=19456,t=2,p=1$…".into(),
                ));
            }
        }
        if self.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(ConfigError::Invalid("token must be at least 16 characters".into()));
        }
        if !(60..=30 * 24 * 3600).contains(&self.session_s) {
            return Err(ConfigError::Invalid(format!("session_s = {} must be 1 minute to 30 days", self.session_s)));
        }
        if !(1..=100).contains(&self.login_attempts_per_minute) {
            return Err(ConfigError::Invalid(format!(
                "login_attempts_per_minute = {} must be 1 to 100",
                self.login_attempts_per_minute
            )));
        }
        if !(256..=1024 * 1024).contains(&self.max_body_bytes) {
            return Err(ConfigError::Invalid(format!(
                "max_body_bytes = {} must be 256 to 1048576",
                self.max_body_bytes
            )));
        }
        if !(1..=1000).contains(&self.recent_events) {
            return Err(ConfigError::Invalid(format!("recent_events = {} must be 1 to 1000", self.recent_events)));
        }
        if !(1..=10_000).contains(&self.max_connections) {
            return Err(ConfigError::Invalid(format!(
                "max_connections = {} must be 1 to 10000 (each is a file handle of the process)",
                self.max_connections
            )));
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_client) {
            return Err(ConfigError::Invalid(format!(
                "max_connections_per_client = {} must be 1 to max_connections ({})",
                self.max_connections_per_client, self.max_connections
            )));
        }
        if !(1..=300).contains(&self.header_read_timeout_s) {
            return Err(ConfigError::Invalid(format!(
                "header_read_timeout_s = {} must be 1 s to 5 minutes",
                self.header_read_timeout_s
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_listen_on_loopback_without_a_login() {
        let config = Config::default();
        assert!(config.listen.ip().is_loopback());
        assert!(!config.login_required());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_public_address_needs_a_login() {
        let open = Config { listen: "0.0.0.0:8080".parse().unwrap(), ..Config::default() };
        let err = open.validate().unwrap_err().to_string();
        assert!(err.contains("not a loopback address") && err.contains("password_hash"), "{err}");
        let with_token = Config { token: Some(Secret::new("a-long-enough-token")), ..open.clone() };
        assert!(with_token.validate().is_ok());
        let short = Config { token: Some(Secret::new("short")), ..open.clone() };
        assert!(short.validate().is_err());
        let not_argon = Config { password_hash: Some("$2b$12$abc".into()), ..open };
        assert!(not_argon.validate().unwrap_err().to_string().contains("Argon2id"));
    }
}
