//! Every decoder that reads bytes from the network or a file, fed generated input: none may panic,
//! and none may take long (issue 19, fuzzing).
//!
//! The inputs are not only random bytes, which a JSON or TOML reader rejects at the first one:
//! they are JSON and TOML documents built from the keys and words the home's payloads use
//! (`state`, `action`, `code`, `OPEN`, `ARM_AWAY`, `contact` …) with values of every type, nested,
//! then mutated (a byte flipped, cut short, spliced). What each decoder does with them is not
//! checked here (their own tests do that); that it returns is.
//!
//! Then the same inputs over MQTT: `fuzzed_messages_leave_every_daemon_of_the_home_serving` starts
//! the whole home (`mqtt-home run`, every daemon) on a Mosquitto of its own, publishes thousands of
//! them on the topics its daemons read (and on others), and checks that every daemon is still
//! online, nothing panicked, and the panel and a bulb still answer.
//!
//! CI runs each property `PROPTEST_CASES` times (256 by default); `just fuzz` runs 1 000 000 each.
//! A failure is shrunk to the smallest input and kept in `tests/fuzz.proptest-regressions`, which is
//! committed: the corpus of what once broke.

mod common;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use protocol::{
    AlarmCommand, AlarmState, Announce, Availability, CircadianReading, Health, LightCommand, LightState, PanelCommand,
    PanelEvent, PanelStatus, Payload, SensorReading, Timestamp, Topics,
};

/// The words the home's payloads and topics are made of.
const WORDS: &[&str] = &[
    "state",
    "action",
    "code",
    "force",
    "brightness",
    "color_temp_k",
    "color_temp",
    "source",
    "device_id",
    "ts",
    "contact",
    "occupancy",
    "motion",
    "phase",
    "reason",
    "since",
    "event",
    "mode",
    "user",
    "sensors",
    "message",
    "troubles",
    "bypassed",
    "open",
    "OPEN",
    "CLOSED",
    "ON",
    "OFF",
    "MOTION",
    "NO_MOTION",
    "ARM_AWAY",
    "ARM_HOME",
    "DISARM",
    "sunrise",
    "night",
    "armed_away",
    "triggered",
    "true",
    "false",
    "null",
    "1234",
    "None",
    "POWER",
    "battery",
    "tamper",
    "linkquality",
    "arm",
    "home",
    "security",
    "lights",
    "devices",
    "door",
    "window",
    "front",
    "set",
    "availability",
    "announce",
    "health",
    "online",
    "offline",
    "panel",
    "id",
    "-1",
    "1e309",
    "\u{0}",
    "é",
];

/// A JSON value built from the home's words, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let word = proptest::sample::select(WORDS).prop_map(|w| serde_json::Value::String(w.to_owned()));
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        (0u64..2_000_000_000_000).prop_map(|n| serde_json::json!(n)),
        word,
        ".{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::vec((proptest::sample::select(WORDS), inner), 0..8).prop_map(|fields| {
                serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Bytes as a decoder may meet them: a home-like JSON document, a bare word, random bytes, each
/// perhaps mutated.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let document = prop_oneof![
        4 => json_value().prop_map(|v| v.to_string().into_bytes()),
        2 => proptest::sample::select(WORDS).prop_map(|w| w.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ];
    (document, proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..3)).prop_map(
        |(mut bytes, edits)| {
            for (what, at, byte) in edits {
                let at = if bytes.is_empty() { 0 } else { usize::from(at) % bytes.len() };
                match what % 4 {
                    0 if !bytes.is_empty() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 => bytes.truncate(at),
                    _ => {
                        let copy = bytes[at..].to_vec();
                        bytes.extend_from_slice(&copy);
                    }
                }
            }
            bytes
        },
    )
}

/// A topic as a broker may deliver one: the home's levels and words, or anything.
fn topic() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(proptest::sample::select(WORDS), 0..6).prop_map(|levels| levels.join("/")),
        proptest::collection::vec(proptest::sample::select(WORDS), 1..5)
            .prop_map(|levels| format!("home/{}", levels.join("/"))),
        ".{0,40}",
    ]
}

/// Runs `decode`, failing if it took longer than any decoder of a small payload should (a hang,
/// or a blow-up on nesting).
fn returns<T>(what: &str, decode: impl FnOnce() -> T) {
    let started = Instant::now();
    let _ = decode();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "{what} took {took:?}");
}

proptest! {
    // Failures next to this file, in `fuzz.proptest-regressions` (proptest's default looks for a
    // lib.rs or main.rs beside the test and finds none here, so it would keep nothing).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource(
            "proptest-regressions"
        ))),
        ..ProptestConfig::default()
    })]
    #[test]
    fn every_payload_decoder_returns(bytes in payload()) {
        returns("SensorReading", || SensorReading::decode(&bytes));
        returns("CircadianReading", || CircadianReading::decode(&bytes));
        returns("LightCommand", || LightCommand::decode(&bytes));
        returns("LightState", || LightState::decode(&bytes));
        returns("PanelCommand", || PanelCommand::decode(&bytes));
        returns("PanelStatus", || PanelStatus::decode(&bytes));
        returns("PanelEvent", || PanelEvent::decode(&bytes));
        returns("AlarmCommand", || AlarmCommand::decode(&bytes));
        returns("AlarmState", || AlarmState::decode(&bytes));
        returns("Availability", || Availability::decode(&bytes));
        returns("Announce", || Announce::decode(&bytes));
        returns("Health", || Health::decode(&bytes));
    }

    #[test]
    fn a_panel_command_error_never_quotes_the_payload(code in "[0-9]{4,8}", action in proptest::sample::select(WORDS)) {
        // A PIN must never reach a log line through a decode error.
        for bytes in [
            format!(r#"{{"action":"{action}","code":{code}}}"#),
            format!(r#"{{"action":"{action}","code":"{code}","x":1}}"#),
            format!(r#"{{"action":"{action}","code":"{code}""#),
        ] {
            if let Err(e) = PanelCommand::decode(bytes.as_bytes()) {
                prop_assert!(!e.to_string().contains(&code), "{e}");
            }
        }
    }

    #[test]
    fn topics_and_the_recorders_classification_return(topic in topic(), bytes in payload(), redelivered in any::<bool>()) {
        let topics = Topics::default();
        returns("Topics::parse", || topics.parse(&topic));
        returns("classify", || store::classify::classify(&topics, &topic, &bytes, redelivered, Timestamp(1_795_000_000_000)));
    }

    #[test]
    fn every_bridge_profile_reads_what_its_devices_send(which in any::<prop::sample::Index>(), bytes in payload()) {
        // The shipped bridge.toml maps one device of every profile and kind.
        let config: bridge::Config = device_runtime::config::layer_text(
            &bridge::Config::default(),
            Some((std::path::Path::new("config/bridge.toml"), include_str!("../../../config/bridge.toml"))),
            toml::Table::new(),
        )
        .unwrap();
        let mapping = which.get(&config.devices).clone();
        returns("Mapping::read", || mapping.read(&bytes));
        let mut bridge = bridge::Bridge::new(config);
        for topic in [mapping.topic(), format!("home/lights/{}/set", mapping.id)] {
            returns("Bridge::translate", || bridge.translate(&topic, &bytes, Timestamp(1_795_000_000_000)));
        }
    }

    #[test]
    fn the_panels_state_file_reads_or_refuses(document in json_value(), bytes in payload()) {
        returns("state file (JSON)", || serde_json::from_str::<security_controller::panel::Panel>(&document.to_string()));
        returns("state file (bytes)", || serde_json::from_slice::<security_controller::panel::Panel>(&bytes));
    }

    #[test]
    fn the_dashboards_api_bodies_read_or_refuse(document in json_value(), bytes in payload()) {
        let text = document.to_string();
        for body in [text.as_bytes(), &bytes[..]] {
            returns("POST /api/panel", || dashboard::body::panel_command(body));
            returns("POST /api/lights/<id>", || dashboard::body::light_command(body));
            returns("POST /login", || dashboard::body::login_password(body));
        }
    }

    #[test]
    fn the_recorders_rows_read_back_whatever_the_file_holds(rows in proptest::collection::vec(record_row(), 0..8)) {
        RECORDER.with(|db| {
            let db = db.borrow();
            db.fill(&rows);
            let store = &db.store;
            let everything = store::Query { since: Timestamp(0), until: None, device: None, kind: None, limit: None };
            returns("Store::history", || {
                if let Ok(rows) = store.history(&everything) {
                    for format in [mqtt_home::history::Format::Table, mqtt_home::history::Format::Json, mqtt_home::history::Format::Csv] {
                        let _ = mqtt_home::history::render(&rows, &everything, format, &mut Vec::new());
                    }
                }
            });
            for kind in store::classify::Kind::ALL {
                let limited = store::Query { kind: Some(kind), limit: Some(3), ..everything.clone() };
                returns("Store::history (kind)", || store.history(&limited));
                returns("Store::activity", || store.activity(kind, Timestamp(0), Timestamp(3_600_000), Duration::from_secs(60)));
            }
            returns("Store::went_offline", || store.went_offline());
            returns("Store::latest", || store.latest());
            returns("Store::counts", || store.counts());
        });
    }

    #[test]
    fn every_config_file_reads_or_refuses(text in config_text()) {
        fn layer<C: serde::Serialize + serde::de::DeserializeOwned + Default>(text: &str) {
            let file = Some((std::path::Path::new("fuzz.toml"), text));
            returns("config", || device_runtime::config::layer_text(&C::default(), file, toml::Table::new()));
        }
        layer::<security_controller::Config>(&text);
        layer::<light_controller::Config>(&text);
        layer::<bridge::Config>(&text);
        layer::<notifier::Config>(&text);
        layer::<dashboard::Config>(&text);
        layer::<recorder::Config>(&text);
        layer::<circadian_sensor::Config>(&text);
        layer::<light_bulb::Config>(&text);
        layer::<alarm_actuator::Config>(&text);
    }
}

/// A value as SQLite may hold it in any column (a database written by hand, another program,
/// or a recorder of another version): the types do not have to match the schema's.
fn sql_value() -> impl Strategy<Value = rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    prop_oneof![
        Just(V::Null),
        any::<i64>().prop_map(V::Integer),
        prop_oneof![Just(0i64), Just(-1), Just(1_795_000_000_000), Just(i64::MAX), Just(i64::MIN)].prop_map(V::Integer),
        any::<f64>().prop_map(V::Real),
        proptest::sample::select(WORDS).prop_map(|w| V::Text(w.to_owned())),
        ".{0,24}".prop_map(V::Text),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(V::Blob),
    ]
}

/// One row of `record`: a value for each column but `id`.
fn record_row() -> impl Strategy<Value = Vec<rusqlite::types::Value>> {
    proptest::collection::vec(sql_value(), 10)
}

/// A recorder database, made once per test thread: a writer that puts any rows in, and the
/// recorder's own read-only `Store` that reads them back.
struct RecorderFile {
    _dir: tempfile::TempDir,
    writer: rusqlite::Connection,
    store: store::Store,
}

impl RecorderFile {
    fn new() -> RecorderFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.db");
        drop(store::Store::open(&path, store::Durability::Normal).unwrap());
        let writer = rusqlite::Connection::open(&path).unwrap();
        // The schema's NOT NULLs stand; anything else goes in (SQLite checks no types).
        let store = store::Store::open_read_only(&path).unwrap();
        RecorderFile { _dir: dir, writer, store }
    }

    fn fill(&self, rows: &[Vec<rusqlite::types::Value>]) {
        self.writer.execute_batch("DELETE FROM record; DELETE FROM latest;").unwrap();
        for row in rows {
            let _ = self.writer.execute(
                "INSERT INTO record (received_ms, ts_ms, kind, device, user, topic, summary, payload, redelivered, digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params_from_iter(row.iter()),
            );
            let _ = self
                .writer
                .execute("INSERT OR REPLACE INTO latest (topic, state_key) VALUES (?1, ?2)", [&row[5], &row[6]]);
        }
    }
}

thread_local! {
    static RECORDER: std::cell::RefCell<RecorderFile> = std::cell::RefCell::new(RecorderFile::new());
}

/// The topics the home's daemons read (the shipped bridge.toml's sources included), where a
/// fuzzed message does the most harm.
const READ_TOPICS: &[&str] = &[
    "home/security/door/front",
    "home/security/window/kitchen-window",
    "home/security/motion/kitchen-motion",
    "home/security/panel/set",
    "home/security/events",
    "home/security/status",
    "home/control/alarm",
    "home/lights/kitchen/set",
    "home/lights/hall/set",
    "home/lights/kitchen/state",
    "home/lights/circadian_rhythm",
    // A device the home does not have: the home's own availability topics are left alone, so that
    // an `offline` seen there is the daemon's own word.
    "home/devices/fuzz-ghost/availability",
    "home/devices/front/announce",
    "zigbee2mqtt/garage_door",
    "zigbee2mqtt/porch_pir",
    "bathroom/binary_sensor/window/state",
    "shellyplus1-shed/status/input:0",
    "gate/contact",
    "stat/porch_bulb/POWER",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_messages_leave_every_daemon_of_the_home_serving() {
    use proptest::strategy::ValueTree;
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let messages: usize = std::env::var("FUZZ_MQTT_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(3_000);
    let dir = tempfile::tempdir().unwrap();
    let dashboard = std::net::SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let config_dir = common::whole_home_config(dir.path(), dashboard);
    let mut probe = testkit::Probe::connect(&mosquitto.url(), "probe-fuzz").await.unwrap();
    for filter in ["home/devices/+/availability", "home/security/status", "home/security/events", "home/lights/+/state"]
    {
        probe.subscribe(filter).await.unwrap();
    }
    let err = dir.path().join("home.err");
    let mut home = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
        .args(["--broker", &mosquitto.url(), "run", "--config-dir"])
        .arg(&config_dir)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .map(testkit::Spawned)
        .unwrap();
    // Every daemon online: the shipped home has 16.
    let daemons = mqtt_home::home::HomeConfig::default().daemon_count();
    let started = Instant::now();
    let online = |probe: &testkit::Probe| {
        let topics = probe.topics();
        topics
            .iter()
            .filter(|t| t.ends_with("/availability") && probe.seen(t).last().is_some_and(|p| p == b"online"))
            .count()
    };
    while online(&probe) < daemons {
        assert!(started.elapsed() < common::WITHIN, "{} of {daemons} daemons came online", online(&probe));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let home_ids: Vec<String> = probe
        .topics()
        .into_iter()
        .filter_map(|t| t.strip_prefix("home/devices/")?.strip_suffix("/availability").map(str::to_owned))
        .collect();
    // The flood: generated payloads on the topics the daemons read, and generated topics.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let target = prop_oneof![3 => proptest::sample::select(READ_TOPICS).prop_map(str::to_owned), 1 => topic()];
    let strategy = (target, payload());
    let mut publisher = testkit::Probe::connect(&mosquitto.url(), "fuzz-publisher").await.unwrap();
    let mut published = 0;
    for _ in 0..messages {
        let (topic, bytes) = strategy.new_tree(&mut runner).unwrap().current();
        // Not a topic a client may publish on (wildcards, empty, NUL, too long): the broker would
        // drop the connection, which tests the broker, not the home.
        // Mosquitto also refuses control characters and Unicode noncharacters in a topic.
        let refused =
            |c: char| c.is_control() || (c as u32) & 0xFFFE == 0xFFFE || ('\u{FDD0}'..='\u{FDEF}').contains(&c);
        let home_availability = home_ids.iter().any(|id| topic == format!("home/devices/{id}/availability"));
        if home_availability
            || topic.is_empty()
            || topic.contains(['+', '#'])
            || topic.chars().any(refused)
            || topic.starts_with('$')
            || topic.len() > 200
        {
            continue;
        }
        publisher.publish(&topic, bytes, false).await.unwrap();
        published += 1;
    }
    // Then something real, after all of it: the panel and a bulb still answer.
    let events = probe.count("home/security/events") + probe.count("home/security/status");
    probe.publish("home/security/panel/set", r#"{"action":"DISARM","code":"0000"}"#, false).await.unwrap();
    let answered = async {
        while probe.count("home/security/events") + probe.count("home/security/status") <= events {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(common::WITHIN, answered).await.expect("the panel no longer answers a command");
    let on = |p: &[u8]| serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["brightness"] == 37);
    let kitchen = probe.count("home/lights/kitchen/state");
    probe.publish("home/lights/kitchen/set", r#"{"state":"ON","brightness":37}"#, false).await.unwrap();
    probe
        .expect_after(kitchen, "home/lights/kitchen/state", on, common::WITHIN)
        .await
        .expect("the kitchen bulb no longer answers");

    assert!(home.try_wait().unwrap().is_none(), "mqtt-home exited");
    let offline: Vec<String> = home_ids
        .iter()
        .map(|id| format!("home/devices/{id}/availability"))
        .filter(|t| probe.seen(t).iter().any(|p| p == b"offline"))
        .collect();
    assert!(offline.is_empty(), "daemons went offline under {published} fuzzed messages: {offline:?}");
    let log = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(!log.contains("panicked"), "a daemon panicked:\n{log}");
    println!("{published} fuzzed messages: every one of {daemons} daemons still online, the panel and a bulb answer");
    assert!(testkit::terminate(&mut home, Duration::from_secs(10)), "mqtt-home did not stop on SIGTERM");
}

/// TOML as people write it (and mistype it): tables and arrays of tables with the configs' keys,
/// values of every type, mutated.
fn config_text() -> impl Strategy<Value = String> {
    const KEYS: &[&str] = &[
        "mqtt",
        "panel",
        "users",
        "sensors",
        "zones",
        "device",
        "channel",
        "rooms",
        "broker",
        "id",
        "name",
        "pin_hash",
        "exit_delay_s",
        "entry_delay_s",
        "away",
        "home",
        "night",
        "kind",
        "profile",
        "source",
        "topic",
        "url",
        "events",
        "max_per_minute",
        "listen",
        "database",
        "levels",
        "motion_timeout_s",
        "allowed_hosts",
        "state_file",
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        proptest::sample::select(WORDS).prop_map(|w| format!("{w:?}")),
        "\"[a-z0-9:/._-]{0,20}\"",
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("1e400".to_owned()),
        Just("\"30s\"".to_owned()),
    ];
    let line = prop_oneof![
        (proptest::sample::select(KEYS), value).prop_map(|(k, v)| format!("{k} = {v}")),
        proptest::sample::select(KEYS).prop_map(|k| format!("[{k}]")),
        proptest::sample::select(KEYS).prop_map(|k| format!("[[{k}]]")),
        (proptest::sample::select(KEYS), proptest::sample::select(KEYS)).prop_map(|(a, b)| format!("[{a}.{b}]")),
    ];
    (proptest::collection::vec(line, 0..16), any::<u16>()).prop_map(|(lines, cut)| {
        let text = lines.join("\n");
        let cut = if text.is_empty() { 0 } else { usize::from(cut) % (text.len() + 1) };
        let cut = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        if cut % 7 == 0 { text[..cut].to_owned() } else { text }
    })
}
