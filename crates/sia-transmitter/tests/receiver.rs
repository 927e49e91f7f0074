//! The transmitter against a receiver nobody here wrote: pysiaalarm, the library behind Home
//! Assistant's `sia` integration, as the monitoring centre. The real panel runs beside it on a
//! real broker; the test plays the sensors and the keypad.
//!
//! - the intrusion, duress and tamper scenarios reach the receiver as the right codes: SIA DCS
//!   plain over TCP on both brokers, SIA DCS with AES-128 over TCP, Contact ID with AES-256 over UDP;
//! - a receiver down for 30 s gets the queued reports once when it returns;
//! - a `kill -9` of the transmitter, with a report waiting and an event published while it is
//!   dead, loses nothing and repeats nothing;
//! - a primary that refuses connections sends the reports to the backup;
//! - a receiver answering garbage, then NAK, then ACK: the report is sent until taken, once taken.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use device_runtime::MqttConfig;
use protocol::{Condition, Payload, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics};
use security_controller::codes;
use security_controller::config::{ModeDelays, PanelConfig, SensorConfig, User, Zone};
use sia_transmitter::report::Format;
use sia_transmitter::send::{Receiver, Transport};
use testkit::{Probe, Running, SiaEvent, SiaReceiver, SiaTransport, WITHIN, on_both_brokers};

const ACCOUNT: &str = "AAA123";
const PIN: &str = "1234";
const DURESS_PIN: &str = "4321";
/// How long a report may take to reach the receiver when it is up.
const REPORTED: Duration = Duration::from_secs(15);

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

fn panel(url: &str, dir: &Path) -> security_controller::Config {
    let perimeter = SensorConfig { zone: Some(Zone::Perimeter), supervision_s: None, chime: false };
    let panel = PanelConfig {
        exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
        trigger_time_s: 120,
        allow_demo_timings: true,
        users: users(),
        sensors: [("front-door".to_owned(), perimeter.clone()), ("kitchen-window".to_owned(), perimeter)].into(),
        ..PanelConfig::default()
    };
    security_controller::Config {
        mqtt: MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id("security-controller") },
        state_file: dir.join("panel.state.json"),
        panel,
        ..security_controller::Config::default()
    }
}

fn transmitter(url: &str, dir: &Path, receivers: Vec<Receiver>) -> sia_transmitter::Config {
    sia_transmitter::Config {
        mqtt: MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id("sia-transmitter") },
        account: ACCOUNT.into(),
        receivers,
        answer_timeout_s: 3.0,
        retry_max_s: 2.0,
        poll_s: 0.0,
        queue_file: dir.join("sia.queue.json"),
        zones: [("front-door".to_owned(), 3), ("kitchen-window".to_owned(), 4)].into(),
        users: [("alice".to_owned(), 1), ("alice-duress".to_owned(), 9)].into(),
        ..sia_transmitter::Config::default()
    }
}

fn tcp(address: String) -> Receiver {
    Receiver { address, transport: Transport::Tcp }
}

/// The keypad, the sensors and the panel's status, on one probe.
struct Keypad {
    probe: Probe,
    topics: Topics,
}

impl Keypad {
    async fn connect(url: &str) -> Keypad {
        let topics = Topics::new("home");
        let mut probe = Probe::connect(url, "sia-test-keypad").await.unwrap();
        probe.subscribe(&topics.name(&Topic::PanelStatus)).await.unwrap();
        Keypad { probe, topics }
    }

    /// Sends `action` (with `code`) and waits for a status in `state`.
    async fn command(&mut self, action: &str, code: Option<&str>, state: &'static str) {
        let status = self.topics.name(&Topic::PanelStatus);
        let n = self.probe.count(&status);
        let json = match code {
            Some(code) => format!(r#"{{"action":"{action}","code":"{code}"}}"#),
            None => format!(r#"{{"action":"{action}"}}"#),
        };
        self.probe.publish(&self.topics.name(&Topic::PanelSet), json, false).await.unwrap();
        let in_state = move |p: &[u8]| String::from_utf8_lossy(p).contains(&format!("\"state\":\"{state}\""));
        self.probe.expect_after(n, &status, in_state, WITHIN).await.unwrap();
    }

    async fn sense(&mut self, id: &str, kind: SensorKind, state: SensorState) {
        let topic = self.topics.name(&Topic::Sensor { kind, id: id.into() });
        let reading = SensorReading { state, device_id: id.into(), ts: Timestamp::now() };
        self.probe.publish(&topic, reading.encode(), true).await.unwrap();
    }

    async fn tamper(&mut self, id: &str, open: bool) {
        let topic = self.topics.name(&Topic::Condition(id.into()));
        let condition = Condition {
            battery: None,
            battery_low: None,
            tamper: Some(open),
            linkquality: None,
            last_seen: None,
            device_id: id.into(),
            ts: Timestamp::now(),
        };
        self.probe.publish(&topic, condition.encode(), true).await.unwrap();
    }

    /// Waits until the panel's status has `id` open (its reading is in before the next command).
    async fn until_open(&mut self, id: &str) {
        self.until(id, true).await;
    }

    async fn until_closed(&mut self, id: &str) {
        self.until(id, false).await;
    }

    async fn until(&mut self, id: &str, open: bool) {
        let status = self.topics.name(&Topic::PanelStatus);
        let n = self.probe.count(&status);
        let id = id.to_owned();
        let says = move |p: &[u8]| protocol::PanelStatus::decode(p).is_ok_and(|s| s.open_sensors.contains(&id) == open);
        self.probe.expect_after(n.saturating_sub(1), &status, says, WITHIN).await.unwrap();
    }
}

/// The codes a receiver took, as `code+message` (`BA03`), in order.
fn codes(events: &[SiaEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}{}", e.code.as_deref().unwrap_or("?"), e.message.as_deref().unwrap_or("")))
        .collect()
}

/// Arm away, an intrusion, disarm; arm, a duress disarm; a tamper opened and closed.
async fn scenarios(keypad: &mut Keypad) {
    keypad.sense("kitchen-window", SensorKind::Window, SensorState::Closed).await;
    keypad.sense("front-door", SensorKind::Door, SensorState::Closed).await;
    keypad.command("ARM_AWAY", Some(PIN), "armed_away").await;
    keypad.sense("front-door", SensorKind::Door, SensorState::Open).await;
    keypad.until_open("front-door").await;
    keypad.command("DISARM", Some(PIN), "disarmed").await;
    keypad.sense("front-door", SensorKind::Door, SensorState::Closed).await;
    keypad.until_closed("front-door").await;
    keypad.command("ARM_AWAY", Some(PIN), "armed_away").await;
    keypad.command("DISARM", Some(DURESS_PIN), "disarmed").await;
    keypad.tamper("kitchen-window", true).await;
    keypad.tamper("kitchen-window", false).await;
}

/// What [`scenarios`] must reach the centre as, SIA DCS: closing by user 1; burglary zone 3, its
/// restore, opening by user 1; closing; opening and the duress (user 9); tamper of zone 4 and its
/// restore.
const EXPECTED: [&str; 9] = ["CL01", "BA03", "BR03", "OP01", "CL01", "OP01", "HA09", "TA04", "TR04"];

/// The home, the transmitter and pysiaalarm; `scenarios` played; the receiver checked.
async fn run_scenarios(url: &str, transport: SiaTransport, format: Format, key: Option<&str>) {
    if !testkit::pysiaalarm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = SiaReceiver::start(transport, ACCOUNT, key).unwrap();
    let mut keypad = Keypad::connect(url).await;
    let panel_config = panel(url, dir.path());
    let panel = Running::spawn(|s| security_controller::run(panel_config, s));
    keypad.probe.expect(&keypad.topics.name(&Topic::PanelStatus), |_| true, WITHIN).await.unwrap();
    let transport_config = match transport {
        SiaTransport::Tcp => Transport::Tcp,
        SiaTransport::Udp => Transport::Udp,
    };
    let mut config =
        transmitter(url, dir.path(), vec![Receiver { address: receiver.address(), transport: transport_config }]);
    config.format = format;
    config.key = key.map(device_runtime::Secret::new);
    let sia = Running::spawn(|s| sia_transmitter::run(config, s));
    wait_until_subscribed(url).await;
    scenarios(&mut keypad).await;
    receiver.wait_for("the tamper restore", REPORTED, |e| e.code.as_deref() == Some("TR")).await.unwrap();
    let events = receiver.events();
    let expected: Vec<String> = match format {
        Format::SiaDcs => EXPECTED.iter().map(|s| (*s).to_owned()).collect(),
        // pysiaalarm maps Contact ID to SIA codes (a burglary restore, 3 130, to BH); the zone is
        // in `ri` (3 digits), no message.
        Format::ContactId => {
            EXPECTED.iter().map(|s| if *s == "BR03" { "BH".to_owned() } else { s[..2].to_owned() }).collect()
        }
    };
    assert_eq!(codes(&events), expected, "{events:#?}");
    for e in &events {
        assert_eq!(e.account.as_deref(), Some(ACCOUNT));
        assert_eq!(e.encrypted, key.is_some(), "{e:?}");
    }
    if format == Format::ContactId {
        let burglary = &events[1];
        assert_eq!((burglary.ri.as_deref(), burglary.partition.as_deref()), (Some("003"), Some("01")), "{burglary:?}");
        assert_eq!(burglary.message_type.as_deref(), Some("ADM-CID"));
    } else {
        assert!(events.iter().all(|e| e.ri.as_deref() == Some("1")), "area 1 in ri: {events:?}");
    }
    let sequences: Vec<u32> = events.iter().map(|e| e.sequence.as_deref().unwrap().parse().unwrap()).collect();
    assert_eq!(sequences, (1..=9).collect::<Vec<u32>>(), "one message each, numbered in order");
    sia.stop().await;
    panel.stop().await;
}

/// The transmitter subscribes with a persistent session; a short grace for the SUBACK.
async fn wait_until_subscribed(url: &str) {
    let mut probe = Probe::connect(url, "sia-test-availability").await.unwrap();
    let topic = Topics::new("home").name(&Topic::Availability("sia-transmitter".into()));
    probe.subscribe(&topic).await.unwrap();
    probe.expect(&topic, |p| p == b"online", WITHIN).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn plain_sia_dcs_over_tcp(url: String) {
    run_scenarios(&url, SiaTransport::Tcp, Format::SiaDcs, None).await;
}
on_both_brokers!(the_scenarios_reach_pysiaalarm_as_sia_dcs, super::plain_sia_dcs_over_tcp);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_128_sia_dcs_over_tcp() {
    testkit::on_mosquitto(|url| async move {
        run_scenarios(&url, SiaTransport::Tcp, Format::SiaDcs, Some("0123456789ABCDEF")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_256_contact_id_over_udp() {
    testkit::on_mosquitto(|url| async move {
        run_scenarios(&url, SiaTransport::Udp, Format::ContactId, Some("0123456789ABCDEF0123456789ABCDEF")).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Outages: the panel's events published as the panel does, without a panel.

/// A panel event with an id, as the panel publishes it.
async fn publish_event(
    probe: &mut Probe,
    id: &str,
    kind: protocol::PanelEventKind,
    sensors: &[&str],
    user: Option<&str>,
) {
    let event = protocol::PanelEvent {
        event: kind,
        id: Some(id.into()),
        mode: None,
        user: user.map(str::to_owned),
        sensors: sensors.iter().map(|s| (*s).to_owned()).collect(),
        reason: None,
        cause: None,
        message: format!("{} (test)", kind.as_str()),
        area: None,
        device_id: "security-controller".into(),
        ts: Timestamp::now(),
    };
    probe.publish(&Topics::new("home").name(&Topic::PanelEvents), event.encode(), false).await.unwrap();
}

/// pysiaalarm on a port of its own, stopped: the centre is down.
fn receiver_down() -> SiaReceiver {
    let mut receiver = SiaReceiver::start(SiaTransport::Tcp, ACCOUNT, None).unwrap();
    receiver.stop();
    receiver
}

/// Where the panel's events come from in these tests.
async fn the_panel(url: &str) -> Probe {
    Probe::connect(url, "sia-test-panel").await.unwrap()
}

/// Waits for `n` events at the receiver, then a little longer to see that no more come.
async fn exactly(receiver: &SiaReceiver, n: usize, within: Duration) -> Vec<SiaEvent> {
    let deadline = tokio::time::Instant::now() + within;
    while receiver.events().len() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Proving that nothing more arrives: the one fixed wait, two retry periods.
    tokio::time::sleep(Duration::from_secs(4)).await;
    receiver.events()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_30_s_gets_the_queued_reports_once() {
    if !testkit::pysiaalarm_or_skip() {
        return;
    }
    testkit::on_mosquitto(|url| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut receiver = receiver_down();
        let config = transmitter(&url, dir.path(), vec![tcp(receiver.address())]);
        let sia = Running::spawn(|s| sia_transmitter::run(config, s));
        wait_until_subscribed(&url).await;
        let mut probe = the_panel(&url).await;
        use protocol::PanelEventKind as K;
        publish_event(&mut probe, "run-1", K::Triggered, &["front-door"], None).await;
        publish_event(&mut probe, "run-2", K::Duress, &[], Some("alice-duress")).await;
        publish_event(&mut probe, "run-3", K::AlarmEnded, &["front-door"], None).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        receiver.resume().unwrap();
        let events = exactly(&receiver, 3, REPORTED).await;
        assert_eq!(codes(&events), ["BA03", "HA09", "BR03"], "{events:#?}");
        let sequences: Vec<&str> = events.iter().map(|e| e.sequence.as_deref().unwrap()).collect();
        assert_eq!(sequences, ["0001", "0002", "0003"]);
        sia.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_of_the_transmitter_loses_and_repeats_nothing() {
    if !testkit::pysiaalarm_or_skip() {
        return;
    }
    testkit::on_mosquitto(|url| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut receiver = receiver_down();
        let config = transmitter(&url, dir.path(), vec![tcp(receiver.address())]);
        let config_file = dir.path().join("sia-transmitter.toml");
        std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
        let start = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sia-transmitter"))
                .arg("--config")
                .arg(&config_file)
                .spawn()
                .map(testkit::Spawned)
                .unwrap()
        };
        let mut process = start();
        wait_until_subscribed(&url).await;
        let mut probe = the_panel(&url).await;
        publish_event(&mut probe, "run-1", protocol::PanelEventKind::Triggered, &["front-door"], None).await;
        // Accepted: in the queue file (and so acknowledged to the broker).
        let queue = sia_transmitter::queue::QueueFile::new(&config.queue_file);
        let deadline = tokio::time::Instant::now() + WITHIN;
        while queue.load().map_or(true, |q| q.pending.is_empty()) {
            assert!(tokio::time::Instant::now() < deadline, "the report never reached the queue file");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process.kill().unwrap(); // SIGKILL
        process.wait().unwrap();
        // While it is dead: the broker keeps this one in the transmitter's session.
        publish_event(&mut probe, "run-2", protocol::PanelEventKind::Duress, &[], Some("alice-duress")).await;
        receiver.resume().unwrap();
        let mut process = start();
        let events = exactly(&receiver, 2, REPORTED).await;
        assert_eq!(codes(&events), ["BA03", "HA09"], "{events:#?}");
        let _ = process.kill();
        let _ = process.wait();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_refuses_sends_the_reports_to_the_backup() {
    if !testkit::pysiaalarm_or_skip() {
        return;
    }
    testkit::on_mosquitto(|url| async move {
        let dir = tempfile::tempdir().unwrap();
        let backup = SiaReceiver::start(SiaTransport::Tcp, ACCOUNT, None).unwrap();
        let refusing = format!("127.0.0.1:{}", testkit::free_port());
        let config = transmitter(&url, dir.path(), vec![tcp(refusing), tcp(backup.address())]);
        let sia = Running::spawn(|s| sia_transmitter::run(config, s));
        wait_until_subscribed(&url).await;
        let mut probe = the_panel(&url).await;
        publish_event(&mut probe, "run-1", protocol::PanelEventKind::Triggered, &["front-door"], None).await;
        let events = exactly(&backup, 1, REPORTED).await;
        assert_eq!(codes(&events), ["BA03"]);
        sia.stop().await;
    })
    .await;
}

/// A receiver written here to misbehave: garbage, then a NAK, then ACKs; it records the sequence
/// number of every message.
async fn misbehaving_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut buf = vec![0u8; 1024];
            let len = socket.read(&mut buf).await.unwrap_or(0);
            let message = String::from_utf8_lossy(&buf[..len]).to_string();
            let seq = message.split('"').nth(2).map(|rest| rest[..4].to_owned()).unwrap_or_default();
            log.lock().unwrap().push(seq.clone());
            let answer = match n {
                0 => b"\x00\xffgarbage\r".to_vec(),
                1 => frame_answer("\"NAK\"0000R0L0A0[]"),
                _ => frame_answer(&format!("\"ACK\"{seq}L0#{ACCOUNT}[]")),
            };
            let _ = socket.write_all(&answer).await;
        }
    });
    (address, seen)
}

fn frame_answer(message: &str) -> Vec<u8> {
    let crc = sia_transmitter::dc09::crc16(message.as_bytes());
    format!("\n{crc:04X}{:04X}{message}\r", message.len()).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_nak_are_retried_until_the_report_is_taken_once() {
    testkit::on_mosquitto(|url| async move {
        let dir = tempfile::tempdir().unwrap();
        let (address, seen) = misbehaving_receiver().await;
        let config = transmitter(&url, dir.path(), vec![tcp(address)]);
        let sia = Running::spawn(|s| sia_transmitter::run(config, s));
        wait_until_subscribed(&url).await;
        let mut probe = the_panel(&url).await;
        publish_event(&mut probe, "run-1", protocol::PanelEventKind::Triggered, &["front-door"], None).await;
        publish_event(&mut probe, "run-2", protocol::PanelEventKind::Lockout, &[], None).await;
        let deadline = tokio::time::Instant::now() + REPORTED;
        while seen.lock().unwrap().len() < 4 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(*seen.lock().unwrap(), ["0001", "0001", "0001", "0002"], "the first until taken, then the next");
        sia.stop().await;
    })
    .await;
}
