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
use device_runtime::{ConfigError, DeviceSpec, Inbound, Link, MqttConfig, Publisher, Shutdown};
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
    pub interval_s: f64,
    /// Chance per roll that motion starts, or that a contact toggles (0–1).
    pub chance: f64,
    /// Shortest motion, in seconds.
    pub motion_min_s: f64,
    /// Longest motion, in seconds.
    pub motion_max_s: f64,
    /// Seed for a reproducible simulation; random when absent.
    pub seed: Option<u64>,
    /// Seconds between heartbeats (the current state, republished).
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
            SensorKind::Motion => ("hall-motion", 0.3),
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
            fn mqtt(&self) -> &MqttConfig {
                &self.0.mqtt
            }
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
    spec.state_topics =
        vec![protocol::Topics::new(&config.mqtt.topic_root).name(&Topic::Sensor { kind, id: config.mqtt.id.clone() })];
    spec
}

async fn report(publisher: &Publisher, kind: SensorKind, state: SensorState) {
    let id = publisher.device_id().to_owned();
    let topic = Topic::Sensor { kind, id: id.clone() };
    let reading = SensorReading { state, device_id: id, ts: Timestamp::now() };
    match publisher.send(&topic, &reading).await {
        Ok(()) => tracing::info!("published {}: {}", publisher.topics().name(&topic), state.as_str()),
        Err(e) => tracing::error!("{e}"),
    }
}

/// Runs a simulated (or, with `simulate = false`, idle) sensor until `shutdown`.
pub async fn run(kind: SensorKind, config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mut link = Link::start(&config.mqtt, spec(kind, &config), shutdown.clone())?;
    let publisher = link.publisher.clone();
    let mut rng = config.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    let mut state = kind.idle();
    report(&publisher, kind, state).await;

    let interval = Duration::from_secs_f64(config.interval_s);
    let refresh = Duration::from_secs(config.refresh_s);
    let now = tokio::time::Instant::now();
    let (mut next_roll, mut next_refresh) = (now + interval, now + refresh);
    let mut motion_ends: Option<tokio::time::Instant> = None;
    loop {
        let motion_deadline = motion_ends.unwrap_or(next_refresh);
        tokio::select! {
            () = shutdown.wait() => break,
            inbound = link.inbox.recv() => match inbound {
                Some(Inbound::Connected { .. } | Inbound::Message { .. }) => {}
                None => break,
            },
            () = tokio::time::sleep_until(next_roll), if config.simulate => {
                next_roll += interval;
                if let Some(change) = roll(kind, state, &config, &mut rng) {
                    state = change.state;
                    motion_ends = change.lasts.map(|d| tokio::time::Instant::now() + d);
                    report(&publisher, kind, state).await;
                }
            }
            () = tokio::time::sleep_until(motion_deadline), if motion_ends.is_some() => {
                motion_ends = None;
                state = kind.idle();
                report(&publisher, kind, state).await;
            }
            () = tokio::time::sleep_until(next_refresh) => {
                next_refresh += refresh;
                report(&publisher, kind, state).await;
            }
        }
    }
    link.finish().await;
    Ok(())
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
    let connected = async {
        while let Some(inbound) = link.inbox.recv().await {
            if matches!(inbound, Inbound::Connected { .. }) {
                return true;
            }
        }
        false
    };
    let reached = tokio::time::timeout(timeout, connected).await.unwrap_or(false);
    if !reached {
        shutdown.trigger();
        link.finish().await;
        anyhow::bail!("could not connect to {} within {timeout:?}", config.mqtt.broker);
    }
    report(&link.publisher, kind, state).await;
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
        /// Seconds between simulation rolls [default: 10]
        #[arg(long, env = "SENSOR_INTERVAL", value_name = "SECONDS")]
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
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let outcome = runtime
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(once(kind, config, state, Duration::from_secs(10))));
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: error: {e:#}", C::NAME);
                ExitCode::FAILURE
            }
        }
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
