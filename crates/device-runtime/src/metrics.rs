//! Prometheus metrics: what the daemons of this process count, in one registry, served as
//! OpenMetrics text on `--metrics ADDR` (off by default). Every series carries a `daemon` label,
//! the device id, so the daemons of `mqtt-home run` share one endpoint and a daemon run on its
//! own looks the same.
//!
//! What the runner counts for every daemon ([`Runner`]): messages received and published by
//! topic kind, payloads that did not decode, reconnects, whether the link is up, and the QoS 1
//! publishes the broker has not acknowledged yet. What a daemon counts of its own it says as an
//! [`crate::Act::Metric`] (the panel's state, the siren, notifications, reports to a centre…): the
//! decisions stay pure and the runner, which knows the daemon's id, records it.
//!
//! The registry is the process's (a static): metrics are what a process shows, and `mqtt-home`
//! is one process with many daemons. Recording is an atomic add on a handle the runner keeps; the
//! endpoint renders on request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Shutdown;

/// A series' labels: `daemon` first, then the metric's own.
pub type Labels = Vec<(&'static str, String)>;

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; its value in an act is the increment.
    Counter,
    /// Set to the act's value.
    Gauge,
}

/// A metric's name (`mqtt_home_…`; a counter's without `_total`, which the encoder adds), help
/// and kind: each defined once, as a constant, where it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

impl Metric {
    pub const fn counter(name: &'static str, help: &'static str) -> Metric {
        Metric { name, help, kind: Kind::Counter }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Metric {
        Metric { name, help, kind: Kind::Gauge }
    }
}

pub const RECEIVED: Metric = Metric::counter(
    "mqtt_home_messages_received",
    "MQTT messages received, by topic kind (foreign: outside the contract)",
);
pub const PUBLISHED: Metric = Metric::counter("mqtt_home_messages_published", "MQTT messages published, by topic kind");
pub const DECODE_FAILURES: Metric =
    Metric::counter("mqtt_home_decode_failures", "Messages on the home's topics whose payload did not decode");
pub const RECONNECTS: Metric =
    Metric::counter("mqtt_home_reconnects", "Connections to the broker after the first (each one followed a loss)");
pub const CONNECTED: Metric = Metric::gauge("mqtt_home_link_connected", "1 while connected to the broker, else 0");
pub const UNACKNOWLEDGED: Metric =
    Metric::gauge("mqtt_home_publishes_unacknowledged", "QoS 1 publishes the broker has not acknowledged yet");

/// The process's registry and the families registered so far.
struct Metrics {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    gauges: HashMap<&'static str, Family<Labels, Gauge>>,
}

fn metrics() -> &'static Mutex<Metrics> {
    static METRICS: OnceLock<Mutex<Metrics>> = OnceLock::new();
    METRICS.get_or_init(|| {
        Mutex::new(Metrics { registry: Registry::default(), counters: HashMap::new(), gauges: HashMap::new() })
    })
}

fn lock() -> std::sync::MutexGuard<'static, Metrics> {
    metrics().lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The counter of `metric` with `labels` (registered on first use).
pub fn counter(metric: Metric, labels: &Labels) -> Counter {
    let mut m = lock();
    let Metrics { registry, counters, .. } = &mut *m;
    let family = counters.entry(metric.name).or_insert_with(|| {
        let family = Family::<Labels, Counter>::default();
        registry.register(metric.name, metric.help, family.clone());
        family
    });
    family.get_or_create(labels).clone()
}

/// The gauge of `metric` with `labels` (registered on first use).
pub fn gauge(metric: Metric, labels: &Labels) -> Gauge {
    let mut m = lock();
    let Metrics { registry, gauges, .. } = &mut *m;
    let family = gauges.entry(metric.name).or_insert_with(|| {
        let family = Family::<Labels, Gauge>::default();
        registry.register(metric.name, metric.help, family.clone());
        family
    });
    family.get_or_create(labels).clone()
}

/// Records `value` for `metric` (added to a counter, set on a gauge).
pub fn record(metric: Metric, labels: &Labels, value: i64) {
    match metric.kind {
        Kind::Counter => {
            counter(metric, labels).inc_by(value.max(0) as u64);
        }
        Kind::Gauge => {
            gauge(metric, labels).set(value);
        }
    }
}

/// Everything recorded so far, as OpenMetrics text.
pub fn render() -> String {
    let mut out = String::new();
    let m = lock();
    if let Err(e) = encode(&mut out, &m.registry) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

/// What one daemon's runner keeps: handles on its own series, so that counting a message is an
/// atomic add, not a lookup.
pub struct Runner {
    daemon: String,
    received: HashMap<&'static str, Counter>,
    published: HashMap<&'static str, Counter>,
    decode_failures: Counter,
    reconnects: Counter,
    connected: Gauge,
    unacknowledged: Gauge,
    connects: u64,
}

impl Runner {
    pub fn new(daemon: &str) -> Runner {
        let labels = vec![("daemon", daemon.to_owned())];
        Runner {
            daemon: daemon.to_owned(),
            received: HashMap::new(),
            published: HashMap::new(),
            decode_failures: counter(DECODE_FAILURES, &labels),
            reconnects: counter(RECONNECTS, &labels),
            connected: gauge(CONNECTED, &labels),
            unacknowledged: gauge(UNACKNOWLEDGED, &labels),
            connects: 0,
        }
    }

    /// The labels of this daemon's series, with `extra` after `daemon`.
    pub fn labels(&self, extra: &[(&'static str, String)]) -> Labels {
        let mut labels = vec![("daemon", self.daemon.clone())];
        labels.extend(extra.iter().cloned());
        labels
    }

    pub fn received(&mut self, kind: &'static str) {
        let daemon = &self.daemon;
        let c = self
            .received
            .entry(kind)
            .or_insert_with(|| counter(RECEIVED, &vec![("daemon", daemon.clone()), ("kind", kind.to_owned())]));
        c.inc();
    }

    pub fn published(&mut self, kind: &'static str) {
        let daemon = &self.daemon;
        let c = self
            .published
            .entry(kind)
            .or_insert_with(|| counter(PUBLISHED, &vec![("daemon", daemon.clone()), ("kind", kind.to_owned())]));
        c.inc();
    }

    pub fn decode_failed(&self) {
        self.decode_failures.inc();
    }

    pub fn connected(&mut self) {
        self.connects += 1;
        if self.connects > 1 {
            self.reconnects.inc();
        }
        self.connected.set(1);
    }

    pub fn disconnected(&self) {
        self.connected.set(0);
    }

    pub fn unacknowledged(&self, n: u64) {
        self.unacknowledged.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Binds the metrics endpoint: an address in use (or not ours) is an error naming it.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}; give --metrics another address"))?;
    listener.set_nonblocking(true).map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    Ok(listener)
}

/// The longest a scrape's request may take to arrive, and its largest size.
const REQUEST_WITHIN: Duration = Duration::from_secs(5);
const REQUEST_MAX: usize = 8 * 1024;

/// Serves `GET /metrics` on `listener` until `shutdown`; anything else is a 404. One request per
/// connection (`Connection: close`), as Prometheus is happy with.
pub async fn serve(listener: std::net::TcpListener, shutdown: Shutdown) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot serve metrics: {e}");
            return;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("metrics at http://{addr}/metrics");
    }
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    tokio::spawn(answer(socket));
                }
                Err(e) => {
                    tracing::warn!("metrics endpoint: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn answer(mut socket: tokio::net::TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let head = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REQUEST_MAX {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !tokio::time::timeout(REQUEST_WITHIN, head).await.unwrap_or(false) {
        return;
    }
    let line = String::from_utf8_lossy(request.split(|b| *b == b'\r').next().unwrap_or_default()).into_owned();
    let (status, content_type, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?") {
        ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", render())
    } else {
        ("404 Not Found", "text/plain; charset=utf-8", "metrics are at /metrics\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Metric = Metric::counter("mqtt_home_test_events", "A test's own counter");
    const TEST_GAUGE: Metric = Metric::gauge("mqtt_home_test_level", "A test's own gauge");

    #[test]
    fn series_are_labelled_by_daemon_and_rendered_as_openmetrics() {
        let mut a = Runner::new("metrics-test-a");
        a.received("sensor");
        a.received("sensor");
        a.published("panel_status");
        a.connected();
        a.disconnected();
        a.connected();
        record(TEST, &a.labels(&[("outcome", "sent".into())]), 3);
        record(TEST_GAUGE, &a.labels(&[]), 7);
        record(TEST_GAUGE, &a.labels(&[]), 5);
        let text = render();
        for line in [
            r#"mqtt_home_messages_received_total{daemon="metrics-test-a",kind="sensor"} 2"#,
            r#"mqtt_home_messages_published_total{daemon="metrics-test-a",kind="panel_status"} 1"#,
            r#"mqtt_home_reconnects_total{daemon="metrics-test-a"} 1"#,
            r#"mqtt_home_link_connected{daemon="metrics-test-a"} 1"#,
            r#"mqtt_home_test_events_total{daemon="metrics-test-a",outcome="sent"} 3"#,
            r#"mqtt_home_test_level{daemon="metrics-test-a"} 5"#,
            "# HELP mqtt_home_reconnects Connections to the broker after the first",
        ] {
            assert!(text.contains(line), "{line}\nnot in\n{text}");
        }
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[tokio::test]
    async fn the_endpoint_answers_get_metrics_and_nothing_else() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        tokio::spawn(serve(listener, shutdown.clone()));
        Runner::new("metrics-test-b").received("circadian");
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains(r#"daemon="metrics-test-b""#), "{ok}");
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        let taken = bind(addr).unwrap_err();
        assert!(taken.contains(&addr.to_string()) && taken.contains("--metrics"), "{taken}");
        shutdown.trigger();
    }
}
