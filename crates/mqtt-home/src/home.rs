//! The home: which daemons run, each as a task with its own MQTT connection and its own shutdown.
//!
//! The topology is the same as with separate processes — every daemon connects to the broker on
//! its own, with its own client id, session and Last Will — so what works here works in compose.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use device_runtime::config::{merge, set};
use device_runtime::daemon::DaemonConfig;
use device_runtime::{Brokers, CommonArgs, ConfigError, Shutdown};
use protocol::SensorKind;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config_source::ConfigSource;

/// `config/home.toml`: the devices of the home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomeConfig {
    /// Where the embedded broker listens; a free port is used if this one is taken.
    pub listen: String,
    pub circadian_sensor: bool,
    pub light_controller: bool,
    pub security_controller: bool,
    /// The alarm actuator (siren), device id `siren`.
    pub siren: bool,
    /// The recorder: every event and state change in `recorder.toml`'s database (default
    /// `mqtt-home.db` in the working directory), read by `mqtt-home history`.
    pub recorder: bool,
    /// The web dashboard (`dashboard.toml`: http://127.0.0.1:8080 by default).
    pub dashboard: bool,
    /// The bridge: foreign devices (Zigbee2MQTT, Tasmota, ESPHome, ...) as the home's own (`bridge.toml`).
    pub bridge: bool,
    /// The notifier: the panel's alarms to webhooks, email and MQTT (`notifier.toml`).
    pub notifier: bool,
    /// The SIA DC-09 transmitter: the panel's alarms to a monitoring centre (`sia-transmitter.toml`).
    pub sia_transmitter: bool,
    /// A standby panel beside the panel, `<id>-standby`, the pair arbitrated by the broker: it
    /// takes over when the active one is gone (both run with `standby = true`).
    pub standby_panel: bool,
    /// Simulate door and window sensors (random opening); off, they report CLOSED and heartbeats
    /// and you open them with `mqtt-home set door front open`.
    pub simulate_contacts: bool,
    /// A daemon's config file other than `<daemon>.toml`, relative to the config directory.
    pub config_files: BTreeMap<String, String>,
    pub bulbs: Vec<String>,
    pub motion_sensors: Vec<String>,
    pub door_sensors: Vec<String>,
    pub window_sensors: Vec<String>,
}

impl Default for HomeConfig {
    fn default() -> Self {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        HomeConfig {
            listen: "127.0.0.1:1883".into(),
            circadian_sensor: true,
            light_controller: true,
            security_controller: true,
            siren: true,
            recorder: true,
            dashboard: true,
            bridge: true,
            notifier: true,
            sia_transmitter: false,
            standby_panel: false,
            simulate_contacts: false,
            config_files: BTreeMap::from([(
                "security-controller".to_owned(),
                "security-controller.demo.toml".to_owned(),
            )]),
            bulbs: ids(&["kitchen", "hall"]),
            motion_sensors: ids(&["kitchen-motion", "hall-motion"]),
            door_sensors: ids(&["front", "back"]),
            window_sensors: ids(&["kitchen-window", "bedroom-window"]),
        }
    }
}

impl HomeConfig {
    pub fn load(source: &ConfigSource) -> Result<HomeConfig, ConfigError> {
        let config: HomeConfig = source.load("home.toml", &HomeConfig::default(), toml::Table::new())?;
        for id in
            config.bulbs.iter().chain(&config.motion_sensors).chain(&config.door_sensors).chain(&config.window_sensors)
        {
            protocol::validate_id(id).map_err(|e| ConfigError::Invalid(format!("home.toml, device list: {e}")))?;
        }
        Ok(config)
    }

    /// How many daemons this home runs.
    pub fn daemon_count(&self) -> usize {
        let lists = self.bulbs.len() + self.motion_sensors.len() + self.door_sensors.len() + self.window_sensors.len();
        let single = [
            self.circadian_sensor,
            self.light_controller,
            self.security_controller,
            self.siren,
            self.recorder,
            self.dashboard,
            self.bridge,
            self.notifier,
            self.sia_transmitter,
            self.security_controller && self.standby_panel,
        ];
        lists + single.iter().filter(|on| **on).count()
    }

    /// Nothing happens at random: no circadian cycle, no motion sensors, contacts that only move
    /// when told. What scenarios want: they play those sensors themselves. The home's own log is
    /// left alone too: no recorder, no dashboard.
    pub fn quiet(&mut self) {
        self.circadian_sensor = false;
        self.recorder = false;
        self.dashboard = false;
        self.motion_sensors.clear();
        self.simulate_contacts = false;
    }
}

/// How every daemon of the home is configured: its file from the home's [`ConfigSource`], then the
/// broker and credentials of the `mqtt-home` flags, its device id, and overrides of its own.
#[derive(Debug, Clone)]
pub struct Connection {
    pub broker: Brokers,
    pub common: CommonArgs,
    pub source: ConfigSource,
    /// Per-daemon config file names, from `home.toml`.
    pub config_files: BTreeMap<String, String>,
    /// Per-daemon keys set over the file (e.g. the panel's `state_file` for a scenario), by daemon name.
    pub overrides: BTreeMap<String, toml::Table>,
}

impl Connection {
    pub fn new(broker: &Brokers, common: CommonArgs, source: ConfigSource, home: &HomeConfig) -> Connection {
        Connection {
            broker: broker.clone(),
            common,
            source,
            config_files: home.config_files.clone(),
            overrides: BTreeMap::new(),
        }
    }

    /// Loads daemon `C`'s config as its own binary would, as device `id` (else the file's id).
    fn config<C: DaemonConfig>(&self, id: Option<&str>) -> anyhow::Result<C> {
        let file = self.config_files.get(C::NAME).cloned().unwrap_or_else(|| format!("{}.toml", C::NAME));
        let mut overrides = self.common.overrides();
        if let Some(toml::Value::Table(mqtt)) = overrides.get_mut("mqtt") {
            // The flags' `--id` names the mqtt-home client, never a daemon; its `--health-file`
            // is the process's, not every daemon's (16 links would write and remove one file).
            mqtt.remove("id");
            mqtt.remove("health_file");
            // The broker list is set below as it was parsed, not as text to be parsed again.
            mqtt.remove("broker");
        }
        if let Some(id) = id {
            set(&mut overrides, "mqtt.id", id);
        }
        merge(&mut overrides, self.overrides.get(C::NAME).cloned().unwrap_or_default());
        let what = || format!("{} {}", C::NAME, id.unwrap_or_default());
        let mut config: C = self.source.load(&file, &C::default(), overrides).with_context(what)?;
        config.mqtt_mut().broker = self.broker.clone();
        config.mqtt_mut().health_file = None;
        config.validate().with_context(what)?;
        Ok(config)
    }
}

/// The panel's configuration as the home would run it from `source` (for `mqtt-home users`).
pub fn panel_config(source: &ConfigSource, common: CommonArgs) -> anyhow::Result<security_controller::Config> {
    let home = HomeConfig::load(source)?;
    // Only read, never connected to: the panel's users do not depend on the broker.
    let brokers: Brokers = device_runtime::BrokerUrl::local().into();
    Connection::new(&brokers, common, source.clone(), &home).config(None)
}

/// The running daemons.
pub struct Daemons {
    tasks: JoinSet<(String, anyhow::Result<()>)>,
    pub names: Vec<String>,
    /// The device id of each, as its configuration says (each publishes its availability).
    pub device_ids: Vec<String>,
    /// Where the dashboard serves the page, when it runs.
    pub dashboard_url: Option<String>,
}

impl Daemons {
    /// Loads every daemon's configuration first (so a bad file stops the start, not half the home), then starts them.
    pub fn start(home: &HomeConfig, connection: &Connection, shutdown: &Shutdown) -> anyhow::Result<Daemons> {
        let mut starts = Starts::default();
        for id in &home.bulbs {
            let c: light_bulb::Config = connection.config(Some(id))?;
            starts.add(format!("light-bulb {id}"), c.mqtt.id.clone(), |s| light_bulb::run(c, s));
        }
        let sensors = [
            (SensorKind::Motion, &home.motion_sensors),
            (SensorKind::Door, &home.door_sensors),
            (SensorKind::Window, &home.window_sensors),
        ];
        for (kind, ids) in sensors {
            for id in ids {
                let mut c: binary_sensor::Config = match kind {
                    SensorKind::Motion => connection.config::<binary_sensor::MotionConfig>(Some(id))?.into(),
                    SensorKind::Door => connection.config::<binary_sensor::DoorConfig>(Some(id))?.into(),
                    SensorKind::Window => connection.config::<binary_sensor::WindowConfig>(Some(id))?.into(),
                };
                if kind != SensorKind::Motion && !home.simulate_contacts {
                    c.simulate = false;
                }
                starts.add(format!("{kind}-sensor {id}"), c.mqtt.id.clone(), move |s| binary_sensor::run(kind, c, s));
            }
        }
        if home.circadian_sensor {
            starts.daemon(connection.config::<circadian_sensor::Config>(None)?, circadian_sensor::run);
        }
        if home.light_controller {
            starts.daemon(connection.config::<light_controller::Config>(None)?, light_controller::run);
        }
        if home.security_controller {
            let mut panel = connection.config::<security_controller::Config>(None)?;
            if home.standby_panel {
                panel.standby = true;
                let mut standby = panel.clone();
                standby.mqtt.id = format!("{}-standby", panel.mqtt.id);
                standby.state_file = panel.state_file.with_extension("standby.json");
                starts.daemon(standby, security_controller::run);
            }
            starts.daemon(panel, security_controller::run);
        }
        if home.siren {
            let c: alarm_actuator::Config = connection.config(None)?;
            starts.add("alarm-actuator siren".into(), c.mqtt.id.clone(), move |s| alarm_actuator::run(c, s));
        }
        if home.recorder {
            starts.daemon(connection.config::<recorder::Config>(None)?, recorder::run);
        }
        let mut dashboard_url = None;
        if home.dashboard {
            let mut c: dashboard::Config = connection.config(None)?;
            c.max_connections = dashboard_connections(&c, home);
            c.max_connections_per_client = c.max_connections_per_client.min(c.max_connections);
            dashboard_url = Some(format!("http://{}", c.listen));
            starts.daemon(c, dashboard::run);
        }
        if home.bridge {
            starts.daemon(connection.config::<bridge::Config>(None)?, bridge::run);
        }
        if home.notifier {
            starts.daemon(connection.config::<notifier::Config>(None)?, notifier::run);
        }
        if home.sia_transmitter {
            starts.daemon(connection.config::<sia_transmitter::Config>(None)?, sia_transmitter::run);
        }
        let Starts { list, device_ids } = starts;

        let mut tasks = JoinSet::new();
        let mut names = Vec::new();
        for (name, start) in list {
            let span = tracing::info_span!("daemon", name = %name);
            let fut = start(shutdown.child()).instrument(span);
            names.push(name.clone());
            tasks.spawn(async move { (name, fut.await) });
        }
        Ok(Daemons { tasks, names, device_ids, dashboard_url })
    }

    /// Waits for every daemon to stop; one that fails is reported and the others go on.
    pub async fn wait(mut self) {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((name, Ok(()))) => tracing::debug!("{name} stopped"),
                Ok((name, Err(e))) => tracing::error!("{name} stopped: {e:#}"),
                Err(e) => tracing::error!("a daemon task panicked: {e}"),
            }
        }
    }
}

/// The home scenarios run against: [`HomeConfig::quiet`], the panel's state file in a temporary
/// directory (never the demo's), every daemon started and online before [`QuietHome::start`]
/// returns. Used by `mqtt-home scenario --with-home` and by the scenario tests alike.
pub struct QuietHome {
    pub state_file: PathBuf,
    shutdown: Shutdown,
    running: tokio::task::JoinHandle<()>,
    _temp: tempfile::TempDir,
}

impl QuietHome {
    /// Starts the home of `config_dir` on `broker`, with `changes` (daemon, key, value) applied to
    /// the daemons' config files, and waits until `client` sees every device online; the waiting
    /// is printed to `out` as a scenario timeline.
    pub async fn start(
        source: &ConfigSource,
        broker: &Brokers,
        common: CommonArgs,
        changes: &[(&str, &str, toml::Value)],
        client: &device_runtime::MqttConfig,
        out: &mut (dyn std::io::Write + Send),
    ) -> anyhow::Result<QuietHome> {
        let mut home = HomeConfig::load(source)?;
        home.quiet();
        let temp = tempfile::Builder::new().prefix("mqtt-home-scenario-").tempdir()?;
        let state_file = temp.path().join("security-controller.state.json");
        let mut connection = Connection::new(broker, common, source.clone(), &home);
        let panel = connection.overrides.entry("security-controller".to_owned()).or_default();
        set(panel, "state_file", state_file.display().to_string());
        for (daemon, key, value) in changes {
            set(connection.overrides.entry((*daemon).to_owned()).or_default(), key, value.clone());
        }
        let shutdown = Shutdown::new();
        let daemons = Daemons::start(&home, &connection, &shutdown)?;
        let up = crate::scenario::home_is_up(&daemons.device_ids);
        let running = tokio::spawn(daemons.wait());
        let quiet = QuietHome { state_file, shutdown, running, _temp: temp };
        if let Err(e) = crate::scenario::run(&up, client, out).await {
            quiet.stop().await;
            return Err(e.context("the home did not come up"));
        }
        Ok(quiet)
    }

    /// Stops every daemon (each publishes `offline`) and waits for them.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = self.running.await;
    }

    /// Stops the home on SIGINT or SIGTERM too.
    pub fn stop_on_signals(&self) {
        self.shutdown.trigger_on_signals();
    }
}

/// How a daemon of the home is started: its future, made when the home starts.
type Start = Box<dyn FnOnce(Shutdown) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>>;

/// The daemons to start, in order, each with its name and device id.
#[derive(Default)]
struct Starts {
    list: Vec<(String, Start)>,
    device_ids: Vec<String>,
}

impl Starts {
    /// A daemon named `name`, device `id`, run by `run`.
    fn add<F, Fut>(&mut self, name: String, id: String, run: F)
    where
        F: FnOnce(Shutdown) -> Fut + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.device_ids.push(id);
        self.list.push((name, Box::new(move |s| Box::pin(run(s)))));
    }

    /// A daemon of which the home runs one, named as its binary, its device id from its config.
    fn daemon<C, Fut>(&mut self, config: C, run: fn(C, Shutdown) -> Fut)
    where
        C: DaemonConfig + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let id = config.mqtt().id.clone();
        self.add(C::NAME.to_owned(), id, move |s| run(config, s));
    }
}

/// The dashboard's `max_connections`, lowered (with a warning) when this process's limit of open
/// files would leave the daemons too few: its clients share the limit with every daemon.
fn dashboard_connections(config: &dashboard::Config, home: &HomeConfig) -> usize {
    let Some(limit) = crate::open_files::raise() else { return config.max_connections };
    let share = crate::open_files::dashboard_share(config.max_connections, limit, home.daemon_count());
    if share < config.max_connections {
        tracing::warn!(
            "dashboard: max_connections = {} lowered to {share}: this process may open {limit} files and the \
             daemons need the rest (raise the hard limit: ulimit -Hn, or LimitNOFILE= in systemd)",
            config.max_connections
        );
    }
    share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_home_runs_sixteen_daemons_and_a_quiet_one_fewer() {
        let mut home = HomeConfig::default();
        // 2 bulbs, 2 motion, 2 door, 2 window sensors, and the eight single daemons.
        assert_eq!(home.daemon_count(), 16);
        home.quiet();
        // No circadian sensor, recorder, dashboard or motion sensors.
        assert_eq!(home.daemon_count(), 11);
    }

    #[test]
    fn every_daemon_gets_the_broker_list_as_parsed_and_no_health_file_of_the_process() {
        let brokers: Brokers = "mqtt://a:1883,mqtts://b:8883".parse().unwrap();
        let common = CommonArgs {
            id: Some("mqtt-home".into()),
            health_file: Some("/tmp/mqtt-home-connected".into()),
            ..CommonArgs::default()
        };
        let source = ConfigSource::Dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config").into());
        let connection = Connection::new(&brokers, common, source, &HomeConfig::default());
        let panel: security_controller::Config = connection.config(None).unwrap();
        assert_eq!(panel.mqtt.broker, brokers);
        assert_eq!(panel.mqtt.health_file, None, "one file, sixteen links: none writes it");
        assert_ne!(panel.mqtt.id, "mqtt-home", "the flag's id is mqtt-home's own");
    }
}
