//! Binary sensors — motion, door and window — simulated the way the original guide did, and
//! scriptable: each binary is this library with its [`SensorKind`].
//!
//! - Simulation: every `interval_s` there is a `chance` that something happens. A motion sensor
//!   then reports `MOTION` for a random `motion_min_s`–`motion_max_s` and falls back to
//!   `NO_MOTION`; a contact toggles `OPEN`/`CLOSED`. `seed` makes a run reproducible.
//! - One shot (`--once open`): publish one reading, retained, wait for the broker's ack, exit.
//! - Heartbeat: the current state is republished every `refresh_s`, so the security controller's
//!   supervision can tell a quiet sensor from a dead one.
//!
//! Readings go out retained at QoS 1 with a persistent session, so a reading made while the broker
//! is away is delivered when it returns.

use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, ConfigError, Device, DeviceSpec, Link, MqttConfig, Shutdown};
use protocol::{DeviceKind, SensorKind, SensorReading, SensorState, Timestamp, Topic};
use serde::{Deserialize, Serialize};

/// `config/<kind>-sensor.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// Simulate activity; off, the sensor only reports its initial state and heartbeats.
    pub simulate: bool,
    /// Seconds between simulation rolls.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub interval_s: f64,
    /// Chance per roll that motion starts, or that a contact toggles (0–1).
    pub chance: f64,
    /// Shortest motion, in seconds.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub motion_min_s: f64,
    /// Longest motion, in seconds.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub motion_max_s: f64,
    /// Seed for a reproducible simulation; random when absent.
    pub seed: Option<u64>,
    /// Seconds between heartbeats (the current state, republished).
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub refresh_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mqtt: MqttConfig::default(),
            simulate: true,
            interval_s: 10.0,
            chance: 0.3,
            motion_min_s: 5.0,
            motion_max_s: 15.0,
            seed: None,
            refresh_s: 60,
        }
    }
}

impl Config {
    /// The defaults for a sensor of `kind` (contacts change less often than people move).
    pub fn for_kind(kind: SensorKind) -> Config {
        let (id, chance) = match kind {
            SensorKind::Motion => ("kitchen-motion", 0.3),
            SensorKind::Door => ("front", 0.1),
            SensorKind::Window => ("kitchen-window", 0.05),
        };
        Config { mqtt: MqttConfig::with_id(id), chance, ..Config::default() }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !self.interval_s.is_finite() || self.interval_s < 0.05 {
            return invalid(format!("interval_s = {} must be at least 0.05", self.interval_s));
        }
        if !(0.0..=1.0).contains(&self.chance) {
            return invalid(format!("chance = {} must be between 0 and 1", self.chance));
        }
        if !(self.motion_min_s > 0.0 && self.motion_min_s <= self.motion_max_s) {
            return invalid(format!(
                "motion_min_s = {} and motion_max_s = {} must satisfy 0 < min <= max",
                self.motion_min_s, self.motion_max_s
            ));
        }
        if self.refresh_s == 0 {
            return invalid("refresh_s must be at least 1".into());
        }
        Ok(())
    }
}

macro_rules! daemon_config {
    ($name:ident, $kind:expr, $file:literal) => {
        /// The configuration of one kind of sensor, named for its config file.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Config);

        impl Default for $name {
            fn default() -> Self {
                $name(Config::for_kind($kind))
            }
        }

        impl DaemonConfig for $name {
            const NAME: &'static str = $file;
            device_runtime::mqtt_section!(0.mqtt);
            fn validate(&self) -> Result<(), ConfigError> {
                self.0.validate()
            }
        }
    };
}

daemon_config!(MotionConfig, SensorKind::Motion, "motion-sensor");
daemon_config!(DoorConfig, SensorKind::Door, "door-sensor");
daemon_config!(WindowConfig, SensorKind::Window, "window-sensor");

/// What one simulation roll decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub state: SensorState,
    /// For motion: when to fall back to `NO_MOTION`.
    pub lasts: Option<Duration>,
}

/// One roll of the simulation for a sensor of `kind` now in `current`. Pure but for `rng`.
pub fn roll(kind: SensorKind, current: SensorState, config: &Config, rng: &mut fastrand::Rng) -> Option<Change> {
    if rng.f64() >= config.chance {
        return None;
    }
    match kind {
        // Motion already in progress is extended by the next detection, not restarted.
        SensorKind::Motion if current.is_active() => None,
        SensorKind::Motion => {
            let secs = config.motion_min_s + rng.f64() * (config.motion_max_s - config.motion_min_s);
            Some(Change { state: SensorState::Motion, lasts: Some(Duration::from_secs_f64(secs)) })
        }
        SensorKind::Door | SensorKind::Window => {
            let state = if current.is_active() { kind.idle() } else { kind.active() };
            Some(Change { state, lasts: None })
        }
    }
}

fn spec(kind: SensorKind, config: &Config) -> DeviceSpec {
    let device_kind = match kind {
        SensorKind::Motion => DeviceKind::MotionSensor,
        SensorKind::Door => DeviceKind::DoorSensor,
        SensorKind::Window => DeviceKind::WindowSensor,
    };
    let mut spec = DeviceSpec::new(device_kind);
    spec.capabilities = vec![kind.as_str().to_owned()];
    let topics = protocol::Topics::new(&config.mqtt.topic_root);
    spec.state_topics = vec![topics.name(&Topic::Sensor { kind, id: config.mqtt.id.clone() })];
    spec.discovery = protocol::discovery::sensor(&topics, kind, &config.mqtt.id);
    spec
}

/// The sensor as a [`Device`]: its state on start, on every change and as a heartbeat; with
/// `simulate`, a roll every `interval_s` that may open, close or start a motion.
pub struct SensorDevice {
    kind: SensorKind,
    config: Config,
    rng: fastrand::Rng,
    state: SensorState,
    next_roll: Timestamp,
    motion_ends: Option<Timestamp>,
    next_refresh: Timestamp,
}

impl SensorDevice {
    pub fn new(kind: SensorKind, config: Config, now: Timestamp) -> SensorDevice {
        let rng = config.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        let next_roll = now.plus(Duration::from_secs_f64(config.interval_s));
        let next_refresh = now.plus(Duration::from_secs(config.refresh_s));
        SensorDevice { kind, config, rng, state: kind.idle(), next_roll, motion_ends: None, next_refresh }
    }

    pub fn state(&self) -> SensorState {
        self.state
    }

    fn reading(&mut self, now: Timestamp) -> Vec<Act<()>> {
        let id = self.config.mqtt.id.clone();
        tracing::info!("{} {id}: {}", self.kind, self.state.as_str());
        self.next_refresh = now.plus(Duration::from_secs(self.config.refresh_s));
        let reading = SensorReading { state: self.state, device_id: id.clone(), ts: now };
        vec![Act::publish(Topic::Sensor { kind: self.kind, id }, &reading)]
    }
}

impl Device for SensorDevice {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        spec(self.kind, &self.config)
    }

    fn on_start(&mut self, now: Timestamp) -> Vec<Act<()>> {
        self.reading(now)
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        let roll = self.config.simulate.then_some(self.next_roll);
        [roll, self.motion_ends, Some(self.next_refresh)].into_iter().flatten().min()
    }

    /// Every change is reported, even two in one instant (a motion that ends as the next begins).
    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<()>> {
        let mut acts = Vec::new();
        if self.motion_ends.is_some_and(|t| t <= now) {
            self.motion_ends = None;
            self.state = self.kind.idle();
            acts.extend(self.reading(now));
        }
        if self.config.simulate && self.next_roll <= now {
            self.next_roll = self.next_roll.plus(Duration::from_secs_f64(self.config.interval_s)).max(now);
            if let Some(change) = roll(self.kind, self.state, &self.config, &mut self.rng) {
                self.state = change.state;
                self.motion_ends = change.lasts.map(|d| now.plus(d));
                acts.extend(self.reading(now));
            }
        }
        if acts.is_empty() && self.next_refresh <= now {
            acts.extend(self.reading(now));
        }
        acts
    }
}

/// Runs a simulated (or, with `simulate = false`, idle) sensor until `shutdown`.
pub async fn run(kind: SensorKind, config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mqtt = config.mqtt.clone();
    device_runtime::runner::run(SensorDevice::new(kind, config, Timestamp::now()), &mqtt, shutdown).await
}

/// Publishes one reading and returns once the broker has it (or `timeout` passed).
pub async fn once(kind: SensorKind, config: Config, state: SensorState, timeout: Duration) -> anyhow::Result<()> {
    anyhow::ensure!(
        state.fits(kind),
        "a {kind} sensor reports {} or {}, not {}",
        kind.active().as_str(),
        kind.idle().as_str(),
        state.as_str()
    );
    let shutdown = Shutdown::new();
    let mut link = Link::start(&config.mqtt, spec(kind, &config), shutdown.clone())?;
    if !link.connected(timeout).await {
        shutdown.trigger();
        link.finish().await;
        anyhow::bail!("could not connect to {} within {timeout:?}", config.mqtt.broker);
    }
    let reading = SensorReading { state, device_id: config.mqtt.id.clone(), ts: Timestamp::now() };
    link.publisher.send(&Topic::Sensor { kind, id: config.mqtt.id.clone() }, &reading).await?;
    tracing::info!("{kind} {}: {}", config.mqtt.id, state.as_str());
    // The clean shutdown publishes `offline` and disconnects after the reading: the broker has
    // processed the reading by then (it handles one connection's packets in order).
    shutdown.trigger();
    link.finish().await;
    Ok(())
}

/// The `main` shared by the three sensor binaries.
pub mod cli {
    use std::process::ExitCode;

    use clap::Parser;
    use device_runtime::CommonArgs;
    use device_runtime::config::set;
    use device_runtime::daemon::{DaemonConfig, load};

    use super::*;

    /// A simulated binary sensor (motion, door or window)
    #[derive(Debug, Parser)]
    #[command(version)]
    pub struct Args {
        #[command(flatten)]
        pub common: CommonArgs,
        /// Publish one reading (e.g. open, closed, motion, no_motion) and exit
        #[arg(long, value_name = "STATE")]
        pub once: Option<String>,
        /// Do not simulate: report the initial state and heartbeats only
        #[arg(long, env = "SENSOR_NO_SIMULATE")]
        pub no_simulate: bool,
        /// Time between simulation rolls: 10s, 500ms, or seconds [default: 10s]
        #[arg(long, env = "SENSOR_INTERVAL", value_name = "DURATION", value_parser = device_runtime::duration::secs_f64_arg)]
        pub interval: Option<f64>,
        /// Chance per roll of motion starting or a contact toggling (0-1)
        #[arg(long, env = "SENSOR_CHANCE")]
        pub chance: Option<f64>,
        /// Seed for a reproducible simulation
        #[arg(long, env = "SENSOR_SEED")]
        pub seed: Option<u64>,
    }

    /// Parses the flags and runs a sensor of the kind `C` describes.
    pub fn main<C: DaemonConfig + Into<Config>>(kind: SensorKind) -> ExitCode {
        let args = Args::parse();
        let mut overrides = toml::Table::new();
        if args.no_simulate {
            set(&mut overrides, "simulate", false);
        }
        if let Some(v) = args.interval {
            set(&mut overrides, "interval_s", v);
        }
        if let Some(v) = args.chance {
            set(&mut overrides, "chance", v);
        }
        if let Some(v) = args.seed {
            set(&mut overrides, "seed", v as i64);
        }
        let Some(word) = args.once else {
            return device_runtime::daemon::main::<C, _, _>(args.common, overrides, move |c: C, shutdown| {
                run(kind, c.into(), shutdown)
            });
        };
        device_runtime::logging::init(args.common.verbose, args.common.log_format);
        let state = match word.to_ascii_uppercase().replace('-', "_").as_str() {
            "OPEN" => SensorState::Open,
            "CLOSED" => SensorState::Closed,
            "MOTION" => SensorState::Motion,
            "NO_MOTION" => SensorState::NoMotion,
            _ => {
                eprintln!("{}: error: --once {word}: expected open, closed, motion or no_motion", C::NAME);
                return ExitCode::from(2);
            }
        };
        let config: Config = match load::<C>(&args.common, overrides) {
            Ok(c) => c.into(),
            Err(e) => {
                eprintln!("{}: error: {e:#}", C::NAME);
                return ExitCode::from(2);
            }
        };
        device_runtime::daemon::block_on(C::NAME, 1, once(kind, config, state, Duration::from_secs(10)))
    }
}

impl From<MotionConfig> for Config {
    fn from(c: MotionConfig) -> Config {
        c.0
    }
}
impl From<DoorConfig> for Config {
    fn from(c: DoorConfig) -> Config {
        c.0
    }
}
impl From<WindowConfig> for Config {
    fn from(c: WindowConfig) -> Config {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(acts: &[Act<()>]) -> Vec<SensorState> {
        device_runtime::runner::published::<SensorReading, _>(acts).into_iter().map(|r| r.state).collect()
    }

    #[test]
    fn the_device_reports_changes_motion_ends_and_heartbeats() {
        let t = |ms: u64| Timestamp(1_000_000 + ms);
        let config = Config {
            chance: 1.0,
            interval_s: 1.0,
            motion_min_s: 2.0,
            motion_max_s: 2.0,
            refresh_s: 60,
            seed: Some(7),
            ..Config::for_kind(SensorKind::Motion)
        };
        let mut sensor = SensorDevice::new(SensorKind::Motion, config, t(0));
        assert_eq!(states(&sensor.on_start(t(0))), [SensorState::NoMotion]);
        assert_eq!(sensor.next_deadline(), Some(t(1000)));
        assert_eq!(states(&sensor.on_deadline(t(1000))), [SensorState::Motion]);
        assert!(sensor.on_deadline(t(2000)).is_empty(), "motion in progress is not restarted");
        assert_eq!(sensor.next_deadline(), Some(t(3000)));
        assert_eq!(states(&sensor.on_deadline(t(3000))), [SensorState::NoMotion, SensorState::Motion]);
        let quiet = Config { simulate: false, refresh_s: 5, ..Config::for_kind(SensorKind::Door) };
        let mut door = SensorDevice::new(SensorKind::Door, quiet, t(0));
        assert_eq!(door.next_deadline(), Some(t(5000)), "only the heartbeat");
        assert_eq!(states(&door.on_deadline(t(5000))), [SensorState::Closed]);
        assert_eq!(door.next_deadline(), Some(t(10_000)));
    }

    #[test]
    fn a_seed_makes_the_simulation_reproducible() {
        let config = Config { chance: 0.5, ..Config::for_kind(SensorKind::Motion) };
        let run = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..50).map(|_| roll(SensorKind::Motion, SensorState::NoMotion, &config, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn motion_lasts_between_min_and_max() {
        let config = Config { chance: 1.0, ..Config::for_kind(SensorKind::Motion) };
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..200 {
            let change = roll(SensorKind::Motion, SensorState::NoMotion, &config, &mut rng).unwrap();
            assert_eq!(change.state, SensorState::Motion);
            let secs = change.lasts.unwrap().as_secs_f64();
            assert!((5.0..=15.0).contains(&secs), "{secs}");
        }
        assert_eq!(roll(SensorKind::Motion, SensorState::Motion, &config, &mut rng), None);
    }

    #[test]
    fn contacts_toggle_and_chance_zero_never_changes() {
        let always = Config { chance: 1.0, ..Config::for_kind(SensorKind::Door) };
        let mut rng = fastrand::Rng::with_seed(3);
        assert_eq!(roll(SensorKind::Door, SensorState::Closed, &always, &mut rng).unwrap().state, SensorState::Open);
        assert_eq!(roll(SensorKind::Window, SensorState::Open, &always, &mut rng).unwrap().state, SensorState::Closed);
        let never = Config { chance: 0.0, ..Config::for_kind(SensorKind::Door) };
        assert!((0..100).all(|_| roll(SensorKind::Door, SensorState::Closed, &never, &mut rng).is_none()));
    }

    #[test]
    fn bad_numbers_are_rejected_with_the_key() {
        let bad = [
            Config { chance: 1.5, ..Config::for_kind(SensorKind::Door) },
            Config { interval_s: 0.0, ..Config::for_kind(SensorKind::Door) },
            Config { motion_min_s: 20.0, ..Config::for_kind(SensorKind::Motion) },
        ];
        for (config, key) in bad.iter().zip(["chance", "interval_s", "motion_min_s"]) {
            assert!(config.validate().unwrap_err().to_string().contains(key));
        }
        assert!(Config::for_kind(SensorKind::Window).validate().is_ok());
    }
}
