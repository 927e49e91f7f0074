//! Home Assistant discovery and Home Assistant's light commands, over a real broker, with no
//! Home Assistant: what the daemons publish for it and what they do with what it sends. The same
//! against a real Home Assistant is `tests/home_assistant.rs`.

use protocol::{ColorMode, LightState, Payload, Power};
use serde_json::Value;
use testkit::{Probe, Running, on_both_brokers};

mod common;
use common::WITHIN;

const CONFIG: &str = "homeassistant/light/home_ha-bulb/light/config";
const SET: &str = "home/lights/ha-bulb/set";
const STATE: &str = "home/lights/ha-bulb/state";

fn bulb(url: &str, discovery: bool) -> Running {
    let mut mqtt = common::mqtt(url, "ha-bulb");
    mqtt.ha_discovery = discovery;
    let config = light_bulb::Config { mqtt, ..light_bulb::Config::default() };
    Running::spawn(|s| light_bulb::run(config, s))
}

fn json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap_or(Value::Null)
}

fn state(pred: impl Fn(&LightState) -> bool) -> impl Fn(&[u8]) -> bool {
    move |payload| LightState::decode(payload).is_ok_and(|s| pred(&s))
}

async fn a_bulb_announces_itself_and_takes_what_home_assistant_sends(url: String) {
    let mut probe = Probe::connect(&url, "probe-discovery").await.unwrap();
    probe.subscribe("homeassistant/#").await.unwrap();
    probe.subscribe(STATE).await.unwrap();
    let running = bulb(&url, true);

    // The config: retained, complete, pointing at the contract's own topics.
    let config = json(&probe.expect(CONFIG, |p| !p.is_empty(), WITHIN).await.unwrap());
    assert_eq!(config["schema"], "json");
    assert_eq!(config["command_topic"], SET);
    assert_eq!(config["state_topic"], STATE);
    assert_eq!(config["brightness_scale"], 100);
    assert_eq!(config["availability_topic"], "home/devices/ha-bulb/availability");
    assert_eq!(config["device"]["model"], "light-bulb");
    let mut late = Probe::connect(&url, "probe-discovery-late").await.unwrap();
    late.subscribe(CONFIG).await.unwrap();
    late.expect(CONFIG, |p| json(p) == config, WITHIN).await.unwrap();

    // Home Assistant (re)starting says `online`: the config comes again, even if it was lost.
    probe.publish(CONFIG, Vec::new(), true).await.unwrap();
    let before = probe.count(CONFIG);
    probe.publish("homeassistant/status", "online", false).await.unwrap();
    probe.expect_after(before, CONFIG, |p| json(p) == config, WITHIN).await.unwrap();

    // Home Assistant's own command: mireds, a fade; the state in its terms on the way and at the end.
    probe.expect(STATE, state(|s| s.state == Power::Off), WITHIN).await.unwrap();
    let before = probe.count(STATE);
    probe.publish(SET, r#"{"state":"ON","brightness":50,"color_temp":250,"transition":1}"#, false).await.unwrap();
    probe.expect_after(before, STATE, state(|s| s.state == Power::On && s.brightness < 50), WITHIN).await.unwrap();
    let done = |s: &LightState| {
        s.brightness == 50
            && s.color_temp_k == Some(4000)
            && s.color_temp == Some(250)
            && s.color_mode == Some(ColorMode::ColorTemp)
    };
    probe.expect_after(before, STATE, state(done), WITHIN).await.unwrap();

    // What it must refuse, it refuses, and goes on.
    for bad in [r#"{"state":"ON","brightness":300}"#, r#"{"color_temp":0}"#, r#"{"state":"ON","white_value":1}"#] {
        probe.publish(SET, bad, false).await.unwrap();
    }
    let before = probe.count(STATE);
    probe.publish(SET, r#"{"state":"ON","flash":"short","color_temp_kelvin":2700}"#, false).await.unwrap();
    let flashing = |s: &LightState| s.effect == Some(protocol::Effect::Flash) && s.color_temp_k == Some(2700);
    probe.expect_after(before, STATE, state(flashing), WITHIN).await.unwrap();
    assert!(
        probe.seen(STATE)[before..].iter().all(|p| LightState::decode(p).is_ok_and(|s| s.brightness <= 50)),
        "a refused command changed the bulb"
    );
    // A short flash ends by itself after 2 s, steady at the same level.
    let steady = |s: &LightState| s.effect.is_none() && s.brightness == 50 && s.state == Power::On;
    probe.expect_after(before, STATE, state(steady), WITHIN).await.unwrap();
    running.stop().await;

    // Switched off, discovery clears what it announced.
    let before = probe.count(CONFIG);
    let running = bulb(&url, false);
    probe.expect_after(before, CONFIG, <[u8]>::is_empty, WITHIN).await.unwrap();
    running.stop().await;
}

on_both_brokers!(bulb_and_home_assistant, super::a_bulb_announces_itself_and_takes_what_home_assistant_sends);

async fn forget_removes_a_devices_entities(url: String) {
    let mut probe = Probe::connect(&url, "probe-discovery-forget").await.unwrap();
    probe.subscribe("homeassistant/#").await.unwrap();
    let running = bulb(&url, true);
    probe.expect(CONFIG, |p| !p.is_empty(), WITHIN).await.unwrap();
    running.stop().await;
    let before = probe.count(CONFIG);
    mqtt_home::ctl::forget(&common::mqtt(&url, "mqtt-home-cli-discovery"), "ha-bulb").await.unwrap();
    probe.expect_after(before, CONFIG, <[u8]>::is_empty, WITHIN).await.unwrap();
}

on_both_brokers!(forget_and_home_assistant, super::forget_removes_a_devices_entities);
