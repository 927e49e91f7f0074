//! The home next to a real Home Assistant Core (2024.1.6) on a real Mosquitto, with no YAML: what
//! a user sees through Home Assistant's REST API. Every entity appears from discovery, grouped by
//! device; Home Assistant's light and alarm panel calls drive the bulbs and the panel; a window
//! opened over MQTT shows as `triggered`; a restart of Home Assistant brings everything back; a
//! device taken out (`mqtt-home forget`) leaves it.
//!
//! Needs the venv of `bash ha/install.sh` (`.ci/run` runs it): without it this test fails.

use std::time::Duration;

use device_runtime::config::set;
use device_runtime::{Brokers, CommonArgs, Shutdown};
use mqtt_home::config_source::ConfigSource;
use mqtt_home::home::{Connection, Daemons, HomeConfig};
use protocol::{LightState, Payload, SensorKind, Topic};
use serde_json::{Value, json};
use testkit::{HomeAssistant, Mosquitto, Probe, Running};

mod common;

/// Home Assistant polls nothing, but it is a big program on two cores.
const HA_WITHIN: Duration = Duration::from_secs(20);
use common::WITHIN;
const PANEL: &str = "alarm_control_panel.security_controller";

fn has(attribute: &'static str, value: Value) -> impl Fn(&Value) -> bool {
    move |s| s["attributes"][attribute] == value
}

fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |s| s["state"] == state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_shows_and_drives_the_whole_home_with_no_yaml() {
    let broker = Mosquitto::start().expect("cannot start mosquitto (.ci/run installs it)");
    let mut ha = HomeAssistant::start(broker.port()).await.unwrap();

    // The demo home, as `mqtt-home` runs it, minus the recorder and the dashboard.
    let url: Brokers = broker.url().parse().unwrap();
    let mut home = HomeConfig::load(&ConfigSource::BuiltIn).unwrap();
    (home.recorder, home.dashboard, home.simulate_contacts) = (false, false, false);
    let state_dir = tempfile::tempdir().unwrap();
    let mut connection = Connection::new(&url, CommonArgs::default(), ConfigSource::BuiltIn, &home);
    let panel = connection.overrides.entry("security-controller".to_owned()).or_default();
    set(panel, "state_file", state_dir.path().join("panel.json").display().to_string());
    let shutdown = Shutdown::new();
    let daemons = Daemons::start(&home, &connection, &shutdown).unwrap();
    let running = tokio::spawn(daemons.wait());

    // Every device's entities, with their device classes, with nothing written by hand.
    for (entity, class) in [
        ("binary_sensor.front", "door"),
        ("binary_sensor.back", "door"),
        ("binary_sensor.kitchen_window", "window"),
        ("binary_sensor.bedroom_window", "window"),
        ("binary_sensor.kitchen_motion", "motion"),
        ("binary_sensor.hall_motion", "motion"),
        ("binary_sensor.front_trouble", "problem"),
    ] {
        ha.wait_for_state(entity, has("device_class", json!(class)), HA_WITHIN).await.unwrap();
    }
    ha.wait_for_state("binary_sensor.front", state_is("off"), HA_WITHIN).await.unwrap();
    ha.wait_for_state("binary_sensor.front_trouble", state_is("off"), HA_WITHIN).await.unwrap();
    for light in ["light.kitchen", "light.hall"] {
        ha.wait_for_state(light, has("supported_color_modes", json!(["color_temp"])), HA_WITHIN).await.unwrap();
    }
    ha.wait_for_state("siren.siren", state_is("off"), HA_WITHIN).await.unwrap();
    ha.wait_for_state(PANEL, state_is("disarmed"), HA_WITHIN).await.unwrap();
    let phase = ha.wait_for_state("sensor.circadian", |s| s["state"] != "unknown", HA_WITHIN).await.unwrap();
    assert!(["sunrise", "morning", "sunset", "night"].contains(&phase["state"].as_str().unwrap()), "{phase}");
    ha.wait_for_state("event.security_controller_event", |s| s["state"] != "unavailable", HA_WITHIN).await.unwrap();

    // One Home Assistant device per daemon: a sensor's trouble belongs to the sensor.
    let device = |entity: &str| format!("{{{{ device_id('{entity}') }}}}");
    let front = ha.render_template(&device("binary_sensor.front")).await.unwrap();
    assert_eq!(front, ha.render_template(&device("binary_sensor.front_trouble")).await.unwrap());
    assert_ne!(front, ha.render_template(&device("binary_sensor.back")).await.unwrap());
    let model = ha.render_template("{{ device_attr(device_id('light.kitchen'), 'model') }}").await.unwrap();
    assert_eq!(model, "light-bulb");

    // Home Assistant's light calls, as its UI sends them; the bulb's own state says what it did.
    let mut probe = Probe::connect(&broker.url(), "probe-home-assistant").await.unwrap();
    probe.subscribe("home/lights/kitchen/state").await.unwrap();
    let bulb = |pred: fn(&LightState) -> bool| move |p: &[u8]| LightState::decode(p).is_ok_and(|s| pred(&s));
    let kitchen = json!({"entity_id": "light.kitchen"});
    let with = |extra: Value| {
        let mut data = kitchen.clone();
        data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        data
    };
    ha.call_service("light", "turn_on", with(json!({"brightness": 128}))).await.unwrap();
    probe.expect("home/lights/kitchen/state", bulb(|s| s.brightness == 50), WITHIN).await.unwrap();
    ha.wait_for_state("light.kitchen", |s| s["state"] == "on" && s["attributes"]["brightness"] == 128, HA_WITHIN)
        .await
        .unwrap();
    ha.call_service("light", "turn_on", with(json!({"color_temp_kelvin": 4000}))).await.unwrap();
    probe.expect("home/lights/kitchen/state", bulb(|s| s.color_temp_k == Some(4000)), WITHIN).await.unwrap();
    ha.wait_for_state("light.kitchen", has("color_temp_kelvin", json!(4000)), HA_WITHIN).await.unwrap();
    ha.call_service("light", "turn_on", with(json!({"brightness_pct": 20, "transition": 1}))).await.unwrap();
    probe.expect("home/lights/kitchen/state", bulb(|s| s.brightness == 20), WITHIN).await.unwrap();
    ha.call_service("light", "turn_on", with(json!({"flash": "short"}))).await.unwrap();
    let flashing = bulb(|s| s.effect == Some(protocol::Effect::Flash));
    probe.expect("home/lights/kitchen/state", flashing, WITHIN).await.unwrap();

    // The panel: armed away with the code, after the demo's 5 s exit delay.
    let code = |code: &str| json!({"entity_id": PANEL, "code": code});
    ha.call_service("alarm_control_panel", "alarm_arm_away", code("1234")).await.unwrap();
    ha.wait_for_state(PANEL, state_is("arming"), HA_WITHIN).await.unwrap();
    ha.wait_for_state(PANEL, state_is("armed_away"), HA_WITHIN).await.unwrap();
    // A window opened over MQTT: the window is on and the panel triggered (a perimeter zone).
    let window = Topic::Sensor { kind: SensorKind::Window, id: "kitchen-window".into() };
    let window = protocol::Topics::default().name(&window);
    probe.publish(&window, "OPEN", true).await.unwrap();
    ha.wait_for_state("binary_sensor.kitchen_window", state_is("on"), HA_WITHIN).await.unwrap();
    ha.wait_for_state(PANEL, state_is("triggered"), HA_WITHIN).await.unwrap();
    ha.wait_for_state("siren.siren", state_is("on"), HA_WITHIN).await.unwrap();
    // A wrong code changes nothing; the right one disarms.
    probe.subscribe("home/security/events").await.unwrap();
    ha.call_service("alarm_control_panel", "alarm_disarm", code("0000")).await.unwrap();
    probe.expect("home/security/events", |p| String::from_utf8_lossy(p).contains("wrong_code"), WITHIN).await.unwrap();
    assert_eq!(ha.state(PANEL).await.unwrap().unwrap()["state"], "triggered");
    ha.call_service("alarm_control_panel", "alarm_disarm", code("1234")).await.unwrap();
    ha.wait_for_state(PANEL, state_is("disarmed"), HA_WITHIN).await.unwrap();

    // The siren's tones, as Home Assistant lists them, and one played from Home Assistant: a
    // chime, not the alarm (the siren stays off and says which tone it plays).
    let tones = json!(["alarm", "exit_beeps", "entry_beeps", "chime", "arm_chirp", "disarm_chirp"]);
    ha.wait_for_state("siren.siren", has("available_tones", tones), HA_WITHIN).await.unwrap();
    probe.subscribe("home/security/alarm").await.unwrap();
    let chime = json!({"entity_id": "siren.siren", "tone": "chime", "duration": 3});
    ha.call_service("siren", "turn_on", chime).await.unwrap();
    let chiming =
        |p: &[u8]| serde_json::from_slice::<Value>(p).is_ok_and(|v| v["tone"] == "chime" && v["state"] == "OFF");
    probe.expect("home/security/alarm", chiming, WITHIN).await.unwrap();

    // What Home Assistant now holds, as a page (and, where Chromium is installed, a picture).
    entity_list(&ha, "home-assistant.png").await;

    // Home Assistant restarted: every entity back, with the state it has now.
    ha.restart().await.unwrap();
    ha.wait_for_state(PANEL, state_is("disarmed"), HA_WITHIN).await.unwrap();
    ha.wait_for_state("binary_sensor.kitchen_window", state_is("on"), HA_WITHIN).await.unwrap();
    ha.wait_for_state("light.kitchen", state_is("on"), HA_WITHIN).await.unwrap();
    ha.wait_for_state("binary_sensor.front", has("device_class", json!("door")), HA_WITHIN).await.unwrap();

    // A device taken out: stopped, then forgotten; its entities leave Home Assistant.
    let garage = {
        let config = binary_sensor::Config { mqtt: common::mqtt(&broker.url(), "garage"), ..Default::default() };
        Running::spawn(|s| binary_sensor::run(SensorKind::Door, config, s))
    };
    ha.wait_for_state("binary_sensor.garage", state_is("off"), HA_WITHIN).await.unwrap();
    garage.stop().await;
    ha.wait_for_state("binary_sensor.garage", state_is("unavailable"), HA_WITHIN).await.unwrap();
    mqtt_home::ctl::forget(&common::mqtt(&broker.url(), "mqtt-home-cli-ha"), "garage").await.unwrap();
    let gone = async {
        while ha.state("binary_sensor.garage").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(HA_WITHIN, gone).await.expect("the forgotten garage door is still in Home Assistant");

    let problems = ha.problems("homeassistant.components.mqtt");
    assert!(problems.is_empty(), "Home Assistant's MQTT integration complained: {problems:#?}");
    shutdown.trigger();
    running.await.unwrap();
}

/// A panel with two areas, the house and the garage: Home Assistant shows one alarm panel per
/// area beside the one for all areas, arms each on its own, and the one for all areas says the
/// laxest state of the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_shows_one_alarm_panel_per_area_and_arms_them_apart() {
    use security_controller::codes;
    use security_controller::config::{Area, ModeDelays, PanelConfig, User};
    let broker = Mosquitto::start().expect("cannot start mosquitto (.ci/run installs it)");
    let ha = HomeAssistant::start(broker.port()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hash = codes::hash_pin_with("1234", codes::test_params()).unwrap();
    let panel = PanelConfig {
        exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
        allow_demo_timings: true,
        users: vec![User::new("alice", hash)],
        areas: vec![Area::new("house", &["front"]), Area::new("garage", &["garage-door"])],
        ..PanelConfig::default()
    };
    let config = security_controller::Config {
        mqtt: common::mqtt(&broker.url(), "security-controller"),
        state_file: dir.path().join("panel.json"),
        panel,
        ..security_controller::Config::default()
    };
    let running = Running::spawn(|s| security_controller::run(config, s));
    const ALL: &str = "alarm_control_panel.security_controller_panel";
    const HOUSE: &str = "alarm_control_panel.security_controller_panel_house";
    const GARAGE: &str = "alarm_control_panel.security_controller_panel_garage";
    for panel in [ALL, HOUSE, GARAGE] {
        ha.wait_for_state(panel, state_is("disarmed"), HA_WITHIN).await.unwrap();
    }
    let code = |entity: &str| json!({"entity_id": entity, "code": "1234"});
    ha.call_service("alarm_control_panel", "alarm_arm_away", code(GARAGE)).await.unwrap();
    ha.wait_for_state(GARAGE, state_is("armed_away"), HA_WITHIN).await.unwrap();
    assert_eq!(ha.state(HOUSE).await.unwrap().unwrap()["state"], "disarmed");
    let all = ha.wait_for_state(ALL, has("areas", json!({"house": "disarmed", "garage": "armed_away"})), HA_WITHIN);
    assert_eq!(all.await.unwrap()["state"], "disarmed", "all areas: the laxest");
    ha.call_service("alarm_control_panel", "alarm_arm_night", code(HOUSE)).await.unwrap();
    ha.wait_for_state(HOUSE, state_is("armed_night"), HA_WITHIN).await.unwrap();
    ha.wait_for_state(ALL, state_is("armed_night"), HA_WITHIN).await.unwrap();
    assert_eq!(ha.state(GARAGE).await.unwrap().unwrap()["state"], "armed_away");
    // All areas at once, from the house's panel.
    ha.call_service("alarm_control_panel", "alarm_disarm", code(ALL)).await.unwrap();
    for panel in [ALL, HOUSE, GARAGE] {
        ha.wait_for_state(panel, state_is("disarmed"), HA_WITHIN).await.unwrap();
    }
    let problems = ha.problems("homeassistant.components.mqtt");
    assert!(problems.is_empty(), "Home Assistant's MQTT integration complained: {problems:#?}");
    running.stop().await;
}

/// Renders Home Assistant's MQTT entities, grouped by device, from its own answers (a template
/// that walks its state machine and its device registry) into a page, and photographs it with
/// headless Chromium: in the target directory, or in docs/screenshots/ with `SAVE_SCREENSHOTS=1`.
async fn entity_list(ha: &HomeAssistant, name: &str) {
    let template = "{% set ns = namespace(rows=[]) %}{% for s in states %}{% set d = device_id(s.entity_id) %}\
        {% if d and device_attr(d, 'manufacturer') == 'mqtt-home' %}{% set ns.rows = ns.rows + \
        [[device_attr(d, 'name'), device_attr(d, 'model'), s.entity_id, s.name, s.state, \
        s.attributes.device_class | default('')]] %}{% endif %}{% endfor %}{{ ns.rows | tojson }}";
    let rows: Vec<Vec<Value>> = serde_json::from_str(&ha.render_template(template).await.unwrap()).unwrap();
    assert!(rows.len() >= 18, "{rows:?}");
    let mut rows: Vec<Vec<String>> =
        rows.into_iter().map(|r| r.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()).collect();
    rows.sort();
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>Home Assistant: the mqtt-home devices</title><style>\
         body{font:14px system-ui,sans-serif;margin:24px;color:#212121}h1{font-size:20px;font-weight:500}\
         table{border-collapse:collapse;width:100%}td,th{padding:6px 10px;border-bottom:1px solid #e0e0e0;text-align:left}\
         th{background:#03a9f4;color:#fff;font-weight:500}tr.device td{background:#f5f5f5;font-weight:600}\
         .on{color:#c62828;font-weight:600}.off{color:#2e7d32}</style>\
         <h1>Home Assistant 2024.1.6 — devices and entities found by MQTT discovery (no YAML), from its REST API</h1>\
         <table><tr><th>entity</th><th>name</th><th>state</th><th>device class</th></tr>",
    );
    let mut device = String::new();
    for row in &rows {
        let [name, model, entity, friendly, state, class] = &row[..] else { continue };
        if name != &device {
            html += &format!("<tr class=device><td colspan=4>{name} <small>({model})</small></td></tr>");
            device = name.clone();
        }
        let look = if state == "on" || state == "triggered" { "on" } else { "off" };
        html += &format!("<tr><td>{entity}</td><td>{friendly}</td><td class={look}>{state}</td><td>{class}</td></tr>");
    }
    html += "</table>";
    let dir = if std::env::var_os("SAVE_SCREENSHOTS").is_some() {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    let pages = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&pages).unwrap();
    let page = pages.join(name).with_extension("html");
    std::fs::write(&page, html).unwrap();
    let shot = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1000"])
        .arg(format!("--screenshot={}", dir.join(name).display()))
        .arg(format!("file://{}", page.display()))
        .output();
    if !shot.is_ok_and(|o| o.status.success()) {
        println!("no screenshot of {} (chromium is not installed here)", page.display());
    }
}
