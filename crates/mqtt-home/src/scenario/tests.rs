//! Scenario files parsed, matched and masked, without a broker.

use std::path::Path;

use super::*;

const EXAMPLE: &str = r#"
name = "intrusion"
description = "Armed away, a window opens"

[[step]]
say = "arm away"
publish = { topic = "home/security/panel/set", json = { action = "ARM_AWAY" } }

[[step]]
expect = { topic = "home/security/status", json = { state = "armed_away" }, within_s = 10 }

[[step]]
wait_s = 1.5

[[step]]
expect_none = { topic = "home/security/alarm", json = { state = "ON" }, for_s = 3 }

[[finally]]
publish = { topic = "home/security/panel/set", payload = '{"action":"DISARM","code":"1234"}' }
"#;

#[test]
fn parses_the_documented_format() {
    let s = Scenario::parse("example.toml", EXAMPLE).unwrap();
    assert_eq!(s.name, "intrusion");
    assert_eq!(s.steps.len(), 4);
    assert_eq!(s.finally.len(), 1);
    assert_eq!(s.steps[0].say.as_deref(), Some("arm away"));
    assert_eq!(
        s.steps[0].action,
        Some(Action::Publish {
            topic: "home/security/panel/set".into(),
            payload: br#"{"action":"ARM_AWAY"}"#.to_vec(),
            retain: false
        })
    );
    assert_eq!(s.steps[2].action, Some(Action::Wait(Duration::from_millis(1500))));
    assert_eq!(s.filters(), ["home/security/status", "home/security/alarm"]);
    match &s.steps[1].action {
        Some(Action::Expect { within, current, .. }) => {
            assert_eq!(*within, Duration::from_secs(10));
            assert!(!current);
        }
        other => panic!("not an expect: {other:?}"),
    }
}

#[test]
fn errors_name_the_file_and_the_step_and_never_quote_a_pin() {
    let typo = EXAMPLE.replace("within_s = 10", "withn_s = 10");
    let e = format!("{:#}", Scenario::parse("x.toml", &typo).unwrap_err());
    assert!(e.starts_with("x.toml (step 2, line 10): unknown field `withn_s`"), "{e}");
    assert!(!e.ends_with('.'), "{e}");

    let bad = EXAMPLE.replace("payload = '{\"action\"", "payload = '{\"action\"\nbroken");
    let e = format!("{:#}", Scenario::parse("x.toml", &bad).unwrap_err());
    assert!(e.contains("x.toml (finally step 1"), "{e}");
    assert!(!e.contains("1234"), "the PIN leaked into an error: {e}");

    let two = EXAMPLE.replace("wait_s = 1.5", "wait_s = 1.5\npublish = { topic = \"home/x\", payload = \"1\" }");
    let e = format!("{:#}", Scenario::parse("x.toml", &two).unwrap_err());
    assert!(e.contains("x.toml: step 3: a step does one thing"), "{e}");

    let wild = EXAMPLE.replace("home/security/panel/set\", json", "home/+/panel/set\", json");
    let e = format!("{:#}", Scenario::parse("x.toml", &wild).unwrap_err());
    assert!(e.contains("step 1: cannot publish to `home/+/panel/set`"), "{e}");

    let e = format!("{:#}", Scenario::parse("x.toml", "name = \"n\"").unwrap_err());
    assert_eq!(e, "x.toml: no [[step]]");

    let negative = EXAMPLE.replace("wait_s = 1.5", "wait_s = -1");
    let e = format!("{:#}", Scenario::parse("x.toml", &negative).unwrap_err());
    assert!(e.contains("step 3: wait_s = -1"), "{e}");
}

#[test]
fn json_subset_matching() {
    let have: Json = serde_json::json!({
        "state": "armed_away", "ready": true, "open_sensors": [], "n": 5, "nested": { "a": 1, "b": "x" }
    });
    let yes = [
        serde_json::json!({}),
        serde_json::json!({ "state": "armed_away" }),
        serde_json::json!({ "state": "armed_away", "ready": true, "open_sensors": [] }),
        serde_json::json!({ "n": 5.0 }),
        serde_json::json!({ "nested": { "b": "x" } }),
    ];
    let no = [
        serde_json::json!({ "state": "disarmed" }),
        serde_json::json!({ "missing": 1 }),
        serde_json::json!({ "n": "5" }),
        serde_json::json!({ "open_sensors": ["front"] }),
        serde_json::json!({ "nested": { "a": 2 } }),
    ];
    for want in &yes {
        assert!(json_subset(want, &have), "{want} should match");
    }
    for want in &no {
        assert!(!json_subset(want, &have), "{want} should not match");
    }
    let m = Matcher::Json(serde_json::json!({ "state": "ON" }));
    assert!(m.matches(br#"{"state":"ON","since":"x"}"#));
    assert!(!m.matches(b"ON"));
    assert!(!m.matches(&[0xff, 0x00]));
    assert!(Matcher::Text("online".into()).matches(b"online"));
    assert!(!Matcher::Text("online".into()).matches(b"online "));
}

#[test]
fn toml_integers_match_json_numbers() {
    let s = Scenario::parse(
        "x.toml",
        "name = \"n\"\n[[step]]\nexpect = { topic = \"home/lights/kitchen/state\", json = { brightness = 50, source = \"circadian\" } }\n",
    )
    .unwrap();
    let Some(Action::Expect { matcher, .. }) = &s.steps[0].action else { panic!("not an expect") };
    assert!(matcher.matches(br#"{"state":"ON","brightness":50,"color_temp_k":2700,"source":"circadian"}"#));
    assert!(!matcher.matches(br#"{"state":"ON","brightness":5,"source":"circadian"}"#));
    assert_eq!(matcher.short(), "brightness=50 source=circadian");
}

#[test]
fn topic_root_rewriting() {
    assert_eq!(rewrite_root("home/security/status", "flat-7"), "flat-7/security/status");
    assert_eq!(rewrite_root("home/#", "x"), "x/#");
    assert_eq!(rewrite_root("home", "x"), "x");
    assert_eq!(rewrite_root("homework/a", "x"), "homework/a");
    assert_eq!(rewrite_root("other/home/a", "x"), "other/home/a");
    let s = Scenario::parse("example.toml", EXAMPLE).unwrap().with_root("flat-7");
    assert_eq!(s.filters(), ["flat-7/security/status", "flat-7/security/alarm"]);
    assert!(
        matches!(&s.finally[0].action, Some(Action::Publish { topic, .. }) if topic == "flat-7/security/panel/set")
    );
}

#[test]
fn topic_filters() {
    assert!(filter_matches("home/security/status", "home/security/status"));
    assert!(!filter_matches("home/security/status", "home/security/status/x"));
    assert!(filter_matches("home/lights/+/state", "home/lights/kitchen/state"));
    assert!(!filter_matches("home/lights/+/state", "home/lights/kitchen/set"));
    assert!(filter_matches("home/#", "home/lights/kitchen/state"));
    assert!(filter_matches("home/#", "home"));
    assert!(!filter_matches("home/+", "home/a/b"));
    assert!(!filter_matches("#", "$SYS/broker"));
    assert!(!filter_matches("+/broker", "$SYS/broker"));
    assert!(filter_matches("+/broker", "x/broker"));
}

#[test]
fn pins_are_masked_in_the_timeline() {
    let shown = display_payload(br#"{"action":"DISARM","code":"1234"}"#);
    assert_eq!(shown, r#"{"action":"DISARM","code":"…"}"#);
    assert_eq!(display_payload(b"1234"), "…");
    assert_eq!(display_payload(b"OPEN"), "OPEN");
    let keypad = display_payload(br#"{"action":"disarm","action_code":1234,"action_transaction":3}"#);
    assert_eq!(keypad, r#"{"action":"disarm","action_code":"…","action_transaction":3}"#);
    assert_eq!(display_payload(br#"{"uid":"04A2B3C4"}"#), r#"{"uid":"…"}"#, "a tag is a credential too");
    let m = Matcher::Json(serde_json::json!({ "action": "DISARM", "code": "4321" }));
    assert!(!m.short().contains("4321") && !m.long().contains("4321"));
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios"));
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
            assert!(!s.description.is_empty(), "{} has no description", path.display());
            count += 1;
        }
    }
    assert!(count >= 5, "only {count} scenarios shipped");
}
