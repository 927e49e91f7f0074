//! A simulated smart bulb, the actuator of the lighting system.
//!
//! It takes commands on `<root>/lights/<id>/set` — JSON from the light controller or a dashboard,
//! or the bare `ON`, `OFF`, `50` a person types — applies them with [`apply`], and reports the
//! result retained on `<root>/lights/<id>/state`, naming who asked (`circadian`, `motion`,
//! `manual`, `alarm`). A persistent session means a command sent during a short outage arrives.
//!
//! It speaks Home Assistant's JSON light schema too: a `transition` fades the brightness over
//! that many seconds (the state is reported every [`FADE_STEP`] on the way), a `flash` of `short`
//! or `long` flashes for 2 or 10 s and then gives steady light again, and the state carries
//! `color_mode` and `color_temp` in mireds beside `color_temp_k`.

use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, Device, DeviceSpec, MqttConfig, Shutdown};
use protocol::discovery::kelvin_to_mireds;
use protocol::{
    ColorMode, DeviceKind, Effect, LightCommand, LightSource, LightState, Message, Power, Qos, Timestamp, Topic,
    Unreadable,
};

/// How often a fading bulb reports its brightness on the way.
pub const FADE_STEP: Duration = Duration::from_millis(250);
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

    device_runtime::mqtt_section!(mqtt);
}

/// What the bulb is doing. `brightness` is kept while off, so `ON` restores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bulb {
    pub power: Power,
    pub brightness: u8,
    pub color_temp_k: u16,
    pub effect: Effect,
    pub source: LightSource,
    /// A fade under way to the setting above.
    pub fade: Option<Fade>,
    /// When a `flash` of Home Assistant's ends (the alarm's flash lasts until it is changed).
    pub flash_until: Option<Timestamp>,
}

/// A change of brightness spread over time: from `from` % at `start` to the bulb's setting at `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fade {
    pub from: u8,
    pub start: Timestamp,
    pub end: Timestamp,
    /// When the level on the way is reported next.
    pub next_report: Timestamp,
}

impl Bulb {
    pub fn new(color_temp_k: u16) -> Bulb {
        Bulb {
            power: Power::Off,
            brightness: 100,
            color_temp_k,
            effect: Effect::None,
            source: LightSource::Manual,
            fade: None,
            flash_until: None,
        }
    }

    /// The brightness the setting asks for: 0 while off.
    fn target(&self) -> u8 {
        if self.power == Power::On { self.brightness } else { 0 }
    }

    /// The brightness given out at `now`, on the way through a fade.
    pub fn level(&self, now: Timestamp) -> u8 {
        let target = self.target();
        match self.fade {
            Some(fade) if now < fade.end => {
                let total = fade.end.since(fade.start).as_secs_f64();
                let done = if total > 0.0 { now.since(fade.start).as_secs_f64() / total } else { 1.0 };
                let level = f64::from(fade.from) + (f64::from(target) - f64::from(fade.from)) * done.clamp(0.0, 1.0);
                level.round() as u8
            }
            _ => target,
        }
    }

    /// The retained state message at `now`: a bulb fading out is still on until it is dark.
    pub fn state(&self, device_id: &str, now: Timestamp) -> LightState {
        let level = self.level(now);
        LightState {
            state: if level > 0 { Power::On } else { Power::Off },
            brightness: level,
            color_temp_k: Some(self.color_temp_k),
            color_mode: Some(ColorMode::ColorTemp),
            color_temp: Some(kelvin_to_mireds(self.color_temp_k)),
            effect: (self.effect != Effect::None).then_some(self.effect),
            source: self.source,
            device_id: device_id.to_owned(),
            ts: now,
        }
    }

    /// The next time the bulb changes by itself: a step of a fade, or the end of a flash.
    pub fn next_change(&self) -> Option<Timestamp> {
        let step = self.fade.map(|fade| fade.next_report);
        [step, self.flash_until].into_iter().flatten().min()
    }

    /// Moves the bulb on to `now`: a fade that has reached its end is over, a flash that has run
    /// its time gives steady light. True when the bulb is to report its state.
    pub fn advance(&mut self, now: Timestamp) -> bool {
        let mut changed = false;
        if let Some(fade) = &mut self.fade
            && fade.next_report <= now
        {
            changed = true;
            fade.next_report = now.plus(FADE_STEP).min(fade.end);
            if now >= fade.end {
                self.fade = None;
            }
        }
        if self.flash_until.is_some_and(|until| until <= now) {
            self.flash_until = None;
            self.effect = Effect::None;
            changed = true;
        }
        changed
    }
}

/// Applies `command` to `bulb` at `now`. A brightness alone turns the bulb on (or off at 0);
/// `ON` alone restores the last brightness; a flash on a bulb that cannot flash gives steady
/// light; a `transition` fades from the level given out now to the new one.
pub fn apply(bulb: Bulb, command: &LightCommand, supports_flash: bool, now: Timestamp) -> Bulb {
    let mut next = bulb;
    next.source = command.source_or_manual();
    next.fade = None;
    next.flash_until = None;
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
    if let Some(flash) = command.flash.filter(|_| supports_flash) {
        next.effect = Effect::Flash;
        next.flash_until = Some(now.plus(flash.duration()));
    }
    if next.power == Power::Off {
        next.effect = Effect::None;
        next.flash_until = None;
    }
    if let Some(fade) = command.fade() {
        let from = bulb.level(now);
        if from != next.target() {
            let end = now.plus(fade);
            next.fade = Some(Fade { from, start: now, end, next_report: now.plus(FADE_STEP).min(end) });
        }
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
        spec.discovery =
            protocol::discovery::light(&topics, &id, protocol::COLOR_TEMP_RANGE_K, self.config.supports_flash);
        spec.state_topics = vec![topics.name(&Topic::LightState(id))];
        spec
    }

    fn on_connected(&mut self, now: Timestamp) -> Vec<Act<()>> {
        self.report(now)
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<()>> {
        let id = &self.config.mqtt.id;
        let mine = Topic::LightSet(id.clone());
        match message {
            Ok(Message::LightSet { id: to, command }) if to == *id => {
                if command.flash.is_some() && !self.config.supports_flash {
                    tracing::info!("{id} cannot flash (supports_flash = false): steady light instead");
                }
                self.bulb = apply(self.bulb, &command, self.config.supports_flash, now);
                let level = match self.bulb.power {
                    Power::On => format!("{} %", self.bulb.brightness),
                    Power::Off => "off".to_owned(),
                };
                let flash = if self.bulb.effect == Effect::Flash { ", flashing" } else { "" };
                let fade = match self.bulb.fade {
                    Some(fade) => format!(", fading over {:.1} s", fade.end.since(fade.start).as_secs_f32()),
                    None => String::new(),
                };
                let note = format!("{id} light {level}{flash}{fade} ({})", self.bulb.source.as_str());
                let mut acts = self.report(now);
                acts.push(Act::Note(note));
                acts
            }
            Err(e) if e.parsed.as_ref() == Some(&mine) => {
                tracing::warn!(
                    "ignored a command for {id}: {}; send JSON like {{\"state\":\"ON\",\"brightness\":50}}, or ON, OFF, 0-100",
                    e.why
                );
                Vec::new()
            }
            other => {
                tracing::debug!("ignored a message on an unexpected topic: {other:?}");
                Vec::new()
            }
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        self.bulb.next_change()
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<()>> {
        if self.bulb.advance(now) { self.report(now) } else { Vec::new() }
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
    use protocol::Payload;

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
            let after = apply(*before, &cmd(command), true, Timestamp(0));
            assert_eq!(
                (after.power, after.brightness, after.effect, after.source),
                (*power, *brightness, *effect, *source),
                "{command}"
            );
        }
    }

    #[test]
    fn a_bulb_that_cannot_flash_gives_steady_light() {
        let after = apply(Bulb::new(2700), &cmd(r#"{"state":"ON","effect":"flash"}"#), false, Timestamp(0));
        assert_eq!((after.power, after.effect), (Power::On, Effect::None));
    }

    #[test]
    fn colour_temperature_is_kept_until_changed() {
        let warm = apply(Bulb::new(4000), &cmd(r#"{"state":"ON","color_temp_k":2200}"#), true, Timestamp(0));
        let dimmed = apply(warm, &cmd("20"), true, Timestamp(0));
        assert_eq!((dimmed.color_temp_k, dimmed.brightness), (2200, 20));
    }

    #[test]
    fn a_transition_fades_and_reports_on_the_way() {
        let t0 = Timestamp(1_000_000);
        let on = Bulb { power: Power::On, brightness: 100, ..Bulb::new(2700) };
        let dim = apply(on, &cmd(r#"{"state":"ON","brightness":20,"transition":2}"#), true, t0);
        let at = |ms: u64| dim.level(Timestamp(t0.0 + ms));
        assert_eq!((at(0), at(1000), at(2000), at(5000)), (100, 60, 20, 20));
        assert_eq!(dim.next_change(), Some(t0.plus(FADE_STEP)));
        // Fading out: on until it is dark, then off.
        let out = apply(on, &cmd(r#"{"state":"OFF","transition":1}"#), true, t0);
        let state = out.state("kitchen", Timestamp(t0.0 + 500));
        assert_eq!((state.state, state.brightness), (Power::On, 50));
        let mut done = out;
        assert!(done.advance(Timestamp(t0.0 + 1000)));
        assert_eq!((done.fade, done.state("kitchen", Timestamp(t0.0 + 1000)).state), (None, Power::Off));
        assert!(!done.advance(Timestamp(t0.0 + 2000)), "nothing left to report");
        // No fade where nothing changes.
        assert_eq!(apply(on, &cmd(r#"{"state":"ON","transition":3}"#), true, t0).fade, None);
    }

    #[test]
    fn a_flash_from_home_assistant_ends_by_itself() {
        let t0 = Timestamp(0);
        let on = Bulb { power: Power::On, ..Bulb::new(2700) };
        let mut flashing = apply(on, &cmd(r#"{"state":"ON","flash":"short"}"#), true, t0);
        assert_eq!((flashing.effect, flashing.next_change()), (Effect::Flash, Some(Timestamp(2000))));
        assert!(flashing.advance(Timestamp(2000)));
        assert_eq!((flashing.effect, flashing.power, flashing.flash_until), (Effect::None, Power::On, None));
        let long = apply(on, &cmd(r#"{"state":"ON","flash":"long"}"#), true, t0);
        assert_eq!(long.flash_until, Some(Timestamp(10_000)));
        let cannot = apply(on, &cmd(r#"{"state":"ON","flash":"long"}"#), false, t0);
        assert_eq!((cannot.effect, cannot.flash_until), (Effect::None, None));
    }

    #[test]
    fn state_speaks_home_assistants_colour_terms() {
        let state = Bulb { power: Power::On, ..Bulb::new(4000) }.state("kitchen", Timestamp(5));
        assert_eq!(
            (state.color_mode, state.color_temp, state.color_temp_k),
            (Some(ColorMode::ColorTemp), Some(250), Some(4000))
        );
    }

    #[test]
    fn state_reports_zero_brightness_when_off() {
        let state = Bulb { brightness: 70, ..Bulb::new(2700) }.state("kitchen", Timestamp(5));
        assert_eq!((state.state, state.brightness, state.device_id.as_str()), (Power::Off, 0, "kitchen"));
    }
}
