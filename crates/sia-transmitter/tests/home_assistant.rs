//! Home Assistant 2024.1.6's own `sia` integration as the monitoring centre: it listens on a port,
//! the home's transmitter reports to it (encrypted, AES-128), and its alarm panel entity follows
//! the real panel — armed away, triggered, disarmed. Set up through HA's config flow, as a user
//! does it in the UI.

use std::time::Duration;

use device_runtime::{MqttConfig, Secret};
use protocol::{Payload, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics};
use security_controller::codes;
use security_controller::config::{ModeDelays, PanelConfig, SensorConfig, User, Zone};
use serde_json::{Value, json};
use sia_transmitter::send::{Receiver, Transport};
use testkit::{HomeAssistant, Probe, Running, WITHIN};

const ACCOUNT: &str = "AAA123";
const KEY: &str = "0123456789ABCDEF";
const PIN: &str = "1234";
/// From a report's send to HA's state: HA handles the event, then writes the state.
const IN_HA: Duration = Duration::from_secs(30);

/// Adds the `sia` integration through its config flow: one account, encrypted, one zone.
async fn add_sia(ha: &HomeAssistant, port: u16) -> anyhow::Result<()> {
    let flow = ha.post("/api/config/config_entries/flow", json!({ "handler": "sia" })).await?;
    let id = flow["flow_id"].as_str().ok_or_else(|| anyhow::anyhow!("no flow_id in {flow}"))?;
    anyhow::ensure!(flow["step_id"] == "user", "the sia flow did not ask for the hub: {flow}");
    let hub = json!({
        "port": port, "protocol": "TCP", "account": ACCOUNT, "encryption_key": KEY,
        "ping_interval": 1, "zones": 1, "additional_account": false,
    });
    let done = ha.post(&format!("/api/config/config_entries/flow/{id}"), hub).await?;
    anyhow::ensure!(done["type"] == "create_entry", "the sia flow did not create an entry: {done}");
    Ok(())
}

/// The `alarm_control_panel` entity HA made for the account's zone 1.
async fn sia_panel(ha: &HomeAssistant) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let states = ha.states().await?;
        let found = states.iter().find(|s| {
            s["entity_id"].as_str().is_some_and(|id| id.starts_with("alarm_control_panel."))
                && s["attributes"]["friendly_name"].as_str().is_some_and(|n| n.contains(ACCOUNT))
        });
        if let Some(id) = found.and_then(|s| s["entity_id"].as_str()) {
            return Ok(id.to_owned());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no sia alarm panel in {states:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn state_is(want: &'static str) -> impl Fn(&Value) -> bool {
    move |s| s["state"] == want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistants_sia_integration_shows_the_alarm() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let mut ha = HomeAssistant::start(mosquitto.port()).await.unwrap();
    let sia_port = testkit::free_port();
    add_sia(&ha, sia_port).await.unwrap();
    let entity = sia_panel(&ha).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let perimeter = SensorConfig { zone: Some(Zone::Perimeter), supervision_s: None, chime: false };
    let panel = security_controller::Config {
        mqtt: MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id("security-controller") },
        state_file: dir.path().join("panel.state.json"),
        panel: PanelConfig {
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            allow_demo_timings: true,
            users: vec![User::new("alice", codes::hash_pin_with(PIN, codes::test_params()).unwrap())],
            sensors: [("front-door".to_owned(), perimeter)].into(),
            ..PanelConfig::default()
        },
        ..security_controller::Config::default()
    };
    let panel = Running::spawn(|s| security_controller::run(panel, s));
    let transmitter = sia_transmitter::Config {
        mqtt: MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id("sia-transmitter") },
        account: ACCOUNT.into(),
        key: Some(Secret::new(KEY)),
        receivers: vec![Receiver { address: format!("127.0.0.1:{sia_port}"), transport: Transport::Tcp }],
        retry_max_s: 2.0,
        queue_file: dir.path().join("sia.queue.json"),
        zones: [("front-door".to_owned(), 1)].into(),
        users: [("alice".to_owned(), 1)].into(),
        ..sia_transmitter::Config::default()
    };
    let sia = Running::spawn(|s| sia_transmitter::run(transmitter, s));

    let topics = Topics::new("home");
    let mut keypad = Probe::connect(&url, "sia-ha-keypad").await.unwrap();
    keypad.subscribe(&topics.name(&Topic::PanelStatus)).await.unwrap();
    keypad.subscribe(&topics.name(&Topic::Availability("sia-transmitter".into()))).await.unwrap();
    keypad
        .expect(&topics.name(&Topic::Availability("sia-transmitter".into())), |p| p == b"online", WITHIN)
        .await
        .unwrap();
    let door = topics.name(&Topic::Sensor { kind: SensorKind::Door, id: "front-door".into() });
    let reading = |state| SensorReading { state, device_id: "front-door".into(), ts: Timestamp::now() }.encode();
    keypad.publish(&door, reading(SensorState::Closed), true).await.unwrap();

    let set = topics.name(&Topic::PanelSet);
    keypad.publish(&set, format!(r#"{{"action":"ARM_AWAY","code":"{PIN}"}}"#), false).await.unwrap();
    ha.wait_for_state(&entity, state_is("armed_away"), IN_HA).await.unwrap();
    keypad.publish(&door, reading(SensorState::Open), true).await.unwrap();
    let triggered = ha.wait_for_state(&entity, state_is("triggered"), IN_HA).await.unwrap();
    assert_eq!(triggered["attributes"]["last_code"], "BA", "{triggered}");
    keypad.publish(&set, format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#), false).await.unwrap();
    ha.wait_for_state(&entity, state_is("disarmed"), IN_HA).await.unwrap();

    let problems = ha.problems("homeassistant.components.sia");
    assert!(problems.is_empty(), "HA's sia integration complained: {problems:?}");
    sia.stop().await;
    panel.stop().await;
    ha.stop().await.unwrap();
}
