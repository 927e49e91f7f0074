//! `config/light-controller.toml`: levels per phase, rooms, timeouts.

use device_runtime::daemon::DaemonConfig;
use device_runtime::{ConfigError, MqttConfig};
use protocol::{COLOR_TEMP_RANGE_K, CircadianPhase};
use serde::{Deserialize, Serialize};

/// A light level: brightness in percent (0 = off) and an optional colour temperature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub brightness: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_temp_k: Option<u16>,
}

/// The level of each phase, and of motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Levels {
    pub sunrise: Level,
    pub morning: Level,
    pub sunset: Level,
    pub night: Level,
    /// Motion's level; without a colour temperature, the phase's is kept.
    pub motion: Level,
}

impl Default for Levels {
    fn default() -> Self {
        let level = |brightness, k| Level { brightness, color_temp_k: Some(k) };
        Levels {
            sunrise: level(50, 2700),
            morning: level(100, 5000),
            sunset: level(30, 2700),
            night: level(5, 2200),
            motion: Level { brightness: 100, color_temp_k: None },
        }
    }
}

impl Levels {
    pub fn of(&self, phase: CircadianPhase) -> Level {
        match phase {
            CircadianPhase::Sunrise => self.sunrise,
            CircadianPhase::Morning => self.morning,
            CircadianPhase::Sunset => self.sunset,
            CircadianPhase::Night => self.night,
        }
    }
}

/// A room: its bulbs follow its motion sensors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Room {
    pub name: String,
    pub bulbs: Vec<String>,
    #[serde(default)]
    pub motion_sensors: Vec<String>,
    /// While the panel is armed away, its bulbs replay their own light of a week before (or a
    /// plausible evening): a home that looks lived-in ([`crate::simulation`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulate_presence: bool,
}

/// `[simulation]`: how presence is simulated in the rooms that opt in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Simulation {
    /// Each bulb's replay moves by up to this many minutes either way, a different shift each day.
    pub jitter_min: u64,
    /// The recorder's database, read for last week's light (a missing one: the evening pattern).
    pub history: std::path::PathBuf,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation { jitter_min: 15, history: std::path::PathBuf::from(store::DEFAULT_DATABASE) }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// Seconds without motion before a room returns to its circadian level.
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub motion_timeout_s: u64,
    /// Minutes a manual command pauses automation for that bulb (0: never pause).
    #[serde(deserialize_with = "device_runtime::duration::minutes")]
    pub manual_override_min: u64,
    /// Turn the bulbs to 100 %, flashing, while the alarm is triggered.
    pub follow_alarm: bool,
    /// A phase change adapts only bulbs that are on (switched on by a person, or by a phase while
    /// this was off); a bulb that is off stays off until someone switches it on or motion lights
    /// it, and motion ends with it off again. Off (the default): every phase sets every bulb, as
    /// the original project did.
    pub adapt_only_lit: bool,
    pub levels: Levels,
    pub rooms: Vec<Room>,
    pub simulation: Simulation,
}

impl Default for Config {
    fn default() -> Self {
        let room = |name: &str, bulb: &str, sensor: &str| Room {
            name: name.into(),
            bulbs: vec![bulb.into()],
            motion_sensors: vec![sensor.into()],
            simulate_presence: false,
        };
        Config {
            mqtt: MqttConfig::with_id("light-controller"),
            motion_timeout_s: 60,
            manual_override_min: 30,
            follow_alarm: true,
            adapt_only_lit: false,
            levels: Levels::default(),
            rooms: vec![
                room("kitchen", "kitchen", "kitchen-motion"),
                room("hall", "hall", "hall-motion"),
                // The bridge's example devices (config/bridge.toml): a Zigbee2MQTT bulb, a Tasmota
                // PIR and the original lighting project's motion sensor.
                Room {
                    motion_sensors: vec!["porch-motion".into(), "legacy-motion".into()],
                    ..room("porch", "porch", "")
                },
            ],
            simulation: Simulation::default(),
        }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "light-controller";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let levels = [
            ("sunrise", self.levels.sunrise),
            ("morning", self.levels.morning),
            ("sunset", self.levels.sunset),
            ("night", self.levels.night),
            ("motion", self.levels.motion),
        ];
        for (name, level) in levels {
            if level.brightness > 100 {
                return invalid(format!("levels.{name}.brightness = {} is outside 0-100", level.brightness));
            }
            if let Some(k) = level.color_temp_k.filter(|k| !COLOR_TEMP_RANGE_K.contains(k)) {
                return invalid(format!("levels.{name}.color_temp_k = {k} is outside 1000-10000"));
            }
        }
        if self.simulation.jitter_min > 120 {
            return invalid(format!("simulation.jitter_min = {} is above 120", self.simulation.jitter_min));
        }
        if self.rooms.is_empty() {
            return invalid("rooms is empty: add at least one [[rooms]] with bulbs".into());
        }
        for room in &self.rooms {
            for id in room.bulbs.iter().chain(&room.motion_sensors) {
                protocol::validate_id(id).map_err(|e| ConfigError::Invalid(format!("rooms `{}`: {e}", room.name)))?;
            }
            if room.bulbs.is_empty() {
                return invalid(format!("rooms `{}` has no bulbs", room.name));
            }
        }
        Ok(())
    }
}
