//! The recorder against real brokers: what it keeps, what it does with garbage, and that nothing
//! acknowledged is lost when it is killed or its database fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use device_runtime::{Brokers, MqttConfig};
use protocol::{Health, HealthState, Payload, Timestamp, Topic, Topics};
use store::classify::Kind;
use store::{Query, Row, Store};
use testkit::{Probe, Running, WITHIN};

fn config(url: &str, database: &Path) -> recorder::Config {
    let mut mqtt = MqttConfig::with_id("recorder");
    mqtt.broker = url.parse::<Brokers>().unwrap();
    recorder::Config { mqtt, database: database.to_owned(), ..recorder::Config::default() }
}

/// Waits (with a deadline, checking the file after each short pause) until `done` holds for the
/// rows of the log, and returns them.
async fn rows_until(database: &Path, what: &str, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let deadline = tokio::time::Instant::now() + WITHIN * 3;
    loop {
        let rows =
            Store::open_read_only(database).and_then(|store| store.history(&Query::default())).unwrap_or_default();
        if done(&rows) {
            return rows;
        }
        if tokio::time::Instant::now() > deadline {
            let last: Vec<&str> = rows.iter().rev().take(10).map(|r| r.summary.as_str()).collect();
            panic!(
                "{what}: not recorded within {:?}; the log holds {} rows, the last: {last:?}",
                WITHIN * 3,
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn event(kind: &str, user: Option<&str>) -> String {
    let user = user.map(|u| format!(r#","user":"{u}""#)).unwrap_or_default();
    format!(r#"{{"event":"{kind}"{user},"device_id":"panel","ts":"{}","message":""}}"#, Timestamp::now())
}

/// The home's messages come back from the log in order, with who did what; garbage on every
/// topic, and a payload over the size limit, are set aside and the recorder goes on.
async fn records_the_home_and_survives_garbage(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("home.db");
    let recorder = Running::spawn({
        let config = config(&url, &database);
        move |shutdown| recorder::run(config, shutdown)
    });
    let topics = Topics::default();
    let mut probe = Probe::connect(&url, "recorder-test").await.unwrap();
    probe.subscribe(&topics.name(&Topic::Availability("recorder".into()))).await.unwrap();
    probe.expect(&topics.name(&Topic::Availability("recorder".into())), |p| p == b"online", WITHIN).await.unwrap();

    let events = topics.name(&Topic::PanelEvents);
    let alarm = topics.name(&Topic::AlarmControl);
    let window = topics.name(&Topic::Sensor { kind: protocol::SensorKind::Window, id: "bedroom".into() });
    probe.publish(&events, event("armed", Some("alice")), false).await.unwrap();
    probe.publish(&window, "OPEN", true).await.unwrap();
    probe.publish(&events, event("triggered", None), false).await.unwrap();
    probe.publish(&alarm, r#"{"state":"ON","reason":"intrusion"}"#, false).await.unwrap();
    // Garbage on every kind of topic, and a payload four times the default limit.
    for topic in [&events, &alarm, &window, &topics.name(&Topic::PanelStatus), &topics.name(&Topic::Circadian)] {
        probe.publish(topic, &b"\xff\xfe{garbage"[..], false).await.unwrap();
    }
    probe.publish(&events, vec![b'x'; 200 * 1024], false).await.unwrap();
    probe.publish(&alarm, "OFF", false).await.unwrap();
    probe.publish(&events, event("disarmed", Some("bob")), false).await.unwrap();

    let rows =
        rows_until(&database, "the whole sequence", |rows| rows.iter().any(|r| r.summary.contains("by bob"))).await;
    let summaries: Vec<&str> =
        rows.iter().map(|r| r.summary.as_str()).filter(|s| !s.starts_with("announced")).collect();
    let expected = [
        "armed by alice",
        "window OPEN",
        "triggered",
        "siren command ON (intrusion)",
        "siren command OFF",
        "disarmed by bob",
    ];
    let kept: Vec<&str> = summaries.iter().copied().filter(|s| !matches!(*s, "online" | "health ok")).collect();
    assert_eq!(kept, expected, "in order, nothing else");
    let disarm = rows.iter().find(|r| r.summary.contains("by bob")).unwrap();
    assert_eq!((disarm.kind.as_str(), disarm.user.as_deref()), (Kind::Panel.as_str(), Some("bob")));
    let (_, unreadable) = Store::open_read_only(&database).unwrap().counts().unwrap();
    assert_eq!(unreadable, 6, "each garbage payload kept raw, and a line for the oversized one");
    recorder.stop().await;
}

testkit::on_both_brokers!(the_home, super::records_the_home_and_survives_garbage);

fn spawn_recorder(url: &str, database: &Path) -> testkit::Spawned {
    Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args(["--broker", url, "--id", "recorder", "--database"])
        .arg(database)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(testkit::Spawned)
        .expect("cannot start the recorder binary")
}

/// `kill -9` in the middle of 10 000 QoS 1 readings: after a restart every reading is in the log
/// exactly once. Readings alternate per sensor, so each is a change of state and must be kept. The
/// readings are pipelined (up to 100 in flight), so the recorder is behind when it is killed:
/// messages read and not yet committed die with it and must come back from the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_flood_it_loses_nothing_and_stores_nothing_twice() {
    const READINGS: usize = 10_000;
    const SENSORS: usize = 100;
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("home.db");
    let topics = Topics::default();
    let mut probe = Probe::connect(&url, "watch").await.unwrap();
    let availability = topics.name(&Topic::Availability("recorder".into()));
    probe.subscribe(&availability).await.unwrap();
    let mut child = spawn_recorder(&url, &database);
    probe.expect(&availability, |p| p == b"online", WITHIN).await.unwrap();

    let flood = tokio::spawn(flood(mosquitto.port(), READINGS, SENSORS));
    let sensor_rows =
        |store: &Store| store.history(&Query { kind: Some(Kind::Sensor), ..Query::default() }).map(|r| r.len());
    let deadline = tokio::time::Instant::now() + WITHIN;
    let killed_at = loop {
        let stored = Store::open_read_only(&database).and_then(|s| sensor_rows(&s)).unwrap_or(0);
        if stored >= 1_000 {
            child.kill().unwrap();
            child.wait().unwrap();
            break Store::open_read_only(&database).and_then(|s| sensor_rows(&s)).unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "the recorder stored nothing of the flood");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child = spawn_recorder(&url, &database);
    flood.await.unwrap();
    let rows = rows_until(&database, "10 000 readings", |rows| {
        rows.iter().filter(|r| r.kind == Kind::Sensor.as_str()).count() >= READINGS
    })
    .await;
    let mut seen = std::collections::HashSet::new();
    let readings: Vec<&Row> = rows.iter().filter(|r| r.kind == Kind::Sensor.as_str()).collect();
    for row in &readings {
        if !seen.insert((&row.topic, &row.payload)) {
            let same: Vec<String> = readings
                .iter()
                .filter(|r| r.topic == row.topic)
                .map(|r| format!("#{} {} dup={}", r.id, r.payload, r.redelivered))
                .collect();
            panic!("stored twice: {} {}; killed at {killed_at}; that topic: {same:#?}", row.topic, row.payload);
        }
    }
    assert_eq!(readings.len(), READINGS);
    assert!(killed_at < READINGS, "the kill came mid-flood ({killed_at} stored by then)");
    eprintln!("killed with {killed_at} readings stored; all {READINGS} stored once after the restart");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Publishes `n` retained QoS 1 door readings over `sensors` sensors, up to 100 in flight, and
/// returns once the broker has acknowledged them all.
async fn flood(port: u16, n: usize, sensors: usize) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
    let mut options = MqttOptions::new("flood", "127.0.0.1", port);
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let topics = Topics::default();
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            let sensor = format!("door-{}", i % sensors);
            let state = if (i / sensors).is_multiple_of(2) { "OPEN" } else { "CLOSED" };
            let payload = format!(r#"{{"state":"{state}","device_id":"{sensor}","ts":"{}"}}"#, Timestamp(i as u64));
            let topic = topics.name(&Topic::Sensor { kind: protocol::SensorKind::Door, id: sensor });
            client.publish(topic, QoS::AtLeastOnce, true, payload).await.unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < n {
        match tokio::time::timeout(WITHIN, eventloop.poll()).await.expect("the flood stalled") {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Outgoing(Outgoing::Publish(_)) | _) => {}
            Err(e) => panic!("the flood's connection failed: {e}"),
        }
    }
    drop(publisher.await.unwrap());
}

/// A database path that is a directory: a retained trouble on the recorder's health, messages
/// kept unacknowledged; once the path is usable, health is ok again and every message is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_it_cannot_open_is_a_trouble_and_nothing_is_lost() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    let database: PathBuf = dir.path().join("home.db");
    std::fs::create_dir(&database).unwrap();
    let topics = Topics::default();
    let health = topics.name(&Topic::Health("recorder".into()));
    let availability = topics.name(&Topic::Availability("recorder".into()));
    let mut probe = Probe::connect(&url, "db-trouble").await.unwrap();
    probe.subscribe(&health).await.unwrap();
    probe.subscribe(&availability).await.unwrap();
    let recorder = Running::spawn({
        let config = config(&url, &database);
        move |shutdown| recorder::run(config, shutdown)
    });
    let trouble = probe
        .expect(&health, |p| Health::decode(p).is_ok_and(|h| h.state == HealthState::Trouble), WITHIN)
        .await
        .unwrap();
    let trouble = Health::decode(&trouble).unwrap();
    assert!(trouble.problems[0].contains(&database.display().to_string()), "{:?}", trouble.problems);
    // The trouble is found at start, before the first connect, so it may reach the broker ahead of
    // the recorder's subscriptions; `online` comes after them. A command published before them is
    // not the recorder's to keep (a new session): publish once it hears its topics.
    probe.expect(&availability, |p| p == b"online", WITHIN).await.unwrap();

    let alarm = topics.name(&Topic::AlarmControl);
    for _ in 0..20 {
        probe.publish(&alarm, "ON", false).await.unwrap();
    }
    std::fs::remove_dir(&database).unwrap();
    let after = probe.count(&health);
    probe
        .expect_after(after, &health, |p| Health::decode(p).is_ok_and(|h| h.state == HealthState::Ok), WITHIN)
        .await
        .unwrap();
    let rows = rows_until(&database, "the 20 commands sent during the trouble", |rows| {
        rows.iter().filter(|r| r.summary == "siren command ON").count() >= 20
    })
    .await;
    // Twenty, or more where a copy came again after a reconnect: each extra one flagged as such.
    let commands: Vec<_> = rows.iter().filter(|r| r.summary == "siren command ON").collect();
    let flagged = commands.iter().filter(|r| r.redelivered).count();
    assert!(commands.len() - 20 <= flagged, "{} commands stored, {flagged} flagged redelivered", commands.len());
    recorder.stop().await;
}

/// Two recorders in one `share_group` on Mosquitto split the home's messages: each reading is
/// recorded once, by one of them, and both take a share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_recorders_in_a_share_group_record_each_message_once() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    let mut probe = Probe::connect(&url, "watch-shared").await.unwrap();
    probe.subscribe("home/devices/+/availability").await.unwrap();
    let mut recorders = Vec::new();
    let mut databases = Vec::new();
    for id in ["recorder-a", "recorder-b"] {
        let database = dir.path().join(format!("{id}.db"));
        let mut config = config(&url, &database);
        config.mqtt.id = id.into();
        config.share_group = Some("recorders".into());
        recorders.push(Running::spawn(move |shutdown| recorder::run(config, shutdown)));
        probe.expect(&format!("home/devices/{id}/availability"), |p| p == b"online", WITHIN).await.unwrap();
        databases.push(database);
    }
    const READINGS: usize = 200;
    for i in 0..READINGS {
        let payload =
            format!(r#"{{"state":"CLOSED","device_id":"shared-{i}","ts":"{}"}}"#, Timestamp(1_000 + i as u64));
        probe.publish(&format!("home/security/window/shared-{i}"), payload, false).await.unwrap();
    }
    let devices = |database: &Path| -> Vec<String> {
        Store::open_read_only(database)
            .and_then(|s| s.history(&Query { kind: Some(Kind::Sensor), ..Query::default() }))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| row.device.filter(|d| d.starts_with("shared-")))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + WITHIN * 3;
    let (a, b) = loop {
        let (a, b) = (devices(&databases[0]), devices(&databases[1]));
        if a.len() + b.len() >= READINGS || tokio::time::Instant::now() > deadline {
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("shared: recorder-a recorded {}, recorder-b {}", a.len(), b.len());
    let all: std::collections::HashSet<&String> = a.iter().chain(&b).collect();
    assert_eq!(all.len(), READINGS, "not every reading was recorded");
    assert_eq!(a.len() + b.len(), READINGS, "a reading was recorded twice");
    assert!(!a.is_empty() && !b.is_empty(), "one recorder took everything: {} / {}", a.len(), b.len());
    for recorder in recorders {
        recorder.stop().await;
    }
}
