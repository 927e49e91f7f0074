//! `mqtt-home status`: the home at a glance, as a dashboard's first screen shows it.
//!
//! The home's state is what its daemons keep retained, so a status is one subscription to the
//! whole topic root, read until the broker's retained burst is over (a short quiet spell after the
//! last message, bounded overall because a live home never goes quiet for long). What arrives is
//! applied to one [`HomeState`] (the same model the dashboard keeps live); commands and events are
//! not state and are left out.
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
    AlarmState, Availability, CircadianReading, Health, HealthState, Heard, HomeState, Message, PanelState,
    PanelStatus, Power, Presence, Timestamp, Topics, Unreadable,
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

/// How much of an unreadable payload is shown.
const CLIP: usize = 60;

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
        snapshot.home.apply(Message::decode(topics, &topic, &payload), Timestamp::now());
        wait = QUIET;
    }
    session.close().await;
    Ok(snapshot)
}

/// What the status shows: the home as its retained topics tell it, and when each offline device
/// went, from the recorder's database (empty without one).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub home: HomeState,
    pub went_offline: BTreeMap<String, Timestamp>,
}

impl Snapshot {
    pub fn is_empty(&self) -> bool {
        self.home.is_empty()
    }
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
    /// Battery, radio, tamper switch and last seen (battery devices, through the bridge).
    condition: Option<&'a protocol::Condition>,
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
            condition: p.condition.as_ref().and_then(|c| c.as_ref().ok()),
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
    let mut views: Vec<DeviceView<'_>> = snapshot
        .home
        .devices
        .iter()
        .map(|(id, p)| DeviceView::new(id, p, snapshot.went_offline.get(id).copied()))
        .collect();
    views.sort_by_key(|v| (v.rank(), v.id));
    views
}

/// The summary for people: one aligned section per part of the home.
pub fn render(snapshot: &Snapshot, now: Timestamp) -> String {
    let home = &snapshot.home;
    let mut sections: Vec<(&str, Vec<String>)> = Vec::new();
    let panel = match &home.panel {
        None => vec!["no status (is the security-controller running?)".to_owned()],
        Some(Err(e)) => vec![unreadable(e)],
        Some(Ok(s)) => panel_lines(s, now),
    };
    sections.push(("panel", panel));
    if !home.areas.is_empty() {
        sections.push(("areas", area_lines(home, now)));
    }
    if let Some(sun) = &home.sun {
        sections.push(("sun", vec![sun_line(sun, now)]));
    }
    sections.push(("sensors", or_none(table(sensor_rows(home, now)))));
    sections.push(("lights", or_none(table(light_rows(home, now)))));
    sections.push(("siren", vec![siren_line(home.siren.as_ref(), now)]));
    sections.push(("devices", or_none(table(device_rows(snapshot, now)))));
    if !home.foreign.is_empty() {
        let rows = home.foreign.keys().map(|t| vec![t.clone(), "not a topic of the contract".to_owned()]);
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

fn sun_line(sun: &Heard<CircadianReading>, now: Timestamp) -> String {
    match sun {
        Err(e) => unreadable(e),
        Ok(r) => match r.elevation_deg {
            Some(deg) => format!("{}, {deg:.1}° above the horizon, {}", r.phase, ago(r.ts, now)),
            None => format!("{}, {}", r.phase, ago(r.ts, now)),
        },
    }
}

fn sensor_rows(home: &HomeState, now: Timestamp) -> Vec<Vec<String>> {
    home.sensors
        .iter()
        .map(|((kind, id), heard)| match heard {
            Ok(h) => vec![kind.to_string(), id.clone(), h.reading.state.as_str().to_owned(), ago(h.reading.ts, now)],
            Err(e) => vec![kind.to_string(), id.clone(), unreadable(e)],
        })
        .collect()
}

fn light_rows(home: &HomeState, now: Timestamp) -> Vec<Vec<String>> {
    home.lights
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
        .collect()
}

fn siren_line(siren: Option<&Heard<AlarmState>>, now: Timestamp) -> String {
    match siren {
        None => "no state (is the alarm-actuator running?)".to_owned(),
        Some(Err(e)) => unreadable(e),
        Some(Ok(a)) => {
            let reason = a.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            format!("{} since {}{reason}", a.state.as_str(), ago(a.since, now))
        }
    }
}

fn device_rows(snapshot: &Snapshot, now: Timestamp) -> Vec<Vec<String>> {
    devices(snapshot)
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
            if let Some(c) = d.condition {
                state.push_str(&format!(", {}", c.summary()));
            }
            for (what, e) in &d.unreadable {
                state.push_str(&format!(", {what} {}", unreadable(e)));
            }
            vec![d.id.to_owned(), d.kind.clone().unwrap_or_else(|| "?".to_owned()), state]
        })
        .collect()
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
    if !s.warnings.is_empty() {
        third.push(format!("warnings: {}", s.warnings.join("; ")));
    }
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

/// Each area of a panel with several: its name, then its status as the panel's is shown.
fn area_lines(home: &HomeState, now: Timestamp) -> Vec<String> {
    let mut lines = Vec::new();
    for (area, status) in &home.areas {
        match status {
            Ok(s) => {
                let mut area_lines = panel_lines(s, now);
                area_lines[0] = format!("{area}: {}", area_lines[0]);
                lines
                    .extend(area_lines.into_iter().enumerate().map(|(i, l)| if i == 0 { l } else { format!("  {l}") }));
            }
            Err(e) => lines.push(format!("{area}: {}", unreadable(e))),
        }
    }
    lines
}

fn unreadable(e: &Unreadable) -> String {
    format!("unreadable: {}", e.why)
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
    let home = &snapshot.home;
    Document {
        ts: now,
        panel: home.panel.as_ref().map(|p| item(p.as_ref(), |s| s.ts, now, none())),
        areas: home.areas.iter().map(|(area, s)| item(s.as_ref(), |s| s.ts, now, json!({"area": area}))).collect(),
        sun: home.sun.as_ref().map(|r| item(r.as_ref(), |r| r.ts, now, none())),
        sensors: home
            .sensors
            .iter()
            .map(|((kind, id), h)| item(h.as_ref().map(|h| &h.reading), |r| r.ts, now, json!({"kind": kind, "id": id})))
            .collect(),
        lights: home.lights.iter().map(|(id, l)| item(l.as_ref(), |l| l.ts, now, json!({"id": id}))).collect(),
        siren: home.siren.as_ref().map(|a| item(a.as_ref(), |a| a.since, now, none())),
        devices: devices(snapshot)
            .into_iter()
            .map(|d| DeviceJson {
                id: d.id,
                kind: d.kind,
                version: d.version,
                availability: d.availability,
                since: d.since,
                health: d.health,
                condition: d.condition,
                unreadable: d
                    .unreadable
                    .iter()
                    .map(|(what, e)| json!({"topic": what, "unreadable": e.why.to_string(), "payload": e.clip(CLIP)}))
                    .collect(),
            })
            .collect(),
        other_topics: home.foreign.iter().map(|(topic, e)| json!({"topic": topic, "payload": e.clip(CLIP)})).collect(),
    }
}

/// The JSON document, its fields in the order of the summary (a `Value` would sort them).
#[derive(Serialize)]
pub struct Document<'a> {
    ts: Timestamp,
    panel: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    areas: Vec<Value>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<&'a protocol::Condition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreadable: Vec<Value>,
}

/// `head` (where the item came from), then the payload's fields and its age, or why it is unreadable.
fn item<T: Serialize>(
    read: Result<&T, &Unreadable>,
    ts: impl Fn(&T) -> Timestamp,
    now: Timestamp,
    head: Value,
) -> Value {
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
            out.insert("unreadable".to_owned(), json!(e.why.to_string()));
            out.insert("payload".to_owned(), json!(e.clip(CLIP)));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{
        Announce, ArmMode, DeviceKind, LightSource, LightState, Payload, SensorKind, SensorReading, SensorState, Topic,
    };

    fn take(s: &mut Snapshot, topic: &str, payload: &[u8]) {
        s.home.apply(Message::decode(&Topics::default(), topic, payload), NOW);
    }

    const NOW: Timestamp = Timestamp(1_795_370_645_000);

    fn before(secs: u64) -> Timestamp {
        Timestamp(NOW.0 - secs * 1000)
    }

    fn home() -> Snapshot {
        let t = Topics::default();
        let mut s = Snapshot::default();
        let mut add = |topic: Topic, payload: Vec<u8>| take(&mut s, &t.name(&topic), &payload);
        let status = PanelStatus {
            state: PanelState::Pending,
            mode: Some(ArmMode::Away),
            ready: false,
            open_sensors: vec!["front".into()],
            bypassed: vec![],
            troubles: vec!["bedroom-window".into()],
            warnings: vec![],
            delay_remaining_s: Some(6),
            last_trigger: Some("front".into()),
            last_trigger_ts: Some(before(2)),
            changed_by: Some("alice".into()),
            lockout_remaining_s: None,
            area: None,
            areas: Default::default(),
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
        take(&mut s, &t.name(&Topic::Availability("kitchen".into())), b"");
        take(&mut s, &t.name(&Topic::Announce("kitchen".into())), b"");
        take(&mut s, &t.name(&Topic::Sensor { kind: SensorKind::Door, id: "front".into() }), b"");
        take(&mut s, &t.name(&Topic::LightSet("hall".into())), b"ON");
        take(&mut s, &t.name(&Topic::PanelEvents), b"{}");
        assert!(!s.home.devices.contains_key("kitchen"));
        assert_eq!(s.home.sensors.len(), 1);
        assert!(!s.home.lights.contains_key("hall"));
    }

    #[test]
    fn unknown_topics_and_bad_presence_are_shown_not_fatal() {
        let t = Topics::default();
        let mut s = Snapshot::default();
        take(&mut s, "home/garage/door", b"\x00\xffopen");
        take(&mut s, &t.name(&Topic::Availability("ghost".into())), b"maybe");
        take(&mut s, &t.name(&Topic::PanelStatus), br#"{"state":"disarmed"}"#);
        let text = render(&s, NOW);
        assert!(text.contains("panel    unreadable: panel status: missing field `ready`"), "{text}");
        assert!(text.contains("ghost  ?  availability unknown, availability unreadable: availability"), "{text}");
        assert!(text.contains("other    home/garage/door  not a topic of the contract"), "{text}");
        assert_eq!(serde_json::to_value(to_json(&s, NOW)).unwrap()["other_topics"][0]["payload"], "��open");
    }

    #[test]
    fn a_devices_condition_and_each_area_are_shown() {
        let t = Topics::default();
        let mut s = home();
        let condition =
            br#"{"battery":9,"battery_low":true,"linkquality":40,"device_id":"front","ts":"2026-11-22T18:04:05.000Z"}"#;
        take(&mut s, &t.name(&Topic::Condition("front".into())), condition);
        let area = br#"{"state":"armed_away","ready":true,"open_sensors":[],"bypassed":[],"troubles":[],"area":"garage","device_id":"security-controller","ts":"2026-11-22T18:04:05.000Z"}"#;
        take(&mut s, &t.name(&Topic::AreaStatus("garage".into())), area);
        let text = render(&s, NOW);
        assert!(text.contains("battery 9 %, battery low, link quality 40"), "{text}");
        assert!(text.contains("areas    garage: armed_away, ready"), "{text}");
        let doc = serde_json::to_value(to_json(&s, NOW)).unwrap();
        assert_eq!(doc["areas"][0]["area"], "garage");
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
