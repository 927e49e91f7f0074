//! The Home Assistant harness against a real Home Assistant Core and Mosquitto: a hand-written
//! MQTT discovery config for a door becomes an entity with the published state, follows a change,
//! and is still there with its state after HA restarts, with no MQTT warnings in HA's log.
//!
//! Needs the venv of `bash ha/install.sh` (CI runs it): without it this test fails, it does not skip.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{HomeAssistant, Mosquitto, Probe};

const CONFIG_TOPIC: &str = "homeassistant/binary_sensor/smoke/door/config";
const STATE_TOPIC: &str = "smoke/door/state";
/// `has_entity_name`: the device's name, then the entity's.
const DOOR: &str = "binary_sensor.smoke_test_front_door";
const WITHIN: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovers_a_door_follows_its_state_and_keeps_it_across_a_restart() {
    let broker = Mosquitto::start().expect("cannot start mosquitto (.ci/run installs it)");
    let t0 = Instant::now();
    let mut ha = HomeAssistant::start(broker.port()).await.unwrap();
    println!(
        "Home Assistant {} started in {:.1?} (spawn, onboarding, the MQTT flow, its `online`), at {}",
        testkit::home_assistant::VERSION,
        t0.elapsed(),
        ha.url()
    );

    let mut probe = Probe::connect(&broker.url(), "smoke-door").await.unwrap();
    let config = json!({
        "name": "Front door",
        "unique_id": "mqtt-home-smoke-front-door",
        "state_topic": STATE_TOPIC,
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "door",
        "device": {
            "identifiers": ["mqtt-home-smoke"],
            "name": "Smoke test",
            "manufacturer": "mqtt-home",
            "model": "door-sensor",
        },
    });
    // Retained, both: HA subscribes to the state topic only a moment after it reads the config.
    probe.publish(CONFIG_TOPIC, config.to_string(), true).await.unwrap();
    probe.publish(STATE_TOPIC, "ON", true).await.unwrap();

    let door = ha.wait_for_state(DOOR, |s| s["state"] == "on", WITHIN).await.unwrap();
    assert_eq!(door["attributes"]["device_class"], "door", "{door}");
    assert_eq!(door["attributes"]["friendly_name"], "Smoke test Front door", "{door}");
    // The device registry, through a template.
    let manufacturer = format!("{{{{ device_attr(device_id('{DOOR}'), 'manufacturer') }}}}");
    assert_eq!(ha.render_template(&manufacturer).await.unwrap(), "mqtt-home");

    probe.publish(STATE_TOPIC, "OFF", true).await.unwrap();
    ha.wait_for_state(DOOR, |s| s["state"] == "off", WITHIN).await.unwrap();

    let took = ha.restart().await.unwrap();
    println!("Home Assistant restarted in {took:.1?} (graceful stop included)");
    let door = ha.wait_for_state(DOOR, |s| s["state"] == "off", WITHIN).await.unwrap();
    assert_eq!(door["attributes"]["device_class"], "door", "{door}");
    // The token from the onboarding still works after the restart.
    assert!(ha.states().await.unwrap().iter().any(|s| s["entity_id"] == DOOR));

    let mqtt_problems = ha.problems("homeassistant.components.mqtt");
    assert!(mqtt_problems.is_empty(), "HA's MQTT integration complained: {mqtt_problems:#?}");
    let log = ha.log();
    assert!(log.contains("--- Home Assistant run 2 ---"), "{log}");
    assert!(log.contains("Connected to MQTT server"), "{log}");
    let all = ha.problems("");
    if !all.is_empty() {
        println!("other warnings in HA's log: {all:#?}");
    }
}
