//! The bridge: devices the home did not make, mapped onto the home's own topics by configuration.
//!
//! A Zigbee2MQTT door publishes `zigbee2mqtt/<name>` `{"contact":false,"battery":97}`; the home's
//! panel, recorder, dashboard and Home Assistant discovery all read `<root>/security/door/<id>`.
//! One daemon reads the foreign topics and republishes each reading, retained, as the home's
//! [`SensorReading`] (or the sun's phase), so every consumer stays as it is and the contract has
//! one shape. The price is one more hop through the broker (about a tenth of a millisecond on
//! loopback, see the README); the alternative, a source map read by every consumer, would put
//! every foreign format into the panel, the recorder, the dashboard and the light controller.
//!
//! `config/bridge.toml` lists the devices, each with a profile:
//!
//! | profile | foreign topic | reading |
//! |---|---|---|
//! | `zigbee2mqtt` | `zigbee2mqtt/<source>` | `contact` (false = open), `occupancy` |
//! | `tasmota` | `stat/<source>/POWER` | `ON` / `OFF` |
//! | `esphome` | `<node>/binary_sensor/<name>/state` (`source = "<node>/<name>"`) | `ON` / `OFF` |
//! | `shelly` | `<source>/status/input:0` (gen 2) | `state` (true = active) |
//! | `iot-lights` | `iot/lights/motion`, `iot/lights/circadian_rhythm` | `{'motion_detected': True}`, `sunrise` |
//! | `generic` | `topic` | the value at JSON `pointer` (or the payload), compared with `on` / `off` |
//!
//! What a device sends that its profile cannot read is logged once per device and dropped: the
//! home's topic keeps its last reading (the panel's supervision notices a device gone silent).

use std::collections::HashSet;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, ConfigError, Device, DeviceSpec, MqttConfig, Received, Shutdown};
use protocol::{
    CircadianPhase, CircadianReading, DeviceKind, Qos, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `config/bridge.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// The foreign devices, each mapped to a home device.
    #[serde(rename = "device")]
    pub devices: Vec<Mapping>,
}

impl Default for Config {
    fn default() -> Self {
        Config { mqtt: MqttConfig::with_id("bridge"), devices: Vec::new() }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "bridge";

    fn mqtt(&self) -> &MqttConfig {
        &self.mqtt
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        let mut ids = HashSet::new();
        for (i, device) in self.devices.iter().enumerate() {
            device.validate().map_err(|e| ConfigError::Invalid(format!("device {} ({}): {e}", i + 1, device.id)))?;
            if !ids.insert((&device.id, device.kind)) {
                return Err(ConfigError::Invalid(format!("device {}: `{}` is mapped twice", i + 1, device.id)));
            }
        }
        Ok(())
    }
}

/// What a foreign device is in the home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Door,
    Window,
    Motion,
    /// The sun's phase (the original project's circadian sensor).
    Circadian,
}

impl Kind {
    fn sensor(self) -> Option<SensorKind> {
        match self {
            Kind::Door => Some(SensorKind::Door),
            Kind::Window => Some(SensorKind::Window),
            Kind::Motion => Some(SensorKind::Motion),
            Kind::Circadian => None,
        }
    }
}

/// How a family of devices speaks MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    Zigbee2mqtt,
    Tasmota,
    Esphome,
    Shelly,
    IotLights,
    Generic,
}

/// One foreign device and the home device it becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The home's device id (one topic level).
    pub id: String,
    pub kind: Kind,
    pub profile: Profile,
    /// The foreign device's name: Zigbee2MQTT's friendly name, Tasmota's topic, ESPHome's
    /// `<node>/<name>`, Shelly's topic prefix. Not used by `iot-lights` and `generic`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// `generic`: the topic to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `generic`: a JSON pointer to the value (`/contact`); none reads the whole payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// `generic`: the value meaning open / motion (compared as text, any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// `generic`: the value meaning closed / no motion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<String>,
}

/// What a foreign message said, in the home's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Sensor(SensorState),
    Phase(CircadianPhase),
}

impl Mapping {
    fn validate(&self) -> Result<(), String> {
        protocol::validate_id(&self.id).map_err(|e| e.to_string())?;
        let needs_source =
            matches!(self.profile, Profile::Zigbee2mqtt | Profile::Tasmota | Profile::Esphome | Profile::Shelly);
        if needs_source && (self.source.is_empty() || self.source.contains(['+', '#'])) {
            return Err(format!("profile {:?} needs `source`, the device's name, without + or #", self.profile));
        }
        if self.profile == Profile::Esphome && self.source.split('/').count() != 2 {
            return Err(format!("esphome's source is `<node>/<name>`, not `{}`", self.source));
        }
        if self.kind == Kind::Circadian && !matches!(self.profile, Profile::IotLights) {
            return Err("only the iot-lights profile has a circadian sensor".into());
        }
        if self.profile == Profile::Generic {
            match (&self.topic, &self.on, &self.off) {
                (Some(topic), Some(_), Some(_)) if !topic.is_empty() && !topic.contains(['+', '#']) => {}
                _ => return Err("the generic profile needs `topic` (no wildcards), `on` and `off`".into()),
            }
            if let Some(pointer) = &self.pointer
                && !pointer.is_empty()
                && !pointer.starts_with('/')
            {
                return Err(format!("pointer `{pointer}` is not a JSON pointer: it starts with `/`, e.g. `/contact`"));
            }
        }
        Ok(())
    }

    /// The foreign topic this device publishes on.
    pub fn topic(&self) -> String {
        let s = &self.source;
        match self.profile {
            Profile::Zigbee2mqtt => format!("zigbee2mqtt/{s}"),
            Profile::Tasmota => format!("stat/{s}/POWER"),
            Profile::Esphome => {
                let (node, name) = s.split_once('/').unwrap_or((s, s));
                format!("{node}/binary_sensor/{name}/state")
            }
            Profile::Shelly => format!("{s}/status/input:0"),
            Profile::IotLights if self.kind == Kind::Circadian => "iot/lights/circadian_rhythm".into(),
            Profile::IotLights => "iot/lights/motion".into(),
            Profile::Generic => self.topic.clone().unwrap_or_default(),
        }
    }

    /// Reads a foreign payload; `Ok(None)` for a message that carries no reading (a Zigbee2MQTT
    /// update of the battery alone), an error for one that cannot be read.
    pub fn read(&self, payload: &[u8]) -> Result<Option<Reading>, String> {
        let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8 text".to_owned())?.trim();
        if self.kind == Kind::Circadian {
            let word = text.trim_matches(['"', '\'']).to_ascii_lowercase();
            return CircadianPhase::ALL
                .into_iter()
                .find(|p| p.as_str() == word)
                .map(|p| Some(Reading::Phase(p)))
                .ok_or_else(|| format!("`{}` is not a phase (sunrise, morning, sunset, night)", clip(text)));
        }
        let kind = self.kind.sensor().unwrap_or(SensorKind::Door);
        let active = match self.profile {
            Profile::Zigbee2mqtt => {
                let json = parse_json(text)?;
                // Zigbee2MQTT's contact is true while the magnet is near: closed.
                let field = if kind == SensorKind::Motion { "occupancy" } else { "contact" };
                match json.get(field) {
                    None | Some(Value::Null) => return Ok(None),
                    Some(Value::Bool(b)) => {
                        if kind == SensorKind::Motion {
                            *b
                        } else {
                            !*b
                        }
                    }
                    Some(other) => return Err(format!("`{field}` is {other}, not true or false")),
                }
            }
            Profile::Tasmota | Profile::Esphome => on_off(text)?,
            Profile::Shelly => match parse_json(text)?.get("state") {
                Some(Value::Bool(b)) => *b,
                None => return Ok(None),
                Some(other) => return Err(format!("`state` is {other}, not true or false")),
            },
            Profile::IotLights => {
                // The original project's Python publishes its dict's repr: single quotes, True.
                let json = parse_json(&python_repr_to_json(text))?;
                match json.get("motion_detected") {
                    Some(Value::Bool(b)) => *b,
                    _ => return Err("no `motion_detected` true or false".into()),
                }
            }
            Profile::Generic => {
                let value = match self.pointer.as_deref().filter(|p| !p.is_empty()) {
                    Some(pointer) => {
                        let json = parse_json(text)?;
                        match json.pointer(pointer) {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Null) | None => return Ok(None),
                            Some(v) => v.to_string(),
                        }
                    }
                    None => text.to_owned(),
                };
                let is = |want: &Option<String>| want.as_deref().is_some_and(|w| w.eq_ignore_ascii_case(&value));
                if is(&self.on) {
                    true
                } else if is(&self.off) {
                    false
                } else {
                    return Err(format!("`{}` is neither `on` nor `off` of this device", clip(&value)));
                }
            }
        };
        Ok(Some(Reading::Sensor(if active { kind.active() } else { kind.idle() })))
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))
}

fn on_off(text: &str) -> Result<bool, String> {
    match text.to_ascii_uppercase().as_str() {
        "ON" | "TRUE" | "1" | "OPEN" => Ok(true),
        "OFF" | "FALSE" | "0" | "CLOSED" => Ok(false),
        _ => Err(format!("`{}` is not ON or OFF", clip(text))),
    }
}

/// `{'motion_detected': True}` → `{"motion_detected": true}`: enough of Python's repr for the
/// original project's flat dicts.
fn python_repr_to_json(text: &str) -> String {
    text.replace('\'', "\"").replace("True", "true").replace("False", "false").replace("None", "null")
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 { format!("{}…", s.chars().take(40).collect::<String>()) } else { s.to_owned() }
}

/// The bridge as a [`Device`].
pub struct Bridge {
    config: Config,
    /// Devices whose unreadable messages were already warned about.
    warned: HashSet<usize>,
}

impl Bridge {
    pub fn new(config: Config) -> Bridge {
        Bridge { config, warned: HashSet::new() }
    }

    /// What one foreign message becomes: a reading on the home's topic of each device mapped to
    /// it (one topic may feed several, e.g. a door's contact and a motion's occupancy).
    pub fn translate(&mut self, topic: &str, payload: &[u8], now: Timestamp) -> Vec<Act<()>> {
        let mut acts = Vec::new();
        for (i, device) in self.config.devices.iter().enumerate() {
            if device.topic() != topic {
                continue;
            }
            match device.read(payload) {
                Ok(Some(Reading::Sensor(state))) => {
                    let kind = device.kind.sensor().unwrap_or(SensorKind::Door);
                    let reading = SensorReading { state, device_id: device.id.clone(), ts: now };
                    acts.push(Act::publish(Topic::Sensor { kind, id: device.id.clone() }, &reading));
                }
                Ok(Some(Reading::Phase(phase))) => {
                    let reading =
                        CircadianReading { phase, device_id: device.id.clone(), ts: now, elevation_deg: None };
                    acts.push(Act::publish(Topic::Circadian, &reading));
                }
                Ok(None) => {}
                Err(e) => {
                    if self.warned.insert(i) {
                        tracing::warn!(
                            "{} ({:?} {}): cannot read a message on {topic}: {e}; check its profile in bridge.toml",
                            device.id,
                            device.profile,
                            device.source
                        );
                    }
                }
            }
        }
        acts
    }
}

impl Device for Bridge {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        let topics = Topics::new(&self.config.mqtt.topic_root);
        let mut spec = DeviceSpec::new(DeviceKind::Bridge);
        let mut foreign: Vec<String> = self.config.devices.iter().map(Mapping::topic).collect();
        foreign.sort();
        foreign.dedup();
        spec.capabilities =
            self.config.devices.iter().map(|d| format!("{:?}:{}", d.profile, d.id).to_lowercase()).collect();
        spec.subscriptions = foreign.into_iter().map(|t| (t, Qos::AtLeastOnce)).collect();
        spec.state_topics = self
            .config
            .devices
            .iter()
            .map(|d| match d.kind.sensor() {
                Some(kind) => topics.name(&Topic::Sensor { kind, id: d.id.clone() }),
                None => topics.name(&Topic::Circadian),
            })
            .collect();
        spec
    }

    fn on_received(&mut self, _topics: &Topics, received: Received, now: Timestamp) -> Vec<Act<()>> {
        self.translate(&received.topic, &received.payload, now)
    }
}

/// Runs the bridge until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    if config.devices.is_empty() {
        tracing::warn!("no [[device]] in bridge.toml: the bridge has nothing to map (see config/bridge.toml)");
    }
    let mqtt = config.mqtt.clone();
    device_runtime::runner::run(Bridge::new(config), &mqtt, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(kind: Kind, profile: Profile, source: &str) -> Mapping {
        Mapping {
            id: "x".into(),
            kind,
            profile,
            source: source.into(),
            topic: None,
            pointer: None,
            on: None,
            off: None,
        }
    }

    #[test]
    fn each_profile_reads_its_devices() {
        use Kind::{Circadian, Door, Window};
        use Profile::*;
        use SensorState::{Closed, NoMotion, Open};
        let (motion, sees) = (Kind::Motion, SensorState::Motion);
        let cases: &[(Mapping, &str, &str, Option<SensorState>)] = &[
            (
                device(Door, Zigbee2mqtt, "front"),
                "zigbee2mqtt/front",
                r#"{"contact":false,"battery":97,"linkquality":120}"#,
                Some(Open),
            ),
            (device(Door, Zigbee2mqtt, "front"), "zigbee2mqtt/front", r#"{"contact":true}"#, Some(Closed)),
            (device(Door, Zigbee2mqtt, "front"), "zigbee2mqtt/front", r#"{"battery":96}"#, None),
            (device(motion, Zigbee2mqtt, "hall"), "zigbee2mqtt/hall", r#"{"occupancy":true}"#, Some(sees)),
            (device(motion, Tasmota, "pir"), "stat/pir/POWER", "ON", Some(sees)),
            (device(motion, Tasmota, "pir"), "stat/pir/POWER", "OFF", Some(NoMotion)),
            (
                device(Window, Esphome, "node1/kitchen_window"),
                "node1/binary_sensor/kitchen_window/state",
                "ON",
                Some(Open),
            ),
            (device(Window, Shelly, "shelly1"), "shelly1/status/input:0", r#"{"id":0,"state":true}"#, Some(Open)),
            (device(motion, IotLights, ""), "iot/lights/motion", "{'motion_detected': True}", Some(sees)),
            (device(motion, IotLights, ""), "iot/lights/motion", "{'motion_detected': False}", Some(NoMotion)),
        ];
        for (mapping, topic, payload, expected) in cases {
            assert_eq!(mapping.validate(), Ok(()), "{mapping:?}");
            assert_eq!(&mapping.topic(), topic);
            let read = mapping.read(payload.as_bytes()).unwrap();
            assert_eq!(read, expected.map(Reading::Sensor), "{payload}");
        }
        let sun = device(Circadian, IotLights, "");
        assert_eq!(sun.topic(), "iot/lights/circadian_rhythm");
        assert_eq!(sun.read(b"sunrise"), Ok(Some(Reading::Phase(CircadianPhase::Sunrise))));
    }

    #[test]
    fn the_generic_profile_reads_a_pointer_or_the_payload() {
        let generic = Mapping {
            topic: Some("garage/door".into()),
            pointer: Some("/contact".into()),
            on: Some("false".into()),
            off: Some("true".into()),
            ..device(Kind::Door, Profile::Generic, "")
        };
        assert_eq!(generic.validate(), Ok(()));
        assert_eq!(generic.read(br#"{"contact":false}"#), Ok(Some(Reading::Sensor(SensorState::Open))));
        assert_eq!(generic.read(br#"{"other":1}"#), Ok(None));
        assert!(generic.read(br#"{"contact":"ajar"}"#).unwrap_err().contains("neither"));
        let words = Mapping { pointer: None, on: Some("OPENED".into()), off: Some("SHUT".into()), ..generic.clone() };
        assert_eq!(words.read(b"opened"), Ok(Some(Reading::Sensor(SensorState::Open))));
    }

    #[test]
    fn bad_mappings_are_refused_with_what_to_do() {
        let cases = [
            (device(Kind::Door, Profile::Zigbee2mqtt, ""), "needs `source`"),
            (device(Kind::Door, Profile::Tasmota, "a/#"), "without + or #"),
            (device(Kind::Window, Profile::Esphome, "node"), "`<node>/<name>`"),
            (device(Kind::Circadian, Profile::Tasmota, "x"), "only the iot-lights profile"),
            (device(Kind::Door, Profile::Generic, ""), "needs `topic`"),
            (
                Mapping {
                    pointer: Some("contact".into()),
                    topic: Some("t".into()),
                    on: Some("1".into()),
                    off: Some("0".into()),
                    ..device(Kind::Door, Profile::Generic, "")
                },
                "not a JSON pointer",
            ),
        ];
        for (mapping, needle) in cases {
            let err = mapping.validate().unwrap_err();
            assert!(err.contains(needle), "{mapping:?}: {err}");
        }
        let unknown = toml::from_str::<Config>(
            "[[device]]\nid = \"x\"\nkind = \"garage\"\nprofile = \"tasmota\"\nsource = \"a\"\n",
        );
        assert!(unknown.unwrap_err().to_string().contains("unknown variant `garage`"));
    }

    #[test]
    fn the_example_config_validates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/bridge.toml");
        let config: Config =
            device_runtime::config::layer(&Config::default(), Some(std::path::Path::new(path)), toml::Table::new())
                .unwrap();
        assert_eq!(config.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(config.devices.len(), 6);
    }

    #[test]
    fn one_message_feeds_every_device_mapped_to_it_and_garbage_is_warned_once() {
        let config = Config {
            devices: vec![
                Mapping { id: "front".into(), ..device(Kind::Door, Profile::Zigbee2mqtt, "multi") },
                Mapping { id: "hall".into(), ..device(Kind::Motion, Profile::Zigbee2mqtt, "multi") },
            ],
            ..Config::default()
        };
        let mut bridge = Bridge::new(config);
        let acts = bridge.translate("zigbee2mqtt/multi", br#"{"contact":false,"occupancy":true}"#, Timestamp(5));
        let readings: Vec<SensorReading> = device_runtime::runner::published(&acts);
        assert_eq!(
            readings.iter().map(|r| (r.device_id.as_str(), r.state)).collect::<Vec<_>>(),
            [("front", SensorState::Open), ("hall", SensorState::Motion)]
        );
        assert!(bridge.translate("zigbee2mqtt/multi", b"garbage", Timestamp(6)).is_empty());
        assert_eq!(bridge.warned.len(), 2);
    }
}
