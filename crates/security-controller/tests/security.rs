//! The alarm panel end to end, over a real broker: the embedded one and Mosquitto.
//!
//! The panel and the siren run as they do in production — each on its own connection, the panel
//! with its state file — and a probe watches the wire. Sensors are played by the test: plain MQTT
//! clients with a Last Will, so that "a sensor dies" is a socket closed without DISCONNECT.
//! The `kill -9` test runs the real `security-controller` binary.
//!
//! Waits are deadlines on expected messages. The only fixed waits prove that something does *not*
//! happen (no siren after a duress code), and they are a few seconds at most.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use device_runtime::{DeviceSpec, Link, MqttConfig, Shutdown};
use protocol::{
    DeviceKind, PanelEvent, PanelStatus, Payload, SensorKind, SensorReading, SensorState, Timestamp, Topic,
};
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use security_controller::codes;
use security_controller::config::{ModeDelays, PanelConfig, User};
use testkit::{Probe, Running, Spawned, WITHIN, on_both_brokers};
use tokio::task::JoinHandle;

/// After a broker restart the daemons' reconnect backoff adds up to a few seconds.
const AFTER_RESTART: Duration = Duration::from_secs(30);

const STATUS: &str = "home/security/status";
const EVENTS: &str = "home/security/events";
const SIREN: &str = "home/security/alarm";
const SIREN_COMMAND: &str = "home/control/alarm";
const PANEL_SET: &str = "home/security/panel/set";
const KITCHEN_WINDOW: &str = "home/security/window/kitchen-window";
const BATH_WINDOW: &str = "home/security/window/bath-window";

const PIN: &str = "1234";
const DURESS_PIN: &str = "4321";
const WRONG_PIN: &str = "987650";
/// Seconds of entry delay: long enough to disarm in time on a slow machine.
const ENTRY_DELAY_S: u64 = 3;
/// Seconds a sensor may be offline before it is a trouble: longer than a test's broker restart
/// takes to heal (the daemons' reconnect backoff starts at 250 ms).
const OFFLINE_GRACE_S: u64 = 5;

// ---------------------------------------------------------------------------------------------
// The setting: a panel with short delays, a siren, a probe.

/// Hashing is slow on purpose; the test users are hashed once, with cheap parameters.
fn users() -> Vec<User> {
    static USERS: OnceLock<Vec<User>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            let hash = |pin| codes::hash_pin_with(pin, codes::test_params()).unwrap();
            vec![
                User::new("alice", hash(PIN)),
                User { duress: true, shows_as: Some("alice".into()), ..User::new("alice-duress", hash(DURESS_PIN)) },
            ]
        })
        .clone()
}

/// Instant arming, a short entry delay, a short lockout; zones and supervision as shipped.
fn panel_config() -> PanelConfig {
    PanelConfig {
        exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
        entry_delay_s: ModeDelays { away: ENTRY_DELAY_S, home: ENTRY_DELAY_S, night: 0 },
        trigger_time_s: 120,
        max_wrong_codes: 3,
        lockout_s: 2,
        offline_grace_s: OFFLINE_GRACE_S,
        allow_demo_timings: true,
        users: users(),
        ..PanelConfig::default()
    }
}

fn mqtt(url: &str, id: &str) -> MqttConfig {
    MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id(id) }
}

/// The panel and the siren on `url`, and a probe that has seen both come up.
struct Home {
    panel: Running,
    siren: Running,
    probe: Probe,
    _dir: tempfile::TempDir,
}

impl Home {
    async fn start(url: String) -> Home {
        Home::start_with(url, panel_config()).await
    }

    async fn start_with(url: String, panel: PanelConfig) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("panel.state.json");
        let mut probe = Probe::connect(&url, "probe-security").await.unwrap();
        for filter in ["home/security/#", SIREN_COMMAND, "home/devices/+/availability"] {
            probe.subscribe(filter).await.unwrap();
        }
        let config = security_controller::Config {
            mqtt: mqtt(&url, "security-controller"),
            state_file: state_file.clone(),
            panel,
            ..security_controller::Config::default()
        };
        let panel = Running::spawn(|s| security_controller::run(config, s));
        let siren_config = alarm_actuator::Config { mqtt: mqtt(&url, "siren"), ..alarm_actuator::Config::default() };
        let siren = Running::spawn(|s| alarm_actuator::run(siren_config, s));
        probe.expect(STATUS, status("disarmed"), WITHIN).await.unwrap();
        probe.expect(SIREN, siren_is("OFF"), WITHIN).await.unwrap();
        Home { panel, siren, probe, _dir: dir }
    }

    async fn command(&mut self, json: &str) {
        self.probe.publish(PANEL_SET, json, false).await.unwrap();
    }

    /// Arms away (no exit delay in these tests) and waits for `armed_away`.
    async fn arm_away(&mut self) {
        let n = self.probe.count(STATUS);
        self.command(r#"{"action":"ARM_AWAY"}"#).await;
        self.probe.expect_after(n, STATUS, status("armed_away"), WITHIN).await.unwrap();
    }

    async fn disarm(&mut self, pin: &str) {
        self.command(&format!(r#"{{"action":"DISARM","code":"{pin}"}}"#)).await;
    }

    /// Disarms with `pin` and waits for a `disarmed` status published after the command.
    async fn disarm_ok(&mut self, pin: &str) -> PanelStatus {
        let n = self.probe.count(STATUS);
        self.disarm(pin).await;
        let disarmed = self.probe.expect_after(n, STATUS, status("disarmed"), WITHIN).await.unwrap();
        PanelStatus::decode(&disarmed).unwrap()
    }

    async fn stop(self) {
        self.panel.stop().await;
        self.siren.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Matchers and sensors.

fn status(state: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == state)
}

fn event(kind: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| PanelEvent::decode(p).is_ok_and(|e| e.event.as_str() == kind)
}

fn siren_is(state: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| {
        serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["state"] == state && v["device_id"] == "siren")
    }
}

fn siren_command(state: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["state"] == state)
}

fn reading(id: &str, state: SensorState) -> Vec<u8> {
    SensorReading { state, device_id: id.into(), ts: Timestamp::now() }.encode()
}

fn sensor_topic(kind: SensorKind, id: &str) -> String {
    format!("home/security/{kind}/{id}")
}

/// A sensor played by the test: its own connection, a Last Will of `offline`, `online` and its
/// state retained. [`Sensor::crash`] drops the socket without DISCONNECT, as a dead battery would.
struct Sensor {
    client: AsyncClient,
    kind: SensorKind,
    id: String,
    task: JoinHandle<()>,
}

impl Sensor {
    async fn connect(url: &str, kind: SensorKind, id: &str) -> Sensor {
        let hostport = url.strip_prefix("mqtt://").unwrap();
        let (host, port) = hostport.rsplit_once(':').unwrap();
        let availability = format!("home/devices/{id}/availability");
        let mut options = MqttOptions::new(id, host, port.parse().unwrap());
        options.set_keep_alive(Duration::from_secs(5));
        options.set_last_will(LastWill::new(&availability, "offline", QoS::AtLeastOnce, true));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let task = tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        client.publish(&availability, QoS::AtLeastOnce, true, "online").await.unwrap();
        let sensor = Sensor { client, kind, id: id.to_owned(), task };
        sensor.report(kind.idle()).await;
        sensor
    }

    async fn report(&self, state: SensorState) {
        let topic = sensor_topic(self.kind, &self.id);
        self.client.publish(topic, QoS::AtLeastOnce, true, reading(&self.id, state)).await.unwrap();
    }

    /// The connection dies: the broker publishes the Last Will.
    fn crash(self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The tests of the security issue, one by one.

async fn an_intrusion_through_a_perimeter_window_sounds_the_siren(url: String) {
    let mut home = Home::start(url.clone()).await;
    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    home.arm_away().await;

    window.report(SensorState::Open).await;
    home.probe.expect(STATUS, status("triggered"), WITHIN).await.unwrap();
    home.probe.expect(SIREN_COMMAND, siren_command("ON"), WITHIN).await.unwrap();
    home.probe.expect(SIREN, siren_is("ON"), WITHIN).await.unwrap();
    let triggered = home.probe.expect(EVENTS, event("triggered"), WITHIN).await.unwrap();
    let triggered = PanelEvent::decode(&triggered).unwrap();
    assert_eq!(triggered.sensors, ["kitchen-window"]);

    let n = home.probe.count(SIREN);
    home.disarm_ok(PIN).await;
    home.probe.expect_after(n, SIREN, siren_is("OFF"), WITHIN).await.unwrap();
    window.crash();
    home.stop().await;
}
on_both_brokers!(perimeter_intrusion, super::an_intrusion_through_a_perimeter_window_sounds_the_siren);

/// Every payload of the issue's table, as foreign devices and scripts send it, trips the armed
/// panel: no `device_id` or `ts`, Python's `isoformat()` time, an epoch `ts`, any case, `ON`, `1`.
async fn readings_as_real_devices_send_them_trip_the_panel(url: String) {
    let mut home = Home::start(url.clone()).await;
    let topic = sensor_topic(SensorKind::Window, "hall-window");
    for payload in [
        "OPEN",
        "open",
        r#"{"state":"OPEN","device_id":"hall-window","ts":"2026-11-26T03:40:47Z","battery":97}"#,
        r#"{"state":"OPEN"}"#,
        r#"{"state":"OPEN","device_id":"x","ts":"2026-11-26T03:40:47.137782+00:00"}"#,
        r#"{"state":"OPEN","ts":1795664447}"#,
        r#"{"state":"open"}"#,
        r#"{"state":true,"linkquality":120}"#,
        "ON",
        "1",
    ] {
        home.probe.publish(&topic, "CLOSED", true).await.unwrap();
        home.arm_away().await;
        let n = home.probe.count(STATUS);
        home.probe.publish(&topic, payload, true).await.unwrap();
        if let Err(e) = home.probe.expect_after(n, STATUS, status("triggered"), WITHIN).await {
            panic!("{payload} did not trip the panel: {e:#}");
        }
        home.disarm_ok(PIN).await;
    }
    home.stop().await;
}
on_both_brokers!(readings_by_meaning, super::readings_as_real_devices_send_them_trip_the_panel);

/// A user whose only hour starts an hour from now, every day (in UTC): whenever the test runs,
/// now is outside it. Her code is right, so she is refused with `outside_hours`, by name, and no
/// wrong code is counted; alice's code still disarms.
async fn a_right_code_outside_its_hours_is_refused_with_its_reason(url: String) {
    use security_controller::people::{Day, HomeZone, Hours};
    let minute_of_day = (Timestamp::now().0 / 60_000 % 1440) as u32;
    let clock = |m: u32| format!("{:02}:{:02}", m % 1440 / 60, m % 60).parse().unwrap();
    let days = vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun];
    let cleaner = User {
        hours: vec![Hours { days, from: clock(minute_of_day + 60), until: clock(minute_of_day + 120) }],
        ..User::new("cleaner", codes::hash_pin_with("5555", codes::test_params()).unwrap())
    };
    let mut users = users();
    users.push(cleaner);
    let config = PanelConfig { users, time_zone: HomeZone::named("UTC").unwrap(), ..panel_config() };
    let mut home = Home::start_with(url, config).await;
    home.arm_away().await;
    let n = home.probe.count(EVENTS);
    home.disarm("5555").await;
    let refused = home.probe.expect_after(n, EVENTS, event("refused"), WITHIN).await.unwrap();
    let refused = PanelEvent::decode(&refused).unwrap();
    assert_eq!((refused.user.as_deref(), refused.reason), (Some("cleaner"), Some(protocol::Refusal::OutsideHours)));
    assert!(!String::from_utf8_lossy(&home.probe.seen(EVENTS).concat()).contains("5555"));
    let status = home.disarm_ok(PIN).await;
    assert_eq!(status.changed_by.as_deref(), Some("alice"));
    assert!(home.probe.seen(EVENTS).iter().all(|p| !event("wrong_code")(p)), "no wrong code was counted");
    home.stop().await;
}

on_both_brokers!(outside_hours, super::a_right_code_outside_its_hours_is_refused_with_its_reason);

/// A schedule that arms two minutes from now, warned five minutes ahead: the panel warns at once
/// (it starts inside the warning), and alice's code cancels that arming, on the wire.
async fn a_scheduled_arming_warns_and_a_right_code_cancels_it(url: String) {
    use security_controller::people::{Day, HomeZone};
    use security_controller::schedule::Schedule;
    let minute_of_day = (Timestamp::now().0 / 60_000 % 1440) as u32;
    let at = format!("{:02}:{:02}", (minute_of_day + 2) % 1440 / 60, (minute_of_day + 2) % 60);
    let schedule = Schedule {
        arm: protocol::ArmMode::Away,
        at: at.parse().unwrap(),
        days: Day::ALL.to_vec(),
        warn_min: 5,
        areas: vec![],
    };
    let config =
        PanelConfig { schedules: vec![schedule], time_zone: HomeZone::named("UTC").unwrap(), ..panel_config() };
    let mut home = Home::start_with(url, config).await;
    let warning = home.probe.expect(EVENTS, event("auto_arm_warning"), WITHIN).await.unwrap();
    let warning = PanelEvent::decode(&warning).unwrap();
    assert!(warning.message.contains(&format!("arming away at {at}")), "{}", warning.message);
    home.disarm(PIN).await;
    let cancelled = home.probe.expect(EVENTS, event("auto_arm_cancelled"), WITHIN).await.unwrap();
    assert_eq!(PanelEvent::decode(&cancelled).unwrap().user.as_deref(), Some("alice"));
    home.stop().await;
}

on_both_brokers!(scheduled_arming, super::a_scheduled_arming_warns_and_a_right_code_cancels_it);

/// Two phones' presence topics (as Home Assistant's MQTT device tracker publishes them): when
/// the second one says `not_home`, the panel arms away by `presence`.
async fn the_last_person_leaving_arms_the_panel(url: String) {
    let people = [("alice", "tracker/alice_phone/state"), ("bob", "tracker/bob_phone/state")];
    let presence = security_controller::schedule::Presence {
        arm: Some(protocol::ArmMode::Away),
        people: people.map(|(n, t)| (n.to_owned(), t.to_owned())).into(),
        disarm_on_arrival: false,
    };
    let mut home = Home::start_with(url, PanelConfig { presence, ..panel_config() }).await;
    for (_, topic) in people {
        home.probe.publish(topic, "home", true).await.unwrap();
    }
    home.probe.publish(people[0].1, "not_home", true).await.unwrap();
    home.probe.expect_none(STATUS, status("armed_away"), Duration::from_millis(500)).await.unwrap();
    let n = home.probe.count(STATUS);
    home.probe.publish(people[1].1, "not_home", true).await.unwrap();
    let armed = home.probe.expect_after(n, STATUS, status("armed_away"), WITHIN).await.unwrap();
    assert_eq!(PanelStatus::decode(&armed).unwrap().changed_by.as_deref(), Some("presence"));
    for (_, topic) in people {
        home.probe.publish(topic, "", true).await.unwrap();
    }
    home.stop().await;
}

on_both_brokers!(presence_arming, super::the_last_person_leaving_arms_the_panel);

async fn the_right_code_within_the_entry_delay_means_no_alarm(url: String) {
    let mut home = Home::start(url.clone()).await;
    let door = Sensor::connect(&url, SensorKind::Door, "front").await;
    home.arm_away().await;

    door.report(SensorState::Open).await;
    let pending = home.probe.expect(STATUS, status("pending"), WITHIN).await.unwrap();
    let pending = PanelStatus::decode(&pending).unwrap();
    assert_eq!(pending.delay_remaining_s, Some(ENTRY_DELAY_S));
    home.probe.expect(EVENTS, event("entry_started"), WITHIN).await.unwrap();
    home.disarm_ok(PIN).await;

    // The entry delay runs out with nobody having triggered anything.
    let wait = Duration::from_secs(ENTRY_DELAY_S + 1);
    home.probe.expect_none(SIREN_COMMAND, siren_command("ON"), wait).await.unwrap();
    assert!(home.probe.seen(SIREN).iter().all(|p| siren_is("OFF")(p)), "the siren sounded");
    assert!(!home.probe.seen(STATUS).iter().any(|p| status("triggered")(p)), "the panel triggered");
    door.crash();
    home.stop().await;
}
on_both_brokers!(entry_delay_then_disarm, super::the_right_code_within_the_entry_delay_means_no_alarm);

async fn the_entry_delay_running_out_sounds_the_siren(url: String) {
    let mut home = Home::start(url.clone()).await;
    let door = Sensor::connect(&url, SensorKind::Door, "front").await;
    home.arm_away().await;
    door.report(SensorState::Open).await;
    home.probe.expect(STATUS, status("pending"), WITHIN).await.unwrap();
    home.probe.expect(SIREN, siren_is("ON"), WITHIN + Duration::from_secs(ENTRY_DELAY_S)).await.unwrap();
    home.probe.expect(STATUS, status("triggered"), WITHIN).await.unwrap();
    home.disarm_ok(PIN).await;
    door.crash();
    home.stop().await;
}
on_both_brokers!(entry_delay_runs_out, super::the_entry_delay_running_out_sounds_the_siren);

async fn wrong_codes_lock_the_keypad_out(url: String) {
    let mut home = Home::start(url).await;
    home.arm_away().await;
    for _ in 0..3 {
        home.disarm(WRONG_PIN).await;
    }
    let lockout = home.probe.expect(EVENTS, event("lockout"), WITHIN).await.unwrap();
    assert!(PanelEvent::decode(&lockout).unwrap().message.contains("3 wrong codes"));
    assert_eq!(home.probe.seen(EVENTS).iter().filter(|p| event("wrong_code")(p)).count(), 3);

    // During the lockout even the right code is refused, and the panel stays armed.
    let status_before = home.probe.count(STATUS);
    home.disarm(PIN).await;
    home.probe.expect(EVENTS, event("code_refused"), WITHIN).await.unwrap();
    let latest = home.probe.seen(STATUS).pop().unwrap();
    assert!(status("armed_away")(&latest), "{}", String::from_utf8_lossy(&latest));

    // The panel announces the end of the lockout with a status; then the right code works.
    let unlocked = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.lockout_remaining_s.is_none());
    home.probe.expect_after(status_before, STATUS, unlocked, WITHIN).await.unwrap();
    home.disarm_ok(PIN).await;
    // No code, PIN or hash is ever in an event.
    for payload in home.probe.seen(EVENTS) {
        let text = String::from_utf8_lossy(&payload);
        assert!(!text.contains(PIN) && !text.contains(WRONG_PIN) && !text.contains("argon2"), "{text}");
    }
    home.stop().await;
}
on_both_brokers!(wrong_code_lockout, super::wrong_codes_lock_the_keypad_out);

async fn arming_with_a_window_open_fails_and_force_bypasses_it(url: String) {
    let mut home = Home::start(url.clone()).await;
    let window = Sensor::connect(&url, SensorKind::Window, "bedroom-window").await;
    window.report(SensorState::Open).await;
    let not_ready = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| !s.ready && s.open_sensors == ["bedroom-window"]);
    home.probe.expect(STATUS, not_ready, WITHIN).await.unwrap();

    home.command(r#"{"action":"ARM_AWAY"}"#).await;
    let failed = home.probe.expect(EVENTS, event("failed_to_arm"), WITHIN).await.unwrap();
    assert_eq!(PanelEvent::decode(&failed).unwrap().sensors, ["bedroom-window"]);

    home.command(r#"{"action":"ARM_AWAY","force":true}"#).await;
    let bypassed = |p: &[u8]| {
        PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "armed_away" && s.bypassed == ["bedroom-window"])
    };
    home.probe.expect(STATUS, bypassed, WITHIN).await.unwrap();
    home.probe.expect(EVENTS, event("bypassed"), WITHIN).await.unwrap();

    // The bypassed window may close and open again without an alarm; another one may not.
    window.report(SensorState::Closed).await;
    window.report(SensorState::Open).await;
    let other = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    other.report(SensorState::Open).await;
    let by_other = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.last_trigger.as_deref() == Some("kitchen-window"));
    home.probe.expect(STATUS, by_other, WITHIN).await.unwrap();
    assert!(!home.probe.seen(EVENTS).iter().any(|p| {
        PanelEvent::decode(p).is_ok_and(|e| e.event.as_str() == "triggered" && e.sensors == ["bedroom-window"])
    }));

    // Bypasses last for one arming only.
    let disarmed = home.disarm_ok(PIN).await;
    assert!(disarmed.bypassed.is_empty(), "{disarmed:?}");
    window.crash();
    other.crash();
    home.stop().await;
}
on_both_brokers!(failed_to_arm_then_force, super::arming_with_a_window_open_fails_and_force_bypasses_it);

async fn a_duress_code_disarms_visibly_and_alerts_silently(url: String) {
    let mut home = Home::start(url).await;
    home.arm_away().await;
    let disarmed = home.disarm_ok(DURESS_PIN).await;
    assert_eq!(disarmed.changed_by.as_deref(), Some("alice"), "the status gives the duress code away");
    let duress = home.probe.expect(EVENTS, event("duress"), WITHIN).await.unwrap();
    assert_eq!(PanelEvent::decode(&duress).unwrap().user.as_deref(), Some("alice-duress"));
    home.probe.expect_none(SIREN_COMMAND, siren_command("ON"), Duration::from_secs(2)).await.unwrap();
    assert!(home.probe.seen(SIREN).iter().all(|p| siren_is("OFF")(p)), "the siren sounded");
    home.stop().await;
}
on_both_brokers!(duress_code, super::a_duress_code_disarms_visibly_and_alerts_silently);

async fn a_sensor_lost_while_armed_is_a_trouble_and_a_tamper_where_configured(url: String) {
    let mut home = Home::start(url.clone()).await;
    // Interior zone: losing it is a trouble only. Entry zone: losing it while armed triggers.
    let motion = Sensor::connect(&url, SensorKind::Motion, "hall-motion").await;
    let door = Sensor::connect(&url, SensorKind::Door, "back").await;
    let knows_both = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.ready);
    home.probe.expect(STATUS, knows_both, WITHIN).await.unwrap();
    home.arm_away().await;

    motion.crash();
    let grace = Duration::from_secs(OFFLINE_GRACE_S);
    let trouble = home.probe.expect(EVENTS, event("trouble"), WITHIN + grace).await.unwrap();
    assert_eq!(PanelEvent::decode(&trouble).unwrap().sensors, ["hall-motion"]);
    let in_trouble = |p: &[u8]| {
        PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "armed_away" && s.troubles == ["hall-motion"])
    };
    home.probe.expect(STATUS, in_trouble, WITHIN).await.unwrap();
    assert!(!home.probe.seen(SIREN_COMMAND).iter().any(|p| siren_command("ON")(p)), "an interior trouble triggered");

    door.crash();
    home.probe.expect(STATUS, status("triggered"), WITHIN + grace).await.unwrap();
    home.probe.expect(SIREN, siren_is("ON"), WITHIN).await.unwrap();

    // The sensor comes back: restored.
    let motion = Sensor::connect(&url, SensorKind::Motion, "hall-motion").await;
    home.probe.expect(EVENTS, event("restored"), WITHIN).await.unwrap();
    home.disarm_ok(PIN).await;
    motion.crash();
    home.stop().await;
}
on_both_brokers!(sensor_lost_while_armed, super::a_sensor_lost_while_armed_is_a_trouble_and_a_tamper_where_configured);

async fn garbage_on_every_topic_is_ignored_and_the_panel_stays_intact(url: String) {
    let mut home = Home::start(url.clone()).await;
    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    home.arm_away().await;
    let status_count = home.probe.count(STATUS);

    let big = vec![b'x'; 200 * 1024];
    let garbage: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"null",
        b"\xff\xfe\x00binary",
        b"{\"state\":\"SIDEWAYS\"}",
        b"{\"action\":\"DISARM\",\"code\":1234}",
        b"{\"action\":\"SELF_DESTRUCT\"}",
        b"{\"action\":\"DISARM\",\"code\":\"1234\",\"extra\":true}",
        b"DISARM",
        &big,
    ];
    let topics = [
        sensor_topic(SensorKind::Door, "front"),
        sensor_topic(SensorKind::Window, "kitchen-window"),
        sensor_topic(SensorKind::Motion, "hall-motion"),
        "home/devices/kitchen-window/availability".into(),
        PANEL_SET.into(),
        SIREN_COMMAND.into(),
        "home/security/door/too/deep".into(),
    ];
    for topic in &topics {
        for payload in &garbage {
            home.probe.publish(topic, payload.to_vec(), false).await.unwrap();
        }
    }
    // A bare DISARM carries no code: it is a wrong code, not garbage; these count as attempts.
    // What a sensor sent that cannot be read is a trouble and an event, not only a log line.
    let unreadable =
        |p: &[u8]| PanelEvent::decode(p).is_ok_and(|e| e.message.starts_with("unreadable readings from front"));
    home.probe.expect(EVENTS, unreadable, WITHIN).await.unwrap();
    // A command that cannot be read (`"code":1234`, a number) is refused with an event, as a
    // wrong code is (issue 19: it was only a log line), and the event never quotes it.
    let refusals = |seen: Vec<Vec<u8>>| -> Vec<String> {
        seen.iter()
            .filter_map(|p| PanelEvent::decode(p).ok())
            .filter(|e| e.event == protocol::PanelEventKind::CodeRefused && e.message.contains("could not read"))
            .map(|e| e.message)
            .collect()
    };
    let refused = |p: &[u8]| !refusals(vec![p.to_vec()]).is_empty();
    home.probe.expect(EVENTS, refused, WITHIN).await.unwrap();
    for message in refusals(home.probe.seen(EVENTS)) {
        assert!(!message.contains("1234"), "a refusal quoted the code: {message}");
    }
    let troubled = |p: &[u8]| {
        PanelStatus::decode(p).is_ok_and(|s| {
            ["front", "hall-motion", "kitchen-window"].iter().all(|id| s.troubles.contains(&id.to_string()))
        })
    };
    home.probe.expect(STATUS, troubled, WITHIN).await.unwrap();
    // The panel is still armed and still works: an intrusion still triggers.
    let latest = home.probe.seen(STATUS).pop().unwrap();
    assert!(status("armed_away")(&latest), "{}", String::from_utf8_lossy(&latest));
    assert!(!home.probe.seen(SIREN).iter().any(|p| siren_is("ON")(p)), "garbage sounded the siren");
    window.report(SensorState::Open).await;
    home.probe.expect_after(status_count, STATUS, status("triggered"), WITHIN).await.unwrap();
    home.probe.expect(SIREN, siren_is("ON"), WITHIN).await.unwrap();
    window.crash();
    home.stop().await;
}
on_both_brokers!(garbage_everywhere, super::garbage_on_every_topic_is_ignored_and_the_panel_stays_intact);

/// Broker stopped and restarted while armed (Mosquitto only: the embedded broker cannot restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_while_armed_loses_nothing() {
    let Some(mut mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let mut home = Home::start(url.clone()).await;
    // A door sensor as the daemons build it: persistent session, stable client id.
    let door_config = mqtt(&url, "front");
    let door_shutdown = Shutdown::new();
    let door_link = Link::start(&door_config, DeviceSpec::new(DeviceKind::DoorSensor), door_shutdown.clone()).unwrap();
    let door = door_link.publisher.clone();
    let door_reading = |state| SensorReading { state, device_id: "front".into(), ts: Timestamp::now() };
    door.send(&Topic::Sensor { kind: SensorKind::Door, id: "front".into() }, &door_reading(SensorState::Closed))
        .await
        .unwrap();
    home.arm_away().await;

    // 1. Restart; afterwards an intrusion still raises the alarm.
    mosquitto.restart().unwrap();
    let mut probe = Probe::connect(&url, "probe-after-restart").await.unwrap();
    for filter in ["home/security/#", SIREN_COMMAND, "home/devices/+/availability"] {
        probe.subscribe(filter).await.unwrap();
    }
    probe.expect(STATUS, status("armed_away"), WITHIN).await.unwrap();
    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    // The panel is back once its availability is (it re-publishes `online` on connect).
    probe.expect("home/devices/security-controller/availability", |p| p == b"online", AFTER_RESTART).await.unwrap();
    window.report(SensorState::Open).await;
    probe.expect(STATUS, status("triggered"), AFTER_RESTART).await.unwrap();
    probe.expect(SIREN, siren_is("ON"), AFTER_RESTART).await.unwrap();
    probe.publish(PANEL_SET, format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#), false).await.unwrap();
    probe.expect(STATUS, status("disarmed"), WITHIN).await.unwrap();
    window.report(SensorState::Closed).await;
    // The window's CLOSED and the ARM_AWAY travel on two connections: wait until the panel has
    // seen the first (it is ready again) before sending the second, or it may refuse to arm.
    let ready = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "disarmed" && s.ready);
    probe.expect(STATUS, ready, WITHIN).await.unwrap();
    let n = probe.count(STATUS);
    probe.publish(PANEL_SET, r#"{"action":"ARM_AWAY"}"#, false).await.unwrap();
    probe.expect_after(n, STATUS, status("armed_away"), WITHIN).await.unwrap();
    window.crash();

    // 2. The door opens while the broker is down; its sensor's session delivers it afterwards.
    mosquitto.stop();
    door.send(&Topic::Sensor { kind: SensorKind::Door, id: "front".into() }, &door_reading(SensorState::Open))
        .await
        .unwrap();
    mosquitto.restart().unwrap();
    let mut probe = Probe::connect(&url, "probe-after-outage").await.unwrap();
    for filter in ["home/security/#", SIREN_COMMAND, "home/devices/+/availability"] {
        probe.subscribe(filter).await.unwrap();
    }
    probe.expect(STATUS, status("pending"), AFTER_RESTART).await.unwrap();
    probe.expect(SIREN, siren_is("ON"), AFTER_RESTART).await.unwrap();
    let by_front = |p: &[u8]| {
        PanelStatus::decode(p)
            .is_ok_and(|s| s.state.as_str() == "triggered" && s.last_trigger.as_deref() == Some("front"))
    };
    probe.expect(STATUS, by_front, WITHIN).await.unwrap();
    probe.publish(PANEL_SET, format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#), false).await.unwrap();
    probe.expect(STATUS, status("disarmed"), WITHIN).await.unwrap();

    home.probe = probe;
    home.stop().await;
    door_shutdown.trigger();
    tokio::time::timeout(WITHIN, door_link.finish()).await.expect("the door sensor's link did not stop");
}

/// `kill -9` of the real binary while armed: it comes back armed and still acts on an intrusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_armed_restarts_armed() {
    let broker = testkit::embedded();
    kill_9_while_armed_restarts_armed_on(broker.url()).await;
    if let Some(mosquitto) = testkit::mosquitto_or_skip() {
        kill_9_while_armed_restarts_armed_on(mosquitto.url()).await;
    }
}

/// The real binary with its own config file and state file; its log goes to `log`.
fn controller_process(url: &str, dir: &Path, log: &Path) -> Spawned {
    let mut file = String::from("[panel]\nexit_delay_s = { away = 0, home = 0, night = 0 }\n");
    file += "trigger_time_s = 120\nallow_demo_timings = true\n";
    for user in users() {
        file += &format!(
            "[[panel.users]]\nname = \"{}\"\npin_hash = \"{}\"\nduress = {}\n{}",
            user.name,
            user.pin_hash,
            user.duress,
            user.shows_as.map(|s| format!("shows_as = \"{s}\"\n")).unwrap_or_default()
        );
    }
    let config = dir.join("security-controller.toml");
    std::fs::write(&config, file).unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_security-controller"))
        .args(["--broker", url, "--config"])
        .arg(&config)
        .arg("--state-file")
        .arg(dir.join("panel.state.json"))
        .args(["-v", "--log-format", "text"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(Spawned)
        .expect("cannot run security-controller")
}

async fn kill_9_while_armed_restarts_armed_on(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("controller.log");
    let mut probe = Probe::connect(&url, "probe-kill-9").await.unwrap();
    probe.subscribe("home/security/#").await.unwrap();
    probe.subscribe(SIREN_COMMAND).await.unwrap();
    probe.subscribe("home/devices/+/availability").await.unwrap();
    let mut controller = controller_process(&url, dir.path(), &log);
    probe.expect(STATUS, status("disarmed"), WITHIN).await.unwrap();
    // A wrong code and then the arming, so the log has had a chance to leak a PIN.
    probe.publish(PANEL_SET, format!(r#"{{"action":"DISARM","code":"{WRONG_PIN}"}}"#), false).await.unwrap();
    probe.expect(EVENTS, event("wrong_code"), WITHIN).await.unwrap();
    probe.publish(PANEL_SET, r#"{"action":"ARM_AWAY"}"#, false).await.unwrap();
    probe.expect(STATUS, status("armed_away"), WITHIN).await.unwrap();

    controller.kill().unwrap(); // SIGKILL
    controller.wait().unwrap();
    probe.expect("home/devices/security-controller/availability", |p| p == b"offline", WITHIN).await.unwrap();
    let n = probe.count(STATUS);
    let mut controller = controller_process(&url, dir.path(), &log);
    let restarted = probe.expect_after(n, STATUS, |_| true, WITHIN).await.unwrap();
    assert!(status("armed_away")(&restarted), "restarted as {}", String::from_utf8_lossy(&restarted));

    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    window.report(SensorState::Open).await;
    probe.expect(STATUS, status("triggered"), WITHIN).await.unwrap();
    probe.expect(SIREN_COMMAND, siren_command("ON"), WITHIN).await.unwrap();
    let n = probe.count(STATUS);
    probe.publish(PANEL_SET, format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#), false).await.unwrap();
    probe.expect_after(n, STATUS, status("disarmed"), WITHIN).await.unwrap();
    window.crash();

    // SIGTERM: a clean stop, `offline` published by the controller itself.
    assert!(testkit::terminate(&mut controller, WITHIN), "the controller did not stop on SIGTERM");
    let exit = controller.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("resumed from"), "{text}");
    assert!(!text.contains(PIN) && !text.contains(WRONG_PIN), "a PIN reached the log:\n{text}");
}

/// The panel's binary runs on a current-thread runtime, where its link sends the siren's ON the
/// moment it reads a window that sounds it (the reflex, `reflex.rs`): once, and the step does not
/// send it again; what the step sends comes after; a window opened disarmed sends nothing. Two
/// windows that open together sound it once: the second arrives while the first waits for its
/// reflex's PUBACK, stepped after it, and must not have a reflex of its own (the first's step
/// has not yet made the panel sound; a second ON would leave the step nothing to send, and the
/// panel would take it for a reflex in error and turn the siren off).
async fn the_siren_command_goes_out_once_ahead_of_the_step_on(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("controller.log");
    let mut probe = Probe::connect(&url, "probe-reflex").await.unwrap();
    probe.subscribe("home/security/#").await.unwrap();
    probe.subscribe(SIREN_COMMAND).await.unwrap();
    let mut controller = controller_process(&url, dir.path(), &log);
    probe.expect(STATUS, status("disarmed"), WITHIN).await.unwrap();
    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    for round in 0..6 {
        let n = probe.count(STATUS);
        probe.publish(PANEL_SET, r#"{"action":"ARM_AWAY"}"#, false).await.unwrap();
        probe.expect_after(n, STATUS, status("armed_away"), WITHIN).await.unwrap();
        let sirens = probe.count(SIREN_COMMAND);
        if round == 0 {
            window.report(SensorState::Open).await;
        } else {
            let open =
                |id: &str| SensorReading { state: SensorState::Open, device_id: id.into(), ts: Timestamp::now() };
            let together =
                [(KITCHEN_WINDOW, open("kitchen-window").encode()), (BATH_WINDOW, open("bath-window").encode())];
            probe.publish_all(&together, true).await.unwrap();
        }
        probe.expect_after(sirens, SIREN_COMMAND, siren_command("ON"), WITHIN).await.unwrap();
        probe.expect_after(n, STATUS, status("triggered"), WITHIN).await.unwrap();
        let n = probe.count(STATUS);
        probe.publish(PANEL_SET, format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#), false).await.unwrap();
        probe.expect_after(n, STATUS, status("disarmed"), WITHIN).await.unwrap();
        probe.expect_after(sirens, SIREN_COMMAND, siren_command("OFF"), WITHIN).await.unwrap();
        let commands: Vec<String> =
            probe.seen(SIREN_COMMAND)[sirens..].iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        assert_eq!(commands.len(), 2, "round {round}: one ON and one OFF, no more: {commands:?}");
        assert!(siren_command("ON")(commands[0].as_bytes()), "round {round}: {commands:?}");
        let n = probe.count(STATUS);
        window.report(SensorState::Closed).await;
        if round > 0 {
            let closed =
                SensorReading { state: SensorState::Closed, device_id: "bath-window".into(), ts: Timestamp::now() };
            probe.publish(BATH_WINDOW, closed.encode(), true).await.unwrap();
        }
        let closed = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.open_sensors.is_empty());
        probe.expect_after(n, STATUS, closed, WITHIN).await.unwrap();
    }
    // Disarmed, an opening sounds nothing.
    let sirens = probe.count(SIREN_COMMAND);
    window.report(SensorState::Open).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(probe.count(SIREN_COMMAND), sirens, "a window opened while disarmed sounded the siren");
    window.crash();
    assert!(testkit::terminate(&mut controller, WITHIN), "the controller did not stop on SIGTERM");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("reflex in error") && !text.contains("ahead of a reading"), "{text}");
}
on_both_brokers!(reflex, super::the_siren_command_goes_out_once_ahead_of_the_step_on);

// ---------------------------------------------------------------------------------------------
// Under fire: poison messages, ghosts, failing disks, crashes between the siren and the save,
// floods of wrong codes.

/// A 17 MiB QoS 1 message on a sensor topic (Mosquitto without `message_size_limit`) used to drop
/// the panel's connection on every redelivery, and a window opened meanwhile raised no alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_does_not_stand_between_a_window_and_the_siren() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let mut home = Home::start(url.clone()).await;
    home.arm_away().await;
    home.probe.publish(&sensor_topic(SensorKind::Door, "poison"), vec![b'{'; 17 << 20], false).await.unwrap();
    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    window.report(SensorState::Open).await;
    home.probe.expect(SIREN_COMMAND, siren_command("ON"), WITHIN).await.unwrap();
    let online = home.probe.seen("home/devices/security-controller/availability");
    assert_eq!(online.iter().filter(|p| p.as_slice() == b"online").count(), 1, "the panel reconnected");
    home.disarm_ok(PIN).await;
    window.crash();
    home.stop().await;
}

/// A stray retained reading makes a ghost sensor; clearing the topic (a zero-length retained
/// publish, what `mqtt-home forget` sends) takes it out, and the panel is ready again.
async fn a_cleared_retained_reading_removes_a_ghost_sensor(url: String) {
    let mut home = Home::start(url.clone()).await;
    let ghost = sensor_topic(SensorKind::Door, "ghost");
    home.probe.publish(&ghost, reading("ghost", SensorState::Open), true).await.unwrap();
    let blocked = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| !s.ready && s.open_sensors == ["ghost"]);
    home.probe.expect(STATUS, blocked, WITHIN).await.unwrap();
    home.probe.publish(&ghost, Vec::new(), true).await.unwrap();
    let removed = home.probe.expect(EVENTS, event("removed"), WITHIN).await.unwrap();
    assert_eq!(PanelEvent::decode(&removed).unwrap().sensors, ["ghost"]);
    let ready = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.ready && s.open_sensors.is_empty());
    home.probe.expect(STATUS, ready, WITHIN).await.unwrap();
    home.arm_away().await;
    home.disarm_ok(PIN).await;
    home.stop().await;
}

on_both_brokers!(ghost_removal, super::a_cleared_retained_reading_removes_a_ghost_sensor);

/// A state file that cannot be written is a trouble on the status and an event, and the panel
/// goes on guarding; once the disk is back the save works again and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_save_is_a_trouble_on_the_status() {
    let broker = testkit::embedded();
    let mut home = Home::start(broker.url()).await;
    // The save writes a temp file and renames it; a directory in its place makes every save fail
    // (even for root, unlike a read-only mode).
    let blocker = home._dir.path().join(".panel.state.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    home.arm_away().await;
    let trouble = home.probe.expect(EVENTS, event("trouble"), WITHIN).await.unwrap();
    let trouble = PanelEvent::decode(&trouble).unwrap();
    assert_eq!(trouble.sensors, ["security-controller"]);
    assert!(trouble.message.contains("cannot save"), "{}", trouble.message);
    let in_trouble = |p: &[u8]| {
        PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "armed_away" && s.troubles == ["security-controller"])
    };
    home.probe.expect(STATUS, in_trouble, WITHIN).await.unwrap();
    std::fs::remove_dir(&blocker).unwrap();
    // Retried every 5 s.
    let restored = home.probe.expect(EVENTS, event("restored"), WITHIN).await.unwrap();
    assert!(PanelEvent::decode(&restored).unwrap().message.contains("saved again"));
    let saved = std::fs::read_to_string(home._dir.path().join("panel.state.json")).unwrap();
    assert!(saved.contains("armed"), "{saved}");
    home.disarm_ok(PIN).await;
    home.stop().await;
}

/// The siren goes out before the state file is written. A panel killed between the two comes
/// back in its older, armed state, hears the window's retained OPEN, and sounds the siren again.
/// A FIFO in place of the temp file holds the save open, so the kill lands exactly there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// On Mosquitto only: rumqttd does not resend retained messages to a resumed session (see link.rs).
async fn killed_between_the_siren_and_the_save_it_sounds_again() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("controller.log");
    let mut probe = Probe::connect(&url, "probe-siren-first").await.unwrap();
    for filter in ["home/security/#", SIREN_COMMAND] {
        probe.subscribe(filter).await.unwrap();
    }
    let mut controller = controller_process(&url, dir.path(), &log);
    probe.expect(STATUS, status("disarmed"), WITHIN).await.unwrap();
    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    probe.publish(PANEL_SET, r#"{"action":"ARM_AWAY"}"#, false).await.unwrap();
    probe.expect(STATUS, status("armed_away"), WITHIN).await.unwrap();

    let fifo = dir.path().join(".panel.state.json.tmp");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils) is needed");
    assert!(made.success());
    window.report(SensorState::Open).await;
    probe.expect(SIREN_COMMAND, siren_command("ON"), WITHIN).await.unwrap();
    // The save is stuck on the FIFO, so the triggered status (which follows it) is not out yet.
    probe.expect_none(STATUS, status("triggered"), Duration::from_millis(500)).await.unwrap();
    controller.kill().unwrap(); // SIGKILL, between the siren and the write
    controller.wait().unwrap();
    std::fs::remove_file(&fifo).unwrap();
    let saved = std::fs::read_to_string(dir.path().join("panel.state.json")).unwrap();
    assert!(!saved.contains("triggered"), "the kill came after the save: {saved}");

    let sirens = probe.count(SIREN_COMMAND);
    let mut controller = controller_process(&url, dir.path(), &log);
    let again = probe.expect_after(sirens, SIREN_COMMAND, siren_command("ON"), WITHIN).await;
    again.unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&log).unwrap()));
    probe.expect(STATUS, status("triggered"), WITHIN).await.unwrap();
    let n = probe.count(STATUS);
    probe.publish(PANEL_SET, format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#), false).await.unwrap();
    probe.expect_after(n, STATUS, status("disarmed"), WITHIN).await.unwrap();
    window.crash();
    assert!(testkit::terminate(&mut controller, WITHIN), "the controller did not stop on SIGTERM");
}

/// 200 wrong codes, each checked against five users with Argon2id's real cost (about 50 ms per
/// check; ten checks before the lockout), then a window opens. On the panel's loop those checks
/// held the window's reading back by seconds; on the keypad's thread they do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_codes_does_not_delay_an_intrusion() {
    let broker = testkit::embedded();
    let url = broker.url();
    let mut users = users();
    for i in 0..3 {
        let pin_hash = codes::hash_pin(&format!("55{i}55")).unwrap();
        users.push(User::new(format!("user{i}"), pin_hash));
    }
    let config = PanelConfig { users, max_wrong_codes: 10, lockout_s: 60, ..panel_config() };
    let mut home = Home::start_with(url.clone(), config).await;
    let window = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    home.arm_away().await;
    for _ in 0..200 {
        home.command(&format!(r#"{{"action":"DISARM","code":"{WRONG_PIN}"}}"#)).await;
    }
    home.probe.expect(EVENTS, event("wrong_code"), WITHIN).await.unwrap();
    let opened = std::time::Instant::now();
    window.report(SensorState::Open).await;
    home.probe.expect(SIREN_COMMAND, siren_command("ON"), WITHIN).await.unwrap();
    let took = opened.elapsed();
    // Ten checks against five users would hold the reading back by about 2.5 s on the loop.
    assert!(took < Duration::from_secs(1), "the siren came {took:?} after the window opened");
    home.probe.expect(EVENTS, event("lockout"), WITHIN).await.unwrap();
    window.crash();
    home.stop().await;
}

/// A panel that cannot start (a corrupt state file) says so on the broker before it exits: an
/// event, and its availability `offline`, so an old retained `armed_away` is not taken for a guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_that_cannot_start_says_why_on_the_broker() {
    let broker = testkit::embedded();
    let url = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("panel.state.json");
    std::fs::write(&state_file, "{\"arm\":").unwrap();
    let mut probe = Probe::connect(&url, "probe-refusal").await.unwrap();
    for filter in ["home/security/#", "home/devices/+/availability"] {
        probe.subscribe(filter).await.unwrap();
    }
    let config = security_controller::Config {
        mqtt: mqtt(&url, "security-controller"),
        state_file,
        panel: panel_config(),
        ..security_controller::Config::default()
    };
    let outcome = tokio::time::timeout(WITHIN, security_controller::run(config, Shutdown::new())).await.unwrap();
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(error.contains("corrupt"), "{error}");
    let refusal = probe.expect(EVENTS, event("trouble"), WITHIN).await.unwrap();
    let message = PanelEvent::decode(&refusal).unwrap().message;
    assert!(message.contains("cannot start") && message.contains("corrupt"), "{message}");
    probe.expect("home/devices/security-controller/availability", |p| p == b"offline", WITHIN).await.unwrap();
}

/// Two areas, the house and the garage, sharing the hallway's motion sensor and the siren: each
/// arms on its own topic, a window trips only its own armed area, the house's status says what
/// any area does, and a code limited to the garage disarms the garage only.
async fn two_areas_arm_trip_and_disarm_on_their_own(url: String) {
    use security_controller::config::Area;
    let mut users = users();
    let gina = User {
        areas: Some(vec!["garage".into()]),
        ..User::new("gina", codes::hash_pin_with("7777", codes::test_params()).unwrap())
    };
    users.push(gina);
    let areas =
        vec![Area::new("house", &["kitchen-window", "hallway"]), Area::new("garage", &["garage-window", "hallway"])];
    let mut home = Home::start_with(url.clone(), PanelConfig { areas, users, ..panel_config() }).await;
    const HOUSE: &str = "home/security/areas/house/status";
    const GARAGE: &str = "home/security/areas/garage/status";
    home.probe.expect(HOUSE, status("disarmed"), WITHIN).await.unwrap();
    home.probe.expect(GARAGE, status("disarmed"), WITHIN).await.unwrap();
    let kitchen = Sensor::connect(&url, SensorKind::Window, "kitchen-window").await;
    let garage = Sensor::connect(&url, SensorKind::Window, "garage-window").await;

    home.probe.publish("home/security/areas/garage/set", "ARM_AWAY", false).await.unwrap();
    let armed = home.probe.expect(GARAGE, status("armed_away"), WITHIN).await.unwrap();
    assert_eq!(PanelStatus::decode(&armed).unwrap().area.as_deref(), Some("garage"));
    let whole = home
        .probe
        .expect(
            STATUS,
            |p| PanelStatus::decode(p).is_ok_and(|s| s.areas.get("garage") == Some(&protocol::PanelState::ArmedAway)),
            WITHIN,
        )
        .await
        .unwrap();
    assert_eq!(PanelStatus::decode(&whole).unwrap().state.as_str(), "disarmed", "the house area is not armed");

    kitchen.report(SensorState::Open).await;
    home.probe.expect_none(EVENTS, event("triggered"), Duration::from_millis(500)).await.unwrap();
    kitchen.report(SensorState::Closed).await;
    garage.report(SensorState::Open).await;
    let triggered = home.probe.expect(EVENTS, event("triggered"), WITHIN).await.unwrap();
    assert_eq!(PanelEvent::decode(&triggered).unwrap().area.as_deref(), Some("garage"));
    home.probe.expect(SIREN_COMMAND, siren_command("ON"), WITHIN).await.unwrap();
    home.probe.expect(STATUS, status("triggered"), WITHIN).await.unwrap();
    home.probe.expect(HOUSE, status("disarmed"), WITHIN).await.unwrap();

    let n = home.probe.count(SIREN_COMMAND);
    home.probe.publish("home/security/areas/garage/set", r#"{"action":"DISARM","code":"7777"}"#, false).await.unwrap();
    home.probe.expect_after(n, SIREN_COMMAND, siren_command("OFF"), WITHIN).await.unwrap();
    let g = home.probe.count(GARAGE);
    garage.report(SensorState::Closed).await;
    // The window's reading and the command come on two connections: wait until the panel has the
    // reading, or the garage may not be ready when ARM_AWAY arrives.
    let ready = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.ready);
    home.probe.expect_after(g, GARAGE, ready, WITHIN).await.unwrap();

    // To the house, ARM_AWAY arms every area; gina's code then disarms only hers.
    let (h, g) = (home.probe.count(HOUSE), home.probe.count(GARAGE));
    home.command("ARM_AWAY").await;
    home.probe.expect_after(h, HOUSE, status("armed_away"), WITHIN).await.unwrap();
    home.probe.expect_after(g, GARAGE, status("armed_away"), WITHIN).await.unwrap();
    home.probe.expect(STATUS, status("armed_away"), WITHIN).await.unwrap();
    let g = home.probe.count(GARAGE);
    home.disarm("7777").await;
    home.probe.expect_after(g, GARAGE, status("disarmed"), WITHIN).await.unwrap();
    let n = home.probe.count(EVENTS);
    home.probe.publish("home/security/areas/house/set", r#"{"action":"DISARM","code":"7777"}"#, false).await.unwrap();
    let refused = home.probe.expect_after(n, EVENTS, event("refused"), WITHIN).await.unwrap();
    let refused = PanelEvent::decode(&refused).unwrap();
    assert_eq!((refused.area.as_deref(), refused.reason), (Some("house"), Some(protocol::Refusal::NotPermitted)));
    home.disarm_ok(PIN).await;
    kitchen.crash();
    garage.crash();
    home.stop().await;
}

on_both_brokers!(two_areas, super::two_areas_arm_trip_and_disarm_on_their_own);

/// Arming with an exit delay: the panel sends exit beeps on the sound topic (never the alarm's),
/// the real siren plays them (its state says so, still OFF), and they stop when it is armed.
async fn the_siren_beeps_through_the_exit_delay(url: String) {
    let config = PanelConfig { exit_delay_s: ModeDelays { away: 2, home: 0, night: 0 }, ..panel_config() };
    let mut home = Home::start_with(url, config).await;
    home.probe.subscribe("home/control/sound").await.unwrap();
    let alarm_commands = home.probe.count(SIREN_COMMAND);
    home.command(r#"{"action":"ARM_AWAY"}"#).await;
    let beeps = |state: &'static str| {
        move |p: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(p)
                .is_ok_and(|v| v["tone"] == "exit_beeps" && v["state"] == state)
        }
    };
    let on = home.probe.expect("home/control/sound", beeps("ON"), WITHIN).await.unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&on).unwrap()["duration_s"], 2);
    let playing = |p: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["tone"] == "exit_beeps" && v["state"] == "OFF")
    };
    home.probe.expect(SIREN, playing, WITHIN).await.unwrap();
    home.probe.expect(STATUS, status("armed_away"), WITHIN).await.unwrap();
    home.probe.expect("home/control/sound", beeps("OFF"), WITHIN).await.unwrap();
    let n = home.probe.count(SIREN);
    home.probe
        .expect_after(
            n - 1,
            SIREN,
            |p| serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v.get("tone").is_none()),
            WITHIN,
        )
        .await
        .unwrap();
    assert_eq!(home.probe.count(SIREN_COMMAND), alarm_commands, "beeps never go out as an alarm command");
    home.disarm_ok(PIN).await;
    home.stop().await;
}

on_both_brokers!(exit_beeps, super::the_siren_beeps_through_the_exit_delay);
