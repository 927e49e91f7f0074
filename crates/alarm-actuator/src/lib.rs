//! The alarm actuator: a siren.
//!
//! It applies `<root>/control/alarm` (QoS 1, idempotent; JSON `{"state":"ON","reason":"…"}` or bare `ON`/`OFF`)
//! and reports its state retained on `<root>/security/alarm`. A persistent session means an `OFF`
//! (or `ON`) sent during a short outage still arrives. Whatever happens upstream, the siren cuts
//! itself off after `max_on_s` (15 min by default): a siren that never stops is a nuisance and,
//! in many places, an offence.

use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, ConfigError, Device, DeviceSpec, MqttConfig, Shutdown};
use protocol::{AlarmCommand, AlarmState, DeviceKind, Message, Power, Qos, Timestamp, Topic, Unreadable};
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

/// The siren's state: on or off, why, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Siren {
    pub power: Power,
    pub reason: Option<String>,
    pub since: Timestamp,
}

impl Siren {
    pub fn off(now: Timestamp) -> Siren {
        Siren { power: Power::Off, reason: None, since: now }
    }

    /// Applies a command; `since` moves only when the state changes.
    pub fn apply(&self, command: &AlarmCommand, now: Timestamp) -> Siren {
        let since = if command.state == self.power { self.since } else { now };
        Siren { power: command.state, reason: command.reason.clone(), since }
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
            device_id: device_id.to_owned(),
            ts: now,
        }
    }
}

/// The siren as a [`Device`]: commands in, its state out, the cut-off as a deadline.
pub struct SirenDevice {
    config: Config,
    siren: Siren,
}

impl SirenDevice {
    pub fn new(config: Config, now: Timestamp) -> SirenDevice {
        SirenDevice { config, siren: Siren::off(now) }
    }

    fn max_on(&self) -> Duration {
        Duration::from_secs(self.config.max_on_s)
    }

    fn report(&self, now: Timestamp) -> Vec<Act<()>> {
        vec![Act::publish(Topic::AlarmState, &self.siren.state(&self.config.mqtt.id, now))]
    }
}

impl Device for SirenDevice {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        let topics = protocol::Topics::new(&self.config.mqtt.topic_root);
        let control = topics.name(&Topic::AlarmControl);
        let mut spec = DeviceSpec::new(DeviceKind::AlarmActuator);
        spec.capabilities = vec!["siren".into(), format!("max_on_s:{}", self.config.max_on_s)];
        spec.subscriptions = vec![(control.clone(), Qos::AtLeastOnce)];
        spec.command_topics = vec![control];
        spec.state_topics = vec![topics.name(&Topic::AlarmState)];
        spec.discovery = protocol::discovery::siren(&topics);
        spec
    }

    fn on_connected(&mut self, now: Timestamp) -> Vec<Act<()>> {
        self.report(now)
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<()>> {
        match message {
            Ok(Message::AlarmControl(command)) => {
                self.siren = self.siren.apply(&command, now);
                let reason = command.reason.as_deref().unwrap_or("no reason given");
                let mut acts = self.report(now);
                acts.push(Act::Note(format!("siren {} ({reason})", command.state.as_str())));
                acts
            }
            Err(e) if e.parsed == Some(Topic::AlarmControl) => {
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
        self.siren.cut_off_at(self.max_on())
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<()>> {
        if self.next_deadline().is_none_or(|t| t > now) {
            return Vec::new();
        }
        let reason = format!("cut off after max_on_s ({} s)", self.config.max_on_s);
        self.siren = self.siren.apply(&AlarmCommand { state: Power::Off, reason: Some(reason) }, now);
        tracing::warn!("siren OFF: on for {} s without an OFF command (max_on_s)", self.config.max_on_s);
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
        AlarmCommand { state: Power::On, reason: Some(reason.into()) }
    }

    #[test]
    fn since_moves_only_on_a_change() {
        let off = Siren::off(Timestamp(0));
        let first = off.apply(&on("intrusion"), Timestamp(10));
        assert_eq!((first.power, first.since), (Power::On, Timestamp(10)));
        let again = first.apply(&on("still"), Timestamp(20));
        assert_eq!(again.since, Timestamp(10), "a repeated ON does not extend the siren");
        let stopped = again.apply(&AlarmCommand { state: Power::Off, reason: None }, Timestamp(30));
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
        assert_eq!(siren.on_connected(Timestamp(1)).len(), 1, "the state, on every connect");
        let acts = siren.on_message(Message::read(&Topics::default(), Topic::AlarmControl, b"ON"), Timestamp(1_000));
        let [Act::Publish(out), Act::Note(note)] = acts.as_slice() else { panic!("{acts:?}") };
        assert_eq!(out.topic, Topic::AlarmState);
        assert_eq!(AlarmState::decode(&out.payload).unwrap().state, Power::On);
        assert_eq!(note, "siren ON (no reason given)", "the log line follows the state out");
        assert_eq!(siren.next_deadline(), Some(Timestamp(61_000)));
        assert!(siren.on_deadline(Timestamp(60_999)).is_empty(), "not yet");
        assert_eq!(siren.on_deadline(Timestamp(61_000)).len(), 1);
        assert_eq!(siren.next_deadline(), None, "off after the cut-off");
        assert!(
            siren
                .on_message(Message::read(&Topics::default(), Topic::AlarmControl, b"LOUD"), Timestamp(62_000))
                .is_empty(),
            "refused"
        );
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
