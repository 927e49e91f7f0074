//! Smart lighting end to end, over a real broker: the embedded one and Mosquitto.
//!
//! Every daemon runs as in production — its own connection, its own session — and the test
//! watches the wire with a probe client. Waits are deadlines on expected messages, not sleeps.

mod common;

use testkit::on_both_brokers;

use std::time::{Duration, Instant};

use common::{Running, WITHIN, bulb, controller, light, mqtt, text};
use protocol::{CircadianPhase, CircadianReading, LightSource, Payload, SensorReading, SensorState, Timestamp};
use testkit::Probe;

fn phase(p: CircadianPhase) -> Vec<u8> {
    CircadianReading { phase: p, device_id: "test".into(), ts: Timestamp::now(), elevation_deg: None }.encode()
}

fn motion(state: SensorState) -> Vec<u8> {
    SensorReading { state, device_id: "kitchen-motion".into(), ts: Timestamp::now() }.encode()
}

const KITCHEN_STATE: &str = "home/lights/kitchen/state";
const HALL_STATE: &str = "home/lights/hall/state";
const CIRCADIAN: &str = "home/lights/circadian_rhythm";
const KITCHEN_MOTION: &str = "home/security/motion/kitchen-motion";

/// Connects a probe watching both bulbs and waits until both bulbs have reported (they are up).
async fn probe_with_bulbs_up(url: &str, name: &str) -> Probe {
    let mut probe = Probe::connect(url, name).await.unwrap();
    probe.subscribe("home/lights/+/state").await.unwrap();
    probe.subscribe("home/devices/+/availability").await.unwrap();
    for bulb in ["kitchen", "hall"] {
        let topic = format!("home/devices/{bulb}/availability");
        probe.expect(&topic, text("online"), WITHIN).await.unwrap();
    }
    probe
}

async fn a_phase_change_reaches_the_bulb_with_the_right_brightness(url: String) {
    let (kitchen, hall, ctl) = (bulb(&url, "kitchen"), bulb(&url, "hall"), controller(&url));
    let mut probe = probe_with_bulbs_up(&url, "probe-phase").await;
    probe.publish(CIRCADIAN, phase(CircadianPhase::Sunset), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(30, LightSource::Circadian), WITHIN).await.unwrap();
    probe.expect(HALL_STATE, light(30, LightSource::Circadian), WITHIN).await.unwrap();
    probe.publish(CIRCADIAN, phase(CircadianPhase::Night), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(5, LightSource::Circadian), WITHIN).await.unwrap();
    for d in [kitchen, hall, ctl] {
        d.stop().await;
    }
}
on_both_brokers!(phase_change_reaches_the_bulb, super::a_phase_change_reaches_the_bulb_with_the_right_brightness);

async fn the_circadian_sensor_drives_a_whole_day(url: String) {
    let (kitchen, hall, ctl) = (bulb(&url, "kitchen"), bulb(&url, "hall"), controller(&url));
    let mut probe = probe_with_bulbs_up(&url, "probe-day").await;
    let sensor_config = circadian_sensor::Config {
        mqtt: mqtt(&url, "circadian"),
        phase_interval_s: 0.3,
        ..circadian_sensor::Config::default()
    };
    let sensor = Running::spawn(|s| circadian_sensor::run(sensor_config, s));
    // The original project's levels, in the order of a day.
    for brightness in [50, 100, 30, 5] {
        probe.expect(KITCHEN_STATE, light(brightness, LightSource::Circadian), WITHIN).await.unwrap();
    }
    for d in [sensor, kitchen, hall, ctl] {
        d.stop().await;
    }
}
on_both_brokers!(circadian_sensor_drives_a_day, super::the_circadian_sensor_drives_a_whole_day);

async fn motion_lights_the_room_then_it_returns_after_the_timeout(url: String) {
    let (kitchen, hall, ctl) = (bulb(&url, "kitchen"), bulb(&url, "hall"), controller(&url));
    let mut probe = probe_with_bulbs_up(&url, "probe-motion").await;
    probe.publish(CIRCADIAN, phase(CircadianPhase::Night), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(5, LightSource::Circadian), WITHIN).await.unwrap();

    probe.publish(KITCHEN_MOTION, motion(SensorState::Motion), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(100, LightSource::Motion), WITHIN).await.unwrap();
    let before = probe.count(KITCHEN_STATE);
    probe.publish(KITCHEN_MOTION, motion(SensorState::NoMotion), true).await.unwrap();
    let motion_ended = Instant::now();
    probe.expect_after(before, KITCHEN_STATE, light(5, LightSource::Circadian), WITHIN).await.unwrap();
    let lit_for = motion_ended.elapsed();
    assert!(lit_for >= Duration::from_millis(900), "returned after {lit_for:?}, before the 1 s motion timeout");
    // The hall has no motion: it never left its circadian level.
    assert!(probe.seen(HALL_STATE).iter().all(|p| !light(100, LightSource::Motion)(p)));
    for d in [kitchen, hall, ctl] {
        d.stop().await;
    }
}
on_both_brokers!(motion_then_timeout, super::motion_lights_the_room_then_it_returns_after_the_timeout);

async fn a_manual_command_pauses_automation_for_that_bulb(url: String) {
    let (kitchen, hall, ctl) = (bulb(&url, "kitchen"), bulb(&url, "hall"), controller(&url));
    let mut probe = probe_with_bulbs_up(&url, "probe-manual").await;
    probe.publish(CIRCADIAN, phase(CircadianPhase::Sunset), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(30, LightSource::Circadian), WITHIN).await.unwrap();

    // What a person types: a bare brightness.
    probe.publish("home/lights/kitchen/set", "40", false).await.unwrap();
    probe.expect(KITCHEN_STATE, light(40, LightSource::Manual), WITHIN).await.unwrap();

    probe.publish(CIRCADIAN, phase(CircadianPhase::Night), true).await.unwrap();
    // The hall follows the new phase, which proves the controller has seen it ...
    probe.expect(HALL_STATE, light(5, LightSource::Circadian), WITHIN).await.unwrap();
    // ... and the kitchen keeps what the person chose.
    probe.expect_none(KITCHEN_STATE, light(5, LightSource::Circadian), Duration::from_millis(500)).await.unwrap();
    for d in [kitchen, hall, ctl] {
        d.stop().await;
    }
}
on_both_brokers!(manual_override, super::a_manual_command_pauses_automation_for_that_bulb);

/// `adapt_only_lit`: a phase leaves a dark bulb dark; a bulb a person switches on takes the
/// phase's level, and follows the next phase.
async fn with_adapt_only_lit_a_phase_adapts_only_the_bulbs_that_are_on(url: String) {
    let (kitchen, hall) = (bulb(&url, "kitchen"), bulb(&url, "hall"));
    let config = light_controller::Config {
        mqtt: mqtt(&url, "light-controller"),
        adapt_only_lit: true,
        manual_override_min: 0,
        ..light_controller::Config::default()
    };
    let ctl = Running::spawn(|s| light_controller::run(config, s));
    let mut probe = probe_with_bulbs_up(&url, "probe-lit").await;
    probe.subscribe("home/devices/light-controller/availability").await.unwrap();
    probe.expect("home/devices/light-controller/availability", text("online"), WITHIN).await.unwrap();
    probe.publish(CIRCADIAN, phase(CircadianPhase::Sunset), true).await.unwrap();
    probe.expect_none(KITCHEN_STATE, light(30, LightSource::Circadian), Duration::from_millis(700)).await.unwrap();
    // A person switches the hall on at 40 %: it takes sunset's 30 %.
    probe.publish("home/lights/hall/set", "40", false).await.unwrap();
    probe.expect(HALL_STATE, light(40, LightSource::Manual), WITHIN).await.unwrap();
    probe.expect(HALL_STATE, light(30, LightSource::Circadian), WITHIN).await.unwrap();
    probe.publish(CIRCADIAN, phase(CircadianPhase::Night), true).await.unwrap();
    probe.expect(HALL_STATE, light(5, LightSource::Circadian), WITHIN).await.unwrap();
    // The hall following night proves the controller saw it; the kitchen stayed dark throughout.
    assert!(
        probe
            .seen(KITCHEN_STATE)
            .iter()
            .all(|p| !light(5, LightSource::Circadian)(p) && !light(30, LightSource::Circadian)(p))
    );
    for d in [kitchen, hall, ctl] {
        d.stop().await;
    }
}
on_both_brokers!(adapt_only_lit, super::with_adapt_only_lit_a_phase_adapts_only_the_bulbs_that_are_on);

async fn a_command_sent_while_the_bulb_is_down_is_delivered_on_its_return(url: String) {
    let kitchen = bulb(&url, "kitchen");
    let mut probe = Probe::connect(&url, "probe-outage").await.unwrap();
    probe.subscribe(KITCHEN_STATE).await.unwrap();
    probe.subscribe("home/devices/kitchen/availability").await.unwrap();
    probe.expect("home/devices/kitchen/availability", text("online"), WITHIN).await.unwrap();
    kitchen.stop().await;
    probe.expect("home/devices/kitchen/availability", text("offline"), WITHIN).await.unwrap();

    // The bulb's persistent session queues this QoS 1 command at the broker.
    probe.publish("home/lights/kitchen/set", r#"{"state":"ON","brightness":70}"#, false).await.unwrap();
    let kitchen = bulb(&url, "kitchen");
    probe.expect(KITCHEN_STATE, light(70, LightSource::Manual), WITHIN).await.unwrap();
    kitchen.stop().await;
}
on_both_brokers!(command_during_outage, super::a_command_sent_while_the_bulb_is_down_is_delivered_on_its_return);

async fn garbage_on_every_subscribed_topic_is_ignored(url: String) {
    let (kitchen, hall, ctl) = (bulb(&url, "kitchen"), bulb(&url, "hall"), controller(&url));
    let mut probe = probe_with_bulbs_up(&url, "probe-garbage").await;
    probe.publish(CIRCADIAN, phase(CircadianPhase::Sunrise), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(50, LightSource::Circadian), WITHIN).await.unwrap();

    let oversized = vec![b'7'; 100 * 1024];
    let garbage: [&[u8]; 8] = [
        b"",
        &[0xff, 0xfe, 0x00],
        b"{",
        b"null",
        br#"{"phase":"noon"}"#,
        // Garbage on every topic: `ON` would be a motion sensor's word, `DIM` is no one's.
        br#"{"state":"DIM","brightness":250}"#,
        b"\"DIM\"",
        &oversized,
    ];
    let topics = [
        CIRCADIAN,
        KITCHEN_MOTION,
        "home/lights/kitchen/set",
        "home/devices/kitchen/availability",
        "home/security/status",
    ];
    for topic in topics {
        for payload in garbage {
            probe.publish(topic, payload.to_vec(), false).await.unwrap();
        }
    }
    // Still alive and consistent: a valid phase change goes through, and nothing above moved a bulb.
    probe.publish(CIRCADIAN, phase(CircadianPhase::Sunset), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(30, LightSource::Circadian), WITHIN).await.unwrap();
    let kitchen_states: Vec<_> = probe.seen(KITCHEN_STATE);
    let unexpected: Vec<String> = kitchen_states
        .iter()
        .filter(|p| {
            !(light(0, LightSource::Manual)(p)
                || light(50, LightSource::Circadian)(p)
                || light(30, LightSource::Circadian)(p))
        })
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert!(unexpected.is_empty(), "garbage changed the bulb: {unexpected:?}");
    assert!(
        !probe.seen("home/devices/kitchen/availability").iter().any(|p| p == b"offline"),
        "the bulb lost its connection"
    );
    for d in [kitchen, hall, ctl] {
        d.stop().await;
    }
}
on_both_brokers!(garbage_is_ignored, super::garbage_on_every_subscribed_topic_is_ignored);

/// The broker goes away and comes back (Mosquitto, with persistence): the daemons reconnect,
/// their sessions and subscriptions hold, and the home goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_survive_a_broker_restart_and_resume() {
    let Some(mut mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let (kitchen, hall, ctl) = (bulb(&url, "kitchen"), bulb(&url, "hall"), controller(&url));
    let mut probe = probe_with_bulbs_up(&url, "probe-restart").await;
    probe.publish(CIRCADIAN, phase(CircadianPhase::Sunrise), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(50, LightSource::Circadian), WITHIN).await.unwrap();
    drop(probe);

    mosquitto.stop();
    mosquitto.restart().unwrap();

    let mut probe = Probe::connect(&url, "probe-restart-2").await.unwrap();
    probe.subscribe(KITCHEN_STATE).await.unwrap();
    // Retained state survived the restart.
    probe.expect(KITCHEN_STATE, light(50, LightSource::Circadian), WITHIN).await.unwrap();
    // Wait until the daemons are back (their `online` is published on reconnect).
    probe.subscribe("home/devices/light-controller/availability").await.unwrap();
    probe.expect("home/devices/light-controller/availability", text("online"), Duration::from_secs(40)).await.unwrap();
    probe.subscribe("home/devices/kitchen/availability").await.unwrap();
    probe.expect("home/devices/kitchen/availability", text("online"), Duration::from_secs(40)).await.unwrap();
    probe.publish(CIRCADIAN, phase(CircadianPhase::Morning), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(100, LightSource::Circadian), WITHIN).await.unwrap();
    for d in [kitchen, hall, ctl] {
        d.stop().await;
    }
}

/// The separate binaries, each with nothing but `--broker`, meet: the bulb's default id is in
/// the controller's default rooms, and so is the motion sensor's, in the same room. (The shipped
/// config files show these defaults; `config_files.rs` holds them to it.)
async fn the_lighting_binaries_meet_with_their_defaults(url: String) {
    let with_broker = |mut mqtt: device_runtime::MqttConfig| {
        mqtt.broker = url.parse().unwrap();
        mqtt
    };
    let mut bulb_config = light_bulb::Config::default();
    bulb_config.mqtt = with_broker(bulb_config.mqtt);
    let bulb_id = bulb_config.mqtt.id.clone();
    let bulb = Running::spawn(|s| light_bulb::run(bulb_config, s));
    let mut controller_config = light_controller::Config::default();
    controller_config.mqtt = with_broker(controller_config.mqtt);
    let controller = Running::spawn(|s| light_controller::run(controller_config, s));

    let mut probe = Probe::connect(&url, "probe-defaults").await.unwrap();
    probe.subscribe("home/#").await.unwrap();
    let state = format!("home/lights/{bulb_id}/state");
    probe.expect("home/devices/light-controller/availability", text("online"), WITHIN).await.unwrap();
    probe.expect(&state, |_| true, WITHIN).await.unwrap();

    let mut sensor = binary_sensor::MotionConfig::default().0;
    sensor.mqtt = with_broker(sensor.mqtt);
    binary_sensor::once(protocol::SensorKind::Motion, sensor, SensorState::Motion, WITHIN).await.unwrap();
    probe.expect(&state, light(100, LightSource::Motion), WITHIN).await.unwrap();
    for d in [bulb, controller] {
        d.stop().await;
    }
}
on_both_brokers!(lighting_defaults_meet, super::the_lighting_binaries_meet_with_their_defaults);

/// Presence simulation over a real broker, with a real recorder database: last week the kitchen
/// was at 70 %; armed away (the panel's status), the kitchen, which simulates presence, takes that
/// light again; disarmed, it returns to the phase's at once.
async fn armed_away_the_kitchen_replays_last_weeks_light(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("mqtt-home.db");
    let topics = protocol::Topics::default();
    let week_ago = Timestamp(Timestamp::now().0 - 7 * 24 * 3_600_000 - 10 * 60_000);
    let last_week =
        br#"{"state":"ON","brightness":70,"source":"manual","device_id":"kitchen","ts":"2026-01-01T00:00:00.000Z"}"#;
    let mut store = store::Store::open(&database, store::Durability::Normal).unwrap();
    store.commit(&[store::classify::classify(&topics, KITCHEN_STATE, last_week, false, week_ago)]).unwrap();
    drop(store);

    let bulb = bulb(&url, "kitchen");
    let mut probe = Probe::connect(&url, "probe-simulation").await.unwrap();
    probe.subscribe(KITCHEN_STATE).await.unwrap();
    probe.subscribe("home/devices/kitchen/availability").await.unwrap();
    probe.expect("home/devices/kitchen/availability", text("online"), WITHIN).await.unwrap();
    let kitchen = light_controller::config::Room {
        name: "kitchen".into(),
        bulbs: vec!["kitchen".into()],
        motion_sensors: vec![],
        simulate_presence: true,
    };
    let config = light_controller::Config {
        mqtt: mqtt(&url, "light-controller"),
        rooms: vec![kitchen],
        simulation: light_controller::config::Simulation { jitter_min: 0, history: database },
        ..light_controller::Config::default()
    };
    let ctl = Running::spawn(|s| light_controller::run(config, s));
    probe.publish(CIRCADIAN, phase(CircadianPhase::Sunset), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(30, LightSource::Circadian), WITHIN).await.unwrap();
    let status = |state: &str, mode: &str| {
        format!(
            r#"{{"state":"{state}",{mode}"ready":true,"open_sensors":[],"bypassed":[],"troubles":[],"device_id":"security-controller","ts":"2026-01-01T00:00:00.000Z"}}"#
        )
    };
    probe.publish("home/security/status", status("armed_away", r#""mode":"away","#), true).await.unwrap();
    probe.expect(KITCHEN_STATE, light(70, LightSource::Simulation), WITHIN).await.unwrap();
    // Counted before the status goes out: the bulb's answer may arrive before the next line runs.
    let n = probe.count(KITCHEN_STATE);
    probe.publish("home/security/status", status("disarmed", ""), true).await.unwrap();
    probe.expect_after(n, KITCHEN_STATE, light(30, LightSource::Circadian), WITHIN).await.unwrap();
    ctl.stop().await;
    bulb.stop().await;
}
on_both_brokers!(presence_simulation, super::armed_away_the_kitchen_replays_last_weeks_light);
