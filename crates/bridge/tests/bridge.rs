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
    Mapping {
        id: id.into(),
        kind,
        profile,
        source: source.into(),
        topic: None,
        pointer: None,
        on: None,
        off: None,
        area: None,
        action: None,
    }
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

    // What a profile cannot read is said on the sensor's topic as unreadable (the panel makes it
    // a trouble), never as a reading; and the bridge goes on.
    let before = probe.count("home/security/door/front");
    probe.publish("zigbee2mqtt/front_door", "garbage", false).await.unwrap();
    probe.publish("zigbee2mqtt/front_door", r#"{"contact":false}"#, false).await.unwrap();
    probe.expect_after(before, "home/security/door/front", reading(SensorState::Open), WITHIN).await.unwrap();
    let after: Vec<Vec<u8>> = probe.seen("home/security/door/front").split_off(before);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(SensorReading::decode(&after[0]).is_err(), "garbage became a reading");
    assert!(String::from_utf8_lossy(&after[0]).contains("unreadable"), "{:?}", String::from_utf8_lossy(&after[0]));
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
        ..security_controller::Config::default()
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
    // A contact the profile cannot read (a string, not a boolean): a trouble on the panel
    // (issue 19: it was one bridge log line), and the panel stays armed.
    probe.publish("zigbee2mqtt/front_door", r#"{"contact":"false"}"#, false).await.unwrap();
    let in_trouble = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.troubles.contains(&"front".to_string()));
    probe.expect("home/security/status", in_trouble, WITHIN).await.unwrap();
    probe.expect("home/security/status", state("armed_away"), WITHIN).await.unwrap();
    probe.publish("zigbee2mqtt/front_door", r#"{"contact":false,"battery":97}"#, true).await.unwrap();
    probe.expect("home/security/status", state("triggered"), WITHIN).await.unwrap();
    bridge.stop().await;
    panel.stop().await;
}
on_both_brokers!(zigbee_door_trips_the_panel, super::a_zigbee2mqtt_door_trips_the_armed_panel);

async fn a_home_light_drives_a_zigbee2mqtt_bulb(url: String) {
    let config = Config {
        mqtt: mqtt(&url, "bridge"),
        devices: vec![
            mapping("porch", Kind::Light, Profile::Zigbee2mqtt, "porch_bulb"),
            mapping("desk", Kind::Light, Profile::Tasmota, "desk_dimmer"),
            mapping("lamp", Kind::Light, Profile::Esphome, "livingroom/lamp"),
            mapping("shed", Kind::Light, Profile::Shelly, "shellydimmer2-shed"),
        ],
    };
    let mut probe = Probe::connect(&url, "probe-bridge-light").await.unwrap();
    let filters = [
        "zigbee2mqtt/#",
        "cmnd/#",
        "livingroom/#",
        "shellydimmer2-shed/#",
        "home/lights/#",
        "home/devices/+/availability",
    ];
    for filter in filters {
        probe.subscribe(filter).await.unwrap();
    }
    let bridge = Running::spawn(|s| bridge::run(config, s));
    probe.expect("home/devices/bridge/availability", |p| p == b"online", WITHIN).await.unwrap();

    // The home's command, as the light controller sends it, reaches the bulb on its 0-254 scale.
    let command = r#"{"state":"ON","brightness":50,"color_temp_k":4000,"source":"circadian"}"#;
    probe.publish("home/lights/porch/set", command, false).await.unwrap();
    let z2m = |p: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(p)
            .is_ok_and(|v| v == serde_json::json!({"state": "ON", "brightness": 127, "color_temp": 250}))
    };
    probe.expect("zigbee2mqtt/porch_bulb/set", z2m, WITHIN).await.unwrap();
    // The bulb's own report comes back as the home's light state, naming who set it.
    probe
        .publish("zigbee2mqtt/porch_bulb", r#"{"state":"ON","brightness":127,"color_temp":250,"linkquality":80}"#, true)
        .await
        .unwrap();
    let home = |p: &[u8]| {
        protocol::LightState::decode(p).is_ok_and(|s| {
            s.brightness == 50 && s.color_temp_k == Some(4000) && s.source == protocol::LightSource::Circadian
        })
    };
    probe.expect("home/lights/porch/state", home, WITHIN).await.unwrap();

    // A Tasmota dimmer takes Dimmer in percent.
    probe.publish("home/lights/desk/set", "40", false).await.unwrap();
    probe.expect("cmnd/desk_dimmer/Dimmer", |p| p == b"40", WITHIN).await.unwrap();

    // An ESPHome light takes its JSON schema on 0-255, and reports back on its state topic.
    let json = |p: &[u8]| serde_json::from_slice::<serde_json::Value>(p).unwrap_or_default();
    probe.publish("home/lights/lamp/set", "60", false).await.unwrap();
    probe
        .expect(
            "livingroom/light/lamp/command",
            |p| json(p) == serde_json::json!({"state": "ON", "brightness": 153}),
            WITHIN,
        )
        .await
        .unwrap();
    probe
        .publish("livingroom/light/lamp/state", r#"{"state":"ON","brightness":153,"color_mode":"brightness"}"#, true)
        .await
        .unwrap();
    let lamp = |p: &[u8]| protocol::LightState::decode(p).is_ok_and(|s| s.brightness == 60 && s.device_id == "lamp");
    probe.expect("home/lights/lamp/state", lamp, WITHIN).await.unwrap();

    // A Shelly gen 2 dimmer takes an RPC call.
    probe.publish("home/lights/shed/set", "OFF", false).await.unwrap();
    let rpc = |p: &[u8]| json(p)["method"] == "Light.Set" && json(p)["params"]["on"] == false;
    probe.expect("shellydimmer2-shed/rpc", rpc, WITHIN).await.unwrap();
    bridge.stop().await;
}
on_both_brokers!(zigbee_bulb, super::a_home_light_drives_a_zigbee2mqtt_bulb);

/// A Zigbee2MQTT keypad and a tag reader, played by the test as the devices publish: the keypad
/// arms with its code and is told the panel's mode with its transaction, a wrong code shows
/// `invalid_code`, a code of the wrong type is sent nowhere, and a user's tag disarms.
async fn a_zigbee2mqtt_keypad_and_a_tag_arm_and_disarm_the_panel(url: String) {
    use security_controller::codes;
    use security_controller::config::User;
    let dir = tempfile::tempdir().unwrap();
    let alice = User {
        tag_hash: Some(codes::hash_tag_with("04A2B3C4", codes::test_params()).unwrap()),
        ..User::new("alice", codes::hash_pin_with("1234", codes::test_params()).unwrap())
    };
    let panel = security_controller::Config {
        mqtt: mqtt(&url, "security-controller"),
        state_file: dir.path().join("panel.json"),
        panel: PanelConfig {
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            allow_demo_timings: true,
            code_arm_required: true,
            users: vec![alice],
            ..PanelConfig::default()
        },
        ..security_controller::Config::default()
    };
    let tag = Mapping {
        topic: Some("rfid/hall".into()),
        pointer: Some("/uid".into()),
        ..mapping("hall-reader", Kind::Tag, Profile::Generic, "")
    };
    let bridge_config = Config {
        mqtt: mqtt(&url, "bridge"),
        devices: vec![mapping("hall-keypad", Kind::Keypad, Profile::Zigbee2mqtt, "hall_keypad"), tag],
    };
    let mut probe = Probe::connect(&url, "probe-bridge-keypad").await.unwrap();
    probe.subscribe("home/#").await.unwrap();
    probe.subscribe("zigbee2mqtt/hall_keypad/set").await.unwrap();
    let panel = Running::spawn(|s| security_controller::run(panel, s));
    let bridge = Running::spawn(|s| bridge::run(bridge_config, s));
    let state = |want: &'static str| move |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == want);
    const SHOWN: &str = "zigbee2mqtt/hall_keypad/set";
    let shows = |mode: &'static str, transaction: Option<u64>| {
        move |p: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| {
                v["arm_mode"]["mode"] == mode && transaction.is_none_or(|t| v["arm_mode"]["transaction"] == t)
            })
        }
    };
    probe.expect("home/security/status", state("disarmed"), WITHIN).await.unwrap();
    probe.expect("home/devices/bridge/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe.expect(SHOWN, shows("disarm", None), WITHIN).await.unwrap();

    let press = r#"{"action":"arm_all_zones","action_code":"1234","action_transaction":41,"battery":88}"#;
    let shown = probe.count(SHOWN);
    probe.publish("zigbee2mqtt/hall_keypad", press, false).await.unwrap();
    probe.expect("home/security/status", state("armed_away"), WITHIN).await.unwrap();
    probe.expect(SHOWN, shows("arm_all_zones", Some(41)), WITHIN).await.unwrap();
    assert_eq!(probe.count(SHOWN), shown + 1, "one answer to one press");
    let wrong = r#"{"action":"disarm","action_code":9999,"action_transaction":42}"#;
    probe.publish("zigbee2mqtt/hall_keypad", wrong, false).await.unwrap();
    probe.expect("home/security/events", |p| String::from_utf8_lossy(p).contains("wrong_code"), WITHIN).await.unwrap();
    probe.expect(SHOWN, shows("invalid_code", Some(42)), WITHIN).await.unwrap();
    let n = probe.count("home/security/panel/set");
    let odd = r#"{"action":"disarm","action_code":true,"action_transaction":43}"#;
    probe.publish("zigbee2mqtt/hall_keypad", odd, false).await.unwrap();
    probe.expect(SHOWN, shows("invalid_code", None), WITHIN).await.unwrap();
    assert_eq!(probe.count("home/security/panel/set"), n, "a code of the wrong type is sent nowhere");
    assert!(
        probe.seen("home/security/panel/set").iter().all(|p| !String::from_utf8_lossy(p).contains("true")),
        "nothing of the odd press reached the panel"
    );

    // The same transaction again (a redelivery) is not a press now: it does not reach the panel.
    let n = probe.count("home/security/panel/set");
    probe.publish("zigbee2mqtt/hall_keypad", wrong, false).await.unwrap();
    probe.expect_none("home/security/panel/set", |_| true, std::time::Duration::from_millis(500)).await.unwrap();
    assert_eq!(probe.count("home/security/panel/set"), n);
    let (n, shown) = (probe.count("home/security/status"), probe.count(SHOWN));
    probe.publish("rfid/hall", r#"{"uid":"04a2b3c4","rssi":-41}"#, false).await.unwrap();
    let disarmed = probe.expect_after(n, "home/security/status", state("disarmed"), WITHIN).await.unwrap();
    assert_eq!(PanelStatus::decode(&disarmed).unwrap().changed_by.as_deref(), Some("alice"));
    probe.expect_after(shown, SHOWN, shows("disarm", None), WITHIN).await.unwrap();
    probe
        .expect("home/devices/hall-keypad/condition", |p| String::from_utf8_lossy(p).contains("88"), WITHIN)
        .await
        .unwrap();
    // A press the broker kept (a keypad publishing retained) is replayed to every bridge that
    // subscribes (here one with a session of its own): it is not a press now, and must not
    // disarm with yesterday's code.
    let kept = r#"{"action":"disarm","action_code":"1234","action_transaction":44}"#;
    probe.publish("zigbee2mqtt/hall_keypad", kept, true).await.unwrap();
    probe.expect("zigbee2mqtt/hall_keypad/set", shows("already_disarmed", Some(44)), WITHIN).await.unwrap();
    bridge.stop().await;
    let n = probe.count("home/security/panel/set");
    let restarted = Config {
        mqtt: mqtt(&url, "bridge-2"),
        devices: vec![mapping("hall-keypad", Kind::Keypad, Profile::Zigbee2mqtt, "hall_keypad")],
    };
    probe.subscribe("home/devices/bridge-2/availability").await.unwrap();
    let bridge = Running::spawn(|s| bridge::run(restarted, s));
    probe.expect("home/devices/bridge-2/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe.expect_none("home/security/panel/set", |_| true, std::time::Duration::from_millis(700)).await.unwrap();
    assert_eq!(probe.count("home/security/panel/set"), n, "a retained press was sent to the panel");
    probe.publish("zigbee2mqtt/hall_keypad", "", true).await.unwrap();
    bridge.stop().await;
    panel.stop().await;
}
on_both_brokers!(keypad_and_tag, super::a_zigbee2mqtt_keypad_and_a_tag_arm_and_disarm_the_panel);
