//! The home as the dashboard's pages show it: [`protocol::HomeState`] kept live, rendered as the
//! JSON the page holds. Pure: [`Home::apply`] turns one message into the [`Change`]s the page is
//! sent, and is tested without a broker.
//!
//! The page keeps the same model: it is sent the whole [`Snapshot`] once, then each [`Change`],
//! which sets (or, with a `null` value, removes) one entry of one section. A state that could not
//! be read is not shown (the page has nothing true to show for it); the daemon logs why.

use std::collections::{BTreeMap, VecDeque};

use protocol::{
    AlarmState, Announce, Availability, CircadianReading, Health, HomeState, LightState, Message, PanelEvent,
    PanelStatus, Presence, SensorHeard, SensorKind, SensorState, Timestamp, Unreadable,
};
use serde::Serialize;
use serde_json::Value;

/// A device found from its announce and availability.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce: Option<Announce>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Battery, radio, tamper switch and last seen (battery devices, through the bridge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<protocol::Condition>,
    /// When the dashboard last heard anything from or about the device.
    pub last_seen: Timestamp,
}

impl DeviceView {
    fn of(p: &Presence) -> DeviceView {
        DeviceView {
            announce: readable(&p.announce).cloned(),
            availability: readable(&p.availability).copied(),
            health: readable(&p.health).cloned(),
            condition: readable(&p.condition).cloned(),
            last_seen: p.last_heard,
        }
    }
}

/// A door, window or motion sensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorView {
    pub kind: SensorKind,
    pub state: SensorState,
    /// When the reading was made, as the sensor says (zero for a bare word typed by a person).
    pub ts: Timestamp,
    pub received: Timestamp,
}

/// The whole home, as the page is sent it first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub devices: BTreeMap<String, DeviceView>,
    pub sensors: BTreeMap<String, SensorView>,
    pub lights: BTreeMap<String, LightState>,
    pub panel: Option<PanelStatus>,
    /// Each area's status, when the panel serves several (`panel` is then the house's view).
    pub areas: BTreeMap<String, PanelStatus>,
    pub siren: Option<AlarmState>,
    pub circadian: Option<CircadianReading>,
    /// The panel's events heard since the dashboard started, oldest first.
    pub events: VecDeque<PanelEvent>,
    /// The dashboard's clock, so the page can count delays down without trusting its own.
    pub now: Timestamp,
}

/// One entry of one section set (or removed, with `Value::Null`); for `events`, one event added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub section: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub value: Value,
}

/// The model, updated message by message.
#[derive(Debug, Clone)]
pub struct Home {
    state: HomeState,
}

fn json<T: Serialize>(value: Option<&T>) -> Value {
    value.and_then(|v| serde_json::to_value(v).ok()).unwrap_or(Value::Null)
}

fn sensor_view(kind: SensorKind, heard: &SensorHeard) -> SensorView {
    SensorView { kind, state: heard.reading.state, ts: heard.reading.ts, received: heard.received }
}

fn readable<T>(slot: &Option<Result<T, Unreadable>>) -> Option<&T> {
    slot.as_ref().and_then(|heard| heard.as_ref().ok())
}

impl Home {
    pub fn new(max_events: usize) -> Home {
        Home { state: HomeState::new(max_events) }
    }

    /// The whole home, stamped with `now`.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let s = &self.state;
        Snapshot {
            devices: s.devices.iter().map(|(id, p)| (id.clone(), DeviceView::of(p))).collect(),
            sensors: s
                .sensors
                .iter()
                .filter_map(|((kind, id), heard)| Some((id.clone(), sensor_view(*kind, heard.as_ref().ok()?))))
                .collect(),
            lights: s.lights.iter().filter_map(|(id, l)| Some((id.clone(), l.as_ref().ok()?.clone()))).collect(),
            panel: readable(&s.panel).cloned(),
            areas: s.areas.iter().filter_map(|(area, st)| Some((area.clone(), st.as_ref().ok()?.clone()))).collect(),
            siren: readable(&s.siren).cloned(),
            circadian: readable(&s.sun).cloned(),
            events: s.events.clone(),
            now,
        }
    }

    /// Applies one message; the changes the page must be sent (none when nothing it shows changed).
    pub fn apply(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Change> {
        let changes = self.state.apply(message, now);
        changes.into_iter().filter_map(|change| self.render(change)).collect()
    }

    /// One change of the model as the page's section, id and value.
    fn render(&self, change: protocol::Change) -> Option<Change> {
        use protocol::Change as C;
        let s = &self.state;
        let (section, value, id) = match change {
            C::Panel => ("panel", json(readable(&s.panel)), None),
            C::Area(area) => ("areas", json(s.areas.get(&area).and_then(|a| a.as_ref().ok())), Some(area)),
            C::Siren => ("siren", json(readable(&s.siren)), None),
            C::Sun => ("circadian", json(readable(&s.sun)), None),
            C::Sensor(kind, id) => {
                let heard = s.sensors.get(&(kind, id.clone())).and_then(|h| h.as_ref().ok());
                ("sensors", json(heard.map(|h| sensor_view(kind, h)).as_ref()), Some(id))
            }
            C::Light(id) => ("lights", json(s.lights.get(&id).and_then(|l| l.as_ref().ok())), Some(id)),
            C::Device(id) => ("devices", json(s.devices.get(&id).map(DeviceView::of).as_ref()), Some(id)),
            C::Event => ("events", json(s.events.back()), None),
            C::Foreign(_) => return None,
        };
        Some(Change { section, id, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Topic, Topics};

    fn apply(home: &mut Home, topic: Topic, payload: &[u8], now: Timestamp) -> Vec<Change> {
        home.apply(Message::read(&Topics::default(), topic, payload), now)
    }

    #[test]
    fn sensors_lights_and_presence_become_changes() {
        let mut home = Home::new(2);
        let t = Timestamp(5_000);
        let online = apply(&mut home, Topic::Availability("front".into()), b"online", t);
        assert_eq!(online[0].section, "devices");
        let door = Topic::Sensor { kind: SensorKind::Door, id: "front".into() };
        let changes = apply(&mut home, door.clone(), b"OPEN", Timestamp(6_000));
        assert_eq!(changes.len(), 2, "the sensor, and its device seen again");
        assert_eq!(changes[0].value["state"], "OPEN");
        assert_eq!(home.snapshot(t).devices["front"].last_seen, Timestamp(6_000));
        let unreadable = apply(&mut home, door.clone(), b"MOTION", t);
        assert_eq!(unreadable[0].value, Value::Null, "a door does not report motion: the page shows no state");
        apply(&mut home, door.clone(), b"CLOSED", t);
        let cleared = apply(&mut home, door, b"", t);
        assert_eq!(cleared[0].value, Value::Null);
        assert!(home.snapshot(t).sensors.is_empty());
    }

    #[test]
    fn only_the_most_recent_events_are_kept() {
        let mut home = Home::new(2);
        for n in 0..3 {
            let event = format!(
                r#"{{"event":"wrong_code","message":"wrong code {n}","device_id":"panel","ts":"2026-01-01T00:00:0{n}.000Z"}}"#
            );
            let changes = apply(&mut home, Topic::PanelEvents, event.as_bytes(), Timestamp(0));
            assert_eq!(changes[0].value["message"], format!("wrong code {n}"));
        }
        let events = home.snapshot(Timestamp(0)).events;
        assert_eq!(events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["wrong code 1", "wrong code 2"]);
    }

    #[test]
    fn commands_and_unreadable_events_send_nothing() {
        let mut home = Home::new(2);
        assert_eq!(apply(&mut home, Topic::AlarmControl, b"ON", Timestamp(0)), []);
        assert_eq!(apply(&mut home, Topic::PanelEvents, b"{", Timestamp(0)), []);
        assert_eq!(home.snapshot(Timestamp(0)), Snapshot::default());
    }
}
