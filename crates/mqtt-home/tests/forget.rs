//! `mqtt-home forget ID`, the binary as people run it, against a real broker: every retained topic
//! the protocol defines for the device is cleared (Home Assistant's discovery configs included), a
//! neighbour's are untouched, and what cannot be cleared (a device still running, publishing
//! itself back) is named and the command fails.
//!
//! The binary, not the library: the bug this guards against lived in the process's exit. The CLI
//! disconnected as soon as its clears were written, the process closed its socket with the
//! broker's PUBACKs unread, the kernel reset the connection, and Mosquitto dropped the clears it
//! had received but not yet read: 1 of 8 topics was cleared, and it said 8.

use std::process::Output;
use std::time::Duration;

use testkit::{Probe, on_both_brokers};

mod common;

/// Every kind of retained topic a device can have.
fn retained_topics(id: &str) -> Vec<(String, String)> {
    let reading = format!(r#"{{"state":"OPEN","device_id":"{id}","ts":"2026-11-26T03:40:47Z"}}"#);
    vec![
        (format!("home/security/door/{id}"), reading.clone()),
        (format!("home/security/window/{id}"), reading.clone()),
        (format!("home/security/motion/{id}"), reading),
        (format!("home/lights/{id}/state"), r#"{"state":"ON","brightness":50}"#.into()),
        (format!("home/lights/{id}/set"), r#"{"state":"ON"}"#.into()),
        (format!("home/devices/{id}/availability"), "online".into()),
        (format!("home/devices/{id}/announce"), "{}".into()),
        (format!("home/devices/{id}/health"), r#"{"state":"ok"}"#.into()),
        (format!("homeassistant/binary_sensor/home_{id}/door/config"), "{}".into()),
        (format!("homeassistant/sensor/home_{id}/health/config"), "{}".into()),
    ]
}

async fn forget(url: &str, id: &str) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"));
    command.args(["--broker", url, "forget", id]).env_remove("MQTT_USERNAME").env_remove("MQTT_PASSWORD");
    tokio::time::timeout(Duration::from_secs(30), command.output()).await.expect("forget hung").unwrap()
}

/// What the broker holds retained under `home/#` and `homeassistant/#`, as a newcomer hears it.
async fn held(url: &str, name: &str) -> Vec<String> {
    let mut after = Probe::connect(url, name).await.unwrap();
    after.subscribe("home/#").await.unwrap();
    after.subscribe("homeassistant/#").await.unwrap();
    after.expect("home/security/door/neighbour", |p| !p.is_empty(), common::WITHIN).await.unwrap();
    // Retained messages arrive right after the SubAck; a short wait lets them all in.
    after.expect_none("home/never", |_| true, Duration::from_millis(300)).await.unwrap();
    let mut topics: Vec<String> = retained_topics("ghost")
        .into_iter()
        .chain(retained_topics("neighbour"))
        .map(|(topic, _)| topic)
        .filter(|topic| after.seen(topic).last().is_some_and(|p| !p.is_empty()))
        .collect();
    topics.sort();
    topics
}

async fn forget_clears_every_retained_topic_of_a_device(url: String) {
    let mut probe = Probe::connect(&url, "probe-forget-before").await.unwrap();
    for (topic, payload) in retained_topics("ghost").into_iter().chain(retained_topics("neighbour")) {
        probe.publish(&topic, payload, true).await.unwrap();
    }
    let output = forget(&url, "ghost").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("cleared 10 retained topics, 2 of them Home Assistant discovery configs"), "{stdout}");
    let mut neighbour: Vec<String> = retained_topics("neighbour").into_iter().map(|(t, _)| t).collect();
    neighbour.sort();
    assert_eq!(held(&url, "probe-forget-after").await, neighbour, "ghost's topics left, or the neighbour's taken");

    // Again: nothing is left to clear, and it says so.
    let output = forget(&url, "ghost").await;
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("holds nothing retained"));
}
on_both_brokers!(forget, super::forget_clears_every_retained_topic_of_a_device);

/// A device still running puts itself back: `forget` reads back, names what remains, exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_comes_back_is_named_and_forget_fails() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let mut probe = Probe::connect(&url, "probe-forget-stubborn").await.unwrap();
    probe.publish("home/security/door/neighbour", "CLOSED", true).await.unwrap();
    probe.publish("home/devices/ghost/availability", "online", true).await.unwrap();
    probe.subscribe("home/devices/ghost/availability").await.unwrap();
    // The stubborn device: each time its availability is cleared, it says `online` again.
    let stubborn = tokio::spawn(async move {
        let mut answered = 0;
        loop {
            let cleared = |p: &[u8]| p.is_empty();
            let before = probe.count("home/devices/ghost/availability");
            if probe.expect_after(before, "home/devices/ghost/availability", cleared, common::WITHIN).await.is_err() {
                return answered;
            }
            probe.publish("home/devices/ghost/availability", "online", true).await.unwrap();
            answered += 1;
        }
    });
    let output = forget(&url, "ghost").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("home/devices/ghost/availability") && stderr.contains("still running"), "{stderr}");
    stubborn.abort();
}
