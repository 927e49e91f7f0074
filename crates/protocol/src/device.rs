//! Device presence: availability (Last Will) and the announce message every daemon publishes.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::payload::{DecodeError, Payload, text};

/// `online` / `offline`, published as plain text (not JSON) so that every MQTT tool reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Online,
    Offline,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Offline => "offline",
        }
    }
}

impl Payload for Availability {
    const WHAT: &'static str = "availability";

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match text(Self::WHAT, bytes)? {
            "online" => Ok(Availability::Online),
            "offline" => Ok(Availability::Offline),
            other => {
                Err(DecodeError::invalid(Self::WHAT, format!("expected `online` or `offline`, got `{}`", clip(other))))
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        self.as_str().as_bytes().to_vec()
    }
}

/// The kinds of daemon in the home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    CircadianSensor,
    MotionSensor,
    DoorSensor,
    WindowSensor,
    LightBulb,
    LightController,
    SecurityController,
    AlarmActuator,
    ControlCli,
    Recorder,
    Dashboard,
    Bridge,
    Notifier,
    AlarmTransmitter,
}

/// Published retained on `<root>/devices/<id>/announce` on every connect: who this is and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announce {
    pub device_id: String,
    #[serde(rename = "type")]
    pub kind: DeviceKind,
    pub capabilities: Vec<String>,
    pub version: String,
    /// The topics this device publishes its state on.
    #[serde(default)]
    pub state_topics: Vec<String>,
    /// The topics this device takes commands on.
    #[serde(default)]
    pub command_topics: Vec<String>,
    pub ts: Timestamp,
}

impl Payload for Announce {
    const WHAT: &'static str = "device announce";
}

/// Whether a daemon can do its job, beside its availability: `online` says it hears the broker,
/// `trouble` says what stops it (a database it cannot write, a disk that is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Ok,
    Trouble,
}

/// Published retained on `<root>/devices/<id>/health` when it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub state: HealthState,
    /// What is wrong and what to do, one line each; empty when `ok`.
    #[serde(default)]
    pub problems: Vec<String>,
    pub device_id: String,
    pub ts: Timestamp,
}

impl Payload for Health {
    const WHAT: &'static str = "device health";

    fn validate(&self) -> Result<(), DecodeError> {
        if self.state == HealthState::Ok && !self.problems.is_empty() {
            return Err(DecodeError::invalid(Self::WHAT, "`ok` with problems listed"));
        }
        Ok(())
    }
}

/// Published retained on `<root>/devices/<id>/condition` by whatever knows a battery device's
/// state of repair (the bridge, from Zigbee2MQTT's `battery`, `battery_low`, `tamper`,
/// `linkquality`). Every field is optional: a device reports what it has. The panel shows a low
/// battery and a weak radio as warnings and an open tamper switch as a tamper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<u8>,
    /// The device's own verdict, where it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_low: Option<bool>,
    /// The tamper switch: true while the cover is open or the device is off the wall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tamper: Option<bool>,
    /// Zigbee link quality, 0–255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkquality: Option<u8>,
    /// When the radio last heard the device (Zigbee2MQTT's `last_seen`, where it is turned on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    pub device_id: String,
    pub ts: Timestamp,
}

impl Condition {
    /// For people: `battery 8 %, battery low, tamper OPEN, link quality 40`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        parts.extend(self.battery.map(|b| format!("battery {b} %")));
        parts.extend(self.battery_low.filter(|low| *low).map(|_| "battery low".to_owned()));
        parts.extend(self.tamper.map(|t| if t { "tamper OPEN" } else { "tamper closed" }.to_owned()));
        parts.extend(self.linkquality.map(|q| format!("link quality {q}")));
        parts.extend(self.last_seen.map(|t| format!("last seen {t}")));
        if parts.is_empty() { "nothing reported".to_owned() } else { parts.join(", ") }
    }
}

impl Payload for Condition {
    const WHAT: &'static str = "device condition";

    fn validate(&self) -> Result<(), DecodeError> {
        if self.battery.is_some_and(|b| b > 100) {
            return Err(DecodeError::invalid(Self::WHAT, "battery above 100 %"));
        }
        Ok(())
    }
}

/// At most 40 characters of untrusted text, for error messages.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_is_plain_text() {
        assert_eq!(Availability::Online.encode(), b"online");
        assert_eq!(Availability::decode(b"offline"), Ok(Availability::Offline));
        assert!(Availability::decode(b"\"online\"").is_err());
        assert!(Availability::decode(b"").is_err());
        assert!(Availability::decode(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn health_round_trips_and_ok_lists_no_problems() {
        let trouble = Health {
            state: HealthState::Trouble,
            problems: vec!["database full".into()],
            device_id: "recorder".into(),
            ts: Timestamp(0),
        };
        assert_eq!(Health::decode(&trouble.encode()), Ok(trouble.clone()));
        let contradiction = Health { state: HealthState::Ok, ..trouble };
        assert!(Health::decode(&contradiction.encode()).is_err());
    }
}
