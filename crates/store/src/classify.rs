//! What a message means for the log: pure, tested without a broker or a database.
//!
//! [`classify`] turns one message (topic, payload, when it was received) into an [`Entry`]: a
//! [`Record`] with its kind, the device it is about, a one-line summary a person reads in
//! `mqtt-home history`, and, for state topics, the state's key; or an [`Unreadable`] that keeps the
//! raw bytes and says why the contract cannot read them. [`Changes`] decides which state messages
//! are changes: a heartbeat that repeats a sensor's state, a retained state delivered again after a
//! reconnect, or a redelivered copy of a state already stored is not a new record.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use protocol::{Message, PanelEvent, PanelStatus, Timestamp, Topic, Topics};

/// What a record is about, as `mqtt-home history --kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The panel's events and its status changes.
    Panel,
    /// Siren commands and the siren's state.
    Alarm,
    /// Door, window and motion readings.
    Sensor,
    /// Light states.
    Light,
    /// The sun's phase.
    Phase,
    /// Devices coming and going: availability, announce, health.
    Availability,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Panel, Kind::Alarm, Kind::Sensor, Kind::Light, Kind::Phase, Kind::Availability];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Panel => "panel",
            Kind::Alarm => "alarm",
            Kind::Sensor => "sensor",
            Kind::Light => "light",
            Kind::Phase => "phase",
            Kind::Availability => "availability",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown kind `{s}`: use one of {}", names.join(", "))
        })
    }
}

/// One message the log keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the recorder received it.
    pub received: Timestamp,
    /// The time the message itself carries, when it carries one.
    pub ts: Option<Timestamp>,
    pub kind: Kind,
    /// The device it is about (a sensor, a light, the panel, a daemon), when there is one.
    pub device: Option<String>,
    /// The user a panel event names (who armed or disarmed).
    pub user: Option<String>,
    pub topic: String,
    /// One line for people, e.g. `armed away by alice`, `OPEN`, `ON 80 % 2700 K (motion)`.
    pub summary: String,
    /// The payload as received (JSON or a bare word), for tools.
    pub payload: String,
    /// For a state topic, what makes two states different (the payload without its times);
    /// `None` for events and commands, each of which is a record of its own.
    pub state_key: Option<String>,
    /// The broker flagged it DUP: it may have been delivered (and stored) before.
    pub redelivered: bool,
}

/// A message on one of the home's topics that the contract cannot read, kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub received: Timestamp,
    pub topic: String,
    pub payload: Vec<u8>,
    /// What was wrong, as the decoder said it.
    pub error: String,
}

/// What one message becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Record(Record),
    Unreadable(Unreadable),
}

/// Reads one message. Never panics; whatever cannot be read is an [`Unreadable`].
pub fn classify(topics: &Topics, topic: &str, payload: &[u8], redelivered: bool, received: Timestamp) -> Entry {
    let message = match Message::decode(topics, topic, payload) {
        Ok(message) => message,
        Err(e) => {
            let error = e.why.to_string();
            return Entry::Unreadable(Unreadable { received, topic: e.topic, payload: e.raw, error });
        }
    };
    let Some(Described { kind, device, ts, summary, user, is_state }) = describe(message) else {
        // Commands to lights and the panel are not subscribed to: the panel's carry PINs.
        let error = "commands are not recorded (the panel's carry PINs)".to_owned();
        return Entry::Unreadable(Unreadable { received, topic: topic.to_owned(), payload: payload.to_vec(), error });
    };
    let text = String::from_utf8_lossy(payload).into_owned();
    Entry::Record(Record {
        received,
        ts,
        kind,
        device,
        user,
        topic: topic.to_owned(),
        summary,
        state_key: is_state.then(|| state_key(&text)),
        payload: text,
        redelivered,
    })
}

/// What a record says about its message.
struct Described {
    kind: Kind,
    device: Option<String>,
    ts: Option<Timestamp>,
    summary: String,
    user: Option<String>,
    is_state: bool,
}

impl Described {
    fn state(kind: Kind, device: Option<&str>, ts: Option<Timestamp>, summary: String) -> Described {
        Described { kind, device: device.map(str::to_owned), ts, summary, user: None, is_state: true }
    }
}

/// The record's kind, device, time and summary; `None` for the commands that are not recorded,
/// and for the active panel's state that its standby reads.
fn describe(message: Message) -> Option<Described> {
    let device = message.device().map(str::to_owned);
    let device = device.as_deref();
    Some(match message {
        // A zero-length retained publish is how MQTT clears a state topic: a record of its own.
        Message::Cleared(topic) => {
            let (kind, device) = kind_of(&topic);
            Described::state(kind, device, None, "cleared".to_owned())
        }
        Message::Sensor { kind, reading, .. } => {
            let ts = (reading.ts != Timestamp(0)).then_some(reading.ts);
            Described::state(Kind::Sensor, device, ts, format!("{kind} {}", reading.state.as_str()))
        }
        Message::LightState { state: s, .. } => {
            let mut summary = format!("{} {} %", s.state.as_str(), s.brightness);
            if let Some(k) = s.color_temp_k {
                summary.push_str(&format!(" {k} K"));
            }
            summary.push_str(&format!(" ({})", s.source.as_str()));
            Described::state(Kind::Light, device, Some(s.ts), summary)
        }
        Message::Circadian(r) => Described::state(Kind::Phase, device, Some(r.ts), r.phase.as_str().to_owned()),
        Message::PanelStatus(s) => Described::state(Kind::Panel, device, Some(s.ts), status_summary(&s)),
        Message::AreaStatus { area, status: s } => {
            Described::state(Kind::Panel, device, Some(s.ts), format!("{area}: {}", status_summary(&s)))
        }
        Message::PanelEvent(e) => Described {
            kind: Kind::Panel,
            device: device.map(str::to_owned),
            ts: Some(e.ts),
            summary: event_summary(&e),
            user: e.user,
            is_state: false,
        },
        Message::AlarmControl(c) => {
            Described { is_state: false, ..Described::state(Kind::Alarm, None, None, siren_command_summary(&c)) }
        }
        Message::PanelLeader(l) => Described::state(Kind::Panel, device, None, leader_summary(&l)),
        Message::AlarmState(s) => {
            let reason = s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            Described::state(Kind::Alarm, device, Some(s.ts), format!("siren {}{reason}", s.state.as_str()))
        }
        Message::Availability { availability, .. } => {
            Described::state(Kind::Availability, device, None, availability.as_str().into())
        }
        Message::Announce { announce: a, .. } => {
            let kind = serde_json::to_value(a.kind).ok().and_then(|v| v.as_str().map(str::to_owned));
            let summary = format!("announced {} {}", kind.unwrap_or_default(), a.version);
            Described::state(Kind::Availability, device, Some(a.ts), summary)
        }
        Message::Health { health: h, .. } => {
            Described::state(Kind::Availability, device, Some(h.ts), health_summary(&h))
        }
        Message::Condition { condition: c, .. } => {
            Described::state(Kind::Availability, device, Some(c.ts), format!("condition: {}", c.summary()))
        }
        Message::LightSet { .. } | Message::PanelSet(_) | Message::AreaSet { .. } => return None,
        Message::Sound(_) | Message::PanelSnapshot(_) => return None,
    })
}

fn leader_summary(l: &protocol::PanelLeader) -> String {
    format!("{} is the active panel, term {}", l.holder, l.term)
}

/// `siren command ON (window open)`, with the tone when it is not the alarm's.
fn siren_command_summary(c: &protocol::AlarmCommand) -> String {
    let reason = c.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    let tone = c.tone.filter(|t| *t != protocol::Tone::Alarm).map(|t| format!(" {}", t.as_str()));
    format!("siren command {}{}{reason}", c.state.as_str(), tone.unwrap_or_default())
}

fn health_summary(h: &protocol::Health) -> String {
    match h.problems.as_slice() {
        [] => "health ok".to_owned(),
        problems => format!("health trouble: {}", problems.join("; ")),
    }
}

fn status_summary(s: &PanelStatus) -> String {
    let mut summary = format!("status {}", s.state.as_str());
    if !s.open_sensors.is_empty() {
        summary.push_str(&format!(", open: {}", s.open_sensors.join(" ")));
    }
    if !s.bypassed.is_empty() {
        summary.push_str(&format!(", bypassed: {}", s.bypassed.join(" ")));
    }
    if !s.troubles.is_empty() {
        summary.push_str(&format!(", troubles: {}", s.troubles.join(" ")));
    }
    summary
}

/// The kind and device a state topic is about, for a cleared (zero-length) state.
fn kind_of(topic: &Topic) -> (Kind, Option<&str>) {
    match topic {
        Topic::Sensor { id, .. } => (Kind::Sensor, Some(id)),
        Topic::LightState(id) | Topic::LightSet(id) => (Kind::Light, Some(id)),
        Topic::Circadian => (Kind::Phase, None),
        Topic::PanelStatus
        | Topic::PanelEvents
        | Topic::PanelSet
        | Topic::AreaSet(_)
        | Topic::AreaStatus(_)
        | Topic::PanelLeader
        | Topic::PanelSnapshot => (Kind::Panel, None),
        Topic::AlarmState | Topic::AlarmControl | Topic::Sound => (Kind::Alarm, None),
        Topic::Availability(id) | Topic::Announce(id) | Topic::Health(id) | Topic::Condition(id) => {
            (Kind::Availability, Some(id))
        }
    }
}

fn event_summary(e: &PanelEvent) -> String {
    // The panel's own message says it best ("alarm triggered by kitchen-window: window open");
    // without one, the event's fields in words.
    let mut summary = if e.message.is_empty() {
        let mut words = e.event.as_str().replace('_', " ");
        if let Some(mode) = e.mode {
            words.push_str(&format!(" {}", mode.as_str()));
        }
        if !e.sensors.is_empty() {
            words.push_str(&format!(": {}", e.sensors.join(" ")));
        }
        words
    } else {
        e.message.clone()
    };
    if let Some(user) = &e.user
        && !summary.contains(user.as_str())
    {
        summary.push_str(&format!(" by {user}"));
    }
    match &e.area {
        Some(area) => format!("{area}: {summary}"),
        None => summary,
    }
}

/// Fields that change with every message without the state changing.
const TIMES: [&str; 5] = ["ts", "since", "delay_remaining_s", "lockout_remaining_s", "elevation_deg"];

/// What makes two messages on one state topic different states: the payload without its times
/// (a JSON object's keys are sorted by serde_json's map), or the bare word as it came.
pub fn state_key(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(mut map)) => {
            for field in TIMES {
                map.remove(field);
            }
            serde_json::Value::Object(map).to_string()
        }
        _ => text.trim().to_owned(),
    }
}

/// The last state stored per topic: which state messages are changes.
#[derive(Debug, Default)]
pub struct Changes {
    last: HashMap<String, String>,
}

impl Changes {
    /// Starts from the states the database holds.
    pub fn new(last: HashMap<String, String>) -> Changes {
        Changes { last }
    }

    /// Whether `record` is worth storing: every event or command is; a state only when it differs
    /// from the last one stored on its topic. Remembers it when it is.
    pub fn admit(&mut self, record: &Record) -> bool {
        let Some(key) = &record.state_key else { return true };
        if self.last.get(&record.topic) == Some(key) {
            return false;
        }
        self.last.insert(record.topic.clone(), key.clone());
        true
    }

    /// Adds states read from the database for topics not known here (what is in memory is newer).
    pub fn merge_older(&mut self, older: HashMap<String, String>) {
        for (topic, key) in older {
            self.last.entry(topic).or_insert(key);
        }
    }

    /// Topics with a known state.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn record(topic: &str, payload: &str) -> Record {
        match classify(&Topics::default(), topic, payload.as_bytes(), false, NOW) {
            Entry::Record(r) => r,
            Entry::Unreadable(u) => panic!("{topic} {payload}: {}", u.error),
        }
    }

    fn error(topic: &str, payload: &[u8]) -> String {
        match classify(&Topics::default(), topic, payload, false, NOW) {
            Entry::Unreadable(u) => {
                assert_eq!(u.payload, payload, "kept raw");
                u.error
            }
            Entry::Record(r) => panic!("read {topic} as {r:?}"),
        }
    }

    #[test]
    fn each_topic_reads_as_a_kind_a_device_and_a_summary() {
        let table = [
            ("home/security/door/front", "OPEN", Kind::Sensor, Some("front"), "door OPEN"),
            (
                "home/security/motion/hall",
                r#"{"state":"MOTION","device_id":"hall","ts":"2026-11-26T08:00:00.000Z"}"#,
                Kind::Sensor,
                Some("hall"),
                "motion MOTION",
            ),
            (
                "home/control/alarm",
                r#"{"state":"ON","reason":"intrusion"}"#,
                Kind::Alarm,
                None,
                "siren command ON (intrusion)",
            ),
            ("home/devices/siren/availability", "offline", Kind::Availability, Some("siren"), "offline"),
        ];
        for (topic, payload, kind, device, summary) in table {
            let r = record(topic, payload);
            assert_eq!((r.kind, r.device.as_deref(), r.summary.as_str()), (kind, device, summary), "{topic}");
        }
    }

    #[test]
    fn a_panel_event_names_who_and_is_not_a_state() {
        let r = record(
            "home/security/events",
            r#"{"event":"disarmed","user":"alice","device_id":"panel","ts":"2026-11-26T08:00:00.000Z","message":""}"#,
        );
        assert_eq!(r.kind, Kind::Panel);
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert!(r.summary.starts_with("disarmed by alice"), "{}", r.summary);
        assert_eq!(r.state_key, None);
        assert_eq!(r.ts, Timestamp::parse_rfc3339("2026-11-26T08:00:00.000Z"));
    }

    #[test]
    fn what_the_contract_cannot_read_is_kept_raw_with_the_reason() {
        assert!(error("home/security/door/front", b"MOTION").contains("door"));
        assert!(error("home/security/events", b"{not json").contains("panel event"));
        assert!(!error("home/security/status", &[0xff, 0xfe]).is_empty());
        assert!(error("elsewhere/x", b"1").contains("outside the topic root"));
        assert!(error("home/security/panel/set", b"DISARM").contains("not recorded"));
    }

    #[test]
    fn a_cleared_state_is_a_record() {
        let r = match classify(&Topics::default(), "home/security/door/ghost", b"", false, NOW) {
            Entry::Record(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!((r.kind, r.device.as_deref(), r.summary.as_str()), (Kind::Sensor, Some("ghost"), "cleared"));
    }

    #[test]
    fn only_changes_of_state_are_admitted_and_every_event_is() {
        let mut changes = Changes::default();
        let open = |ts: &str| {
            record("home/security/door/front", &format!(r#"{{"state":"OPEN","device_id":"front","ts":"{ts}"}}"#))
        };
        assert!(changes.admit(&open("2026-11-26T08:00:00.000Z")));
        assert!(!changes.admit(&open("2026-11-26T08:01:00.000Z")), "a heartbeat is not a change");
        assert!(changes.admit(&record("home/security/door/front", "CLOSED")));
        assert!(changes.admit(&open("2026-11-26T08:02:00.000Z")));
        let command = record("home/control/alarm", "ON");
        assert!(changes.admit(&command) && changes.admit(&command), "commands are each recorded");
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn state_keys_ignore_times_only() {
        assert_eq!(state_key(r#"{"state":"ON","ts":"a","since":"b"}"#), state_key(r#"{"since":"c","state":"ON"}"#));
        assert_ne!(state_key(r#"{"state":"ON","brightness":5}"#), state_key(r#"{"state":"ON","brightness":6}"#));
        assert_eq!(state_key(" online "), "online");
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
        }
        assert!("sensors".parse::<Kind>().unwrap_err().contains("panel, alarm"));
    }
}
