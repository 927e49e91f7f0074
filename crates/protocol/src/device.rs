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
}
