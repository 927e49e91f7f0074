//! Every decoder that reads bytes from the network or a file, fed generated input: none may panic,
//! and none may take long (issue 19, fuzzing).
//!
//! The inputs are not only random bytes, which a JSON or TOML reader rejects at the first one:
//! they are JSON and TOML documents built from the keys and words the home's payloads use
//! (`state`, `action`, `code`, `OPEN`, `ARM_AWAY`, `contact` …) with values of every type, nested,
//! then mutated (a byte flipped, cut short, spliced). What each decoder does with them is not
//! checked here (their own tests do that); that it returns is.
//!
//! CI runs each property `PROPTEST_CASES` times (256 by default); `just fuzz` runs 1 000 000 each.
//! A failure is shrunk to the smallest input and kept in `tests/fuzz.proptest-regressions`, which is
//! committed: the corpus of what once broke.

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
        returns("classify", || recorder::classify::classify(&topics, &topic, &bytes, redelivered, Timestamp(1_795_000_000_000)));
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
