//! A simulated smart bulb, the actuator of the lighting system.
//!
//! It takes commands on `<root>/lights/<id>/set` — JSON from the light controller or a dashboard,
//! or the bare `ON`, `OFF`, `50` a person types — applies them with [`apply`], and reports the
//! result retained on `<root>/lights/<id>/state`, naming who asked (`circadian`, `motion`,
//! `manual`, `alarm`). A persistent session means a command sent during a short outage arrives.

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, Device, DeviceSpec, MqttConfig, Shutdown};
use protocol::{DeviceKind, Effect, LightCommand, LightSource, LightState, Payload, Power, Qos, Timestamp, Topic};
use serde::{Deserialize, Serialize};

/// `config/light-bulb.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// Whether this bulb can flash (the alarm asks for it).
    pub supports_flash: bool,
    /// Colour temperature before any command asked for one, in kelvin.
    pub initial_color_temp_k: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config { mqtt: MqttConfig::with_id("kitchen"), supports_flash: true, initial_color_temp_k: 2700 }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "light-bulb";

    fn mqtt(&self) -> &MqttConfig {
        &self.mqtt
    }
}

/// What the bulb is doing. `brightness` is kept while off, so `ON` restores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bulb {
    pub power: Power,
    pub brightness: u8,
    pub color_temp_k: u16,
    pub effect: Effect,
    pub source: LightSource,
}

impl Bulb {
    pub fn new(color_temp_k: u16) -> Bulb {
        Bulb { power: Power::Off, brightness: 100, color_temp_k, effect: Effect::None, source: LightSource::Manual }
    }

    /// The retained state message.
    pub fn state(&self, device_id: &str, now: Timestamp) -> LightState {
        LightState {
            state: self.power,
            brightness: if self.power == Power::On { self.brightness } else { 0 },
            color_temp_k: Some(self.color_temp_k),
            effect: (self.effect != Effect::None).then_some(self.effect),
            source: self.source,
            device_id: device_id.to_owned(),
            ts: now,
        }
    }
}

/// Applies `command` to `bulb`. A brightness alone turns the bulb on (or off at 0); `ON` alone
/// restores the last brightness; a flash on a bulb that cannot flash gives steady light.
pub fn apply(bulb: Bulb, command: &LightCommand, supports_flash: bool) -> Bulb {
    let mut next = bulb;
    next.source = command.source_or_manual();
    if let Some(k) = command.color_temp_k {
        next.color_temp_k = k;
    }
    match (command.state, command.brightness) {
        (Some(Power::Off), _) | (None | Some(Power::On), Some(0)) => next.power = Power::Off,
        (Some(Power::On) | None, Some(b)) => {
            next.power = Power::On;
            next.brightness = b;
        }
        (Some(Power::On), None) => {
            next.power = Power::On;
            if next.brightness == 0 {
                next.brightness = 100;
            }
        }
        (None, None) => {}
    }
    if let Some(effect) = command.effect {
        next.effect = if effect == Effect::Flash && !supports_flash { Effect::None } else { effect };
    } else if command.state.is_some() || command.brightness.is_some() {
        // A new setting without an effect means steady light.
        next.effect = Effect::None;
    }
    if next.power == Power::Off {
        next.effect = Effect::None;
    }
    next
}

/// The bulb as a [`Device`]: commands in, its state out (on every connect too: a broker without
/// persistence has forgotten the retained state).
pub struct BulbDevice {
    config: Config,
    bulb: Bulb,
}

impl BulbDevice {
    pub fn new(config: Config) -> BulbDevice {
        let bulb = Bulb::new(config.initial_color_temp_k);
        BulbDevice { config, bulb }
    }

    fn report(&self, now: Timestamp) -> Vec<Act<()>> {
        let id = &self.config.mqtt.id;
        vec![Act::publish(Topic::LightState(id.clone()), &self.bulb.state(id, now))]
    }
}

impl Device for BulbDevice {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        let topics = protocol::Topics::new(&self.config.mqtt.topic_root);
        let id = self.config.mqtt.id.clone();
        let set_topic = topics.name(&Topic::LightSet(id.clone()));
        let mut spec = DeviceSpec::new(DeviceKind::LightBulb);
        spec.capabilities = ["on_off", "brightness", "color_temp"].map(String::from).to_vec();
        if self.config.supports_flash {
            spec.capabilities.push("flash".into());
        }
        spec.subscriptions = vec![(set_topic.clone(), Qos::AtLeastOnce)];
        spec.command_topics = vec![set_topic];
        spec.state_topics = vec![topics.name(&Topic::LightState(id))];
        spec
    }

    fn on_connected(&mut self, now: Timestamp) -> Vec<Act<()>> {
        self.report(now)
    }

    fn on_message(&mut self, topic: Topic, payload: &[u8], now: Timestamp) -> Vec<Act<()>> {
        let id = &self.config.mqtt.id;
        if topic != Topic::LightSet(id.clone()) {
            tracing::debug!("ignored a message on unexpected topic {topic:?}");
            return Vec::new();
        }
        match LightCommand::decode(payload) {
            Ok(command) => {
                self.bulb = apply(self.bulb, &command, self.config.supports_flash);
                let level = match self.bulb.power {
                    Power::On => format!("{} %", self.bulb.brightness),
                    Power::Off => "off".to_owned(),
                };
                let flash = if self.bulb.effect == Effect::Flash { ", flashing" } else { "" };
                let note = format!("{id} light {level}{flash} ({})", self.bulb.source.as_str());
                let mut acts = self.report(now);
                acts.push(Act::Note(note));
                acts
            }
            Err(e) => {
                tracing::warn!(
                    "ignored a command for {id}: {e}; send JSON like {{\"state\":\"ON\",\"brightness\":50}}, or ON, OFF, 0-100"
                );
                Vec::new()
            }
        }
    }
}

/// Runs the bulb until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mqtt = config.mqtt.clone();
    device_runtime::runner::run(BulbDevice::new(config), &mqtt, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(json: &str) -> LightCommand {
        LightCommand::decode(json.as_bytes()).unwrap()
    }

    #[test]
    fn commands_change_the_bulb_as_a_person_expects() {
        let off = Bulb::new(2700);
        let table: &[(Bulb, &str, Power, u8, Effect, LightSource)] = &[
            (off, "ON", Power::On, 100, Effect::None, LightSource::Manual),
            (off, "40", Power::On, 40, Effect::None, LightSource::Manual),
            (
                off,
                r#"{"state":"ON","brightness":50,"source":"circadian"}"#,
                Power::On,
                50,
                Effect::None,
                LightSource::Circadian,
            ),
            (
                off,
                r#"{"state":"ON","brightness":100,"effect":"flash","source":"alarm"}"#,
                Power::On,
                100,
                Effect::Flash,
                LightSource::Alarm,
            ),
            (
                Bulb { power: Power::On, brightness: 30, ..off },
                "OFF",
                Power::Off,
                30,
                Effect::None,
                LightSource::Manual,
            ),
            (Bulb { power: Power::On, brightness: 30, ..off }, "0", Power::Off, 30, Effect::None, LightSource::Manual),
            (Bulb { power: Power::Off, brightness: 30, ..off }, "ON", Power::On, 30, Effect::None, LightSource::Manual),
            (
                Bulb { power: Power::On, effect: Effect::Flash, ..off },
                r#"{"brightness":5,"source":"circadian"}"#,
                Power::On,
                5,
                Effect::None,
                LightSource::Circadian,
            ),
        ];
        for (before, command, power, brightness, effect, source) in table {
            let after = apply(*before, &cmd(command), true);
            assert_eq!(
                (after.power, after.brightness, after.effect, after.source),
                (*power, *brightness, *effect, *source),
                "{command}"
            );
        }
    }

    #[test]
    fn a_bulb_that_cannot_flash_gives_steady_light() {
        let after = apply(Bulb::new(2700), &cmd(r#"{"state":"ON","effect":"flash"}"#), false);
        assert_eq!((after.power, after.effect), (Power::On, Effect::None));
    }

    #[test]
    fn colour_temperature_is_kept_until_changed() {
        let warm = apply(Bulb::new(4000), &cmd(r#"{"state":"ON","color_temp_k":2200}"#), true);
        let dimmed = apply(warm, &cmd("20"), true);
        assert_eq!((dimmed.color_temp_k, dimmed.brightness), (2200, 20));
    }

    #[test]
    fn state_reports_zero_brightness_when_off() {
        let state = Bulb { brightness: 70, ..Bulb::new(2700) }.state("kitchen", Timestamp(5));
        assert_eq!((state.state, state.brightness, state.device_id.as_str()), (Power::Off, 0, "kitchen"));
    }
}
