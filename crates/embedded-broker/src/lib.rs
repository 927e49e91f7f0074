//! An in-process MQTT 3.1.1 broker, built on rumqttd, for `mqtt-home` and for tests.
//!
//! rumqttd's `Broker::start()` blocks its thread, has no readiness signal, and only *logs* a port
//! that is already taken — after which a client would silently talk to whatever holds the port.
//! [`EmbeddedBroker::start`] therefore checks the port first (falling back to a free one), runs the
//! broker on its own thread, and returns only once that thread accepts connections.
//!
//! Retained messages, Last Will, QoS 1 and 2 and persistent sessions (in memory) work; there are no
//! ACLs and nothing is written to disk. The broker runs for the life of the process: rumqttd has
//! no way to stop it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("broker configuration rejected by rumqttd: {0}")]
    Config(String),
    #[error("the broker thread on {addr} stopped before accepting connections (see the log above)")]
    Died { addr: SocketAddr },
    #[error("the broker on {addr} did not accept connections within {waited:?}")]
    NotReady { addr: SocketAddr, waited: Duration },
}

/// Largest payload the embedded broker accepts (Mosquitto's compose config uses the same).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// A running broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    fell_back_from: Option<SocketAddr>,
    _thread: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts on `preferred`, or on a free port of the same IP when that one is taken (port 0 always
    /// picks a free port). Returns once the broker accepts TCP connections.
    pub fn start(preferred: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
        let (addr, fell_back_from) = match TcpListener::bind(preferred) {
            Ok(listener) => {
                (listener.local_addr().map_err(|source| BrokerError::Bind { addr: preferred, source })?, None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let any = SocketAddr::new(preferred.ip(), 0);
                let listener = TcpListener::bind(any).map_err(|source| BrokerError::Bind { addr: any, source })?;
                let addr = listener.local_addr().map_err(|source| BrokerError::Bind { addr: any, source })?;
                (addr, Some(preferred))
            }
            Err(source) => return Err(BrokerError::Bind { addr: preferred, source }),
        };
        // The probe listener is dropped here, freeing the port for rumqttd a moment later. Another
        // process could take it in between; the readiness check below then fails instead of lying.
        let config = config(addr)?;
        let thread = std::thread::Builder::new()
            .name(format!("rumqttd-{}", addr.port()))
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!("embedded broker on {addr} stopped: {e}");
                }
            })
            .map_err(|source| BrokerError::Bind { addr, source })?;
        let started = Instant::now();
        loop {
            if thread.is_finished() {
                return Err(BrokerError::Died { addr });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(BrokerError::NotReady { addr, waited: READY_TIMEOUT });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(EmbeddedBroker { addr, fell_back_from, _thread: thread })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `mqtt://IP:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// The address asked for, when it was taken and another port was used.
    pub fn fell_back_from(&self) -> Option<SocketAddr> {
        self.fell_back_from
    }
}

fn config(addr: SocketAddr) -> Result<rumqttd::Config, BrokerError> {
    // rumqttd's Config has no constructor; every router and listener field is required.
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {MAX_PAYLOAD_BYTES}
    max_inflight_count = 100
    dynamic_filters = true
"#
    );
    toml::from_str(&text).map_err(|e| BrokerError::Config(e.to_string()))
}
