//! Home Assistant MQTT discovery: what each daemon tells Home Assistant about itself, so that the
//! whole home appears there with nothing written by hand.
//!
//! Every daemon publishes, retained, one config per entity on
//! `<prefix>/<component>/<node_id>/<object_id>/config` (prefix `homeassistant` by default), on
//! every connect and again whenever Home Assistant says `online` on `<prefix>/status`. The configs
//! point at the contract's own topics: Home Assistant reads the same retained states and sends the
//! same commands as every other client, so nothing is translated and nothing is duplicated.
//!
//! This module builds the configs (pure, tested without a broker); the link publishes them. Each
//! entity config is completed by [`Entity::config_for`] with what every entity of a device shares:
//! `unique_id`, `object_id`, the `device` block (one Home Assistant device per daemon) and the
//! availability wired to the daemon's Last Will topic.
//!
//! Templates accept a bare word as well as the contract's JSON (`value_json` is undefined for
//! `OPEN` typed by a person), so a reading from `mosquitto_pub` shows too.

use serde_json::{Map, Value, json};

use crate::{CircadianPhase, DeviceKind, SensorKind, Topic, Topics};

/// Home Assistant's default discovery prefix.
pub const DEFAULT_PREFIX: &str = "homeassistant";

/// The panel's events, as Home Assistant's `event` entity lists them.
pub const PANEL_EVENT_TYPES: [&str; 15] = [
    "arming",
    "armed",
    "disarmed",
    "failed_to_arm",
    "entry_started",
    "triggered",
    "alarm_ended",
    "wrong_code",
    "lockout",
    "code_refused",
    "duress",
    "trouble",
    "restored",
    "bypassed",
    "removed",
];

/// The state of a reading, from the contract's JSON or a bare word (`open` as well as `OPEN`).
fn state_template() -> String {
    "{{ (value_json.state if value_json is defined and value_json.state is defined else value) | upper }}".to_owned()
}

/// A Home Assistant entity platform this home announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    AlarmControlPanel,
    BinarySensor,
    Event,
    Light,
    Sensor,
    Siren,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::AlarmControlPanel => "alarm_control_panel",
            Component::BinarySensor => "binary_sensor",
            Component::Event => "event",
            Component::Light => "light",
            Component::Sensor => "sensor",
            Component::Siren => "siren",
        }
    }
}

/// Why a discovery prefix cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Home Assistant discovery prefix `{0}` must be non-empty, without `+`, `#`, spaces or a leading or trailing `/` (Home Assistant's default is `homeassistant`)"
)]
pub struct PrefixError(pub String);

/// Checks a discovery prefix: it is a topic, never a filter.
pub fn validate_prefix(prefix: &str) -> Result<(), PrefixError> {
    let bad = prefix.is_empty()
        || prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.contains(['+', '#'])
        || prefix.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad { Err(PrefixError(prefix.to_owned())) } else { Ok(()) }
}

/// Where Home Assistant says `online` when it starts (and `offline` when it stops).
pub fn status_topic(prefix: &str) -> String {
    format!("{prefix}/status")
}

/// The node id of a device: its id under this home's root, in the characters Home Assistant
/// allows in a discovery topic (`[a-zA-Z0-9_-]`), so two homes on one broker do not collide.
pub fn node_id(topics: &Topics, device_id: &str) -> String {
    format!("{}_{device_id}", topics.root())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// The filter matching every config a device may have published: what `forget` clears.
pub fn device_filter(prefix: &str, topics: &Topics, device_id: &str) -> String {
    format!("{prefix}/+/{}/+/config", node_id(topics, device_id))
}

/// One entity of a device, before what the device's entities share is added.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub component: Component,
    /// Unique within the device; also the entity id Home Assistant picks (after the device's).
    pub object_id: String,
    pub config: Map<String, Value>,
    /// Unavailable while the device is offline (the default); off for an entity whose state
    /// another device reports (a sensor's trouble, reported by the panel).
    pub follows_availability: bool,
}

/// The device an entity belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    pub topics: &'a Topics,
    pub device_id: &'a str,
    pub kind: DeviceKind,
    pub version: &'a str,
}

impl Entity {
    fn new(component: Component, object_id: impl Into<String>, config: Value) -> Entity {
        let Value::Object(config) = config else { unreachable!("entity configs are JSON objects") };
        Entity { component, object_id: object_id.into(), config, follows_availability: true }
    }

    /// The retained topic this entity's config goes to.
    pub fn config_topic(&self, prefix: &str, node: &Node<'_>) -> String {
        format!(
            "{prefix}/{}/{}/{}/config",
            self.component.as_str(),
            node_id(node.topics, node.device_id),
            self.object_id
        )
    }

    /// The complete config: this entity's keys, plus its ids, its device and its availability.
    pub fn config_for(&self, node: &Node<'_>) -> Value {
        let node_id = node_id(node.topics, node.device_id);
        let mut config = self.config.clone();
        config.insert("unique_id".into(), json!(format!("{node_id}_{}", self.object_id)));
        // The entity id Home Assistant makes: the device's for its main entity (the one named
        // after the device, `name: null`: `light.kitchen`), the device's and the entity's for
        // the others (`binary_sensor.front_trouble`).
        let object_id = if self.config.get("name").is_some_and(Value::is_null) {
            slug(node.device_id)
        } else {
            format!("{}_{}", slug(node.device_id), self.object_id)
        };
        config.insert("object_id".into(), json!(object_id));
        config.insert(
            "device".into(),
            json!({
                "identifiers": [format!("mqtt-home_{node_id}")],
                "name": node.device_id,
                "manufacturer": "mqtt-home",
                "model": model(node.kind),
                "sw_version": node.version,
            }),
        );
        if self.follows_availability {
            config.insert(
                "availability_topic".into(),
                json!(node.topics.name(&Topic::Availability(node.device_id.to_owned()))),
            );
        }
        config.insert("qos".into(), json!(1));
        Value::Object(config)
    }
}

/// A device kind as people read it on Home Assistant's device page.
pub fn model(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::CircadianSensor => "circadian-sensor",
        DeviceKind::MotionSensor => "motion-sensor",
        DeviceKind::DoorSensor => "door-sensor",
        DeviceKind::WindowSensor => "window-sensor",
        DeviceKind::LightBulb => "light-bulb",
        DeviceKind::LightController => "light-controller",
        DeviceKind::SecurityController => "security-controller",
        DeviceKind::AlarmActuator => "alarm-actuator",
        DeviceKind::ControlCli => "mqtt-home",
        DeviceKind::Recorder => "recorder",
        DeviceKind::Dashboard => "dashboard",
        DeviceKind::Bridge => "bridge",
        DeviceKind::Notifier => "notifier",
        DeviceKind::AlarmTransmitter => "sia-transmitter",
    }
}

/// Lower case, `_` for anything else: what Home Assistant does to an object id.
fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// A door, window or motion sensor: its state, and its trouble as the panel reports it.
pub fn sensor(topics: &Topics, kind: SensorKind, id: &str) -> Vec<Entity> {
    let (on, off) = (kind.active().as_str(), kind.idle().as_str());
    let reading = Entity::new(
        Component::BinarySensor,
        kind.as_str(),
        json!({
            "name": null,
            "device_class": kind.as_str(),
            "state_topic": topics.name(&Topic::Sensor { kind, id: id.to_owned() }),
            "value_template": state_template(),
            "payload_on": on,
            "payload_off": off,
        }),
    );
    let mut trouble = Entity::new(
        Component::BinarySensor,
        "trouble",
        json!({
            "name": "Trouble",
            "device_class": "problem",
            "entity_category": "diagnostic",
            "state_topic": topics.name(&Topic::PanelStatus),
            "value_template": format!(
                "{{{{ 'ON' if value_json.troubles is defined and '{id}' in value_json.troubles else 'OFF' }}}}"
            ),
        }),
    );
    trouble.follows_availability = false;
    vec![reading, trouble]
}

/// The security panel: the alarm panel itself and its events.
pub fn panel(topics: &Topics, code_arm_required: bool, areas: &[&str]) -> Vec<Entity> {
    let alarm_panel = |object_id: String, name: Value, status: String, command: String| {
        Entity::new(
            Component::AlarmControlPanel,
            object_id,
            json!({
                "name": name,
                "state_topic": status,
                "value_template": "{{ value_json.state }}",
                "json_attributes_topic": status,
                "command_topic": command,
                "command_template": "{\"action\":\"{{ action }}\",\"code\":\"{{ code }}\"}",
                "code": "REMOTE_CODE",
                "code_arm_required": code_arm_required,
                "code_disarm_required": true,
                "code_trigger_required": false,
                "supported_features": ["arm_home", "arm_away", "arm_night", "trigger"],
            }),
        )
    };
    // The house: the whole home without areas; with them, all areas at once.
    let mut entities = vec![alarm_panel(
        "panel".to_owned(),
        if areas.is_empty() { Value::Null } else { json!("All areas") },
        topics.name(&Topic::PanelStatus),
        topics.name(&Topic::PanelSet),
    )];
    for area in areas {
        entities.push(alarm_panel(
            format!("panel_{area}"),
            json!(area_title(area)),
            topics.name(&Topic::AreaStatus((*area).to_owned())),
            topics.name(&Topic::AreaSet((*area).to_owned())),
        ));
    }
    let events = Entity::new(
        Component::Event,
        "event",
        json!({
            "name": "Event",
            "state_topic": topics.name(&Topic::PanelEvents),
            "event_types": PANEL_EVENT_TYPES,
            "value_template": "{{ {'event_type': value_json.event, 'message': value_json.message, 'user': value_json.user | default(None), 'sensors': value_json.sensors | default([])} | tojson }}",
        }),
    );
    entities.push(events);
    entities
}

/// An area's name as Home Assistant shows it: `ground-floor` → `Ground floor`.
fn area_title(area: &str) -> String {
    let words = area.replace(['-', '_'], " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The siren, switched through the contract's alarm command.
pub fn siren(topics: &Topics) -> Vec<Entity> {
    vec![Entity::new(
        Component::Siren,
        "siren",
        json!({
            "name": null,
            "state_topic": topics.name(&Topic::AlarmState),
            // A siren reads attributes (tone, volume) from a JSON state unless the template
            // gives it the bare word.
            "state_value_template": state_template(),
            "state_on": "ON",
            "state_off": "OFF",
            "command_topic": topics.name(&Topic::AlarmControl),
            // Home Assistant's siren.turn_on takes a tone and a duration: the siren's own sounds.
            "command_template": "{\"state\":\"{{ value }}\",\"reason\":\"Home Assistant\"{% if tone is defined %},\"tone\":\"{{ tone }}\"{% endif %}{% if duration is defined %},\"duration_s\":{{ duration | int }}{% endif %}}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "available_tones": crate::Tone::ALL.map(crate::Tone::as_str),
            "support_duration": true,
            "support_volume_set": false,
        }),
    )]
}

/// A bulb, in Home Assistant's JSON light schema. Brightness stays a percentage on the wire
/// (`brightness_scale: 100`); colour temperature goes in mireds, as Home Assistant sends it.
pub fn light(topics: &Topics, id: &str, color_temp_k: std::ops::RangeInclusive<u16>, flash: bool) -> Vec<Entity> {
    let mut config = json!({
        "name": null,
        "schema": "json",
        "state_topic": topics.name(&Topic::LightState(id.to_owned())),
        "command_topic": topics.name(&Topic::LightSet(id.to_owned())),
        "brightness": true,
        "brightness_scale": 100,
        "color_mode": true,
        "supported_color_modes": ["color_temp"],
        "min_mireds": kelvin_to_mireds(*color_temp_k.end()),
        "max_mireds": kelvin_to_mireds(*color_temp_k.start()),
        "transition": true,
        "flash": flash,
    });
    if flash {
        config["effect"] = json!(true);
        config["effect_list"] = json!(["none", "flash"]);
    }
    vec![Entity::new(Component::Light, "light", config)]
}

/// The sun's phase, as an enum sensor.
pub fn circadian(topics: &Topics) -> Vec<Entity> {
    vec![Entity::new(
        Component::Sensor,
        "phase",
        json!({
            "name": null,
            "device_class": "enum",
            "options": CircadianPhase::ALL.map(CircadianPhase::as_str),
            "state_topic": topics.name(&Topic::Circadian),
            "value_template": "{{ value_json.phase if value_json is defined else value }}",
            "icon": "mdi:weather-sunset",
        }),
    )]
}

/// A daemon's health (the recorder's database), as a problem sensor.
pub fn health(topics: &Topics, id: &str) -> Vec<Entity> {
    vec![Entity::new(
        Component::BinarySensor,
        "health",
        json!({
            "name": "Trouble",
            "device_class": "problem",
            "entity_category": "diagnostic",
            "state_topic": topics.name(&Topic::Health(id.to_owned())),
            "value_template": "{{ 'ON' if value_json.state == 'trouble' else 'OFF' }}",
            "json_attributes_topic": topics.name(&Topic::Health(id.to_owned())),
            "json_attributes_template": "{{ {'problems': value_json.problems} | tojson }}",
        }),
    )]
}

/// Kelvin to mireds, rounded: 4000 K is 250 mireds.
pub fn kelvin_to_mireds(kelvin: u16) -> u16 {
    mired_kelvin(u32::from(kelvin))
}

/// Mireds to kelvin, rounded: 250 mireds is 4000 K. Both are 1 000 000 / the other.
pub fn mireds_to_kelvin(mireds: u16) -> u16 {
    mired_kelvin(u32::from(mireds))
}

fn mired_kelvin(x: u32) -> u16 {
    if x == 0 {
        return u16::MAX;
    }
    u16::try_from((1_000_000 + x / 2) / x).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(topics: &Topics) -> Node<'_> {
        Node { topics, device_id: "front-door", kind: DeviceKind::DoorSensor, version: "0.1.0" }
    }

    #[test]
    fn prefixes_are_topics_never_filters() {
        for good in ["homeassistant", "ha/discovery", "hass-1"] {
            assert_eq!(validate_prefix(good), Ok(()), "{good}");
        }
        for bad in ["", "home#", "ha/+", "/ha", "ha/", "my ha"] {
            let err = validate_prefix(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")) && err.contains("homeassistant"), "{err}");
        }
    }

    #[test]
    fn a_config_carries_its_ids_its_device_and_its_availability() {
        let topics = Topics::new("my/home");
        let entities = sensor(&topics, SensorKind::Door, "front-door");
        let reading = &entities[0];
        assert_eq!(
            reading.config_topic("homeassistant", &node(&topics)),
            "homeassistant/binary_sensor/my_home_front-door/door/config"
        );
        let config = reading.config_for(&node(&topics));
        assert_eq!(config["unique_id"], "my_home_front-door_door");
        assert_eq!(config["object_id"], "front_door");
        assert_eq!(config["device"]["identifiers"][0], "mqtt-home_my_home_front-door");
        assert_eq!(config["device"]["model"], "door-sensor");
        assert_eq!(config["availability_topic"], "my/home/devices/front-door/availability");
        assert_eq!(config["state_topic"], "my/home/security/door/front-door");
        assert_eq!(config["device_class"], "door");
        assert_eq!((&config["payload_on"], &config["payload_off"]), (&json!("OPEN"), &json!("CLOSED")));
        // The trouble comes from the panel: it stays available while the sensor is offline.
        let trouble = entities[1].config_for(&node(&topics));
        assert!(trouble.get("availability_topic").is_none());
        assert_eq!(trouble["object_id"], "front_door_trouble");
        assert!(trouble["value_template"].as_str().unwrap().contains("'front-door' in value_json.troubles"));
        assert_eq!(
            device_filter("homeassistant", &topics, "front-door"),
            "homeassistant/+/my_home_front-door/+/config"
        );
    }

    #[test]
    fn motion_sensors_say_motion() {
        let config = &sensor(&Topics::default(), SensorKind::Motion, "hall")[0].config;
        assert_eq!(config["device_class"], "motion");
        assert_eq!((&config["payload_on"], &config["payload_off"]), (&json!("MOTION"), &json!("NO_MOTION")));
    }

    #[test]
    fn the_panel_asks_for_the_code_where_the_panel_does() {
        let topics = Topics::default();
        for required in [true, false] {
            let panel = &panel(&topics, required, &[])[0].config;
            assert_eq!(panel["code_arm_required"], required);
            assert_eq!(panel["code"], "REMOTE_CODE");
            assert_eq!(panel["command_topic"], "home/security/panel/set");
            assert_eq!(panel["supported_features"], json!(["arm_home", "arm_away", "arm_night", "trigger"]));
        }
    }

    #[test]
    fn each_area_is_a_panel_of_its_own_beside_the_house() {
        let entities = panel(&Topics::default(), false, &["house", "ground-floor"]);
        let panels: Vec<_> = entities.iter().filter(|e| e.component == Component::AlarmControlPanel).collect();
        let rows: Vec<(&str, &Value, &Value, &Value)> = panels
            .iter()
            .map(|e| (e.object_id.as_str(), &e.config["name"], &e.config["state_topic"], &e.config["command_topic"]))
            .collect();
        assert_eq!(
            rows,
            [
                ("panel", &json!("All areas"), &json!("home/security/status"), &json!("home/security/panel/set")),
                (
                    "panel_house",
                    &json!("House"),
                    &json!("home/security/areas/house/status"),
                    &json!("home/security/areas/house/set")
                ),
                (
                    "panel_ground-floor",
                    &json!("Ground floor"),
                    &json!("home/security/areas/ground-floor/status"),
                    &json!("home/security/areas/ground-floor/set")
                ),
            ]
        );
        assert_eq!(
            panel(&Topics::default(), false, &[])[0].config["name"],
            Value::Null,
            "one panel: the device's name"
        );
    }

    #[test]
    fn lights_announce_percent_brightness_and_mireds() {
        let config = &light(&Topics::default(), "kitchen", 1000..=10_000, true)[0].config;
        assert_eq!(config["brightness_scale"], 100);
        assert_eq!((&config["min_mireds"], &config["max_mireds"]), (&json!(100), &json!(1000)));
        assert_eq!(config["effect_list"], json!(["none", "flash"]));
        let plain = &light(&Topics::default(), "kitchen", 2000..=6500, false)[0].config;
        assert_eq!(plain["flash"], false);
        assert!(plain.get("effect").is_none());
    }

    #[test]
    fn mireds_and_kelvin_convert_both_ways() {
        for (kelvin, mireds) in [(4000, 250), (2700, 370), (6500, 154), (1000, 1000), (10_000, 100)] {
            assert_eq!(kelvin_to_mireds(kelvin), mireds, "{kelvin} K");
        }
        assert_eq!(mireds_to_kelvin(250), 4000);
        assert_eq!(mireds_to_kelvin(0), u16::MAX);
    }
}
