//! One message of the home: a topic paired with its decoded payload.
//!
//! [`Message::decode`] is the one place where a topic string and its bytes become a typed value;
//! whatever cannot be read becomes an [`Unreadable`] that keeps the topic, the reason and the raw
//! bytes. The recorder, the status and watch commands, the dashboard and the scenario runner read
//! the home through it, so a topic's payload type is chosen once, here.
//!
//! A zero-length payload on a retained topic is how MQTT deletes a retained message: it decodes
//! to [`Message::Cleared`], not to an error.

use std::fmt;

use crate::{
    AlarmCommand, AlarmState, Announce, Availability, CircadianReading, Condition, DecodeError, Health, LightCommand,
    LightState, PanelCommand, PanelEvent, PanelLeader, PanelSnapshot, PanelStatus, Payload, SensorKind, SensorReading,
    Topic, TopicError, Topics,
};

/// Every message the contract defines, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Circadian(CircadianReading),
    Sensor {
        kind: SensorKind,
        id: String,
        reading: SensorReading,
    },
    LightSet {
        id: String,
        command: LightCommand,
    },
    LightState {
        id: String,
        state: LightState,
    },
    /// Its `Debug` never shows the code.
    PanelSet(PanelCommand),
    PanelStatus(PanelStatus),
    PanelEvent(PanelEvent),
    /// A command to one area. Its `Debug` never shows the code.
    AreaSet {
        area: String,
        command: PanelCommand,
    },
    AreaStatus {
        area: String,
        status: PanelStatus,
    },
    AlarmControl(AlarmCommand),
    /// A short sound (beeps, chime, chirps) for the siren and keypads.
    Sound(AlarmCommand),
    AlarmState(AlarmState),
    Availability {
        id: String,
        availability: Availability,
    },
    Announce {
        id: String,
        announce: Announce,
    },
    Health {
        id: String,
        health: Health,
    },
    Condition {
        id: String,
        condition: Condition,
    },
    PanelLeader(PanelLeader),
    PanelSnapshot(PanelSnapshot),
    /// A retained topic emptied (a zero-length retained publish).
    Cleared(Topic),
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Why {
    /// The topic is not one of the contract's.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The topic is ours; its payload is not what the contract says it carries.
    #[error(transparent)]
    Payload(#[from] DecodeError),
}

/// A message the contract cannot read, kept as it came.
#[derive(Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub topic: String,
    /// The topic, parsed, when it is one of the contract's.
    pub parsed: Option<Topic>,
    pub why: Why,
    pub raw: Vec<u8>,
}

impl Unreadable {
    /// At most `max` characters of the payload, as printable text (control characters replaced):
    /// what a log line or a terminal may show of bytes nobody checked.
    pub fn clip(&self, max: usize) -> String {
        clip(&self.raw, max)
    }
}

/// The raw bytes are not shown: they may be a command carrying a PIN.
impl fmt::Debug for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unreadable")
            .field("topic", &self.topic)
            .field("why", &self.why)
            .field("raw", &format_args!("<{} bytes>", self.raw.len()))
            .finish()
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.topic, self.why)
    }
}

impl std::error::Error for Unreadable {}

/// At most `max` characters of untrusted bytes, as printable text, with `…` when cut.
pub fn clip(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(max).map(|c| if c.is_control() { '�' } else { c }).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

impl Message {
    /// Reads one message received from the broker. Never panics.
    #[expect(
        clippy::result_large_err,
        reason = "unreadable is the rare path; its callers keep it, so a box buys nothing"
    )]
    pub fn decode(topics: &Topics, topic: &str, payload: &[u8]) -> Result<Message, Unreadable> {
        let unreadable = |parsed, why| Unreadable { topic: topic.to_owned(), parsed, why, raw: payload.to_vec() };
        let parsed = topics.parse(topic).map_err(|e| unreadable(None, e.into()))?;
        Message::from_payload(parsed.clone(), payload).map_err(|e| unreadable(Some(parsed), e.into()))
    }

    /// Reads the payload of a topic already parsed (as a daemon's link hands it over).
    #[expect(
        clippy::result_large_err,
        reason = "unreadable is the rare path; its callers keep it, so a box buys nothing"
    )]
    pub fn read(topics: &Topics, topic: Topic, payload: &[u8]) -> Result<Message, Unreadable> {
        Message::from_payload(topic.clone(), payload).map_err(|e| Unreadable {
            topic: topics.name(&topic),
            parsed: Some(topic),
            why: e.into(),
            raw: payload.to_vec(),
        })
    }

    /// Reads the payload of a topic already parsed.
    pub fn from_payload(topic: Topic, payload: &[u8]) -> Result<Message, DecodeError> {
        if payload.is_empty() && topic.retained() {
            return Ok(Message::Cleared(topic));
        }
        Ok(match topic {
            Topic::Circadian => Message::Circadian(CircadianReading::decode(payload)?),
            Topic::Sensor { kind, id } => {
                let reading = SensorReading::decode_for(kind, payload)?;
                Message::Sensor { kind, id, reading }
            }
            Topic::LightSet(id) => Message::LightSet { id, command: LightCommand::decode(payload)? },
            Topic::LightState(id) => Message::LightState { id, state: LightState::decode(payload)? },
            Topic::PanelSet => Message::PanelSet(PanelCommand::decode(payload)?),
            Topic::PanelStatus => Message::PanelStatus(PanelStatus::decode(payload)?),
            Topic::PanelEvents => Message::PanelEvent(PanelEvent::decode(payload)?),
            Topic::AreaSet(area) => Message::AreaSet { area, command: PanelCommand::decode(payload)? },
            Topic::AreaStatus(area) => Message::AreaStatus { area, status: PanelStatus::decode(payload)? },
            Topic::AlarmControl => Message::AlarmControl(AlarmCommand::decode(payload)?),
            Topic::Sound => Message::Sound(AlarmCommand::decode(payload)?),
            Topic::AlarmState => Message::AlarmState(AlarmState::decode(payload)?),
            Topic::Availability(id) => Message::Availability { id, availability: Availability::decode(payload)? },
            Topic::Announce(id) => Message::Announce { id, announce: Announce::decode(payload)? },
            Topic::Health(id) => Message::Health { id, health: Health::decode(payload)? },
            Topic::Condition(id) => Message::Condition { id, condition: Condition::decode(payload)? },
            Topic::PanelLeader => Message::PanelLeader(PanelLeader::decode(payload)?),
            Topic::PanelSnapshot => Message::PanelSnapshot(PanelSnapshot::decode(payload)?),
        })
    }

    /// The topic the message travels on.
    pub fn topic(&self) -> Topic {
        match self {
            Message::Circadian(_) => Topic::Circadian,
            Message::Sensor { kind, id, .. } => Topic::Sensor { kind: *kind, id: id.clone() },
            Message::LightSet { id, .. } => Topic::LightSet(id.clone()),
            Message::LightState { id, .. } => Topic::LightState(id.clone()),
            Message::PanelSet(_) => Topic::PanelSet,
            Message::PanelStatus(_) => Topic::PanelStatus,
            Message::PanelEvent(_) => Topic::PanelEvents,
            Message::AreaSet { area, .. } => Topic::AreaSet(area.clone()),
            Message::AreaStatus { area, .. } => Topic::AreaStatus(area.clone()),
            Message::AlarmControl(_) => Topic::AlarmControl,
            Message::Sound(_) => Topic::Sound,
            Message::AlarmState(_) => Topic::AlarmState,
            Message::Availability { id, .. } => Topic::Availability(id.clone()),
            Message::Announce { id, .. } => Topic::Announce(id.clone()),
            Message::Health { id, .. } => Topic::Health(id.clone()),
            Message::Condition { id, .. } => Topic::Condition(id.clone()),
            Message::PanelLeader(_) => Topic::PanelLeader,
            Message::PanelSnapshot(_) => Topic::PanelSnapshot,
            Message::Cleared(topic) => topic.clone(),
        }
    }

    /// The bytes to publish.
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Message::Circadian(r) => r.encode(),
            Message::Sensor { reading, .. } => reading.encode(),
            Message::LightSet { command, .. } => command.encode(),
            Message::LightState { state, .. } => state.encode(),
            Message::PanelSet(c) => c.encode(),
            Message::PanelStatus(s) => s.encode(),
            Message::PanelEvent(e) => e.encode(),
            Message::AreaSet { command, .. } => command.encode(),
            Message::AreaStatus { status, .. } => status.encode(),
            Message::AlarmControl(c) | Message::Sound(c) => c.encode(),
            Message::AlarmState(s) => s.encode(),
            Message::Availability { availability, .. } => availability.encode(),
            Message::Announce { announce, .. } => announce.encode(),
            Message::Health { health, .. } => health.encode(),
            Message::Condition { condition, .. } => condition.encode(),
            Message::PanelLeader(l) => l.encode(),
            Message::PanelSnapshot(s) => s.encode(),
            Message::Cleared(_) => Vec::new(),
        }
    }

    /// The topic string and the bytes to publish, with whether the contract retains it.
    pub fn encode(&self, topics: &Topics) -> (String, Vec<u8>, bool) {
        let topic = self.topic();
        (topics.name(&topic), self.payload(), topic.retained())
    }

    /// The device the message is about or comes from, when it names one: a sensor, a light, the
    /// panel, the siren, the sun's sensor, a daemon.
    pub fn device(&self) -> Option<&str> {
        match self {
            Message::Circadian(r) => Some(&r.device_id),
            Message::Sensor { id, .. }
            | Message::LightSet { id, .. }
            | Message::LightState { id, .. }
            | Message::Availability { id, .. }
            | Message::Announce { id, .. }
            | Message::Health { id, .. }
            | Message::Condition { id, .. } => Some(id),
            Message::PanelStatus(s) | Message::AreaStatus { status: s, .. } => Some(&s.device_id),
            Message::PanelEvent(e) => Some(&e.device_id),
            Message::AlarmState(s) => Some(&s.device_id),
            Message::PanelLeader(l) => Some(&l.holder),
            Message::PanelSnapshot(s) => Some(&s.holder),
            Message::PanelSet(_)
            | Message::AreaSet { .. }
            | Message::AlarmControl(_)
            | Message::Sound(_)
            | Message::Cleared(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HealthState, PanelAction, SensorState, Timestamp};

    fn t() -> Topics {
        Topics::new("home")
    }

    #[test]
    fn every_topic_decodes_to_its_own_variant() {
        let rows: &[(&str, &[u8], &str)] = &[
            (
                "home/lights/circadian_rhythm",
                br#"{"phase":"sunset","device_id":"sun","ts":"2026-01-01T00:00:00Z"}"#,
                "Circadian",
            ),
            ("home/security/door/front", b"OPEN", "Sensor"),
            ("home/lights/hall/set", b"50", "LightSet"),
            ("home/security/panel/set", b"ARM_AWAY", "PanelSet"),
            ("home/security/areas/garage/set", b"ARM_AWAY", "AreaSet"),
            ("home/security/areas/garage/status", b"", "Cleared"),
            ("home/control/alarm", b"ON", "AlarmControl"),
            ("home/devices/hall/availability", b"online", "Availability"),
            ("home/security/status", b"", "Cleared"),
            ("home/lights/hall/state", b"", "Cleared"),
        ];
        for (topic, payload, variant) in rows {
            let m = Message::decode(&t(), topic, payload).unwrap_or_else(|e| panic!("{topic}: {e}"));
            assert!(format!("{m:?}").starts_with(variant), "{topic} → {m:?}");
            let (name, _, _) = m.encode(&t());
            assert_eq!(&name, topic, "the topic comes back as it was");
        }
    }

    #[test]
    fn what_cannot_be_read_says_why_and_keeps_the_bytes() {
        let e = Message::decode(&t(), "home/security/door/front", b"MOTION").unwrap_err();
        assert!(matches!(e.why, Why::Payload(_)));
        assert_eq!(e.parsed, Some(Topic::Sensor { kind: SensorKind::Door, id: "front".into() }));
        assert_eq!(e.raw, b"MOTION");
        let e = Message::decode(&t(), "home/garage/x", b"1").unwrap_err();
        assert!(matches!(e.why, Why::Topic(TopicError::Unknown(_))));
        assert_eq!(e.parsed, None);
        let e = Message::decode(&t(), "office/x", b"1").unwrap_err();
        assert!(matches!(e.why, Why::Topic(TopicError::OutsideRoot { .. })));
        // An empty command is not a clear: commands are not retained.
        let e = Message::decode(&t(), "home/control/alarm", b"").unwrap_err();
        assert!(matches!(e.why, Why::Payload(DecodeError::Empty { .. })));
    }

    #[test]
    fn a_code_never_shows_in_debug() {
        let m = Message::decode(&t(), "home/security/panel/set", br#"{"action":"DISARM","code":"8642"}"#).unwrap();
        assert!(matches!(&m, Message::PanelSet(c) if c.action == PanelAction::Disarm));
        assert!(!format!("{m:?}").contains("8642"));
        let e = Message::decode(&t(), "home/security/panel/set", br#"{"action":"NOPE","code":"8642"}"#).unwrap_err();
        assert!(!format!("{e:?}").contains("8642"), "{e:?}");
    }

    #[test]
    fn encode_and_decode_round_trip() {
        let ts = Timestamp(1_000);
        let messages = [
            Message::Sensor {
                kind: SensorKind::Window,
                id: "w".into(),
                reading: SensorReading { state: SensorState::Open, device_id: "w".into(), ts },
            },
            Message::Health {
                id: "d".into(),
                health: Health { state: HealthState::Ok, problems: vec![], device_id: "d".into(), ts },
            },
            Message::Cleared(Topic::AlarmState),
        ];
        for m in messages {
            let (topic, payload, _) = m.encode(&t());
            assert_eq!(Message::decode(&t(), &topic, &payload), Ok(m));
        }
    }

    #[test]
    fn clip_keeps_a_log_line_short_and_printable() {
        assert_eq!(clip(b"ab\ncd", 10), "ab\u{fffd}cd");
        assert_eq!(clip(b"abcdef", 3), "abc…");
    }
}
