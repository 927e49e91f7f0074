//! Topic names: built from a configurable root (default `home`) and parsed back into [`Topic`].
//!
//! | topic | payload |
//! |---|---|
//! | `<root>/lights/circadian_rhythm` | [`crate::CircadianReading`] |
//! | `<root>/lights/<id>/set` | [`crate::LightCommand`] |
//! | `<root>/lights/<id>/state` | [`crate::LightState`] |
//! | `<root>/security/motion/<id>`, `door/<id>`, `window/<id>` | [`crate::SensorReading`] |
//! | `<root>/security/panel/set` | [`crate::PanelCommand`] |
//! | `<root>/security/status` | [`crate::PanelStatus`] |
//! | `<root>/security/events` | [`crate::PanelEvent`] |
//! | `<root>/security/areas/<area>/set` | [`crate::PanelCommand`] (one area of several) |
//! | `<root>/security/areas/<area>/status` | [`crate::PanelStatus`] (one area of several) |
//! | `<root>/security/alarm` | [`crate::AlarmState`] |
//! | `<root>/control/alarm` | [`crate::AlarmCommand`] |
//! | `<root>/control/sound` | [`crate::AlarmCommand`] with a `tone` (beeps, chime, chirps) |
//! | `<root>/devices/<id>/availability` | [`crate::Availability`] |
//! | `<root>/devices/<id>/announce` | [`crate::Announce`] |
//! | `<root>/devices/<id>/health` | [`crate::Health`] |
//! | `<root>/devices/<id>/condition` | [`crate::Condition`] |

use std::fmt;

use crate::SensorKind;

/// The topic root used when none is configured.
pub const DEFAULT_TOPIC_ROOT: &str = "home";

const CIRCADIAN: &str = "circadian_rhythm";

/// MQTT quality of service, as the contract fixes it per topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

/// One topic of the contract, with the device id where the topic carries one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Circadian,
    Sensor {
        kind: SensorKind,
        id: String,
    },
    LightSet(String),
    LightState(String),
    PanelSet,
    PanelStatus,
    PanelEvents,
    /// The command topic of one area, when the panel serves several (`[[panel.areas]]`).
    AreaSet(String),
    /// The status of one area; `PanelStatus` is then the house's combined view.
    AreaStatus(String),
    AlarmControl,
    /// The panel's short sounds (beeps, chime, chirps) for the siren and keypads: never the alarm.
    Sound,
    AlarmState,
    Availability(String),
    Announce(String),
    Health(String),
    /// A battery device's battery, radio and tamper switch (from Zigbee2MQTT through the bridge).
    Condition(String),
    /// Which panel of a pair is active, and its term.
    PanelLeader,
    /// The active panel's whole state, for its standby.
    PanelSnapshot,
}

impl Topic {
    /// What kind of topic this is, one word (a metric's label): `sensor`, `panel_status`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Topic::Circadian => "circadian",
            Topic::Sensor { .. } => "sensor",
            Topic::LightSet(_) => "light_set",
            Topic::LightState(_) => "light_state",
            Topic::PanelSet => "panel_set",
            Topic::PanelStatus => "panel_status",
            Topic::PanelEvents => "panel_events",
            Topic::AreaSet(_) => "area_set",
            Topic::AreaStatus(_) => "area_status",
            Topic::AlarmControl => "alarm_control",
            Topic::Sound => "sound",
            Topic::AlarmState => "alarm_state",
            Topic::Availability(_) => "availability",
            Topic::Announce(_) => "announce",
            Topic::Health(_) => "health",
            Topic::Condition(_) => "condition",
            Topic::PanelLeader => "panel_leader",
            Topic::PanelSnapshot => "panel_snapshot",
        }
    }

    /// The QoS the contract gives this topic: 1 for every topic. Commands are idempotent states
    /// (`ON`, not "toggle"), so at-least-once is enough; the siren command was QoS 2 until the
    /// intrusion benchmark, and exactly-once only added a PUBREC/PUBREL exchange to the alarm path.
    pub fn qos(&self) -> Qos {
        Qos::AtLeastOnce
    }

    /// Whether messages on this topic are published retained (state, not commands or events).
    pub fn retained(&self) -> bool {
        match self {
            Topic::Circadian
            | Topic::Sensor { .. }
            | Topic::LightState(_)
            | Topic::PanelStatus
            | Topic::AreaStatus(_)
            | Topic::AlarmState
            | Topic::Availability(_)
            | Topic::Announce(_)
            | Topic::Health(_)
            | Topic::Condition(_)
            | Topic::PanelLeader
            | Topic::PanelSnapshot => true,
            Topic::LightSet(_)
            | Topic::PanelSet
            | Topic::AreaSet(_)
            | Topic::PanelEvents
            | Topic::AlarmControl
            | Topic::Sound => false,
        }
    }
}

/// Why a topic string is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic `{topic}` is outside the topic root `{root}`")]
    OutsideRoot { topic: String, root: String },
    #[error("topic `{0}` is not part of the mqtt-home contract (see docs/protocol.md)")]
    Unknown(String),
}

/// Why a device id cannot be used in a topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("device id is empty")]
    Empty,
    #[error("device id `{0}` may hold only ASCII letters, digits, `-` and `_`")]
    BadCharacter(String),
    #[error("device id `{0}` is reserved by the topic layout")]
    Reserved(String),
    #[error("device id `{0}` is longer than 64 characters")]
    TooLong(String),
}

/// Checks that `id` can stand as one topic level.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > 64 {
        return Err(IdError::TooLong(id.to_owned()));
    }
    // As docs/protocol.md says: nothing a topic, a shell, a page or Home Assistant's entity ids
    // treat specially (`/ + # $ . < >`, spaces, accents).
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(IdError::BadCharacter(id.to_owned()));
    }
    if id == CIRCADIAN {
        return Err(IdError::Reserved(id.to_owned()));
    }
    Ok(())
}

/// Builds and parses topic strings under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics::new(DEFAULT_TOPIC_ROOT)
    }
}

impl Topics {
    /// A topic map under `root`; a trailing `/` is ignored.
    pub fn new(root: &str) -> Topics {
        Topics { root: root.trim_end_matches('/').to_owned() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// The topic string of `topic`.
    pub fn name(&self, topic: &Topic) -> String {
        let r = &self.root;
        match topic {
            Topic::Circadian => format!("{r}/lights/{CIRCADIAN}"),
            Topic::Sensor { kind, id } => format!("{r}/security/{}/{id}", kind.as_str()),
            Topic::LightSet(id) => format!("{r}/lights/{id}/set"),
            Topic::LightState(id) => format!("{r}/lights/{id}/state"),
            Topic::PanelSet => format!("{r}/security/panel/set"),
            Topic::PanelStatus => format!("{r}/security/status"),
            Topic::PanelEvents => format!("{r}/security/events"),
            Topic::AreaSet(area) => format!("{r}/security/areas/{area}/set"),
            Topic::AreaStatus(area) => format!("{r}/security/areas/{area}/status"),
            Topic::AlarmControl => format!("{r}/control/alarm"),
            Topic::Sound => format!("{r}/control/sound"),
            Topic::AlarmState => format!("{r}/security/alarm"),
            Topic::Availability(id) => format!("{r}/devices/{id}/availability"),
            Topic::Announce(id) => format!("{r}/devices/{id}/announce"),
            Topic::Health(id) => format!("{r}/devices/{id}/health"),
            Topic::Condition(id) => format!("{r}/devices/{id}/condition"),
            Topic::PanelLeader => format!("{r}/security/leader"),
            Topic::PanelSnapshot => format!("{r}/security/snapshot"),
        }
    }

    /// The subscription filter matching everything of this home.
    pub fn everything(&self) -> String {
        format!("{}/#", self.root)
    }

    /// The subscription filter matching every sensor of `kind`.
    pub fn all_sensors(&self, kind: SensorKind) -> String {
        format!("{}/security/{}/+", self.root, kind.as_str())
    }

    /// The subscription filter matching every device's availability.
    pub fn all_availability(&self) -> String {
        format!("{}/devices/+/availability", self.root)
    }

    /// The subscription filter matching every device's announce.
    pub fn all_announce(&self) -> String {
        format!("{}/devices/+/announce", self.root)
    }

    /// The subscription filter matching every device's health.
    pub fn all_health(&self) -> String {
        format!("{}/devices/+/health", self.root)
    }

    /// The subscription filter matching every device's condition (battery, radio, tamper).
    pub fn all_conditions(&self) -> String {
        format!("{}/devices/+/condition", self.root)
    }

    /// The filters for the home's state and its panel's events: every sensor, light state, the
    /// sun's phase, the panel's status and events, the siren's state, every device's
    /// availability, announce and health. No command topic: the panel's carry PINs. What a
    /// watcher of the home (the recorder, the dashboard) subscribes to.
    pub fn state_and_events(&self) -> Vec<String> {
        let mut filters: Vec<String> = SensorKind::ALL.iter().map(|kind| self.all_sensors(*kind)).collect();
        filters.extend([
            self.all_light_states(),
            self.name(&Topic::Circadian),
            self.name(&Topic::PanelStatus),
            self.name(&Topic::PanelEvents),
            self.all_area_statuses(),
            self.name(&Topic::AlarmState),
            self.all_availability(),
            self.all_announce(),
            self.all_health(),
            self.all_conditions(),
        ]);
        filters
    }

    /// The subscription filter matching every area's status.
    pub fn all_area_statuses(&self) -> String {
        format!("{}/security/areas/+/status", self.root)
    }

    /// The subscription filter matching every light's state.
    pub fn all_light_states(&self) -> String {
        format!("{}/lights/+/state", self.root)
    }

    /// Parses a topic string received from the broker.
    pub fn parse(&self, topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix(self.root.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::OutsideRoot { topic: topic.to_owned(), root: self.root.clone() })?;
        let levels: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| validate_id(s).ok().map(|()| s.to_owned());
        let parsed = match levels.as_slice() {
            ["lights", c] if *c == CIRCADIAN => Some(Topic::Circadian),
            ["lights", light, "set"] => id(light).map(Topic::LightSet),
            ["lights", light, "state"] => id(light).map(Topic::LightState),
            ["security", "panel", "set"] => Some(Topic::PanelSet),
            ["security", "status"] => Some(Topic::PanelStatus),
            ["security", "events"] => Some(Topic::PanelEvents),
            ["security", "alarm"] => Some(Topic::AlarmState),
            ["security", "leader"] => Some(Topic::PanelLeader),
            ["security", "snapshot"] => Some(Topic::PanelSnapshot),
            ["security", "areas", area, "set"] => id(area).map(Topic::AreaSet),
            ["security", "areas", area, "status"] => id(area).map(Topic::AreaStatus),
            ["security", kind, sensor] => {
                SensorKind::from_topic_level(kind).and_then(|kind| id(sensor).map(|id| Topic::Sensor { kind, id }))
            }
            ["control", "alarm"] => Some(Topic::AlarmControl),
            ["control", "sound"] => Some(Topic::Sound),
            ["devices", device, "availability"] => id(device).map(Topic::Availability),
            ["devices", device, "announce"] => id(device).map(Topic::Announce),
            ["devices", device, "health"] => id(device).map(Topic::Health),
            ["devices", device, "condition"] => id(device).map(Topic::Condition),
            _ => None,
        };
        parsed.ok_or_else(|| TopicError::Unknown(topic.to_owned()))
    }
}

impl fmt::Display for Topics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_topics() -> Vec<Topic> {
        let id = || "kitchen".to_owned();
        vec![
            Topic::Circadian,
            Topic::Sensor { kind: SensorKind::Motion, id: id() },
            Topic::Sensor { kind: SensorKind::Door, id: id() },
            Topic::Sensor { kind: SensorKind::Window, id: id() },
            Topic::LightSet(id()),
            Topic::LightState(id()),
            Topic::PanelSet,
            Topic::PanelStatus,
            Topic::PanelEvents,
            Topic::AreaSet(id()),
            Topic::AreaStatus(id()),
            Topic::AlarmControl,
            Topic::Sound,
            Topic::AlarmState,
            Topic::Availability(id()),
            Topic::Announce(id()),
            Topic::Health(id()),
            Topic::Condition(id()),
            Topic::PanelLeader,
            Topic::PanelSnapshot,
        ]
    }

    #[test]
    fn names_match_the_contract() {
        let t = Topics::default();
        let names: Vec<String> = all_topics().iter().map(|x| t.name(x)).collect();
        assert_eq!(
            names,
            [
                "home/lights/circadian_rhythm",
                "home/security/motion/kitchen",
                "home/security/door/kitchen",
                "home/security/window/kitchen",
                "home/lights/kitchen/set",
                "home/lights/kitchen/state",
                "home/security/panel/set",
                "home/security/status",
                "home/security/events",
                "home/security/areas/kitchen/set",
                "home/security/areas/kitchen/status",
                "home/control/alarm",
                "home/control/sound",
                "home/security/alarm",
                "home/devices/kitchen/availability",
                "home/devices/kitchen/announce",
                "home/devices/kitchen/health",
                "home/devices/kitchen/condition",
                "home/security/leader",
                "home/security/snapshot",
            ]
        );
    }

    #[test]
    fn every_topic_round_trips_under_any_root() {
        for root in ["home", "lab/flat-2", "x"] {
            let t = Topics::new(root);
            for topic in all_topics() {
                assert_eq!(t.parse(&t.name(&topic)), Ok(topic.clone()), "root {root}");
            }
        }
    }

    #[test]
    fn foreign_and_malformed_topics_are_rejected() {
        let t = Topics::default();
        assert!(matches!(t.parse("office/lights/circadian_rhythm"), Err(TopicError::OutsideRoot { .. })));
        assert!(matches!(t.parse("homely/lights/x/set"), Err(TopicError::OutsideRoot { .. })));
        assert!(matches!(t.parse("home"), Err(TopicError::OutsideRoot { .. })));
        for bad in [
            "home/",
            "home/lights",
            "home/lights/a/b/set",
            "home/security/garage/x",
            "home/lights//set",
            "home/devices/x/y",
            "home/security/areas/a/b",
            "home/security/areas/a b/set",
        ] {
            assert!(matches!(t.parse(bad), Err(TopicError::Unknown(_))), "{bad}");
        }
    }

    #[test]
    fn state_topics_are_retained_and_commands_are_not() {
        assert!(Topic::PanelStatus.retained());
        assert!(!Topic::PanelSet.retained());
        assert!(!Topic::LightSet("a".into()).retained());
        assert_eq!(Topic::AlarmControl.qos(), Qos::AtLeastOnce, "an idempotent command needs no exactly-once");
    }

    #[test]
    fn ids_are_validated() {
        assert_eq!(validate_id("front-door_2"), Ok(()));
        assert_eq!(validate_id(""), Err(IdError::Empty));
        // The last four were accepted by the dashboard's API (issue 19): the docs forbid them.
        for bad in ["a/b", "a+", "#", "a b", "tab\t", "<b>", "été", "a.b", "$SYS"] {
            assert!(matches!(validate_id(bad), Err(IdError::BadCharacter(_))), "{bad}");
        }
        assert!(matches!(validate_id("circadian_rhythm"), Err(IdError::Reserved(_))));
    }
}
