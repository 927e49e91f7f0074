//! The bridge: devices the home did not make, mapped onto the home's own topics by configuration.
//!
//! A Zigbee2MQTT door publishes `zigbee2mqtt/<name>` `{"contact":false,"battery":97}`; the home's
//! panel, recorder, dashboard and Home Assistant discovery all read `<root>/security/door/<id>`.
//! One daemon reads the foreign topics and republishes each reading, retained, as the home's
//! [`SensorReading`] (or the sun's phase), so every consumer stays as it is and the contract has
//! one shape. The price is one more hop through the broker (0.04 ms at p50 on the intrusion path,
//! measured by `cargo bench -p bench --bench adapter`); the alternative, a source map read by every consumer, would put
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
//! And the other way, lights (`kind = "light"`): the home's command on `<root>/lights/<id>/set`
//! goes to a Zigbee2MQTT bulb as `zigbee2mqtt/<source>/set` (brightness 0–254, `color_temp` in
//! mireds; its state comes back onto `<root>/lights/<id>/state` in the home's terms), to a
//! Tasmota dimmer as `cmnd/<source>/Dimmer`, `POWER` and `CT` (state from `stat/<source>/RESULT`),
//! to an ESPHome light as `<node>/light/<name>/command` (JSON schema, brightness 0–255, mireds;
//! state from `.../state`) or to a Shelly gen 2 dimmer as an RPC `Light.Set` on `<source>/rpc`
//! (brightness in percent, no colour temperature; state from `<source>/status/light:0`).
//!
//! Keypads and tag readers (`kind = "keypad"`, a Zigbee2MQTT keypad; `kind = "tag"`, a `generic`
//! reader): each press becomes a command on the panel's set topic (or its `area`'s), and the
//! panel's answer goes back to the keypad ([`keypad`]).
//!
//! What a device sends that its profile cannot read is logged once per device and dropped: the
//! home's topic keeps its last reading (the panel's supervision notices a device gone silent).

pub mod keypad;

use std::collections::HashSet;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, ConfigError, Device, DeviceSpec, MqttConfig, Received, Shutdown};
use protocol::discovery::{kelvin_to_mireds, mireds_to_kelvin};
use protocol::{
    CircadianPhase, CircadianReading, ColorMode, Condition, DeviceKind, Effect, LightCommand, LightSource, LightState,
    Message, PanelAction, PanelState, Power, Qos, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

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

    device_runtime::mqtt_section!(mqtt);

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
    /// A bulb or dimmer driven by the home's light commands.
    Light,
    /// A Zigbee2MQTT alarm keypad: its presses are panel commands, the panel's answers its display.
    Keypad,
    /// A tag (RFID, NFC) reader: a tag's id is a credential, as a PIN is.
    Tag,
}

impl Kind {
    fn sensor(self) -> Option<SensorKind> {
        match self {
            Kind::Door => Some(SensorKind::Door),
            Kind::Window => Some(SensorKind::Window),
            Kind::Motion => Some(SensorKind::Motion),
            Kind::Circadian | Kind::Light | Kind::Keypad | Kind::Tag => None,
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
    /// Keypads and tag readers: the panel's area they command (`[[panel.areas]]`); absent, the
    /// whole house.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// Tag readers: what a tag does (`toggle`, `disarm`, `arm_away`, `arm_home`, `arm_night`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<keypad::TagAction>,
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
        if self.kind == Kind::Light
            && !matches!(self.profile, Profile::Zigbee2mqtt | Profile::Tasmota | Profile::Esphome | Profile::Shelly)
        {
            return Err(
                "lights are zigbee2mqtt bulbs, tasmota dimmers, esphome lights or shelly (gen 2) dimmers".into()
            );
        }
        if self.kind == Kind::Keypad && self.profile != Profile::Zigbee2mqtt {
            return Err("keypads are zigbee2mqtt keypads (`action` and `action_code`)".into());
        }
        if self.kind == Kind::Tag && self.profile != Profile::Generic {
            return Err("tag readers are generic: `topic` and, for JSON, the `pointer` to the tag's id".into());
        }
        if let Some(Err(e)) = self.area.as_deref().map(protocol::validate_id) {
            return Err(format!("area: {e}"));
        }
        if self.area.is_some() && !matches!(self.kind, Kind::Keypad | Kind::Tag) {
            return Err("only keypads and tag readers have an `area`".into());
        }
        if self.action.is_some() && self.kind != Kind::Tag {
            return Err("only tag readers have an `action`".into());
        }
        if self.profile == Profile::Generic {
            let words = self.kind == Kind::Tag || (self.on.is_some() && self.off.is_some());
            match &self.topic {
                Some(topic) if words && !topic.is_empty() && !topic.contains(['+', '#']) => {}
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
            Profile::Tasmota if self.kind == Kind::Light => format!("stat/{s}/RESULT"),
            Profile::Tasmota => format!("stat/{s}/POWER"),
            Profile::Esphome => {
                let (node, name) = s.split_once('/').unwrap_or((s, s));
                let component = if self.kind == Kind::Light { "light" } else { "binary_sensor" };
                format!("{node}/{component}/{name}/state")
            }
            Profile::Shelly if self.kind == Kind::Light => format!("{s}/status/light:0"),
            Profile::Shelly => format!("{s}/status/input:0"),
            Profile::IotLights if self.kind == Kind::Circadian => "iot/lights/circadian_rhythm".into(),
            Profile::IotLights => "iot/lights/motion".into(),
            Profile::Generic => self.topic.clone().unwrap_or_default(),
        }
    }

    /// The battery, radio and tamper switch a Zigbee2MQTT sensor reports along with its readings
    /// (`battery`, `battery_low`, `tamper`, `linkquality`); `None` for other profiles, for a
    /// payload without any of them, and for one that is not JSON (its reading says so).
    pub fn condition(&self, payload: &[u8], now: Timestamp) -> Option<Condition> {
        if self.profile != Profile::Zigbee2mqtt || (self.kind.sensor().is_none() && self.kind != Kind::Keypad) {
            return None;
        }
        let json: Value = serde_json::from_slice(payload).ok()?;
        let percent = |field: &str, max: u64| json.get(field)?.as_u64().filter(|v| *v <= max).map(|v| v as u8);
        let condition = Condition {
            battery: percent("battery", 100),
            battery_low: json.get("battery_low").and_then(Value::as_bool),
            tamper: json.get("tamper").and_then(Value::as_bool),
            linkquality: percent("linkquality", 255),
            // Zigbee2MQTT's `advanced.last_seen`: ISO 8601 or epoch milliseconds.
            last_seen: json.get("last_seen").and_then(|v| serde_json::from_value(v.clone()).ok()),
            device_id: self.id.clone(),
            ts: now,
        };
        let any = condition.battery.is_some()
            || condition.battery_low.is_some()
            || condition.tamper.is_some()
            || condition.linkquality.is_some()
            || condition.last_seen.is_some();
        any.then_some(condition)
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

/// Zigbee2MQTT's brightness scale.
const Z2M_BRIGHTNESS_MAX: f64 = 254.0;
/// ESPHome's brightness scale in its MQTT JSON light schema.
const ESPHOME_BRIGHTNESS_MAX: f64 = 255.0;

impl Mapping {
    /// The home's light command as the foreign device takes it: topic and payload, in order.
    pub fn light_command(&self, command: &LightCommand) -> Vec<(String, Vec<u8>)> {
        let s = &self.source;
        let command = command.in_kelvin();
        match self.profile {
            Profile::Tasmota => {
                let mut out = Vec::new();
                match (command.state, command.brightness) {
                    (Some(Power::Off), _) | (_, Some(0)) => out.push((format!("cmnd/{s}/POWER"), b"OFF".to_vec())),
                    (_, Some(b)) => out.push((format!("cmnd/{s}/Dimmer"), b.to_string().into_bytes())),
                    (Some(Power::On), None) => out.push((format!("cmnd/{s}/POWER"), b"ON".to_vec())),
                    (None, None) => {}
                }
                if let Some(k) = command.color_temp_k {
                    // Tasmota's CT is in mireds, 153-500.
                    let ct = kelvin_to_mireds(k).clamp(153, 500);
                    out.push((format!("cmnd/{s}/CT"), ct.to_string().into_bytes()));
                }
                out
            }
            Profile::Shelly => {
                // Gen 2 RPC over MQTT: Light.Set with on and brightness in percent; the answer goes
                // to `src`'s topic, which nothing needs (the new state arrives on status/light:0).
                let mut params = serde_json::Map::from_iter([("id".to_owned(), Value::from(0))]);
                match (command.state, command.brightness) {
                    (Some(Power::Off), _) | (_, Some(0)) => {
                        params.insert("on".into(), false.into());
                    }
                    (_, Some(b)) => {
                        params.insert("on".into(), true.into());
                        params.insert("brightness".into(), b.into());
                    }
                    (Some(Power::On), None) => {
                        params.insert("on".into(), true.into());
                    }
                    (None, None) => return Vec::new(),
                }
                if let Some(t) = command.transition {
                    params.insert("transition_duration".into(), t.into());
                }
                let rpc =
                    serde_json::json!({"id": 1, "src": "mqtt-home-bridge", "method": "Light.Set", "params": params});
                vec![(format!("{s}/rpc"), rpc.to_string().into_bytes())]
            }
            _ => {
                let esphome = self.profile == Profile::Esphome;
                let scale = if esphome { ESPHOME_BRIGHTNESS_MAX } else { Z2M_BRIGHTNESS_MAX };
                let mut json = serde_json::Map::new();
                if let Some(state) = command.state {
                    json.insert("state".into(), state.as_str().into());
                }
                if let Some(b) = command.brightness {
                    let raw = (f64::from(b) * scale / 100.0).round() as u64;
                    json.insert("brightness".into(), raw.into());
                    if command.state.is_none() {
                        json.insert("state".into(), if b == 0 { "OFF" } else { "ON" }.into());
                    }
                }
                if let Some(k) = command.color_temp_k {
                    json.insert("color_temp".into(), kelvin_to_mireds(k).into());
                }
                if let Some(t) = command.transition {
                    json.insert("transition".into(), t.into());
                }
                let flashing = command.effect == Some(Effect::Flash) || command.flash.is_some();
                if flashing && esphome {
                    // ESPHome's JSON schema: flash for this many seconds (the alarm's flashing: 10).
                    let seconds = command.flash.unwrap_or(protocol::Flash::Long).duration().as_secs();
                    json.insert("flash".into(), seconds.max(1).into());
                } else if flashing {
                    json.insert("effect".into(), "blink".into());
                }
                let topic = match s.split_once('/') {
                    Some((node, name)) if esphome => format!("{node}/light/{name}/command"),
                    _ => format!("zigbee2mqtt/{s}/set"),
                };
                vec![(topic, Value::Object(json).to_string().into_bytes())]
            }
        }
    }

    /// A foreign light's state in the home's terms; `Ok(None)` for a message without one.
    pub fn light_state(
        &self,
        payload: &[u8],
        source: LightSource,
        now: Timestamp,
    ) -> Result<Option<LightState>, String> {
        let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8 text".to_owned())?;
        let json = parse_json(text.trim())?;
        // Zigbee2MQTT: state, brightness 0-254, color_temp; Tasmota's RESULT: POWER, Dimmer 0-100,
        // CT; ESPHome: state, brightness 0-255, color_temp; Shelly gen 2: output (bool), brightness 0-100.
        let (state_key, level_key, ct_key, scale) = match self.profile {
            Profile::Tasmota => ("POWER", "Dimmer", "CT", 100.0),
            Profile::Shelly => ("output", "brightness", "", 100.0),
            Profile::Esphome => ("state", "brightness", "color_temp", ESPHOME_BRIGHTNESS_MAX),
            _ => ("state", "brightness", "color_temp", Z2M_BRIGHTNESS_MAX),
        };
        let state = match json.get(state_key) {
            None => return Ok(None),
            Some(Value::Bool(true)) => Power::On,
            Some(Value::Bool(false)) => Power::Off,
            Some(Value::String(word)) => {
                Power::from_word(word).ok_or_else(|| format!("{state_key} `{}` is not ON or OFF", clip(word)))?
            }
            Some(other) => return Err(format!("{state_key} is {other}, not ON or OFF")),
        };
        let level =
            json.get(level_key).and_then(Value::as_f64).map(|b| (b * 100.0 / scale).round().clamp(0.0, 100.0) as u8);
        let mireds = json.get(ct_key).and_then(Value::as_u64).and_then(|m| u16::try_from(m).ok()).filter(|m| *m > 0);
        Ok(Some(LightState {
            state,
            brightness: if state == Power::On { level.unwrap_or(100) } else { 0 },
            color_temp_k: mireds.map(mireds_to_kelvin),
            color_mode: mireds.map(|_| ColorMode::ColorTemp),
            color_temp: mireds,
            effect: None,
            source,
            device_id: self.id.clone(),
            ts: now,
        }))
    }
}

/// Link quality moves with every Zigbee message; a change of less than this is not republished.
const LINKQUALITY_STEP: u8 = 10;

/// `last_seen` moves with every message; it is republished when it moved this much (ms).
const LAST_SEEN_STEP_MS: u64 = 10 * 60 * 1000;

/// Whether `new` says something `last` did not: a battery, battery-low or tamper change, a
/// link quality [`LINKQUALITY_STEP`] or more away, a `last_seen` [`LAST_SEEN_STEP_MS`] later.
fn worth_publishing(last: &Condition, new: &Condition) -> bool {
    let moved = match (last.linkquality, new.linkquality) {
        (Some(a), Some(b)) => a.abs_diff(b) >= LINKQUALITY_STEP,
        (a, b) => a.is_some() != b.is_some(),
    };
    let seen = match (last.last_seen, new.last_seen) {
        (Some(a), Some(b)) => b.0.abs_diff(a.0) >= LAST_SEEN_STEP_MS,
        (a, b) => a.is_some() != b.is_some(),
    };
    moved || seen || last.battery != new.battery || last.battery_low != new.battery_low || last.tamper != new.tamper
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
    topics: Topics,
    /// Devices whose unreadable messages were already warned about.
    warned: HashSet<usize>,
    /// Who last set each light, for the state it reports next.
    set_by: HashMap<String, LightSource>,
    /// The condition last published for each device (`devices/<id>/condition`).
    conditions: HashMap<String, Condition>,
    /// The panel's state, by area (none: the whole house), for keypads' displays and tags' toggles.
    panel_states: HashMap<Option<String>, PanelState>,
    /// The last keypad press sent to the panel, until the panel answers it.
    awaiting: Option<keypad::Awaiting>,
    /// Each keypad's last `action_transaction`: the same again is a redelivery, not a new press.
    transactions: HashMap<usize, u64>,
}

impl Bridge {
    pub fn new(config: Config) -> Bridge {
        let topics = Topics::new(&config.mqtt.topic_root);
        Bridge {
            config,
            topics,
            warned: HashSet::new(),
            set_by: HashMap::new(),
            conditions: HashMap::new(),
            panel_states: HashMap::new(),
            awaiting: None,
            transactions: HashMap::new(),
        }
    }

    /// Whether any keypad or tag reader is mapped: then the bridge follows the panel.
    fn has_keypads(&self) -> bool {
        self.config.devices.iter().any(|d| matches!(d.kind, Kind::Keypad | Kind::Tag))
    }

    /// The panel's status (of `area`, or the house's): keypads of that area show its state when
    /// it changed, or when it answers their press.
    fn on_status(&mut self, area: Option<String>, state: PanelState) -> Vec<Act<()>> {
        let changed = self.panel_states.insert(area.clone(), state) != Some(state);
        let mut acts = Vec::new();
        for (i, device) in self.config.devices.iter().enumerate() {
            if device.kind != Kind::Keypad || device.area != area {
                continue;
            }
            let awaited = self.awaiting.as_ref().filter(|a| a.device == i);
            if !changed && awaited.is_none() {
                continue;
            }
            let transaction = awaited.and_then(|a| a.transaction);
            acts.push(keypad_answer(device, keypad::arm_mode(state), transaction));
            if awaited.is_some() {
                self.awaiting = None;
            }
        }
        acts
    }

    /// A panel event that refuses the awaited press: the keypad is told (`invalid_code`, `not_ready`).
    fn on_event(&mut self, event: &protocol::PanelEvent, now: Timestamp) -> Vec<Act<()>> {
        let Some(mode) = keypad::refusal(event.event) else { return Vec::new() };
        let Some(awaiting) = self.awaiting.take_if(|a| a.answered_by(event, now)) else { return Vec::new() };
        let device = &self.config.devices[awaiting.device];
        vec![keypad_answer(device, mode, awaiting.transaction)]
    }

    /// A keypad's message: a press becomes the panel's command; anything it cannot be is logged
    /// (never with its code) and the keypad shows `invalid_code`.
    fn keypad_press(&mut self, i: usize, payload: &[u8], now: Timestamp) -> Vec<Act<()>> {
        let device = &self.config.devices[i];
        let press = match keypad::read_keypad(payload) {
            Ok(Some(press)) => press,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!("keypad {} ({}): {e}; the press was not sent to the panel", device.id, device.source);
                return vec![keypad_answer(device, "invalid_code", keypad::transaction(payload))];
            }
        };
        if let Some(t) = press.transaction
            && self.transactions.insert(i, t) == Some(t)
        {
            tracing::debug!("keypad {}: transaction {t} again (a redelivery): not sent twice", device.id);
            return Vec::new();
        }
        let state = self.panel_states.get(&device.area).copied();
        let mut acts = vec![panel_command(device, &press.command())];
        if press.action == PanelAction::Disarm && state == Some(PanelState::Disarmed) {
            // Nothing will change for the keypad to show: it is told at once.
            acts.push(keypad_answer(device, "already_disarmed", press.transaction));
        } else {
            self.awaiting = Some(keypad::Awaiting {
                device: i,
                transaction: press.transaction,
                area: device.area.clone(),
                since: now,
            });
        }
        acts
    }

    /// A tag reader's message: the tag's id as the code of the reader's action.
    fn tag_shown(&mut self, i: usize, payload: &[u8]) -> Vec<Act<()>> {
        let device = &self.config.devices[i];
        match keypad::read_tag(device.pointer.as_deref(), payload) {
            Ok(Some(tag)) => {
                let state = self.panel_states.get(&device.area).copied();
                let action = device.action.unwrap_or_default().action(state);
                vec![panel_command(device, &protocol::PanelCommand { action, code: Some(tag), force: false })]
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                if self.warned.insert(i) {
                    tracing::warn!(
                        "tag reader {} on {}: {e}; check its pointer in bridge.toml",
                        device.id,
                        device.topic()
                    );
                }
                Vec::new()
            }
        }
    }

    /// A home light command, for the lights mapped to it.
    fn command(&mut self, id: &str, command: &LightCommand) -> Vec<Act<()>> {
        let mut acts = Vec::new();
        for device in self.config.devices.iter().filter(|d| d.kind == Kind::Light && d.id == id) {
            self.set_by.insert(device.id.clone(), command.source_or_manual());
            for (topic, payload) in device.light_command(command) {
                acts.push(Act::Foreign { topic, payload, retain: false });
            }
        }
        acts
    }

    /// What one foreign message becomes: a reading on the home's topic of each device mapped to
    /// it (one topic may feed several, e.g. a door's contact and a motion's occupancy).
    pub fn translate(&mut self, topic: &str, payload: &[u8], now: Timestamp) -> Vec<Act<()>> {
        self.translate_kept(topic, payload, false, now)
    }

    /// [`Bridge::translate`] of a message the broker kept (`retained`): a keypad press or a tag
    /// kept by the broker is replayed to every bridge that subscribes, and is not a press now.
    pub fn translate_kept(&mut self, topic: &str, payload: &[u8], retained: bool, now: Timestamp) -> Vec<Act<()>> {
        match Message::decode(&self.topics, topic, payload) {
            Ok(Message::LightSet { id, command }) => return self.command(&id, &command),
            Ok(Message::PanelStatus(status)) => return self.on_status(None, status.state),
            Ok(Message::AreaStatus { area, status }) => return self.on_status(Some(area), status.state),
            Ok(Message::PanelEvent(event)) => return self.on_event(&event, now),
            Err(e) if matches!(e.parsed, Some(Topic::LightSet(_))) => {
                tracing::warn!("ignored a command on {}: {}", e.topic, e.why);
                return Vec::new();
            }
            _ => {}
        }
        let mut acts = Vec::new();
        // Keypads and tag readers, taken after the loop: they change what the bridge follows.
        let mut presses = Vec::new();
        for (i, device) in self.config.devices.iter().enumerate() {
            if device.topic() != topic {
                continue;
            }
            if device.kind == Kind::Tag {
                presses.push(i);
                continue;
            }
            if device.kind == Kind::Light {
                let source = self.set_by.get(&device.id).copied().unwrap_or(LightSource::Manual);
                match device.light_state(payload, source, now) {
                    Ok(Some(state)) => acts.push(Act::publish(Topic::LightState(device.id.clone()), &state)),
                    Ok(None) => {}
                    Err(e) => {
                        if self.warned.insert(i) {
                            tracing::warn!(
                                "{} (bulb {}): cannot read its state on {topic}: {e}",
                                device.id,
                                device.source
                            );
                        }
                    }
                }
                continue;
            }
            if let Some(condition) = device.condition(payload, now)
                && self.conditions.get(&device.id).is_none_or(|last| worth_publishing(last, &condition))
            {
                acts.push(Act::publish(Topic::Condition(device.id.clone()), &condition));
                self.conditions.insert(device.id.clone(), condition);
            }
            if device.kind == Kind::Keypad {
                presses.push(i);
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
                    // The panel is told too, on the sensor's own topic, as it would be by a sensor of
                    // the home that sent something unreadable: a trouble, not only a log line here.
                    // Not retained: the last reading the broker holds stays the last good one.
                    if let Some(kind) = device.kind.sensor() {
                        let unreadable = serde_json::json!({
                            "unreadable": format!("{:?} {} on {topic}: {e}", device.profile, device.source),
                            "device_id": device.id,
                            "ts": now,
                        });
                        let topic = self.topics.name(&Topic::Sensor { kind, id: device.id.clone() });
                        acts.push(Act::Foreign { topic, payload: unreadable.to_string().into_bytes(), retain: false });
                    }
                }
            }
        }
        if retained {
            presses.clear();
        }
        for i in presses {
            let more = match self.config.devices[i].kind {
                Kind::Keypad => self.keypad_press(i, payload, now),
                _ => self.tag_shown(i, payload),
            };
            acts.extend(more);
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
        foreign.extend(
            self.config
                .devices
                .iter()
                .filter(|d| d.kind == Kind::Light)
                .map(|d| topics.name(&Topic::LightSet(d.id.clone()))),
        );
        if self.has_keypads() {
            foreign.push(topics.name(&Topic::PanelStatus));
            foreign.push(topics.name(&Topic::PanelEvents));
            let areas = self.config.devices.iter().filter_map(|d| d.area.clone());
            foreign.extend(areas.map(|a| topics.name(&Topic::AreaStatus(a))));
        }
        foreign.sort();
        foreign.dedup();
        spec.capabilities =
            self.config.devices.iter().map(|d| format!("{:?}:{}", d.profile, d.id).to_lowercase()).collect();
        spec.subscriptions = foreign.into_iter().map(|t| (t, Qos::AtLeastOnce)).collect();
        spec.state_topics = self
            .config
            .devices
            .iter()
            .map(|d| match (d.kind, d.kind.sensor()) {
                (_, Some(kind)) => topics.name(&Topic::Sensor { kind, id: d.id.clone() }),
                (Kind::Light, None) => topics.name(&Topic::LightState(d.id.clone())),
                _ => topics.name(&Topic::Circadian),
            })
            .collect();
        spec
    }

    fn on_received(&mut self, _topics: &Topics, received: Received, now: Timestamp) -> Vec<Act<()>> {
        self.translate_kept(&received.topic, &received.payload, received.retained, now)
    }
}

/// A keypad's display, on its Zigbee2MQTT set topic.
fn keypad_answer(device: &Mapping, mode: &str, transaction: Option<u64>) -> Act<()> {
    let topic = format!("zigbee2mqtt/{}/set", device.source);
    Act::Foreign { topic, payload: keypad::answer(mode, transaction), retain: false }
}

/// A keypad's or tag's command, to its area's set topic or the house's.
fn panel_command(device: &Mapping, command: &protocol::PanelCommand) -> Act<()> {
    let topic = device.area.clone().map_or(Topic::PanelSet, Topic::AreaSet);
    Act::publish(topic, command)
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
    use protocol::Payload;

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
            area: None,
            action: None,
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
    fn home_light_commands_reach_foreign_bulbs_in_their_terms() {
        let z2m = Mapping { id: "porch".into(), ..device(Kind::Light, Profile::Zigbee2mqtt, "porch_bulb") };
        let cmd = |json: &str| LightCommand::decode(json.as_bytes()).unwrap();
        let out = z2m.light_command(&cmd(r#"{"state":"ON","brightness":50,"color_temp_k":4000,"source":"circadian"}"#));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "zigbee2mqtt/porch_bulb/set");
        let json: Value = serde_json::from_slice(&out[0].1).unwrap();
        assert_eq!(json, serde_json::json!({"state": "ON", "brightness": 127, "color_temp": 250}));
        let full = z2m.light_command(&cmd("100"));
        assert_eq!(
            serde_json::from_slice::<Value>(&full[0].1).unwrap(),
            serde_json::json!({"state": "ON", "brightness": 254})
        );
        let state = z2m
            .light_state(
                br#"{"state":"ON","brightness":127,"color_temp":250,"linkquality":90}"#,
                LightSource::Circadian,
                Timestamp(9),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            (state.state, state.brightness, state.color_temp_k, state.device_id.as_str()),
            (Power::On, 50, Some(4000), "porch")
        );
        assert_eq!(z2m.light_state(br#"{"linkquality":90}"#, LightSource::Manual, Timestamp(9)), Ok(None));

        let tasmota = Mapping { id: "desk".into(), ..device(Kind::Light, Profile::Tasmota, "desk_dimmer") };
        let topics = |c: &str| {
            tasmota
                .light_command(&cmd(c))
                .into_iter()
                .map(|(t, p)| format!("{t} {}", String::from_utf8(p).unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(topics("40"), ["cmnd/desk_dimmer/Dimmer 40"]);
        assert_eq!(topics("OFF"), ["cmnd/desk_dimmer/POWER OFF"]);
        assert_eq!(
            topics(r#"{"state":"ON","color_temp_k":2700}"#),
            ["cmnd/desk_dimmer/POWER ON", "cmnd/desk_dimmer/CT 370"]
        );
        let result =
            tasmota.light_state(br#"{"POWER":"ON","Dimmer":40}"#, LightSource::Manual, Timestamp(1)).unwrap().unwrap();
        assert_eq!((result.state, result.brightness), (Power::On, 40));
        assert_eq!(tasmota.topic(), "stat/desk_dimmer/RESULT");

        let esphome = Mapping { id: "lamp".into(), ..device(Kind::Light, Profile::Esphome, "livingroom/lamp") };
        let out = esphome.light_command(&cmd(r#"{"state":"ON","brightness":50,"color_temp_k":2700}"#));
        assert_eq!(out[0].0, "livingroom/light/lamp/command");
        assert_eq!(
            serde_json::from_slice::<Value>(&out[0].1).unwrap(),
            serde_json::json!({"state": "ON", "brightness": 128, "color_temp": 370})
        );
        let flash = esphome.light_command(&cmd(r#"{"state":"ON","brightness":100,"flash":"short"}"#));
        assert_eq!(serde_json::from_slice::<Value>(&flash[0].1).unwrap()["flash"], 2);
        assert_eq!(esphome.topic(), "livingroom/light/lamp/state");
        let state = esphome
            .light_state(
                br#"{"state":"ON","brightness":255,"color_mode":"color_temp","color_temp":370}"#,
                LightSource::Manual,
                Timestamp(1),
            )
            .unwrap()
            .unwrap();
        assert_eq!((state.state, state.brightness, state.color_temp_k), (Power::On, 100, Some(2703)));

        let shelly = Mapping { id: "shed".into(), ..device(Kind::Light, Profile::Shelly, "shellydimmer2-shed") };
        let rpc = |c: &str| {
            let out = shelly.light_command(&cmd(c));
            assert_eq!(out[0].0, "shellydimmer2-shed/rpc");
            serde_json::from_slice::<Value>(&out[0].1).unwrap()
        };
        assert_eq!(rpc("40")["params"], serde_json::json!({"id": 0, "on": true, "brightness": 40}));
        assert_eq!(rpc("OFF")["params"], serde_json::json!({"id": 0, "on": false}));
        assert_eq!(rpc("OFF")["method"], "Light.Set");
        assert_eq!(shelly.topic(), "shellydimmer2-shed/status/light:0");
        let state = shelly.light_state(
            br#"{"id":0,"source":"rpc","output":true,"brightness":40}"#,
            LightSource::Manual,
            Timestamp(1),
        );
        assert_eq!(state.unwrap().map(|s| (s.state, s.brightness)), Some((Power::On, 40)));
        let off = shelly.light_state(br#"{"id":0,"output":false,"brightness":40}"#, LightSource::Manual, Timestamp(1));
        assert_eq!(off.unwrap().map(|s| (s.state, s.brightness)), Some((Power::Off, 0)));
        assert!(device(Kind::Light, Profile::Generic, "").validate().unwrap_err().contains("lights are"));
    }

    #[test]
    fn the_example_config_validates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/bridge.toml");
        let config: Config =
            device_runtime::config::layer(&Config::default(), Some(std::path::Path::new(path)), toml::Table::new())
                .unwrap();
        assert_eq!(config.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(config.devices.len(), 10);
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
        // Garbage: no reading, but each sensor's topic says it was unreadable (the panel's trouble).
        let acts = bridge.translate("zigbee2mqtt/multi", b"garbage", Timestamp(6));
        assert!(device_runtime::runner::published::<SensorReading, ()>(&acts).is_empty());
        let unreadable: Vec<&str> = acts
            .iter()
            .filter_map(|a| match a {
                Act::Foreign { topic, retain: false, .. } => Some(topic.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(unreadable, ["home/security/door/front", "home/security/motion/hall"]);
        assert_eq!(bridge.warned.len(), 2);
    }

    #[test]
    fn a_zigbee2mqtt_sensors_battery_radio_and_tamper_become_its_condition_when_they_change() {
        let config = Config {
            devices: vec![Mapping { id: "front".into(), ..device(Kind::Door, Profile::Zigbee2mqtt, "front_door") }],
            ..Config::default()
        };
        let mut bridge = Bridge::new(config);
        let mut conditions = |payload: &str, t: u64| -> Vec<Condition> {
            device_runtime::runner::published(&bridge.translate(
                "zigbee2mqtt/front_door",
                payload.as_bytes(),
                Timestamp(t),
            ))
        };
        let first = conditions(r#"{"contact":true,"battery":97,"linkquality":120,"tamper":false}"#, 1);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].battery, first[0].tamper, first[0].linkquality), (Some(97), Some(false), Some(120)));
        assert_eq!(first[0].summary(), "battery 97 %, tamper closed, link quality 120");
        // The same, or the radio a little different: nothing new to say.
        assert!(conditions(r#"{"contact":true,"battery":97,"linkquality":115,"tamper":false}"#, 2).is_empty());
        let low = conditions(r#"{"contact":true,"battery":9,"battery_low":true,"linkquality":118,"tamper":false}"#, 3);
        assert_eq!((low[0].battery, low[0].battery_low), (Some(9), Some(true)));
        let tamper =
            conditions(r#"{"contact":true,"battery":9,"battery_low":true,"linkquality":118,"tamper":true}"#, 4);
        assert_eq!(tamper[0].tamper, Some(true));
        assert_eq!(
            conditions(r#"{"contact":true,"battery":9,"battery_low":true,"linkquality":20,"tamper":true}"#, 5).len(),
            1
        );
        // No condition fields, a value out of range, other profiles: no condition.
        assert!(conditions(r#"{"contact":false}"#, 6).is_empty());
        let tasmota = device(Kind::Door, Profile::Tasmota, "x");
        assert_eq!(tasmota.condition(br#"{"battery":50}"#, Timestamp(7)), None);
        let z2m = device(Kind::Door, Profile::Zigbee2mqtt, "x");
        assert_eq!(z2m.condition(br#"{"battery":250}"#, Timestamp(7)), None);
    }

    #[test]
    fn last_seen_is_read_in_both_of_zigbee2mqtts_forms_and_republished_every_ten_minutes() {
        let z2m = device(Kind::Door, Profile::Zigbee2mqtt, "x");
        let iso = z2m.condition(br#"{"last_seen":"2026-12-03T10:00:00.000Z"}"#, Timestamp(1)).unwrap();
        let epoch = z2m.condition(br#"{"last_seen":1796292000000}"#, Timestamp(1)).unwrap();
        assert_eq!(iso.last_seen, epoch.last_seen, "ISO 8601 and epoch milliseconds");
        assert!(iso.summary().contains("last seen 2026-12-03T10:00:00.000Z"), "{}", iso.summary());
        let config = Config {
            devices: vec![Mapping { id: "front".into(), ..device(Kind::Door, Profile::Zigbee2mqtt, "front_door") }],
            ..Config::default()
        };
        let mut bridge = Bridge::new(config);
        let mut seen_at = |minute: u64| -> usize {
            let payload =
                format!(r#"{{"contact":true,"battery":90,"last_seen":{}}}"#, 1_796_292_000_000 + minute * 60_000);
            let published: Vec<Condition> = device_runtime::runner::published(&bridge.translate(
                "zigbee2mqtt/front_door",
                payload.as_bytes(),
                Timestamp(1),
            ));
            published.len()
        };
        assert_eq!((seen_at(0), seen_at(1), seen_at(9), seen_at(10), seen_at(11)), (1, 0, 0, 1, 0));
    }
}
