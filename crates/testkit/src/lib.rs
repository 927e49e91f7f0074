//! Test support for every integration test of the workspace.
//!
//! - [`Mosquitto`]: a real Mosquitto started by the test on a free port, with a config the test
//!   writes into a temporary directory; it can be stopped, killed and restarted on the same port,
//!   and is killed on drop. Never port 1883.
//! - [`embedded`]: the in-process broker on a free port.
//! - [`Probe`]: a client that subscribes, publishes and waits for expectations with deadlines.
//! - [`Running`], [`on_both_brokers!`]: daemons as tasks, and one test body run on each broker;
//!   [`terminate`]: a child process stopped as `docker stop` would.
//! - [`HomeAssistant`]: a real Home Assistant Core (from the venv `ha/install.sh` builds),
//!   onboarded, with its MQTT integration on the test's broker; REST reads, restarts, its log.
//! - [`SmtpServer`]: a real SMTP server (aiosmtpd) that requires STARTTLS; [`make_certs`]: a local
//!   CA and a server certificate for 127.0.0.1, made by the shipped `mosquitto/make-certs.sh`.
//! - [`SiaReceiver`]: a real SIA DC-09 alarm receiver (pysiaalarm, the library of Home Assistant's
//!   `sia`), TCP or UDP, encrypted or not, stopped and resumed on its port.
//! - [`NatsCluster`]: a real three-node NATS Server cluster speaking MQTT 3.1.1 (from the venv
//!   `nats/install.sh` builds), JetStream-replicated; nodes can be killed and restarted.
//! - [`Prometheus`]: a real Prometheus server scraping the test's metrics endpoints every second,
//!   queried back through its HTTP API.
//! - [`webhook_receiver`]: an HTTP receiver for the notifier's webhooks, answering as told.

mod daemon;
pub mod home_assistant;
mod home_config;
mod mosquitto;
mod nats;
mod probe;
mod prometheus;
mod sia;
mod smtp;
mod webhook;

pub use daemon::{Running, Spawned, WITHIN, on_embedded, on_mosquitto, terminate};
pub use home_assistant::HomeAssistant;
pub use home_config::shipped_home_config;

pub use mosquitto::{Mosquitto, mosquitto_or_skip};
pub use nats::{NatsCluster, nats_or_skip, nats_server_binary};
pub use probe::Probe;
pub use prometheus::{Prometheus, prometheus_binary, prometheus_or_skip};
pub use sia::{SiaEvent, SiaReceiver, SiaTransport, pysiaalarm_or_skip, pysiaalarm_python};
pub use smtp::{SmtpServer, aiosmtpd_python, smtp_or_skip};
pub use webhook::{Received, wait_for, webhook_receiver};

/// Whether a program a test needs is installed. When it is not: under `CI=true` a failure naming
/// how CI installs it (CI never skips in silence); elsewhere a loud line on stderr, and the caller
/// skips what needs it.
pub fn installed_or_skip(installed: bool, what: &str, how: &str) -> bool {
    if !installed {
        assert!(
            std::env::var("CI").map(|v| v != "true").unwrap_or(true),
            "{what} is not installed but CI=true: .ci/run must install it ({how})"
        );
        eprintln!("\n*** SKIPPED: {what} is not installed ({how}) ***\n");
    }
    installed
}

/// A local CA and a server certificate for `127.0.0.1` and `localhost`, PEM files in `dir`, made
/// by the repository's `mosquitto/make-certs.sh` (openssl).
pub struct Certificates {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Runs `mosquitto/make-certs.sh` into `dir`.
pub fn make_certs(dir: &std::path::Path) -> anyhow::Result<Certificates> {
    use anyhow::Context;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mosquitto/make-certs.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .args(["127.0.0.1", "localhost"])
        .env("CERTS_DIR", dir)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    anyhow::ensure!(status.success(), "{} failed: {status}", script.display());
    Ok(Certificates { ca: dir.join("ca.crt"), cert: dir.join("server.crt"), key: dir.join("server.key") })
}

/// A new embedded broker on a free port of 127.0.0.1.
pub fn embedded() -> embedded_broker::EmbeddedBroker {
    embedded_broker::EmbeddedBroker::start(([127, 0, 0, 1], 0).into()).expect("cannot start the embedded broker")
}

/// A TCP port that was free a moment ago and that this process has not been given before: tests
/// running in parallel in one test binary never get the same port for two servers.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        if GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(port) {
            return port;
        }
    }
}
