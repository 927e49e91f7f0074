//! The bridge over a real broker (the embedded one and Mosquitto): foreign devices, played by the
//! test in their own formats, become the home's readings, and a Zigbee2MQTT door trips the armed
//! panel through its profile.

use bridge::{Config, Kind, Mapping, Profile};
use device_runtime::MqttConfig;
use protocol::{CircadianReading, PanelStatus, Payload, SensorReading, SensorState};
use security_controller::config::{ModeDelays, PanelConfig};
use testkit::{Probe, Running, WITHIN, on_both_brokers};

fn mqtt(url: &str, id: &str) -> MqttConfig {
    MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id(id) }
}

fn mapping(id: &str, kind: Kind, profile: Profile, source: &str) -> Mapping {
    Mapping { id: id.into(), kind, profile, source: source.into(), topic: None, pointer: None, on: None, off: None }
}

fn reading(state: SensorState) -> impl Fn(&[u8]) -> bool {
    move |p| SensorReading::decode(p).is_ok_and(|r| r.state == state)
}

async fn foreign_devices_become_the_homes_readings(url: String) {
    let config = Config {
        mqtt: mqtt(&url, "bridge"),
        devices: vec![
            mapping("front", Kind::Door, Profile::Zigbee2mqtt, "front_door"),
            mapping("kitchen-window", Kind::Window, Profile::Esphome, "kitchen/window"),
            mapping("hall-motion", Kind::Motion, Profile::Tasmota, "hall_pir"),
            mapping("iot-motion", Kind::Motion, Profile::IotLights, ""),
            mapping("circadian", Kind::Circadian, Profile::IotLights, ""),
        ],
    };
    let mut probe = Probe::connect(&url, "probe-bridge").await.unwrap();
    probe.subscribe("home/#").await.unwrap();
    let bridge = Running::spawn(|s| bridge::run(config, s));
    probe.expect("home/devices/bridge/availability", |p| p == b"online", WITHIN).await.unwrap();

    let cases: [(&str, &str, &str, SensorState); 5] = [
        (
            "zigbee2mqtt/front_door",
            r#"{"contact":false,"battery":97,"linkquality":120}"#,
            "home/security/door/front",
            SensorState::Open,
        ),
        ("zigbee2mqtt/front_door", r#"{"contact":true,"battery":97}"#, "home/security/door/front", SensorState::Closed),
        ("kitchen/binary_sensor/window/state", "ON", "home/security/window/kitchen-window", SensorState::Open),
        ("stat/hall_pir/POWER", "ON", "home/security/motion/hall-motion", SensorState::Motion),
        ("iot/lights/motion", "{'motion_detected': True}", "home/security/motion/iot-motion", SensorState::Motion),
    ];
    for (foreign, payload, home, state) in cases {
        let before = probe.count(home);
        probe.publish(foreign, payload, false).await.unwrap();
        if let Err(e) = probe.expect_after(before, home, reading(state), WITHIN).await {
            panic!("{foreign} {payload} did not become {state:?} on {home}: {e:#}");
        }
    }
    probe.publish("iot/lights/circadian_rhythm", "sunset", false).await.unwrap();
    let sunset = |p: &[u8]| CircadianReading::decode(p).is_ok_and(|r| r.phase.as_str() == "sunset");
    probe.expect("home/lights/circadian_rhythm", sunset, WITHIN).await.unwrap();

    // What a profile cannot read changes nothing, and the bridge goes on.
    let before = probe.count("home/security/door/front");
    probe.publish("zigbee2mqtt/front_door", "garbage", false).await.unwrap();
    probe.publish("zigbee2mqtt/front_door", r#"{"contact":false}"#, false).await.unwrap();
    probe.expect_after(before, "home/security/door/front", reading(SensorState::Open), WITHIN).await.unwrap();
    assert_eq!(probe.count("home/security/door/front"), before + 1, "garbage became a reading");
    bridge.stop().await;
}
on_both_brokers!(foreign_readings, super::foreign_devices_become_the_homes_readings);

async fn a_zigbee2mqtt_door_trips_the_armed_panel(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let panel = security_controller::Config {
        mqtt: mqtt(&url, "security-controller"),
        state_file: dir.path().join("panel.json"),
        panel: PanelConfig {
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            entry_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            allow_demo_timings: true,
            ..PanelConfig::default()
        },
    };
    let bridge_config = Config {
        mqtt: mqtt(&url, "bridge"),
        devices: vec![mapping("front", Kind::Door, Profile::Zigbee2mqtt, "front_door")],
    };
    let mut probe = Probe::connect(&url, "probe-bridge-panel").await.unwrap();
    probe.subscribe("home/#").await.unwrap();
    let panel = Running::spawn(|s| security_controller::run(panel, s));
    let bridge = Running::spawn(|s| bridge::run(bridge_config, s));
    let state = |want: &'static str| move |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == want);
    probe.expect("home/security/status", state("disarmed"), WITHIN).await.unwrap();
    probe.expect("home/devices/bridge/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe.publish("zigbee2mqtt/front_door", r#"{"contact":true}"#, true).await.unwrap();
    probe.expect("home/security/door/front", reading(SensorState::Closed), WITHIN).await.unwrap();
    probe.publish("home/security/panel/set", "ARM_AWAY", false).await.unwrap();
    probe.expect("home/security/status", state("armed_away"), WITHIN).await.unwrap();
    probe.publish("zigbee2mqtt/front_door", r#"{"contact":false,"battery":97}"#, true).await.unwrap();
    probe.expect("home/security/status", state("triggered"), WITHIN).await.unwrap();
    bridge.stop().await;
    panel.stop().await;
}
on_both_brokers!(zigbee_door_trips_the_panel, super::a_zigbee2mqtt_door_trips_the_armed_panel);
