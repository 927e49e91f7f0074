//! The alarm actuator: a siren.
//!
//! It applies `<root>/control/alarm` (QoS 1, idempotent; JSON `{"state":"ON","reason":"…"}` or bare `ON`/`OFF`)
//! and reports its state retained on `<root>/security/alarm`. A persistent session means an `OFF`
//! (or `ON`) sent during a short outage still arrives. Whatever happens upstream, the siren cuts
//! itself off after `max_on_s` (15 min by default): a siren that never stops is a nuisance and,
//! in many places, an offence.
//!
//! Besides the alarm it plays the panel's short sounds (a command with a `tone`, on
//! `<root>/control/sound` from the panel or `control/alarm` from Home Assistant: beeps through
//! the exit and entry delays, a chime, chirps), each for its `duration_s` or its own length, and
//! says so in its state's `tone`. The alarm drowns them: while it sounds, sounds are not played.

use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, ConfigError, Device, DeviceSpec, MqttConfig, Shutdown};
use protocol::{AlarmCommand, AlarmState, DeviceKind, Message, Power, Qos, Timestamp, Tone, Topic, Unreadable};
use serde::{Deserialize, Serialize};

/// `config/alarm-actuator.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// Seconds after which the siren turns itself off even if no OFF comes.
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub max_on_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { mqtt: MqttConfig::with_id("siren"), max_on_s: 15 * 60 }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "alarm-actuator";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        if !(1..=3600).contains(&self.max_on_s) {
            return Err(ConfigError::Invalid(format!("max_on_s = {} must be between 1 and 3600", self.max_on_s)));
        }
        Ok(())
    }
}

/// The siren's state: on or off, why, and since when; and a sound short of the alarm, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Siren {
    pub power: Power,
    pub reason: Option<String>,
    pub since: Timestamp,
    pub sound: Option<(Tone, Timestamp)>,
    /// An alarm sounded for a `duration_s` (Home Assistant's `siren.turn_on` with a duration) ends then.
    pub alarm_until: Option<Timestamp>,
}

/// The longest a sound plays (an exit delay is at most 255 s).
const MAX_SOUND_S: u64 = 255;

/// How long a tone plays when its command gives no duration.
fn default_length(tone: Tone) -> Duration {
    match tone {
        Tone::ExitBeeps | Tone::EntryBeeps => Duration::from_secs(30),
        Tone::Chime => Duration::from_secs(2),
        Tone::Alarm | Tone::ArmChirp | Tone::DisarmChirp => Duration::from_secs(1),
    }
}

impl Siren {
    pub fn off(now: Timestamp) -> Siren {
        Siren { power: Power::Off, reason: None, since: now, sound: None, alarm_until: None }
    }

    /// Applies a command; `since` moves only when the state changes. A sound while the alarm
    /// sounds is not played; `OFF` without a tone stops the alarm and any sound.
    pub fn apply(&self, command: &AlarmCommand, now: Timestamp) -> Siren {
        match (command.tone(), command.state) {
            (Tone::Alarm, state) => {
                let since = if state == self.power { self.since } else { now };
                let sound = if state == Power::Off { None } else { self.sound };
                let alarm_until =
                    command.duration_s.filter(|_| state == Power::On).map(|s| now.plus(Duration::from_secs(s)));
                Siren { power: state, reason: command.reason.clone(), since, sound, alarm_until }
            }
            (_, Power::On) if self.power == Power::On => self.clone(),
            (tone, Power::On) => {
                let length =
                    command.duration_s.map_or(default_length(tone), |s| Duration::from_secs(s.min(MAX_SOUND_S)));
                Siren { sound: Some((tone, now.plus(length))), ..self.clone() }
            }
            (tone, Power::Off) => {
                let sound = self.sound.filter(|(playing, _)| *playing != tone);
                Siren { sound, ..self.clone() }
            }
        }
    }

    /// When the hard cut-off turns the siren off, if it is on.
    pub fn cut_off_at(&self, max_on: Duration) -> Option<Timestamp> {
        (self.power == Power::On).then(|| self.since.plus(max_on))
    }

    pub fn state(&self, device_id: &str, now: Timestamp) -> AlarmState {
        AlarmState {
            state: self.power,
            reason: self.reason.clone(),
            since: self.since,
            tone: self.sound.filter(|_| self.power == Power::Off).map(|(tone, _)| tone),
            device_id: device_id.to_owned(),
            ts: now,
        }
    }
}

/// The siren as a [`Device`]: commands in, its state out, the cut-off as a deadline.
pub struct SirenDevice {
    config: Config,
    siren: Siren,
    /// The highest panel term obeyed (a pair of panels): a command of a lower one comes from a
    /// deposed panel and is ignored.
    term: u64,
}

/// Commands of a deposed panel (a lower term than one obeyed), ignored.
pub const DEPOSED: device_runtime::metrics::Metric = device_runtime::metrics::Metric::counter(
    "mqtt_home_siren_deposed_commands",
    "Siren commands ignored: from a panel of a lower term than one obeyed",
);

/// Whether the siren sounds: what an operator alerts on beside the panel's state.
pub const SIREN_ON: device_runtime::metrics::Metric =
    device_runtime::metrics::Metric::gauge("mqtt_home_siren_on", "1 while the siren sounds, else 0");

impl SirenDevice {
    pub fn new(config: Config, now: Timestamp) -> SirenDevice {
        SirenDevice { config, siren: Siren::off(now), term: 0 }
    }

    fn max_on(&self) -> Duration {
        Duration::from_secs(self.config.max_on_s)
    }

    fn report(&self, now: Timestamp) -> Vec<Act<()>> {
        let state = self.siren.state(&self.config.mqtt.id, now);
        let on = i64::from(state.state == Power::On);
        vec![Act::publish(Topic::AlarmState, &state), Act::gauge(SIREN_ON, &[], on)]
    }
}

impl Device for SirenDevice {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        let topics = protocol::Topics::new(&self.config.mqtt.topic_root);
        let control = topics.name(&Topic::AlarmControl);
        let sound = topics.name(&Topic::Sound);
        let mut spec = DeviceSpec::new(DeviceKind::AlarmActuator);
        spec.capabilities = vec!["siren".into(), "tones".into(), format!("max_on_s:{}", self.config.max_on_s)];
        spec.subscriptions = vec![(control.clone(), Qos::AtLeastOnce), (sound.clone(), Qos::AtLeastOnce)];
        spec.command_topics = vec![control, sound];
        spec.state_topics = vec![topics.name(&Topic::AlarmState)];
        spec.discovery = protocol::discovery::siren(&topics);
        spec
    }

    fn on_connected(&mut self, now: Timestamp) -> Vec<Act<()>> {
        self.report(now)
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<()>> {
        match message {
            Ok(Message::Sound(command)) if command.tone() == Tone::Alarm => {
                tracing::warn!(
                    "ignored a command on the sound topic without a tone (or with `alarm`): the alarm is \
                     switched on control/alarm only; send {{\"state\":\"ON\",\"tone\":\"chime\"}}"
                );
                Vec::new()
            }
            Ok(Message::AlarmControl(command) | Message::Sound(command))
                if command.term.is_some_and(|t| t < self.term) =>
            {
                tracing::warn!(
                    "ignored {} from a deposed panel (term {}, the active panel's is {})",
                    command.state.as_str(),
                    command.term.unwrap_or_default(),
                    self.term
                );
                vec![Act::count(DEPOSED, &[], 1)]
            }
            Ok(Message::AlarmControl(command) | Message::Sound(command)) => {
                self.term = self.term.max(command.term.unwrap_or_default());
                let before = self.siren.clone();
                self.siren = self.siren.apply(&command, now);
                let reason = command.reason.as_deref().unwrap_or("no reason given");
                let mut acts = self.report(now);
                match command.tone() {
                    Tone::Alarm => acts.push(Act::Note(format!("siren {} ({reason})", command.state.as_str()))),
                    tone if self.siren == before => {
                        tracing::debug!("{} {} not played: the alarm sounds", tone.as_str(), command.state.as_str());
                    }
                    tone => tracing::debug!("sound {} {}", tone.as_str(), command.state.as_str()),
                }
                acts
            }
            Err(e) if matches!(e.parsed, Some(Topic::AlarmControl | Topic::Sound)) => {
                tracing::warn!(
                    "ignored a command on the siren: {}; send {{\"state\":\"ON\",\"reason\":\"…\"}}, ON or OFF",
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
        let sound_ends = self.siren.sound.map(|(_, until)| until);
        self.siren.cut_off_at(self.max_on()).into_iter().chain(sound_ends).chain(self.siren.alarm_until).min()
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<()>> {
        if self.next_deadline().is_none_or(|t| t > now) {
            return Vec::new();
        }
        if self.siren.sound.is_some_and(|(_, until)| until <= now) {
            self.siren.sound = None;
        }
        if self.siren.alarm_until.is_some_and(|t| t <= now) {
            self.siren = self.siren.apply(&AlarmCommand::siren(Power::Off, Some("its duration is over".into())), now);
        }
        if self.siren.cut_off_at(self.max_on()).is_some_and(|t| t <= now) {
            let reason = format!("cut off after max_on_s ({} s)", self.config.max_on_s);
            self.siren = self.siren.apply(&AlarmCommand::siren(Power::Off, Some(reason)), now);
            tracing::warn!("siren OFF: on for {} s without an OFF command (max_on_s)", self.config.max_on_s);
        }
        self.report(now)
    }
}

/// Runs the siren until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mqtt = config.mqtt.clone();
    device_runtime::runner::run(SirenDevice::new(config, Timestamp::now()), &mqtt, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Payload, Topics};

    fn on(reason: &str) -> AlarmCommand {
        AlarmCommand::siren(Power::On, Some(reason.into()))
    }

    fn sound(tone: Tone, state: Power, duration_s: Option<u64>) -> AlarmCommand {
        AlarmCommand { state, reason: None, tone: Some(tone), duration_s, term: None }
    }

    #[test]
    fn sounds_play_for_their_length_stop_on_their_off_and_never_over_the_alarm() {
        let t = |s: u64| Timestamp(s * 1000);
        let off = Siren::off(t(0));
        let beeping = off.apply(&sound(Tone::ExitBeeps, Power::On, Some(30)), t(1));
        assert_eq!(beeping.sound, Some((Tone::ExitBeeps, t(31))));
        assert_eq!(beeping.state("siren", t(2)).tone, Some(Tone::ExitBeeps));
        assert_eq!(beeping.state("siren", t(2)).state, Power::Off, "beeps are not the alarm");
        assert_eq!(
            beeping.apply(&sound(Tone::Chime, Power::Off, None), t(2)).sound,
            beeping.sound,
            "another tone's OFF"
        );
        assert_eq!(beeping.apply(&sound(Tone::ExitBeeps, Power::Off, None), t(2)).sound, None);
        let chime = off.apply(&sound(Tone::Chime, Power::On, None), t(5));
        assert_eq!(chime.sound, Some((Tone::Chime, t(7))), "a chime's own length: 2 s");
        let alarm = beeping.apply(&on("intrusion"), t(3));
        assert_eq!(alarm.state("siren", t(3)).tone, None, "the alarm drowns the beeps");
        assert_eq!(alarm.apply(&sound(Tone::Chime, Power::On, None), t(4)), alarm, "no chime over the alarm");
        let quiet = alarm.apply(&AlarmCommand::siren(Power::Off, None), t(5));
        assert_eq!((quiet.power, quiet.sound), (Power::Off, None), "OFF stops everything");
        let long = off.apply(&sound(Tone::EntryBeeps, Power::On, Some(100_000)), t(0));
        assert_eq!(long.sound, Some((Tone::EntryBeeps, t(255))), "at most 255 s");
        let timed = off.apply(&AlarmCommand { duration_s: Some(10), ..on("Home Assistant") }, t(0));
        assert_eq!(timed.alarm_until, Some(t(10)), "an alarm with a duration ends then");
        assert_eq!(timed.apply(&AlarmCommand::siren(Power::Off, None), t(1)).alarm_until, None);
    }

    #[test]
    fn since_moves_only_on_a_change() {
        let off = Siren::off(Timestamp(0));
        let first = off.apply(&on("intrusion"), Timestamp(10));
        assert_eq!((first.power, first.since), (Power::On, Timestamp(10)));
        let again = first.apply(&on("still"), Timestamp(20));
        assert_eq!(again.since, Timestamp(10), "a repeated ON does not extend the siren");
        let stopped = again.apply(&AlarmCommand::siren(Power::Off, None), Timestamp(30));
        assert_eq!((stopped.power, stopped.since), (Power::Off, Timestamp(30)));
    }

    #[test]
    fn the_cut_off_counts_from_the_first_on() {
        let max_on = Duration::from_secs(900);
        let siren = Siren::off(Timestamp(0)).apply(&on("x"), Timestamp(1_000));
        assert_eq!(siren.cut_off_at(max_on), Some(Timestamp(901_000)));
        assert_eq!(siren.apply(&on("y"), Timestamp(5_000)).cut_off_at(max_on), Some(Timestamp(901_000)));
        assert_eq!(Siren::off(Timestamp(0)).cut_off_at(max_on), None);
    }

    #[test]
    fn the_device_reports_on_connect_applies_commands_and_cuts_off() {
        let config = Config { max_on_s: 60, ..Config::default() };
        let mut siren = SirenDevice::new(config, Timestamp(0));
        let states = |acts: &[Act<()>]| device_runtime::runner::published::<AlarmState, ()>(acts).len();
        assert_eq!(states(&siren.on_connected(Timestamp(1))), 1, "the state, on every connect");
        let quiet = siren.on_message(Message::read(&Topics::default(), Topic::Sound, b"ON"), Timestamp(500));
        assert!(quiet.is_empty(), "the sound topic never switches the alarm: {quiet:?}");
        let acts = siren.on_message(Message::read(&Topics::default(), Topic::AlarmControl, b"ON"), Timestamp(1_000));
        let [Act::Publish(out), Act::Metric { metric: SIREN_ON, value: 1, .. }, Act::Note(note)] = acts.as_slice()
        else {
            panic!("{acts:?}")
        };
        assert_eq!(out.topic, Topic::AlarmState);
        assert_eq!(AlarmState::decode(&out.payload).unwrap().state, Power::On);
        assert_eq!(note, "siren ON (no reason given)", "the log line follows the state out");
        assert_eq!(siren.next_deadline(), Some(Timestamp(61_000)));
        assert!(siren.on_deadline(Timestamp(60_999)).is_empty(), "not yet");
        assert_eq!(states(&siren.on_deadline(Timestamp(61_000))), 1);
        assert_eq!(siren.next_deadline(), None, "off after the cut-off");
        assert!(
            siren
                .on_message(Message::read(&Topics::default(), Topic::AlarmControl, b"LOUD"), Timestamp(62_000))
                .is_empty(),
            "refused"
        );
    }

    #[test]
    fn a_deposed_panels_command_is_ignored() {
        let mut siren = SirenDevice::new(Config::default(), Timestamp(0));
        let command = |state, term| {
            let c = AlarmCommand { term, ..AlarmCommand::siren(state, Some("test".into())) };
            Message::AlarmControl(c)
        };
        let states = |acts: &[Act<()>]| device_runtime::runner::published::<AlarmState, ()>(acts);
        assert_eq!(states(&siren.on_message(Ok(command(Power::On, Some(2))), Timestamp(1)))[0].state, Power::On);
        let late = siren.on_message(Ok(command(Power::Off, Some(1))), Timestamp(2));
        assert!(states(&late).is_empty(), "term 1 after term 2: a deposed panel's, ignored: {late:?}");
        assert_eq!(siren.siren.power, Power::On);
        let now = siren.on_message(Ok(command(Power::Off, Some(2))), Timestamp(3));
        assert_eq!(states(&now)[0].state, Power::Off, "the active panel's term");
        let plain = siren.on_message(Ok(command(Power::On, None)), Timestamp(4));
        assert_eq!(states(&plain)[0].state, Power::On, "no term (a person, Home Assistant): obeyed");
    }

    #[test]
    fn max_on_is_bounded() {
        assert!(Config { max_on_s: 0, ..Config::default() }.validate().is_err());
        assert!(
            Config { max_on_s: 7200, ..Config::default() }.validate().unwrap_err().to_string().contains("max_on_s")
        );
        assert!(Config::default().validate().is_ok());
    }
}
