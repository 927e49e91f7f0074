//! The home as the dashboard knows it: every retained state it has heard, and the panel's recent
//! events. Pure: [`Home::apply`] turns one message into the [`Change`] the page is sent, and is
//! tested without a broker.
//!
//! The page keeps the same model: it is sent the whole [`Snapshot`] once, then each [`Change`],
//! which sets (or, with a `null` value, removes) one entry of one section.

use std::collections::{BTreeMap, VecDeque};

use protocol::{
    AlarmState, Announce, Availability, CircadianReading, Health, LightState, PanelEvent, PanelStatus, Payload,
    SensorKind, SensorReading, SensorState, Timestamp, Topic,
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
    /// When the dashboard last heard anything from or about the device.
    pub last_seen: Timestamp,
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

/// What a message could not be read as, for the log (once per topic, by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// The model, updated message by message.
#[derive(Debug, Clone)]
pub struct Home {
    snapshot: Snapshot,
    max_events: usize,
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Home {
    pub fn new(max_events: usize) -> Home {
        Home { snapshot: Snapshot::default(), max_events }
    }

    /// The whole home, stamped with `now`.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        Snapshot { now, ..self.snapshot.clone() }
    }

    /// Applies one message; the changes the page must be sent (none when nothing changed).
    /// A zero-length payload on a retained topic is a cleared state: the entry goes.
    pub fn apply(&mut self, topic: &Topic, payload: &[u8], now: Timestamp) -> Result<Vec<Change>, Unreadable> {
        let cleared = payload.is_empty();
        let bad = |e: protocol::DecodeError| Unreadable(e.to_string());
        let s = &mut self.snapshot;
        let mut changes = Vec::new();
        let seen = |s: &mut Snapshot, changes: &mut Vec<Change>, id: &str| {
            if let Some(device) = s.devices.get_mut(id) {
                device.last_seen = now;
                changes.push(Change { section: "devices", id: Some(id.to_owned()), value: json(device) });
            }
        };
        match topic {
            Topic::Sensor { kind, id } => {
                if cleared {
                    s.sensors.remove(id);
                    changes.push(Change { section: "sensors", id: Some(id.clone()), value: Value::Null });
                } else {
                    let reading = SensorReading::decode_for(*kind, payload).map_err(bad)?;
                    let view = SensorView { kind: *kind, state: reading.state, ts: reading.ts, received: now };
                    changes.push(Change { section: "sensors", id: Some(id.clone()), value: json(&view) });
                    s.sensors.insert(id.clone(), view);
                    seen(s, &mut changes, id);
                }
            }
            Topic::LightState(id) => {
                if cleared {
                    s.lights.remove(id);
                    changes.push(Change { section: "lights", id: Some(id.clone()), value: Value::Null });
                } else {
                    let state = LightState::decode(payload).map_err(bad)?;
                    changes.push(Change { section: "lights", id: Some(id.clone()), value: json(&state) });
                    s.lights.insert(id.clone(), state);
                    seen(s, &mut changes, id);
                }
            }
            Topic::PanelStatus => {
                let status = if cleared { None } else { Some(PanelStatus::decode(payload).map_err(bad)?) };
                changes.push(Change { section: "panel", id: None, value: json(&status) });
                let device = status.as_ref().map(|st| st.device_id.clone());
                s.panel = status;
                if let Some(device) = device {
                    seen(s, &mut changes, &device);
                }
            }
            Topic::AlarmState => {
                let siren = if cleared { None } else { Some(AlarmState::decode(payload).map_err(bad)?) };
                changes.push(Change { section: "siren", id: None, value: json(&siren) });
                let device = siren.as_ref().map(|st| st.device_id.clone());
                s.siren = siren;
                if let Some(device) = device {
                    seen(s, &mut changes, &device);
                }
            }
            Topic::Circadian => {
                let reading = if cleared { None } else { Some(CircadianReading::decode(payload).map_err(bad)?) };
                changes.push(Change { section: "circadian", id: None, value: json(&reading) });
                let device = reading.as_ref().map(|r| r.device_id.clone());
                s.circadian = reading;
                if let Some(device) = device {
                    seen(s, &mut changes, &device);
                }
            }
            Topic::PanelEvents => {
                let event = PanelEvent::decode(payload).map_err(bad)?;
                changes.push(Change { section: "events", id: None, value: json(&event) });
                let device = event.device_id.clone();
                s.events.push_back(event);
                while s.events.len() > self.max_events {
                    s.events.pop_front();
                }
                seen(s, &mut changes, &device);
            }
            Topic::Availability(id) | Topic::Announce(id) | Topic::Health(id) => {
                if cleared {
                    // A device taken out (`mqtt-home forget`) clears its retained presence.
                    if s.devices.remove(id).is_some() {
                        changes.push(Change { section: "devices", id: Some(id.clone()), value: Value::Null });
                    }
                    return Ok(changes);
                }
                let device = s.devices.entry(id.clone()).or_default();
                match topic {
                    Topic::Availability(_) => device.availability = Some(Availability::decode(payload).map_err(bad)?),
                    Topic::Announce(_) => device.announce = Some(Announce::decode(payload).map_err(bad)?),
                    _ => device.health = Some(Health::decode(payload).map_err(bad)?),
                }
                device.last_seen = now;
                changes.push(Change { section: "devices", id: Some(id.clone()), value: json(device) });
            }
            Topic::LightSet(_) | Topic::PanelSet | Topic::AlarmControl => {}
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensors_lights_and_presence_become_changes() {
        let mut home = Home::new(2);
        let t = Timestamp(5_000);
        let online = home.apply(&Topic::Availability("front".into()), b"online", t).unwrap();
        assert_eq!(online[0].section, "devices");
        let door = Topic::Sensor { kind: SensorKind::Door, id: "front".into() };
        let changes = home.apply(&door, b"OPEN", Timestamp(6_000)).unwrap();
        assert_eq!(changes.len(), 2, "the sensor, and its device seen again");
        assert_eq!(changes[0].value["state"], "OPEN");
        assert_eq!(home.snapshot(t).devices["front"].last_seen, Timestamp(6_000));
        assert!(home.apply(&door, b"MOTION", t).is_err(), "a door does not report motion");
        let cleared = home.apply(&door, b"", t).unwrap();
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
            home.apply(&Topic::PanelEvents, event.as_bytes(), Timestamp(0)).unwrap();
        }
        let events = home.snapshot(Timestamp(0)).events;
        assert_eq!(events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["wrong code 1", "wrong code 2"]);
    }
}
