//! `mqtt-home forget ID` against a real broker: the device's retained topics are cleared, so a
//! newcomer (the panel after a restart, a dashboard) no longer hears of it.

use std::time::Duration;

use testkit::{Probe, on_both_brokers};

mod common;

async fn forget_clears_every_retained_topic_of_a_device(url: String) {
    let mut probe = Probe::connect(&url, "probe-forget-before").await.unwrap();
    let ghost = [
        ("home/security/door/ghost", r#"{"state":"OPEN","device_id":"ghost","ts":"2026-11-26T03:40:47Z"}"#),
        ("home/devices/ghost/availability", "online"),
        ("home/devices/ghost/announce", "{}"),
    ];
    for (topic, payload) in ghost {
        probe.publish(topic, payload, true).await.unwrap();
    }
    probe.publish("home/security/door/front", "CLOSED", true).await.unwrap();
    mqtt_home::ctl::forget(&common::mqtt(&url, "mqtt-home-cli-test"), "ghost").await.unwrap();

    let mut after = Probe::connect(&url, "probe-forget-after").await.unwrap();
    after.subscribe("home/#").await.unwrap();
    after.expect("home/security/door/front", |p| p == b"CLOSED", common::WITHIN).await.unwrap();
    // Retained messages arrive right after the SubAck; a short wait proves the ghost's are gone.
    for (topic, _) in ghost {
        after.expect_none(topic, |p| !p.is_empty(), Duration::from_millis(300)).await.unwrap();
    }
}

on_both_brokers!(forget, super::forget_clears_every_retained_topic_of_a_device);
