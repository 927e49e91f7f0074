//! `mqtt-home status` against a real broker: the binary reads the home's retained state and shows
//! every part of it, as text and as `--json`, with an unreadable payload in its place and no INFO
//! line unless `-v`.

use std::time::Duration;

use protocol::{
    AlarmState, Announce, ArmMode, Availability, DeviceKind, LightSource, LightState, PanelState, PanelStatus, Payload,
    Power, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics,
};
use testkit::{Probe, WITHIN, on_both_brokers};

/// What one run of the binary left: whether it exited 0, its stdout and its stderr.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs the binary against `url` from an empty directory, with none of the environment that
/// could point it elsewhere or change its logging.
async fn mqtt_home(url: &str, args: &[&str]) -> Run {
    let elsewhere = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"));
    command.current_dir(elsewhere.path()).arg("--broker").arg(url).args(args).kill_on_drop(true);
    for variable in [
        "RUST_LOG",
        "MQTT_TOPIC_ROOT",
        "MQTT_HOME_CONFIG",
        "MQTT_DEVICE_ID",
        "MQTT_USERNAME",
        "MQTT_PASSWORD",
        "MQTT_HOME_LOG_FORMAT",
    ] {
        command.env_remove(variable);
    }
    let out = tokio::time::timeout(WITHIN, command.output()).await.expect("status did not finish in time").unwrap();
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The one line of `text` with all of `words`.
fn line<'a>(text: &'a str, words: &[&str]) -> &'a str {
    text.lines()
        .find(|l| words.iter().all(|w| l.contains(w)))
        .unwrap_or_else(|| panic!("no line with {words:?} in:\n{text}"))
}

fn before(secs: u64) -> Timestamp {
    Timestamp(Timestamp::now().0 - secs * 1000)
}

/// Publishes, retained, the state of a small home in alarm: the panel, two sensors, a light, the
/// siren, a bulb online and a window sensor offline, and one window whose reading is garbage.
async fn a_home_in_alarm(url: &str) {
    let t = Topics::default();
    let mut probe = Probe::connect(url, "probe-status-home").await.unwrap();
    let status = PanelStatus {
        state: PanelState::Triggered,
        mode: Some(ArmMode::Away),
        ready: false,
        open_sensors: vec!["front".into()],
        bypassed: vec![],
        troubles: vec!["bedroom-window".into()],
        warnings: vec![],
        delay_remaining_s: Some(15),
        last_trigger: Some("front".into()),
        last_trigger_ts: Some(before(70)),
        changed_by: Some("alice".into()),
        lockout_remaining_s: None,
        area: None,
        areas: Default::default(),
        device_id: "security-controller".into(),
        ts: before(70),
    };
    let door = SensorReading { state: SensorState::Open, device_id: "front".into(), ts: before(190) };
    let motion = SensorReading { state: SensorState::NoMotion, device_id: "hall-motion".into(), ts: before(20) };
    let light = LightState {
        state: Power::On,
        brightness: 40,
        color_temp_k: Some(3000),
        color_mode: None,
        color_temp: None,
        effect: None,
        source: LightSource::Manual,
        device_id: "kitchen".into(),
        ts: before(30),
    };
    let siren = AlarmState {
        state: Power::On,
        reason: Some("intrusion: front".into()),
        since: before(70),
        tone: None,
        device_id: "siren".into(),
        ts: before(70),
    };
    let announce = |id: &str, kind| Announce {
        device_id: id.into(),
        kind,
        capabilities: vec![],
        version: "0.1.0".into(),
        state_topics: vec![],
        command_topics: vec![],
        ts: before(600),
    };
    let garbage = Topic::Sensor { kind: SensorKind::Window, id: "kitchen-window".into() };
    let retained = [
        (Topic::PanelStatus, status.encode()),
        (Topic::Sensor { kind: SensorKind::Door, id: "front".into() }, door.encode()),
        (Topic::Sensor { kind: SensorKind::Motion, id: "hall-motion".into() }, motion.encode()),
        (Topic::LightState("kitchen".into()), light.encode()),
        (Topic::AlarmState, siren.encode()),
        (Topic::Announce("kitchen".into()), announce("kitchen", DeviceKind::LightBulb).encode()),
        (Topic::Availability("kitchen".into()), Availability::Online.encode()),
        (Topic::Announce("bedroom-window".into()), announce("bedroom-window", DeviceKind::WindowSensor).encode()),
        (Topic::Availability("bedroom-window".into()), Availability::Offline.encode()),
        (garbage.clone(), b"ajar?!".to_vec()),
    ];
    for (topic, payload) in retained {
        probe.publish(&t.name(&topic), payload, true).await.unwrap();
    }
    // Stored: a newcomer gets the last one retained.
    let mut newcomer = Probe::connect(url, "probe-status-newcomer").await.unwrap();
    newcomer.subscribe(&t.everything()).await.unwrap();
    newcomer.expect(&t.name(&garbage), |p| p == b"ajar?!", WITHIN).await.unwrap();
}

async fn status_shows_the_whole_home(url: String) {
    a_home_in_alarm(&url).await;
    let (text, json, verbose) = tokio::join!(
        mqtt_home(&url, &["status"]),
        mqtt_home(&url, &["status", "--json"]),
        mqtt_home(&url, &["-v", "status"])
    );

    assert!(text.success, "{}\n{}", text.stdout, text.stderr);
    let out = &text.stdout;
    line(out, &["panel", "triggered (away), not ready"]);
    line(out, &["open: front", "bypassed: none", "troubles: bedroom-window"]);
    line(out, &["siren: 15 s left", "last trigger: front, 1 min ago", "changed by: alice"]);
    line(out, &["door", "front", "OPEN", "3 min ago"]);
    line(out, &["motion", "hall-motion", "NO_MOTION", "s ago"]);
    line(out, &["window", "kitchen-window", "unreadable: sensor reading", "ajar?!"]);
    line(out, &["lights", "kitchen", "ON", "40 %", "3000 K", "manual"]);
    line(out, &["siren", "ON since 1 min ago (intrusion: front)"]);
    line(out, &["devices", "bedroom-window", "window_sensor", "offline"]);
    line(out, &["kitchen", "light_bulb", "online since 10 min ago"]);
    assert!(!text.stderr.contains("INFO") && !out.contains("INFO"), "no INFO line without -v:\n{out}\n{}", text.stderr);

    assert!(json.success, "{}\n{}", json.stdout, json.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("--json prints one JSON document");
    assert_eq!(doc["panel"]["state"], "triggered", "{doc:#}");
    assert_eq!(doc["panel"]["open_sensors"][0], "front");
    let sensor = |id: &str| doc["sensors"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap();
    assert_eq!((&sensor("front")["kind"], &sensor("front")["state"]), (&"door".into(), &"OPEN".into()));
    assert_eq!(sensor("hall-motion")["state"], "NO_MOTION");
    assert_eq!(sensor("kitchen-window")["payload"], "ajar?!");
    assert!(sensor("kitchen-window")["unreadable"].as_str().unwrap().contains("sensor reading"), "{doc:#}");
    assert_eq!((&doc["lights"][0]["id"], &doc["lights"][0]["brightness"]), (&"kitchen".into(), &40.into()));
    assert_eq!(doc["siren"]["state"], "ON");
    assert_eq!(doc["devices"][0]["id"], "bedroom-window", "offline devices come first: {doc:#}");
    assert_eq!(
        (&doc["devices"][0]["type"], &doc["devices"][0]["availability"]),
        (&"window_sensor".into(), &"offline".into())
    );
    assert_eq!(doc["devices"][1]["availability"], "online");
    assert!(!json.stderr.contains("INFO"), "{}", json.stderr);
    assert!(!json.stdout.contains("INFO"), "log lines go to stderr, never into the JSON");

    assert!(verbose.success, "{}", verbose.stderr);
    let logged = &verbose.stderr;
    assert!(logged.contains("INFO") && logged.contains("connected to"), "-v brings the INFO lines back:\n{logged}");
    assert!(!verbose.stdout.contains("INFO"), "log lines go to stderr:\n{}", verbose.stdout);
}

on_both_brokers!(status, super::status_shows_the_whole_home);

/// A broker with nothing of the home on it (not running, or another topic root) is a failure that
/// says where it looked, not an empty summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_broker_is_an_error_naming_the_topic_root() {
    let broker = testkit::embedded();
    let started = std::time::Instant::now();
    let run = mqtt_home(&broker.url(), &["status"]).await;
    assert!(!run.success, "{}", run.stdout);
    assert!(run.stderr.contains("nothing retained under home/#"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(8), "gave up after {:?}", started.elapsed());
}
