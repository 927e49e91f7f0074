//! The control CLI: `mqtt-home arm|disarm|watch|set|light|forget`, for people at a terminal
//! (`status`, the whole home at a glance, is `status.rs` in the binary, on this module's [`Session`]).
//!
//! It connects like any daemon (same flags, same credentials) but leaves nothing behind: a clean
//! session and no availability or announce message. A PIN comes from `MQTT_HOME_PIN` or a prompt
//! that does not echo; it is never printed.

use std::time::Duration;

use anyhow::{Context, bail};
use device_runtime::{DeviceSpec, Inbound, Link, MqttConfig, Publisher, Shutdown};
use protocol::{
    ArmMode, DeviceKind, HealthState, LightCommand, Message, PanelAction, PanelCommand, PanelStatus, Payload, Qos,
    SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics, clip,
};

/// How long a command waits for the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A short-lived connection for one command.
pub struct Session {
    link: Link,
    shutdown: Shutdown,
    pub topics: Topics,
}

impl Session {
    /// Connects (clean session, no presence) and subscribes to `filters`.
    pub async fn open(config: &MqttConfig, filters: &[String]) -> anyhow::Result<Session> {
        let mut spec = DeviceSpec::new(DeviceKind::ControlCli);
        spec.presence = false;
        spec.persistent_session = false;
        spec.subscriptions = filters.iter().map(|f| (f.clone(), Qos::AtLeastOnce)).collect();
        let shutdown = Shutdown::new();
        let mut link = Link::start(config, spec, shutdown.clone())?;
        if !link.connected(CONNECT_TIMEOUT).await {
            shutdown.trigger();
            link.finish().await;
            bail!("could not connect to {} within {CONNECT_TIMEOUT:?} (check --broker and credentials)", config.broker);
        }
        Ok(Session { topics: Topics::new(&config.topic_root), link, shutdown })
    }

    pub fn publisher(&self) -> &Publisher {
        &self.link.publisher
    }

    /// The next message, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.link.inbox.recv()).await {
                Ok(Some(Inbound::Message { topic, payload, .. })) => return Some((topic, payload)),
                Ok(Some(Inbound::Connected { .. } | Inbound::Oversized { .. } | Inbound::Disconnected)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Disconnects after everything published has been acknowledged.
    pub async fn close(self) {
        self.shutdown.trigger();
        self.link.finish().await;
    }
}

/// Takes `device` out of the home: lists what the broker holds retained for it (its sensor
/// readings, light state and command, availability, announce and health, and every Home Assistant
/// discovery config it published), clears each with a zero-length retained publish (how MQTT
/// clears a topic; Home Assistant removes the entities), then reads back and fails naming any
/// that remain.
pub async fn forget(config: &MqttConfig, device: &str) -> anyhow::Result<()> {
    protocol::validate_id(device).map_err(|e| anyhow::anyhow!("`{device}` is not a device id: {e}"))?;
    let home = Topics::new(&config.topic_root);
    let mut filters = vec![protocol::discovery::device_filter(&config.ha_discovery_prefix, &home, device)];
    let mut topics: Vec<Topic> =
        SensorKind::ALL.iter().map(|kind| Topic::Sensor { kind: *kind, id: device.to_owned() }).collect();
    topics.extend([
        Topic::LightState(device.to_owned()),
        Topic::LightSet(device.to_owned()),
        Topic::Availability(device.to_owned()),
        Topic::Announce(device.to_owned()),
        Topic::Health(device.to_owned()),
        Topic::Condition(device.to_owned()),
    ]);
    filters.extend(topics.iter().map(|topic| home.name(topic)));
    let held = retained(config, &filters).await?;
    if held.is_empty() {
        println!("{device}: the broker holds nothing retained for it");
        return Ok(());
    }
    let session = Session::open(config, &[]).await?;
    for name in &held {
        session.publisher().send_bytes(name, Vec::new(), protocol::Qos::AtLeastOnce, true).await?;
    }
    // Returns once the broker has acknowledged every clear.
    session.close().await;
    let discovery = held.iter().filter(|t| t.starts_with(&format!("{}/", config.ha_discovery_prefix))).count();
    println!(
        "forgot {device}: cleared {} retained topics, {discovery} of them Home Assistant discovery configs",
        held.len()
    );
    for name in &held {
        println!("  {name}");
    }
    // Read back: what a newcomer would be told now.
    let left = retained(config, &filters).await?;
    if !left.is_empty() {
        anyhow::bail!(
            "{} retained topics of {device} are still there: {} (is {device} still running? stop it first, or it publishes itself back)",
            left.len(),
            left.join(", ")
        );
    }
    Ok(())
}

/// The topics matching `filters` on which the broker holds a retained message (it sends them
/// right after the subscription).
async fn retained(config: &MqttConfig, filters: &[String]) -> anyhow::Result<Vec<String>> {
    let mut session = Session::open(config, filters).await?;
    let mut names = Vec::new();
    while let Some((topic, payload)) = session.next(Duration::from_millis(500)).await {
        if !payload.is_empty() && !names.contains(&topic) {
            names.push(topic);
        }
    }
    session.close().await;
    Ok(names)
}

/// The PIN, from `MQTT_HOME_PIN` or a prompt that does not echo.
pub fn read_pin() -> anyhow::Result<String> {
    if let Ok(pin) = std::env::var("MQTT_HOME_PIN") {
        return Ok(pin);
    }
    rpassword::prompt_password("PIN: ").context("cannot read the PIN (set MQTT_HOME_PIN when there is no terminal)")
}

/// Sends a panel command and reports the panel's answer (its next status, or a refusal event).
pub async fn panel(config: &MqttConfig, action: PanelAction, code: Option<String>, force: bool) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topic_root);
    let filters = [topics.name(&Topic::PanelEvents), topics.name(&Topic::PanelStatus)];
    let mut session = Session::open(config, &filters).await?;
    // The retained status arrives first; the answer is what comes after the command.
    let status_topic = topics.name(&Topic::PanelStatus);
    while let Some((topic, _)) = session.next(Duration::from_millis(300)).await {
        if topic != status_topic {
            continue;
        }
    }
    let command = PanelCommand { action, code, force };
    session.publisher().send(&Topic::PanelSet, &command).await?;
    println!("sent {}{}", action.as_str(), if force { " (force)" } else { "" });
    let mut outcome = Ok(());
    while let Some((topic, payload)) = session.next(Duration::from_secs(3)).await {
        match Message::decode(&topics, &topic, &payload) {
            Ok(Message::PanelEvent(event)) => {
                println!("event: {} — {}", event.event.as_str(), event.message);
                use protocol::PanelEventKind::*;
                if matches!(event.event, FailedToArm | WrongCode | Lockout | CodeRefused) {
                    outcome = Err(anyhow::anyhow!("the panel refused: {}", event.message));
                    break;
                }
            }
            Ok(Message::PanelStatus(status)) => {
                println!("{}", describe_status(&status));
                break;
            }
            _ => {}
        }
    }
    session.close().await;
    outcome
}

pub fn arm_action(mode: ArmMode) -> PanelAction {
    match mode {
        ArmMode::Away => PanelAction::ArmAway,
        ArmMode::Home => PanelAction::ArmHome,
        ArmMode::Night => PanelAction::ArmNight,
    }
}

/// The panel's status on one line, as `arm`, `disarm` and `watch` print it.
pub fn describe_status(s: &PanelStatus) -> String {
    let mut line = format!("panel: {}", s.state);
    if !s.ready {
        line.push_str(" (not ready)");
    }
    if let Some(d) = s.delay_remaining_s {
        line.push_str(&format!(", {d} s left"));
    }
    let lists =
        [("open", &s.open_sensors), ("bypassed", &s.bypassed), ("trouble", &s.troubles), ("warning", &s.warnings)];
    for (label, list) in lists {
        if !list.is_empty() {
            line.push_str(&format!(", {label}: {}", list.join(" ")));
        }
    }
    if let Some(t) = &s.last_trigger {
        line.push_str(&format!(", last trigger: {t}"));
    }
    if let Some(l) = s.lockout_remaining_s {
        line.push_str(&format!(", codes locked out for {l} s"));
    }
    if let Some(by) = &s.changed_by {
        line.push_str(&format!(", by {by}"));
    }
    line
}

/// Publishes a sensor reading as if it came from sensor `id` (retained, like the sensor does).
pub async fn set_sensor(config: &MqttConfig, kind: SensorKind, id: &str, state: SensorState) -> anyhow::Result<()> {
    protocol::validate_id(id)?;
    let session = Session::open(config, &[]).await?;
    let reading = SensorReading { state, device_id: id.to_owned(), ts: Timestamp::now() };
    let topic = Topic::Sensor { kind, id: id.to_owned() };
    session.publisher().send(&topic, &reading).await?;
    println!("{} {}", session.topics.name(&topic), state.as_str());
    session.close().await;
    Ok(())
}

/// Sends a manual light command: `40`, `on`, `off`.
pub async fn light(config: &MqttConfig, id: &str, level: &str) -> anyhow::Result<()> {
    protocol::validate_id(id)?;
    let command = LightCommand::decode(level.as_bytes())?;
    let session = Session::open(config, &[]).await?;
    let topic = Topic::LightSet(id.to_owned());
    session.publisher().send(&topic, &command).await?;
    println!("{} {}", session.topics.name(&topic), String::from_utf8_lossy(&command.encode()));
    session.close().await;
    Ok(())
}

/// A live, readable view of the whole home until Ctrl-C.
pub async fn watch(config: &MqttConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topic_root);
    let mut session = Session::open(config, &[topics.everything()]).await?;
    println!("watching {} on {} (Ctrl-C to stop)", topics.everything(), config.broker);
    loop {
        let next = tokio::select! {
            () = shutdown.wait() => break,
            next = session.next(Duration::from_secs(3600)) => next,
        };
        if let Some((topic, payload)) = next {
            println!("{} {}", clock(), describe(&topics, &topic, &payload));
        }
    }
    session.close().await;
    Ok(())
}

fn clock() -> String {
    let t = Timestamp::now().to_string();
    t.get(11..19).unwrap_or(&t).to_owned()
}

/// One message as a person reads it.
pub fn describe(topics: &Topics, topic: &str, payload: &[u8]) -> String {
    let message = match Message::decode(topics, topic, payload) {
        Ok(message) => message,
        Err(e) if e.parsed.is_none() => return format!("{topic} {}", e.clip(120)),
        Err(e) => return format!("{topic} (unreadable) {}", e.clip(120)),
    };
    match message {
        Message::Circadian(r) => format!("sun: {}", r.phase),
        Message::Sensor { kind, id, reading } => format!("{kind} {id}: {}", reading.state.as_str()),
        Message::LightState { id, state } => {
            let level = if state.brightness > 0 { format!("{} %", state.brightness) } else { "off".into() };
            format!("light {id}: {level} ({})", state.source.as_str())
        }
        Message::LightSet { id, .. } => format!("light {id} ← {}", clip(payload, 120)),
        Message::PanelStatus(s) => describe_status(&s),
        Message::AreaStatus { area, status } => format!("area {area}: {}", describe_status(&status)),
        Message::PanelEvent(e) => match &e.area {
            Some(area) => format!("event {} in {area}: {}", e.event.as_str(), e.message),
            None => format!("event {}: {}", e.event.as_str(), e.message),
        },
        Message::PanelSet(_) => "panel ← command (code hidden)".to_owned(),
        Message::AreaSet { area, .. } => format!("area {area} ← command (code hidden)"),
        Message::AlarmState(a) => {
            format!("siren: {}{}", a.state.as_str(), a.reason.map(|r| format!(" ({r})")).unwrap_or_default())
        }
        Message::AlarmControl(_) => format!("siren ← {}", clip(payload, 120)),
        Message::Sound(c) => format!("sound ← {} {}", c.tone().as_str(), c.state.as_str()),
        Message::Availability { id, availability } => format!("{id} is {}", availability.as_str()),
        Message::Announce { id, .. } => format!("{id} announced"),
        Message::Health { id, health } => match health.state {
            HealthState::Ok => format!("{id} health: ok"),
            HealthState::Trouble => format!("{id} health: trouble: {}", health.problems.join("; ")),
        },
        Message::Condition { id, condition } => format!("{id} condition: {}", condition.summary()),
        Message::PanelLeader(l) => format!("{} is the active panel, term {}", l.holder, l.term),
        Message::PanelSnapshot(s) => format!("{}'s state for its standby, term {}", s.holder, s.term),
        Message::Cleared(_) => format!("{topic} cleared"),
    }
}
