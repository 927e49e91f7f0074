//! Metrics as an operator reads them: the whole home (the `mqtt-home` binary, 16 daemons) serves
//! one endpoint with `--metrics`, a real Prometheus scrapes it every second, and the test reads
//! the values back through Prometheus's HTTP API: every daemon connected, the panel's state, the
//! messages it read; the broker restarted, the reconnect counters rise. An address already in use
//! is a clear error before anything starts.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use testkit::{Probe, Prometheus};

/// Scrapes every second; a value takes a scrape and a query to show.
const IN_PROMETHEUS: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_home_and_sees_it_reconnect() {
    if !testkit::prometheus_or_skip() {
        return;
    }
    let Some(mut mosquitto) = testkit::mosquitto_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let dashboard = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let config_dir = common::whole_home_config(dir.path(), dashboard);
    let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let mut probe = Probe::connect(&mosquitto.url(), "probe-metrics").await.unwrap();
    probe.subscribe("home/devices/+/availability").await.unwrap();
    let mut home = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
        .args(["--broker", &mosquitto.url(), "--metrics", &metrics.to_string(), "run", "--config-dir"])
        .arg(&config_dir)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("home.err")).unwrap())
        .spawn()
        .map(testkit::Spawned)
        .unwrap();
    let daemons = mqtt_home::home::HomeConfig::default().daemon_count();
    let started = Instant::now();
    while online(&probe) < daemons {
        assert!(started.elapsed() < common::WITHIN, "{} of {daemons} daemons came online", online(&probe));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let prometheus = Prometheus::start(&[metrics]).await.unwrap();
    let connected = prometheus.wait_for("sum(mqtt_home_link_connected)", IN_PROMETHEUS, |n| n == daemons as f64);
    connected.await.unwrap();
    let disarmed = r#"mqtt_home_panel_state{daemon="security-controller",state="disarmed"}"#;
    prometheus.wait_for(disarmed, IN_PROMETHEUS, |v| v == 1.0).await.unwrap();
    let readings = r#"mqtt_home_messages_received_total{daemon="security-controller",kind="sensor"}"#;
    prometheus.wait_for(readings, IN_PROMETHEUS, |n| n > 0.0).await.unwrap();
    let reconnects = "sum(mqtt_home_reconnects_total)";
    prometheus.wait_for(reconnects, IN_PROMETHEUS, |n| n == 0.0).await.unwrap();

    mosquitto.restart().unwrap();
    // Every daemon lost its connection and made a new one: each counted one reconnect.
    let all_back = prometheus.wait_for(reconnects, IN_PROMETHEUS, |n| n >= daemons as f64);
    all_back.await.unwrap();
    let siren = r#"mqtt_home_reconnects_total{daemon="security-controller"}"#;
    assert!(prometheus.wait_for(siren, IN_PROMETHEUS, |n| n >= 1.0).await.is_ok());
    prometheus.wait_for("sum(mqtt_home_link_connected)", IN_PROMETHEUS, |n| n == daemons as f64).await.unwrap();

    testkit::terminate(&mut home, Duration::from_secs(10));
}

fn online(probe: &Probe) -> usize {
    probe
        .topics()
        .iter()
        .filter(|t| t.ends_with("/availability") && probe.seen(t).last().is_some_and(|p| p == b"online"))
        .count()
}

#[test]
fn a_metrics_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
        .args(["--broker", "mqtt://127.0.0.1:9", "--metrics", &addr, "run"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must not run: {said}");
    assert!(said.contains(&format!("cannot serve metrics on {addr}")) && said.contains("--metrics"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}
