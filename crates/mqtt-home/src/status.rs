//! `mqtt-home status`: the home at a glance, as a dashboard's first screen shows it.
//!
//! The home's state is what its daemons keep retained, so a status is one subscription to the
//! whole topic root, read until the broker's retained burst is over (a short quiet spell after the
//! last message, bounded overall because a live home never goes quiet for long). What arrives is
//! sorted into a [`Snapshot`] by topic; commands and events are not state and are left out.
//!
//! Gathering is the edge; [`render`] and [`to_json`] are pure functions of the snapshot and `now`,
//! tested without a broker. A payload that does not decode for its topic is shown as unreadable,
//! with the reason, in its place: one bad retained message must not hide the rest of the home.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use device_runtime::MqttConfig;
use mqtt_home::ctl::Session;
use protocol::{
    AlarmState, Announce, Availability, CircadianReading, DecodeError, Health, HealthState, LightState, PanelState,
    PanelStatus, Payload, Power, SensorKind, SensorReading, Timestamp, Topic, Topics,
};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// How long to wait for the first retained message: an empty home, or a wrong topic root, says
/// nothing at all.
const FIRST_WAIT: Duration = Duration::from_secs(2);
/// The retained burst is over after this long without a message.
const QUIET: Duration = Duration::from_millis(300);
/// ...or at the latest this long after connecting, however busy the home is.
const LIMIT: Duration = Duration::from_secs(3);

/// The width of the section labels (`sensors`, `devices`) on the left.
const LABEL: usize = 9;

/// Prints the home's status: aligned text for people, or one JSON document for scripts.
pub async fn status(config: &MqttConfig, json: bool, database: &Path) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topic_root);
    let mut snapshot = gather(config, &topics).await?;
    // Without a recorder (or its file) the offline devices just say `offline`.
    if let Ok(went_offline) = store::Store::open_read_only(database).and_then(|s| s.went_offline()) {
        snapshot.went_offline = went_offline.into_iter().collect();
    }
    if snapshot.is_empty() {
        bail!(
            "nothing retained under {} on {}: is the home running, and is --topic-root right?",
            topics.everything(),
            config.broker
        );
    }
    let now = Timestamp::now();
    let mut out = if json { serde_json::to_string_pretty(&to_json(&snapshot, now))? } else { render(&snapshot, now) };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        // A reader that has seen enough (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(()),
    }
}

/// Subscribes to everything under the topic root and keeps the state topics until the retained
/// burst is over.
async fn gather(config: &MqttConfig, topics: &Topics) -> anyhow::Result<Snapshot> {
    let mut session = Session::open(config, &[topics.everything()]).await?;
    let limit = tokio::time::Instant::now() + LIMIT;
    let mut snapshot = Snapshot::default();
    let mut wait = FIRST_WAIT;
    loop {
        let left = limit.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let Some((topic, payload)) = session.next(wait.min(left)).await else { break };
        snapshot.take(topics, &topic, &payload);
        wait = QUIET;
    }
    session.close().await;
    Ok(snapshot)
}

/// A retained payload that does not decode for its topic: shown, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What was wrong, as the protocol crate says it.
    pub error: String,
    /// The start of the payload, as text.
    pub payload: String,
}

/// A decoded payload, or why it could not be decoded.
pub type Read<T> = Result<T, Unreadable>;

/// What the broker holds retained for one home, sorted by topic.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub panel: Option<Read<PanelStatus>>,
    pub sun: Option<Read<CircadianReading>>,
    pub sensors: BTreeMap<(SensorKind, String), Read<SensorReading>>,
    pub lights: BTreeMap<String, Read<LightState>>,
    pub siren: Option<Read<AlarmState>>,
    pub devices: BTreeMap<String, Presence>,
    /// When each device last went offline, from the recorder's database (empty without one).
    pub went_offline: BTreeMap<String, Timestamp>,
    /// Topics under the root that are not part of the contract, with the start of their payload.
    pub foreign: BTreeMap<String, String>,
}

/// What a device says about itself: its announce, its availability (Last Will) and its health.
#[derive(Debug, Default)]
pub struct Presence {
    pub announce: Option<Read<Announce>>,
    pub availability: Option<Read<Availability>>,
    pub health: Option<Read<Health>>,
}

impl Presence {
    fn is_empty(&self) -> bool {
        self.announce.is_none() && self.availability.is_none() && self.health.is_none()
    }
}

impl Snapshot {
    pub fn is_empty(&self) -> bool {
        self.panel.is_none()
            && self.sun.is_none()
            && self.sensors.is_empty()
            && self.lights.is_empty()
            && self.siren.is_none()
            && self.devices.is_empty()
            && self.foreign.is_empty()
    }

    /// Files one message. A zero-length payload clears the topic (how MQTT deletes a retained
    /// message), so a clear that arrives while gathering removes what it clears.
    pub fn take(&mut self, topics: &Topics, topic: &str, payload: &[u8]) {
        let Ok(parsed) = topics.parse(topic) else {
            if payload.is_empty() {
                self.foreign.remove(topic);
            } else {
                self.foreign.insert(topic.to_owned(), clip(payload));
            }
            return;
        };
        let clear = payload.is_empty();
        match parsed {
            Topic::PanelStatus => set(&mut self.panel, clear, || read(PanelStatus::decode(payload), payload)),
            Topic::Circadian => set(&mut self.sun, clear, || read(CircadianReading::decode(payload), payload)),
            Topic::AlarmState => set(&mut self.siren, clear, || read(AlarmState::decode(payload), payload)),
            Topic::Sensor { kind, id } => {
                put(&mut self.sensors, (kind, id), clear, || read(SensorReading::decode_for(kind, payload), payload))
            }
            Topic::LightState(id) => put(&mut self.lights, id, clear, || read(LightState::decode(payload), payload)),
            Topic::Announce(id) => self.presence(id, |p| {
                set(&mut p.announce, clear, || read(Announce::decode(payload), payload));
            }),
            Topic::Availability(id) => self.presence(id, |p| {
                set(&mut p.availability, clear, || read(Availability::decode(payload), payload));
            }),
            Topic::Health(id) => self.presence(id, |p| {
                set(&mut p.health, clear, || read(Health::decode(payload), payload));
            }),
            // Commands and events are not state.
            Topic::LightSet(_) | Topic::PanelSet | Topic::PanelEvents | Topic::AlarmControl => {}
        }
    }

    fn presence(&mut self, id: String, change: impl FnOnce(&mut Presence)) {
        let presence = self.devices.entry(id.clone()).or_default();
        change(presence);
        if presence.is_empty() {
            self.devices.remove(&id);
        }
    }
}

fn set<T>(slot: &mut Option<Read<T>>, clear: bool, value: impl FnOnce() -> Read<T>) {
    *slot = if clear { None } else { Some(value()) };
}

fn put<K: Ord, T>(map: &mut BTreeMap<K, Read<T>>, key: K, clear: bool, value: impl FnOnce() -> Read<T>) {
    if clear {
        map.remove(&key);
    } else {
        map.insert(key, value());
    }
}

fn read<T>(decoded: Result<T, DecodeError>, payload: &[u8]) -> Read<T> {
    decoded.map_err(|e| Unreadable { error: e.to_string(), payload: clip(payload) })
}

/// At most 60 characters of an untrusted payload, as printable text.
fn clip(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let mut out: String = text.chars().take(60).map(|c| if c.is_control() { '�' } else { c }).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// One device as both views show it.
struct DeviceView<'a> {
    id: &'a str,
    kind: Option<String>,
    version: Option<&'a str>,
    availability: Option<Availability>,
    /// Online: the announce's time (a daemon announces on every connect). Offline: when the
    /// recorder saw it go (the availability message carries no time of its own).
    since: Option<Timestamp>,
    health: Option<&'a Health>,
    /// Which of its topics were unreadable, and why.
    unreadable: Vec<(&'static str, &'a Unreadable)>,
}

impl<'a> DeviceView<'a> {
    fn new(id: &'a str, p: &'a Presence, went_offline: Option<Timestamp>) -> DeviceView<'a> {
        let announce = p.announce.as_ref().and_then(|a| a.as_ref().ok());
        let availability = p.availability.as_ref().and_then(|a| a.as_ref().ok().copied());
        let since = match availability {
            Some(Availability::Online) => announce.map(|a| a.ts),
            Some(Availability::Offline) => went_offline,
            None => None,
        };
        let unreadable = [
            ("announce", p.announce.as_ref().and_then(|a| a.as_ref().err())),
            ("availability", p.availability.as_ref().and_then(|a| a.as_ref().err())),
            ("health", p.health.as_ref().and_then(|h| h.as_ref().err())),
        ]
        .into_iter()
        .filter_map(|(what, e)| e.map(|e| (what, e)))
        .collect();
        DeviceView {
            id,
            // Through serde, so a kind added to the contract needs no change here.
            kind: announce.and_then(|a| serde_json::to_value(a.kind).ok()?.as_str().map(str::to_owned)),
            version: announce.map(|a| a.version.as_str()),
            availability,
            since,
            health: p.health.as_ref().and_then(|h| h.as_ref().ok()),
            unreadable,
        }
    }

    /// Offline devices first (they are what a person looks for), then unknown, then online.
    fn rank(&self) -> u8 {
        match self.availability {
            Some(Availability::Offline) => 0,
            None => 1,
            Some(Availability::Online) => 2,
        }
    }
}

fn devices(snapshot: &Snapshot) -> Vec<DeviceView<'_>> {
    let mut views: Vec<DeviceView<'_>> =
        snapshot.devices.iter().map(|(id, p)| DeviceView::new(id, p, snapshot.went_offline.get(id).copied())).collect();
    views.sort_by_key(|v| (v.rank(), v.id));
    views
}

/// The summary for people: one aligned section per part of the home.
pub fn render(snapshot: &Snapshot, now: Timestamp) -> String {
    let mut sections: Vec<(&str, Vec<String>)> = Vec::new();

    let panel = match &snapshot.panel {
        None => vec!["no status (is the security-controller running?)".to_owned()],
        Some(Err(e)) => vec![unreadable(e)],
        Some(Ok(s)) => panel_lines(s, now),
    };
    sections.push(("panel", panel));
    if let Some(sun) = &snapshot.sun {
        let line = match sun {
            Err(e) => unreadable(e),
            Ok(r) => match r.elevation_deg {
                Some(deg) => format!("{}, {deg:.1}° above the horizon, {}", r.phase, ago(r.ts, now)),
                None => format!("{}, {}", r.phase, ago(r.ts, now)),
            },
        };
        sections.push(("sun", vec![line]));
    }

    let sensors = snapshot
        .sensors
        .iter()
        .map(|((kind, id), reading)| match reading {
            Ok(r) => vec![kind.to_string(), id.clone(), r.state.as_str().to_owned(), ago(r.ts, now)],
            Err(e) => vec![kind.to_string(), id.clone(), unreadable(e)],
        })
        .collect();
    sections.push(("sensors", or_none(table(sensors))));

    let lights = snapshot
        .lights
        .iter()
        .map(|(id, light)| match light {
            Ok(l) => {
                let on = l.state == Power::On;
                let flash = if l.effect == Some(protocol::Effect::Flash) { " flash" } else { "" };
                vec![
                    id.clone(),
                    format!("{}{flash}", l.state.as_str()),
                    if on { format!("{} %", l.brightness) } else { String::new() },
                    l.color_temp_k.filter(|_| on).map(|k| format!("{k} K")).unwrap_or_default(),
                    l.source.as_str().to_owned(),
                    ago(l.ts, now),
                ]
            }
            Err(e) => vec![id.clone(), unreadable(e)],
        })
        .collect();
    sections.push(("lights", or_none(table(lights))));

    let siren = match &snapshot.siren {
        None => "no state (is the alarm-actuator running?)".to_owned(),
        Some(Err(e)) => unreadable(e),
        Some(Ok(a)) => {
            let reason = a.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!("{} since {}{reason}", a.state.as_str(), ago(a.since, now))
        }
    };
    sections.push(("siren", vec![siren]));

    let devices = devices(snapshot)
        .iter()
        .map(|d| {
            let mut state = match (d.availability, d.since) {
                (Some(a), Some(since)) => format!("{} since {}", a.as_str(), ago(since, now)),
                (Some(a), None) => a.as_str().to_owned(),
                (None, _) => "availability unknown".to_owned(),
            };
            if let Some(h) = d.health.filter(|h| h.state == HealthState::Trouble) {
                state.push_str(&format!(", trouble: {}", h.problems.join("; ")));
            }
            for (what, e) in &d.unreadable {
                state.push_str(&format!(", {what} {}", unreadable(e)));
            }
            vec![d.id.to_owned(), d.kind.clone().unwrap_or_else(|| "?".to_owned()), state]
        })
        .collect();
    sections.push(("devices", or_none(table(devices))));

    if !snapshot.foreign.is_empty() {
        let rows = snapshot.foreign.keys().map(|t| vec![t.clone(), "not a topic of the contract".to_owned()]);
        sections.push(("other", table(rows.collect())));
    }

    let mut out = String::new();
    for (i, (label, lines)) in sections.iter().enumerate() {
        // The panel and the sun belong together; every other section is set apart.
        if i > 0 && *label != "sun" {
            out.push('\n');
        }
        for (j, line) in lines.iter().enumerate() {
            let label = if j == 0 { label } else { "" };
            out.push_str(format!("{label:<LABEL$}{line}").trim_end());
            out.push('\n');
        }
    }
    out
}

fn panel_lines(s: &PanelStatus, now: Timestamp) -> Vec<String> {
    let mut first = s.state.to_string();
    if let Some(mode) = s.mode.filter(|m| m.armed_state() != s.state) {
        first.push_str(&format!(" ({mode})"));
    }
    first.push_str(if s.ready { ", ready" } else { ", not ready" });
    let list = |l: &[String]| if l.is_empty() { "none".to_owned() } else { l.join(" ") };
    let second =
        format!("open: {}   bypassed: {}   troubles: {}", list(&s.open_sensors), list(&s.bypassed), list(&s.troubles));
    let mut third = Vec::new();
    if let Some(d) = s.delay_remaining_s {
        let what = match s.state {
            PanelState::Arming => "exit delay",
            PanelState::Pending => "entry delay",
            PanelState::Triggered => "siren",
            _ => "delay",
        };
        third.push(format!("{what}: {d} s left"));
    }
    if let Some(l) = s.lockout_remaining_s {
        third.push(format!("codes locked out: {l} s left"));
    }
    if let Some(t) = &s.last_trigger {
        let when = s.last_trigger_ts.map(|ts| format!(", {}", ago(ts, now))).unwrap_or_default();
        third.push(format!("last trigger: {t}{when}"));
    }
    if let Some(by) = &s.changed_by {
        third.push(format!("changed by: {by}"));
    }
    let mut lines = vec![first, second];
    if !third.is_empty() {
        lines.push(third.join("   "));
    }
    lines
}

fn unreadable(e: &Unreadable) -> String {
    format!("unreadable: {}", e.error)
}

fn or_none(lines: Vec<String>) -> Vec<String> {
    if lines.is_empty() { vec!["none".to_owned()] } else { lines }
}

/// Rows of cells, each column as wide as its widest cell. A row's last cell is free text: it
/// widens no column, so an unreadable reading's long reason does not push the other rows apart.
fn table(rows: Vec<Vec<String>>) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let last = row.len().saturating_sub(1);
            let cells = row
                .iter()
                .enumerate()
                .map(|(i, cell)| if i == last { cell.clone() } else { format!("{cell:<width$}", width = widths[i]) });
            cells.collect::<Vec<_>>().join("  ").trim_end().to_owned()
        })
        .collect()
}

/// How long ago `ts` was, as a person says it; a reading typed by hand (bare `OPEN`) has no time.
fn ago(ts: Timestamp, now: Timestamp) -> String {
    if ts == Timestamp(0) {
        return "time unknown".to_owned();
    }
    let s = now.since(ts).as_secs();
    match s {
        0..5 => "just now".to_owned(),
        5..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Seconds since `ts`, or nothing for a reading without a time.
fn age_s(ts: Timestamp, now: Timestamp) -> Value {
    if ts == Timestamp(0) { Value::Null } else { json!(now.since(ts).as_secs()) }
}

/// The same as [`render`], as one JSON document: each item is its payload as the contract has it,
/// plus where it came from (`kind`, `id`) and `age_s`; an unreadable one is `unreadable` (the
/// reason) and `payload` (its start).
pub fn to_json(snapshot: &Snapshot, now: Timestamp) -> Document<'_> {
    let none = || json!({});
    Document {
        ts: now,
        panel: snapshot.panel.as_ref().map(|p| item(p, |s| s.ts, now, none())),
        sun: snapshot.sun.as_ref().map(|r| item(r, |r| r.ts, now, none())),
        sensors: snapshot
            .sensors
            .iter()
            .map(|((kind, id), r)| item(r, |r| r.ts, now, json!({"kind": kind, "id": id})))
            .collect(),
        lights: snapshot.lights.iter().map(|(id, l)| item(l, |l| l.ts, now, json!({"id": id}))).collect(),
        siren: snapshot.siren.as_ref().map(|a| item(a, |a| a.since, now, none())),
        devices: devices(snapshot)
            .into_iter()
            .map(|d| DeviceJson {
                id: d.id,
                kind: d.kind,
                version: d.version,
                availability: d.availability,
                since: d.since,
                health: d.health,
                unreadable: d
                    .unreadable
                    .iter()
                    .map(|(what, e)| json!({"topic": what, "unreadable": e.error, "payload": e.payload}))
                    .collect(),
            })
            .collect(),
        other_topics: snapshot
            .foreign
            .iter()
            .map(|(topic, payload)| json!({"topic": topic, "payload": payload}))
            .collect(),
    }
}

/// The JSON document, its fields in the order of the summary (a `Value` would sort them).
#[derive(Serialize)]
pub struct Document<'a> {
    ts: Timestamp,
    panel: Option<Value>,
    sun: Option<Value>,
    sensors: Vec<Value>,
    lights: Vec<Value>,
    siren: Option<Value>,
    devices: Vec<DeviceJson<'a>>,
    other_topics: Vec<Value>,
}

/// One device in the JSON document.
#[derive(Serialize)]
pub struct DeviceJson<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: Option<String>,
    version: Option<&'a str>,
    availability: Option<Availability>,
    since: Option<Timestamp>,
    health: Option<&'a Health>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreadable: Vec<Value>,
}

/// `head` (where the item came from), then the payload's fields and its age, or why it is unreadable.
fn item<T: Serialize>(read: &Read<T>, ts: impl Fn(&T) -> Timestamp, now: Timestamp, head: Value) -> Value {
    let mut out = match head {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match read {
        Ok(value) => {
            if let Ok(Value::Object(fields)) = serde_json::to_value(value) {
                out.extend(fields);
            }
            out.insert("age_s".to_owned(), age_s(ts(value), now));
        }
        Err(e) => {
            out.insert("unreadable".to_owned(), json!(e.error));
            out.insert("payload".to_owned(), json!(e.payload));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{ArmMode, DeviceKind, LightSource, SensorState};

    const NOW: Timestamp = Timestamp(1_795_370_645_000);

    fn before(secs: u64) -> Timestamp {
        Timestamp(NOW.0 - secs * 1000)
    }

    fn home() -> Snapshot {
        let t = Topics::default();
        let mut s = Snapshot::default();
        let mut add = |topic: Topic, payload: Vec<u8>| s.take(&t, &t.name(&topic), &payload);
        let status = PanelStatus {
            state: PanelState::Pending,
            mode: Some(ArmMode::Away),
            ready: false,
            open_sensors: vec!["front".into()],
            bypassed: vec![],
            troubles: vec!["bedroom-window".into()],
            delay_remaining_s: Some(6),
            last_trigger: Some("front".into()),
            last_trigger_ts: Some(before(2)),
            changed_by: Some("alice".into()),
            lockout_remaining_s: None,
            device_id: "security-controller".into(),
            ts: before(2),
        };
        add(Topic::PanelStatus, status.encode());
        let door = SensorReading { state: SensorState::Open, device_id: "front".into(), ts: before(180) };
        add(Topic::Sensor { kind: SensorKind::Door, id: "front".into() }, door.encode());
        add(Topic::Sensor { kind: SensorKind::Window, id: "kitchen-window".into() }, b"ajar".to_vec());
        let light = LightState {
            state: Power::On,
            brightness: 40,
            color_temp_k: Some(3000),
            color_mode: None,
            color_temp: None,
            effect: None,
            source: LightSource::Manual,
            device_id: "kitchen".into(),
            ts: before(30),
        };
        add(Topic::LightState("kitchen".into()), light.encode());
        let announce = |id: &str, kind| Announce {
            device_id: id.into(),
            kind,
            capabilities: vec![],
            version: "0.1.0".into(),
            state_topics: vec![],
            command_topics: vec![],
            ts: before(600),
        };
        add(Topic::Announce("kitchen".into()), announce("kitchen", DeviceKind::LightBulb).encode());
        add(Topic::Availability("kitchen".into()), b"online".to_vec());
        add(Topic::Announce("bedroom-window".into()), announce("bedroom-window", DeviceKind::WindowSensor).encode());
        add(Topic::Availability("bedroom-window".into()), b"offline".to_vec());
        s
    }

    #[test]
    fn the_summary_has_every_part_of_the_home_aligned() {
        let text = render(&home(), NOW);
        let expected = "\
panel    pending (away), not ready
         open: front   bypassed: none   troubles: bedroom-window
         entry delay: 6 s left   last trigger: front, just now   changed by: alice

sensors  door    front           OPEN  3 min ago
         window  kitchen-window  unreadable: sensor reading: `ajar` is not JSON or a window state (OPEN/CLOSED, ON/OFF, true/false, 1/0)

lights   kitchen  ON  40 %  3000 K  manual  30 s ago

siren    no state (is the alarm-actuator running?)

devices  bedroom-window  window_sensor  offline
         kitchen         light_bulb     online since 10 min ago
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn the_json_has_the_same_items() {
        let doc = serde_json::to_value(to_json(&home(), NOW)).unwrap();
        assert_eq!(doc["panel"]["state"], "pending");
        assert_eq!(doc["sensors"][0]["id"], "front");
        assert_eq!(doc["sensors"][0]["age_s"], 180);
        assert_eq!(doc["sensors"][1]["payload"], "ajar");
        assert!(doc["sensors"][1]["unreadable"].as_str().unwrap().contains("not JSON"));
        assert_eq!(doc["lights"][0]["brightness"], 40);
        assert_eq!(doc["siren"], Value::Null);
        assert_eq!(doc["devices"][0]["availability"], "offline");
        assert_eq!(doc["devices"][0]["since"], Value::Null);
        assert_eq!(doc["devices"][1]["type"], "light_bulb");
        assert_eq!(doc["devices"][1]["since"], before(600).to_string());
    }

    #[test]
    fn a_cleared_topic_is_gone_and_commands_are_not_state() {
        let t = Topics::default();
        let mut s = home();
        s.take(&t, &t.name(&Topic::Availability("kitchen".into())), b"");
        s.take(&t, &t.name(&Topic::Announce("kitchen".into())), b"");
        s.take(&t, &t.name(&Topic::Sensor { kind: SensorKind::Door, id: "front".into() }), b"");
        s.take(&t, &t.name(&Topic::LightSet("hall".into())), b"ON");
        s.take(&t, &t.name(&Topic::PanelEvents), b"{}");
        assert!(!s.devices.contains_key("kitchen"));
        assert_eq!(s.sensors.len(), 1);
        assert!(!s.lights.contains_key("hall"));
    }

    #[test]
    fn unknown_topics_and_bad_presence_are_shown_not_fatal() {
        let t = Topics::default();
        let mut s = Snapshot::default();
        s.take(&t, "home/garage/door", b"\x00\xffopen");
        s.take(&t, &t.name(&Topic::Availability("ghost".into())), b"maybe");
        s.take(&t, &t.name(&Topic::PanelStatus), br#"{"state":"disarmed"}"#);
        let text = render(&s, NOW);
        assert!(text.contains("panel    unreadable: panel status: missing field `ready`"), "{text}");
        assert!(text.contains("ghost  ?  availability unknown, availability unreadable: availability"), "{text}");
        assert!(text.contains("other    home/garage/door  not a topic of the contract"), "{text}");
        assert_eq!(serde_json::to_value(to_json(&s, NOW)).unwrap()["other_topics"][0]["payload"], "��open");
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(ago(before(0), NOW), "just now");
        assert_eq!(ago(before(42), NOW), "42 s ago");
        assert_eq!(ago(before(3 * 60 + 59), NOW), "3 min ago");
        assert_eq!(ago(before(5 * 3600), NOW), "5 h ago");
        assert_eq!(ago(before(3 * 86_400), NOW), "3 d ago");
        assert_eq!(ago(Timestamp(NOW.0 + 5000), NOW), "just now");
        assert_eq!(ago(Timestamp(0), NOW), "time unknown");
    }

    #[test]
    fn a_long_last_cell_widens_no_column() {
        let rows =
            vec![vec!["a".into(), "a very long reason indeed".into()], vec!["bb".into(), "x".into(), "y".into()]];
        assert_eq!(table(rows), ["a   a very long reason indeed", "bb  x  y"]);
    }
}
