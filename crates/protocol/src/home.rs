//! The home as its topics tell it: every retained state heard, and the panel's recent events.
//!
//! [`HomeState::apply`] takes one [`Message`] (or the [`Unreadable`] it could not be read as) and
//! says which parts changed. Pure and tested without a broker; `mqtt-home status` renders it once
//! from the broker's retained messages, the dashboard keeps it live and sends each [`Change`] to
//! its pages. What a state topic last carried is what the home model holds: a state that could
//! not be read replaces the one before it (the broker no longer holds that one either), and a
//! cleared topic removes its entry.

use std::collections::{BTreeMap, VecDeque};

use crate::message::{Message, Unreadable};
use crate::{
    AlarmState, Announce, Availability, CircadianReading, Condition, Health, LightState, PanelEvent, PanelStatus,
    SensorKind, SensorReading, Timestamp, Topic,
};

/// A state as last heard: decoded, or why it could not be.
pub type Heard<T> = Result<T, Unreadable>;

/// A door, window or motion sensor's reading, with when it was heard.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorHeard {
    pub reading: SensorReading,
    pub received: Timestamp,
}

/// What a device says about itself: its announce, its availability (Last Will) and its health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presence {
    pub announce: Option<Heard<Announce>>,
    pub availability: Option<Heard<Availability>>,
    pub health: Option<Heard<Health>>,
    /// Battery, radio and tamper switch, for battery devices (through the bridge).
    pub condition: Option<Heard<Condition>>,
    /// When anything was last heard from or about the device.
    pub last_heard: Timestamp,
}

impl Presence {
    fn is_empty(&self) -> bool {
        self.announce.is_none() && self.availability.is_none() && self.health.is_none() && self.condition.is_none()
    }
}

/// Which part of the home one message changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Panel,
    /// One area's status, when the panel serves several.
    Area(String),
    Siren,
    Sun,
    Sensor(SensorKind, String),
    Light(String),
    Device(String),
    /// One panel event added (the newest of [`HomeState::events`]).
    Event,
    /// A topic under the root that is not part of the contract.
    Foreign(String),
}

/// The home, updated message by message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HomeState {
    pub panel: Option<Heard<PanelStatus>>,
    /// Each area's status, when the panel serves several (`panel` is then the house's view).
    pub areas: BTreeMap<String, Heard<PanelStatus>>,
    pub siren: Option<Heard<AlarmState>>,
    pub sun: Option<Heard<CircadianReading>>,
    pub sensors: BTreeMap<(SensorKind, String), Heard<SensorHeard>>,
    pub lights: BTreeMap<String, Heard<LightState>>,
    pub devices: BTreeMap<String, Presence>,
    /// The panel's most recent events, oldest first.
    pub events: VecDeque<PanelEvent>,
    /// Topics under the root that are not part of the contract, as they came.
    pub foreign: BTreeMap<String, Unreadable>,
    max_events: usize,
}

impl HomeState {
    /// An empty home that keeps the `max_events` most recent panel events.
    pub fn new(max_events: usize) -> HomeState {
        HomeState { max_events, ..HomeState::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.panel.is_none()
            && self.areas.is_empty()
            && self.siren.is_none()
            && self.sun.is_none()
            && self.sensors.is_empty()
            && self.lights.is_empty()
            && self.devices.is_empty()
            && self.events.is_empty()
            && self.foreign.is_empty()
    }

    /// Applies one message heard at `now`; the parts it changed, none when it is not state
    /// (a command) or an event that could not be read.
    pub fn apply(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Change> {
        match message {
            Ok(Message::Cleared(topic)) => self.clear(topic),
            Ok(message) => self.heard(message, now),
            Err(unreadable) => self.unreadable(unreadable, now),
        }
    }

    fn heard(&mut self, message: Message, now: Timestamp) -> Vec<Change> {
        let device = message.device().map(str::to_owned);
        let change = match message {
            Message::PanelStatus(s) => set(&mut self.panel, Ok(s), Change::Panel),
            Message::AreaStatus { area, status } => {
                self.areas.insert(area.clone(), Ok(status));
                Change::Area(area)
            }
            Message::AlarmState(s) => set(&mut self.siren, Ok(s), Change::Siren),
            Message::Circadian(r) => set(&mut self.sun, Ok(r), Change::Sun),
            Message::Sensor { kind, id, reading } => {
                self.sensors.insert((kind, id.clone()), Ok(SensorHeard { reading, received: now }));
                Change::Sensor(kind, id)
            }
            Message::LightState { id, state } => {
                self.lights.insert(id.clone(), Ok(state));
                Change::Light(id)
            }
            Message::PanelEvent(event) => {
                self.events.push_back(event);
                while self.events.len() > self.max_events {
                    self.events.pop_front();
                }
                Change::Event
            }
            Message::Availability { id, availability } => {
                self.presence(id, now, |p| p.availability = Some(Ok(availability)))
            }
            Message::Announce { id, announce } => self.presence(id, now, |p| p.announce = Some(Ok(announce))),
            Message::Health { id, health } => self.presence(id, now, |p| p.health = Some(Ok(health))),
            Message::Condition { id, condition } => self.presence(id, now, |p| p.condition = Some(Ok(condition))),
            // Commands are not state; the pair's lease and snapshot are the panels' own business.
            Message::LightSet { .. }
            | Message::PanelSet(_)
            | Message::AreaSet { .. }
            | Message::AlarmControl(_)
            | Message::Sound(_)
            | Message::PanelLeader(_)
            | Message::PanelSnapshot(_)
            | Message::Cleared(_) => {
                return Vec::new();
            }
        };
        let mut changes = vec![change];
        // A reading from a device the home knows is a sign of life from it.
        if let Some(id) = device
            && !matches!(changes[0], Change::Device(_))
            && let Some(presence) = self.devices.get_mut(&id)
        {
            presence.last_heard = now;
            changes.push(Change::Device(id));
        }
        changes
    }

    fn unreadable(&mut self, unreadable: Unreadable, now: Timestamp) -> Vec<Change> {
        let Some(topic) = unreadable.parsed.clone() else {
            let topic = unreadable.topic.clone();
            if unreadable.raw.is_empty() {
                self.foreign.remove(&topic);
            } else {
                self.foreign.insert(topic.clone(), unreadable);
            }
            return vec![Change::Foreign(topic)];
        };
        let change = match topic {
            Topic::PanelStatus => set(&mut self.panel, Err(unreadable), Change::Panel),
            Topic::AreaStatus(area) => {
                self.areas.insert(area.clone(), Err(unreadable));
                Change::Area(area)
            }
            Topic::AlarmState => set(&mut self.siren, Err(unreadable), Change::Siren),
            Topic::Circadian => set(&mut self.sun, Err(unreadable), Change::Sun),
            Topic::Sensor { kind, id } => {
                self.sensors.insert((kind, id.clone()), Err(unreadable));
                Change::Sensor(kind, id)
            }
            Topic::LightState(id) => {
                self.lights.insert(id.clone(), Err(unreadable));
                Change::Light(id)
            }
            Topic::Availability(id) => self.presence(id, now, |p| p.availability = Some(Err(unreadable))),
            Topic::Announce(id) => self.presence(id, now, |p| p.announce = Some(Err(unreadable))),
            Topic::Health(id) => self.presence(id, now, |p| p.health = Some(Err(unreadable))),
            Topic::Condition(id) => self.presence(id, now, |p| p.condition = Some(Err(unreadable))),
            // An event or a command that cannot be read changes nothing that is kept.
            Topic::PanelEvents
            | Topic::LightSet(_)
            | Topic::PanelSet
            | Topic::AreaSet(_)
            | Topic::AlarmControl
            | Topic::Sound
            | Topic::PanelLeader
            | Topic::PanelSnapshot => {
                return Vec::new();
            }
        };
        vec![change]
    }

    fn clear(&mut self, topic: Topic) -> Vec<Change> {
        let change = match topic {
            Topic::PanelStatus => set(&mut self.panel, None, Change::Panel),
            Topic::AreaStatus(area) => {
                self.areas.remove(&area);
                Change::Area(area)
            }
            Topic::AlarmState => set(&mut self.siren, None, Change::Siren),
            Topic::Circadian => set(&mut self.sun, None, Change::Sun),
            Topic::Sensor { kind, id } => {
                self.sensors.remove(&(kind, id.clone()));
                Change::Sensor(kind, id)
            }
            Topic::LightState(id) => {
                self.lights.remove(&id);
                Change::Light(id)
            }
            Topic::Availability(id) | Topic::Announce(id) | Topic::Health(id) | Topic::Condition(id)
                if !self.devices.contains_key(&id) =>
            {
                return Vec::new();
            }
            Topic::Availability(id) => self.presence(id, Timestamp(0), |p| p.availability = None),
            Topic::Announce(id) => self.presence(id, Timestamp(0), |p| p.announce = None),
            Topic::Health(id) => self.presence(id, Timestamp(0), |p| p.health = None),
            Topic::Condition(id) => self.presence(id, Timestamp(0), |p| p.condition = None),
            Topic::PanelEvents
            | Topic::LightSet(_)
            | Topic::PanelSet
            | Topic::AreaSet(_)
            | Topic::AlarmControl
            | Topic::Sound
            | Topic::PanelLeader
            | Topic::PanelSnapshot => {
                return Vec::new();
            }
        };
        vec![change]
    }

    /// Changes one device's presence; a device with nothing left is gone. A zero `now` (a
    /// clear) leaves the time it was last heard as it was.
    fn presence(&mut self, id: String, now: Timestamp, change: impl FnOnce(&mut Presence)) -> Change {
        let presence = self.devices.entry(id.clone()).or_default();
        change(presence);
        if now != Timestamp(0) {
            presence.last_heard = now;
        }
        if presence.is_empty() {
            self.devices.remove(&id);
        }
        Change::Device(id)
    }
}

fn set<T>(slot: &mut Option<T>, value: impl Into<Option<T>>, change: Change) -> Change {
    *slot = value.into();
    change
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SensorState, Topics};

    fn apply(home: &mut HomeState, topic: &str, payload: &[u8], now: u64) -> Vec<Change> {
        home.apply(Message::decode(&Topics::default(), topic, payload), Timestamp(now))
    }

    fn door() -> (SensorKind, String) {
        (SensorKind::Door, "front".to_owned())
    }

    #[test]
    fn each_message_changes_its_own_part() {
        let rows: &[(&str, &[u8], Change)] = &[
            ("home/security/door/front", b"OPEN", Change::Sensor(SensorKind::Door, "front".into())),
            (
                "home/lights/hall/state",
                br#"{"state":"ON","brightness":50,"source":"motion","device_id":"hall","ts":"2026-01-01T00:00:00Z"}"#,
                Change::Light("hall".into()),
            ),
            ("home/devices/hall/availability", b"online", Change::Device("hall".into())),
            (
                "home/security/events",
                br#"{"event":"wrong_code","message":"m","device_id":"panel","ts":"2026-01-01T00:00:00Z"}"#,
                Change::Event,
            ),
            ("home/weather/today", b"sunny", Change::Foreign("home/weather/today".into())),
        ];
        for (topic, payload, change) in rows {
            let mut home = HomeState::new(5);
            assert_eq!(apply(&mut home, topic, payload, 1)[0], *change, "{topic}");
            assert!(!home.is_empty(), "{topic}");
        }
    }

    #[test]
    fn commands_are_not_state_and_unreadable_events_are_not_kept() {
        let mut home = HomeState::new(5);
        for (topic, payload) in [
            ("home/control/alarm", &b"ON"[..]),
            ("home/lights/hall/set", b"50"),
            ("home/security/panel/set", b"DISARM"),
            ("home/security/events", b"{not json"),
        ] {
            assert_eq!(apply(&mut home, topic, payload, 1), [], "{topic}");
        }
        assert!(home.is_empty());
    }

    #[test]
    fn an_unreadable_state_replaces_the_last_and_a_clear_removes_it() {
        let mut home = HomeState::new(0);
        apply(&mut home, "home/security/door/front", b"OPEN", 1);
        let heard = home.sensors[&door()].as_ref().unwrap();
        assert_eq!((heard.reading.state, heard.received), (SensorState::Open, Timestamp(1)));
        apply(&mut home, "home/security/door/front", b"MOTION", 2);
        assert!(home.sensors[&door()].is_err(), "a door does not report motion: the state is unknown now");
        assert_eq!(apply(&mut home, "home/security/door/front", b"", 3), [Change::Sensor(door().0, door().1)]);
        assert!(home.is_empty());
    }

    #[test]
    fn a_device_goes_when_its_last_topic_is_cleared_and_readings_are_signs_of_life() {
        let mut home = HomeState::new(0);
        apply(&mut home, "home/devices/front/availability", b"online", 1);
        apply(
            &mut home,
            "home/devices/front/health",
            br#"{"state":"ok","device_id":"front","ts":"2026-01-01T00:00:00Z"}"#,
            2,
        );
        let changes = apply(&mut home, "home/security/door/front", b"OPEN", 7);
        assert_eq!(changes, [Change::Sensor(door().0, door().1), Change::Device("front".into())]);
        assert_eq!(home.devices["front"].last_heard, Timestamp(7));
        apply(&mut home, "home/devices/front/availability", b"", 8);
        assert!(home.devices.contains_key("front"), "its health is still retained");
        assert_eq!(home.devices["front"].last_heard, Timestamp(7), "a clear is no sign of life");
        apply(&mut home, "home/devices/front/health", b"", 9);
        assert!(!home.devices.contains_key("front"));
        assert_eq!(apply(&mut home, "home/devices/ghost/announce", b"", 10), [], "nothing to clear");
    }

    #[test]
    fn only_the_most_recent_events_are_kept() {
        let mut home = HomeState::new(2);
        for n in 0..3 {
            let event = format!(
                r#"{{"event":"wrong_code","message":"wrong code {n}","device_id":"panel","ts":"2026-01-01T00:00:0{n}.000Z"}}"#
            );
            apply(&mut home, "home/security/events", event.as_bytes(), 0);
        }
        let messages: Vec<&str> = home.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["wrong code 1", "wrong code 2"]);
    }

    #[test]
    fn a_foreign_topic_cleared_is_gone() {
        let mut home = HomeState::new(0);
        apply(&mut home, "home/weather/today", b"sunny", 1);
        assert_eq!(home.foreign["home/weather/today"].clip(60), "sunny");
        apply(&mut home, "home/weather/today", b"", 2);
        assert!(home.foreign.is_empty());
    }
}
