//! The circadian-rhythm sensor: publishes the sun's phase, retained, on `<root>/lights/circadian_rhythm`.
//!
//! Two modes: `cycle` steps sunrise → morning → sunset → night every `phase_interval_s` (the
//! original demo), and `sun` computes the phase from the real sun position at `latitude` /
//! `longitude`, optionally on a clock running `time_scale` times faster, so a day fits in minutes.

pub mod sun;

use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, Device, DeviceSpec, MqttConfig, Shutdown};
use protocol::{CircadianPhase, CircadianReading, DeviceKind, Timestamp, Topic};
use serde::{Deserialize, Serialize};

/// How the phase is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Step through the four phases every `phase_interval_s`.
    Cycle,
    /// Follow the real sun at `latitude`/`longitude`.
    Sun,
}

/// `config/circadian-sensor.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    pub mode: Mode,
    /// Seconds per phase in `cycle` mode.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub phase_interval_s: f64,
    /// The phase `cycle` mode starts with.
    pub start_phase: CircadianPhase,
    /// Degrees north, for `sun` mode.
    pub latitude: f64,
    /// Degrees east, for `sun` mode.
    pub longitude: f64,
    /// How much faster than real time the `sun` mode clock runs (720 = a day in two minutes).
    pub time_scale: f64,
    /// Seconds between republishing the current phase even when it has not changed (a heartbeat).
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub refresh_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mqtt: MqttConfig::with_id("circadian"),
            mode: Mode::Cycle,
            phase_interval_s: 5.0,
            start_phase: CircadianPhase::Sunrise,
            latitude: 52.52,
            longitude: 13.40,
            time_scale: 1.0,
            refresh_s: 300,
        }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "circadian-sensor";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), device_runtime::ConfigError> {
        self.mqtt.validate()?;
        let invalid = |m: String| Err(device_runtime::ConfigError::Invalid(m));
        if !self.phase_interval_s.is_finite() || self.phase_interval_s < 0.1 {
            return invalid(format!("phase_interval_s = {} must be at least 0.1", self.phase_interval_s));
        }
        if !(-90.0..=90.0).contains(&self.latitude) || !(-180.0..=180.0).contains(&self.longitude) {
            return invalid(format!("latitude {} / longitude {} are not on Earth", self.latitude, self.longitude));
        }
        if !(self.time_scale > 0.0 && self.time_scale <= 100_000.0) {
            return invalid(format!("time_scale = {} must be above 0 and at most 100000", self.time_scale));
        }
        if self.refresh_s == 0 {
            return invalid("refresh_s must be at least 1".into());
        }
        Ok(())
    }
}

/// The sensor as a [`Device`]: it publishes on start, on every phase change and as a heartbeat.
pub struct CircadianDevice {
    config: Config,
    clock: sun::ScaledClock,
    phase: CircadianPhase,
    elevation: Option<f64>,
    next_step: Timestamp,
    next_refresh: Timestamp,
}

impl CircadianDevice {
    pub fn new(config: Config, now: Timestamp) -> CircadianDevice {
        let clock = sun::ScaledClock { start: now, scale: config.time_scale };
        let (phase, elevation) = match config.mode {
            Mode::Cycle => (config.start_phase, None),
            Mode::Sun => {
                let (p, e) = sun_phase(&config, clock.at(now));
                (p, Some(e))
            }
        };
        let mut device = CircadianDevice { config, clock, phase, elevation, next_step: now, next_refresh: now };
        device.next_step = now.plus(device.step());
        device.next_refresh = now.plus(device.refresh());
        device
    }

    /// How often the phase is looked at.
    fn step(&self) -> Duration {
        match self.config.mode {
            Mode::Cycle => Duration::from_secs_f64(self.config.phase_interval_s),
            // Often enough that a phase change is noticed within a simulated minute.
            Mode::Sun => Duration::from_secs_f64((60.0 / self.config.time_scale).clamp(0.05, 10.0)),
        }
    }

    fn refresh(&self) -> Duration {
        Duration::from_secs(self.config.refresh_s)
    }

    pub fn phase(&self) -> CircadianPhase {
        self.phase
    }

    fn reading(&self, now: Timestamp) -> Vec<Act<()>> {
        tracing::info!("phase: {}", self.phase);
        let reading = CircadianReading {
            phase: self.phase,
            device_id: self.config.mqtt.id.clone(),
            ts: now,
            elevation_deg: self.elevation,
        };
        vec![Act::publish(Topic::Circadian, &reading)]
    }
}

impl Device for CircadianDevice {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        let mut spec = DeviceSpec::new(DeviceKind::CircadianSensor);
        spec.capabilities = vec![format!("mode:{}", mode_name(self.config.mode))];
        let topics = protocol::Topics::new(&self.config.mqtt.topic_root);
        spec.state_topics = vec![topics.name(&Topic::Circadian)];
        spec.discovery = protocol::discovery::circadian(&topics);
        spec
    }

    fn on_start(&mut self, now: Timestamp) -> Vec<Act<()>> {
        self.reading(now)
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        Some(self.next_step.min(self.next_refresh))
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<()>> {
        let mut changed = false;
        if self.next_step <= now {
            self.next_step = self.next_step.plus(self.step()).max(now);
            let before = self.phase;
            match self.config.mode {
                Mode::Cycle => self.phase = self.phase.next(),
                Mode::Sun => {
                    let (p, e) = sun_phase(&self.config, self.clock.at(now));
                    (self.phase, self.elevation) = (p, Some(e));
                }
            }
            changed = self.phase != before;
        }
        if changed || self.next_refresh <= now {
            self.next_refresh = now.plus(self.refresh());
            return self.reading(now);
        }
        Vec::new()
    }
}

/// Runs the sensor until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mqtt = config.mqtt.clone();
    device_runtime::runner::run(CircadianDevice::new(config, Timestamp::now()), &mqtt, shutdown).await
}

fn sun_phase(config: &Config, at: Timestamp) -> (CircadianPhase, f64) {
    let (elevation, rising) = sun::position(config.latitude, config.longitude, at);
    (sun::phase(elevation, rising), (elevation * 10.0).round() / 10.0)
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Cycle => "cycle",
        Mode::Sun => "sun",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(acts: &[Act<()>]) -> Vec<CircadianPhase> {
        device_runtime::runner::published::<CircadianReading, _>(acts).into_iter().map(|r| r.phase).collect()
    }

    #[test]
    fn cycle_mode_steps_through_the_day_and_heartbeats_in_between() {
        let config = Config { phase_interval_s: 5.0, refresh_s: 2, ..Config::default() };
        let t = |secs: u64| Timestamp(1_000_000 + secs * 1000);
        let mut sensor = CircadianDevice::new(config, t(0));
        assert_eq!(phases(&sensor.on_start(t(0))), [CircadianPhase::Sunrise]);
        assert_eq!(sensor.next_deadline(), Some(t(2)), "the heartbeat comes first");
        assert_eq!(phases(&sensor.on_deadline(t(2))), [CircadianPhase::Sunrise], "a heartbeat");
        assert!(sensor.on_deadline(t(3)).is_empty(), "nothing due");
        assert_eq!(phases(&sensor.on_deadline(t(5))), [CircadianPhase::Morning]);
        assert_eq!(phases(&sensor.on_deadline(t(10))), [CircadianPhase::Sunset]);
        assert_eq!(phases(&sensor.on_deadline(t(15))), [CircadianPhase::Night]);
        assert_eq!(phases(&sensor.on_deadline(t(20))), [CircadianPhase::Sunrise]);
    }
}
