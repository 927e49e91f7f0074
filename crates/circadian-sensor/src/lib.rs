//! The circadian-rhythm sensor: publishes the sun's phase, retained, on `<root>/lights/circadian_rhythm`.
//!
//! Two modes: `cycle` steps sunrise → morning → sunset → night every `phase_interval_s` (the
//! original demo), and `sun` computes the phase from the real sun position at `latitude` /
//! `longitude`, optionally on a clock running `time_scale` times faster, so a day fits in minutes.

pub mod sun;

use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{DeviceSpec, Inbound, Link, MqttConfig, Shutdown};
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

    fn mqtt(&self) -> &MqttConfig {
        &self.mqtt
    }

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

/// Runs the sensor until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut spec = DeviceSpec::new(DeviceKind::CircadianSensor);
    spec.capabilities = vec![format!("mode:{}", mode_name(config.mode))];
    spec.state_topics = vec![protocol::Topics::new(&config.mqtt.topic_root).name(&Topic::Circadian)];
    spec.persistent_session = true;
    let mut link = Link::start(&config.mqtt, spec, shutdown.clone())?;
    let publisher = link.publisher.clone();
    let topic_name = publisher.topics().name(&Topic::Circadian);
    let clock = sun::ScaledClock { start: Timestamp::now(), scale: config.time_scale };

    let mut phase = config.start_phase;
    let mut elevation = None;
    if config.mode == Mode::Sun {
        let (p, e) = sun_phase(&config, clock.at(Timestamp::now()));
        (phase, elevation) = (p, Some(e));
    }
    let publish = |phase: CircadianPhase, elevation: Option<f64>| {
        let publisher = publisher.clone();
        let topic_name = topic_name.clone();
        let device_id = config.mqtt.id.clone();
        async move {
            let reading = CircadianReading { phase, device_id, ts: Timestamp::now(), elevation_deg: elevation };
            match publisher.send(&Topic::Circadian, &reading).await {
                Ok(()) => tracing::info!("published {topic_name}: {phase}"),
                Err(e) => tracing::error!("{e}"),
            }
        }
    };
    publish(phase, elevation).await;

    let step = match config.mode {
        Mode::Cycle => Duration::from_secs_f64(config.phase_interval_s),
        // Look at the sun often enough that a phase change is noticed within a simulated minute.
        Mode::Sun => Duration::from_secs_f64((60.0 / config.time_scale).clamp(0.05, 10.0)),
    };
    let mut next_step = tokio::time::Instant::now() + step;
    let refresh = Duration::from_secs(config.refresh_s);
    let mut next_refresh = tokio::time::Instant::now() + refresh;
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            inbound = link.inbox.recv() => match inbound {
                // The retained reading is at the broker already; nothing to redo on reconnect.
                Some(Inbound::Connected { .. }) | Some(Inbound::Message { .. }) => {}
                None => break,
            },
            () = tokio::time::sleep_until(next_step) => {
                next_step += step;
                let before = phase;
                match config.mode {
                    Mode::Cycle => phase = phase.next(),
                    Mode::Sun => {
                        let (p, e) = sun_phase(&config, clock.at(Timestamp::now()));
                        (phase, elevation) = (p, Some(e));
                    }
                }
                if phase != before {
                    publish(phase, elevation).await;
                    next_refresh = tokio::time::Instant::now() + refresh;
                }
            }
            () = tokio::time::sleep_until(next_refresh) => {
                next_refresh += refresh;
                publish(phase, elevation).await;
            }
        }
    }
    link.finish().await;
    Ok(())
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
