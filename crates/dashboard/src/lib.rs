//! The dashboard: the home on one page, live, in any browser, phones included.
//!
//! It is a [`device::DashboardDevice`] on the shared runner that subscribes to the home's retained
//! state (sensors, lights, the panel's status, the siren, the sun's phase, every device's
//! availability, announce and health) and the panel's events, and keeps them in memory
//! ([`home::Home`]). Beside it, an axum server ([`web`]) serves the page and streams every change
//! to it as Server-Sent Events: the page never polls. History (the event feed's past and the
//! activity chart) is read from the recorder's SQLite file, read-only ([`history`]).
//!
//! The page arms, disarms and sets the lights, so it is guarded ([`auth`]): loopback only unless
//! a login is configured, a CSRF token on every POST, sessions that expire, wrong logins limited.
//! Commands go out through the device (its `wake`): the dashboard has one MQTT connection.

pub mod auth;
pub mod body;
pub mod checks;
pub mod config;
pub mod device;
pub mod history;
pub mod home;
pub mod serve;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use device_runtime::Shutdown;
use protocol::Topics;
use tokio::sync::mpsc;

pub use config::Config;

use crate::auth::Auth;
use crate::device::{COMMANDS_BUFFER, DashboardDevice, Shared};
use crate::web::AppState;

/// How long open pages get to close when the dashboard stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the dashboard until `shutdown`: the web server and the MQTT device side by side. The
/// address is bound first, so a busy port fails the start with a clear error.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (dashboard.listen)", config.listen))?;
    let topics = Topics::new(&config.mqtt.topic_root);
    let shared = Shared::new(config.recent_events);
    let (commands, inbox) = mpsc::channel(COMMANDS_BUFFER);
    let login = if config.login_required() { "login" } else { "no-login" };
    let capabilities = vec!["web".into(), format!("listen:{}", config.listen), login.into()];
    let device = DashboardDevice::new(topics.clone(), shared.clone(), inbox, capabilities);
    let state = Arc::new(AppState {
        shared,
        commands,
        auth: Auth::new(
            config.password_hash.clone(),
            config.token.clone(),
            Duration::from_secs(config.session_s),
            config.login_attempts_per_minute,
        ),
        database: config.database.clone(),
        topics,
        secure_cookie: config.secure_cookie,
        shutdown: shutdown.clone(),
        allowed_hosts: config.allowed_hosts.clone(),
        login_checks: checks::LoginChecks::start(),
    });
    let app = web::router(state, config.max_body_bytes);
    tracing::info!(
        "dashboard on http://{} ({}), history from {}",
        config.listen,
        if config.login_required() { "login required" } else { "no login: loopback only" },
        config.database.display()
    );
    let limits = serve::Limits {
        max_connections: config.max_connections,
        per_client: config.max_connections_per_client,
        header_read: Duration::from_secs(config.header_read_timeout_s),
    };
    let connections = device_runtime::metrics::gauge(serve::CONNECTIONS, &vec![("daemon", config.mqtt.id.clone())]);
    let server = serve::spawn(listener, app, limits, connections, shutdown.clone())?;
    let mqtt = config.mqtt.clone();
    let outcome = device_runtime::runner::run(device, &mqtt, shutdown.clone()).await;
    // The device stopped (shutdown, or its link failed): the server stops with it.
    shutdown.trigger();
    match tokio::time::timeout(STOP_GRACE, server).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => tracing::error!("the web server's thread ended without a word (it panicked)"),
        Err(_) => tracing::warn!("the web server did not stop within {} s", STOP_GRACE.as_secs()),
    }
    outcome
}
