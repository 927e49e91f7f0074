//! The test support itself, against real brokers.

use std::time::Duration;

use testkit::{Mosquitto, Probe};

async fn round_trip(url: &str) {
    let mut probe = Probe::connect(url, "round-trip").await.unwrap();
    probe.subscribe("t/#").await.unwrap();
    probe.publish("t/a", "hello", false).await.unwrap();
    assert_eq!(probe.expect("t/a", |p| p == b"hello", Duration::from_secs(5)).await.unwrap(), b"hello");
}

#[tokio::test]
async fn probe_round_trip_on_the_embedded_broker() {
    let broker = testkit::embedded();
    round_trip(&broker.url()).await;
}

#[tokio::test]
async fn probe_round_trip_on_mosquitto() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    assert_ne!(mosquitto.port(), 1883);
    round_trip(&mosquitto.url()).await;
}

#[tokio::test]
async fn a_restarted_mosquitto_keeps_retained_messages_on_the_same_port() {
    let Some(mut mosquitto) = testkit::mosquitto_or_skip() else { return };
    let port = mosquitto.port();
    let mut probe = Probe::connect(&mosquitto.url(), "writer").await.unwrap();
    probe.publish("t/kept", "42", true).await.unwrap();
    drop(probe);
    mosquitto.restart().unwrap();
    assert_eq!(mosquitto.port(), port);
    let mut probe = Probe::connect(&mosquitto.url(), "reader").await.unwrap();
    probe.subscribe("t/kept").await.unwrap();
    probe.expect("t/kept", |p| p == b"42", Duration::from_secs(5)).await.unwrap();
    assert!(mosquitto.log().contains("Saving in-memory database"), "{}", mosquitto.log());
}

#[tokio::test]
async fn expect_times_out_listing_what_it_saw() {
    let broker = testkit::embedded();
    let mut probe = Probe::connect(&broker.url(), "impatient").await.unwrap();
    probe.subscribe("t/x").await.unwrap();
    probe.publish("t/x", "one", false).await.unwrap();
    let err = probe.expect("t/x", |p| p == b"two", Duration::from_millis(300)).await.unwrap_err().to_string();
    assert!(err.contains("\"one\""), "{err}");
}

#[test]
fn a_killed_mosquitto_leaves_nothing_listening() {
    let Ok(mut mosquitto) = Mosquitto::start() else { return };
    let port = mosquitto.port();
    mosquitto.kill();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
