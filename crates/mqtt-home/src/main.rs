//! `mqtt-home`: the whole home in one command, and the CLI to control it.
//!
//! Without a subcommand it starts an embedded MQTT broker (rumqttd, in-process) — or uses
//! `--broker` — and every daemon of the home as a task with its own connection. Ctrl-C or SIGTERM
//! stops everything cleanly: each daemon publishes `offline` and disconnects.

mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use device_runtime::daemon::{DaemonConfig, load};
use device_runtime::{BrokerUrl, Brokers, CommonArgs, MqttConfig, Shutdown};
use mqtt_home::config_source::ConfigSource;
use mqtt_home::fleet::{self, FleetConfig};
use mqtt_home::home::{Connection, Daemons, HomeConfig, QuietHome};
use mqtt_home::{ctl, history, scenario};
use protocol::{ArmMode, PanelAction, SensorKind, SensorState, Topics};
use serde::{Deserialize, Serialize};

/// The whole mqtt-home on one machine (broker, sensors, controllers, actuators), and its control CLI
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole home: embedded broker (unless --broker) and every daemon (the default)
    Run {
        /// Directory with home.toml and each daemon's <daemon>.toml [default: the demo built into this binary]
        #[arg(long, env = "MQTT_HOME_CONFIG_DIR", value_name = "DIR")]
        config_dir: Option<PathBuf>,
        /// Where the embedded broker listens; a free port is used if it is taken [default: from home.toml]
        #[arg(long, env = "MQTT_HOME_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Arm the alarm panel: away, home or night
    Arm {
        #[arg(value_enum)]
        mode: Mode,
        /// Arm even with open sensors, bypassing them for this arming
        #[arg(long)]
        force: bool,
        /// Send a PIN (from MQTT_HOME_PIN, or asked without echo); needed when code_arm_required
        #[arg(long)]
        code: bool,
    },
    /// Disarm the alarm panel (PIN from MQTT_HOME_PIN, or asked without echo)
    Disarm,
    /// The home at a glance: the panel, each sensor, light and device, the siren (from what the
    /// broker holds retained)
    Status {
        /// Print one JSON document, for scripts
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// What happened: the recorder's log of panel events, the siren, sensors, lights and devices
    History {
        /// How far back: 1h, 24h, 7d, or an RFC 3339 time
        #[arg(long, default_value = "24h", value_name = "WHEN")]
        since: String,
        /// Only this device (a sensor, a light, `panel`, `siren`, a daemon)
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Only this kind: panel, alarm, sensor, light, phase, availability
        #[arg(long, value_parser = mqtt_home::history::parse_kind)]
        kind: Option<recorder::classify::Kind>,
        /// At most the last N records
        #[arg(long, default_value_t = 500, value_name = "N")]
        limit: u64,
        /// Print one JSON array, for tools
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV, for spreadsheets
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// A live, readable view of the whole home
    Watch,
    /// Pretend to be a sensor: `set door front open`, `set window kitchen-window closed`, `set motion hall-motion`
    Set {
        #[arg(value_enum)]
        kind: Kind,
        /// The sensor's device id (not `--id`, which names this client)
        #[arg(value_name = "ID")]
        device: String,
        /// open/closed for doors and windows; on/off for motion [default: open or on]
        state: Option<String>,
    },
    /// Take a device out: clear its retained readings, availability, announce and Home Assistant
    /// discovery configs (its entities leave Home Assistant). A sensor the panel only learned is
    /// removed; one listed in [panel.sensors] becomes a trouble until it is removed from the
    /// config too. Stop the device first, or it publishes itself back
    Forget {
        /// The device id (not `--id`, which names this client)
        #[arg(value_name = "ID")]
        device: String,
    },
    /// Notifications: `notify test` sends a test message to every channel of notifier.toml
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Set a light by hand: `light kitchen 40`, `light kitchen off`
    Light {
        /// The bulb's device id (not `--id`, which names this client)
        #[arg(value_name = "ID")]
        device: String,
        /// 0-100, on or off
        level: String,
    },
    /// Simulated devices at scale against a broker (--broker): each its own MQTT connection with
    /// its own id, Last Will and retained state; prints connections, events/s and memory per device
    Fleet {
        /// How many devices (doors, windows, motion sensors and bulbs in turn)
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Spread them over this many homes, each under its own topic root (<root>-1, <root>-2, ...)
        #[arg(long, default_value_t = 1)]
        houses: usize,
        /// Events per second over the whole fleet (sensor changes, bulb reports); 0 for none
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// How long to run once every device is connected (e.g. 60s, 5m)
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Connections opened per second, so the broker is not stampeded
        #[arg(long, default_value_t = 1000.0)]
        ramp: f64,
        /// QoS of the devices' reports: 0 or 1
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        qos: u8,
        /// Also report this process's memory (the broker's pid)
        #[arg(long, value_name = "PID")]
        broker_pid: Option<u32>,
        /// Run each house's own panel and light controller here too (their readers)
        #[arg(long)]
        controllers: bool,
    },
    /// Run scenario files (a TOML timeline of publish/expect steps) and exit 1 if any fails
    Scenario {
        /// Scenario files, run in order (see scenarios/*.toml)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Start a quiet home first (embedded broker on a free port unless --broker; no circadian
        /// cycle, no simulated motion; the panel's state in a temporary directory), stop it after
        #[arg(long)]
        with_home: bool,
        /// With --with-home: the directory with home.toml and each daemon's <daemon>.toml [default:
        /// the demo built into this binary]
        #[arg(long, env = "MQTT_HOME_CONFIG_DIR", value_name = "DIR")]
        config_dir: Option<PathBuf>,
    },
}

/// What `mqtt-home notify` does.
#[derive(Debug, clap::Subcommand)]
enum NotifyAction {
    /// Send a test message to every channel of notifier.toml now and say how each went
    Test {
        /// The directory with notifier.toml [default: the demo built into this binary]
        #[arg(long, env = "MQTT_HOME_CONFIG_DIR", value_name = "DIR")]
        config_dir: Option<PathBuf>,
    },
}

/// The recorder's database, read by `history` and `status`.
#[derive(Debug, Clone, clap::Args)]
struct DatabaseArg {
    /// The recorder's SQLite file (the same default and variable as the recorder's)
    #[arg(long = "database", env = "RECORDER_DATABASE", value_name = "PATH", default_value = recorder::DEFAULT_DATABASE)]
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    Away,
    Home,
    Night,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Door,
    Window,
    Motion,
}

/// The control CLI's connection: the common flags, defaults and environment only.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CliConfig {
    mqtt: MqttConfig,
}

impl DaemonConfig for CliConfig {
    const NAME: &'static str = "mqtt-home-cli";
    fn mqtt(&self) -> &MqttConfig {
        &self.mqtt
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The daemons of the whole home log at info, as each does on its own. A CLI command's output
    // is the point (with `scenario --with-home`, beside daemons in this process): only warnings
    // and errors, unless -v.
    let runs_the_home = matches!(args.command, None | Some(Command::Run { .. }));
    if runs_the_home || args.common.verbose > 0 {
        device_runtime::logging::init(args.common.verbose, args.common.log_format);
    } else {
        device_runtime::logging::init_quiet(args.common.log_format);
    }
    // The whole home runs in this process: two workers, one per core of a small machine.
    device_runtime::daemon::block_on("mqtt-home", 2, dispatch(args))
}

async fn dispatch(args: Args) -> anyhow::Result<()> {
    let command = args.command.unwrap_or(Command::Run { config_dir: None, listen: None });
    if let Command::Run { config_dir, listen } = command {
        return run_home(args.common, ConfigSource::from_flag(config_dir)?, listen).await;
    }
    if let Command::History { since, device, kind, limit, json, csv, database } = command {
        let format = match (json, csv) {
            (true, _) => history::Format::Json,
            (_, true) => history::Format::Csv,
            _ => history::Format::Table,
        };
        let query = recorder::store::Query {
            since: history::parse_since(&since, protocol::Timestamp::now())?,
            until: None,
            device,
            kind,
            limit: Some(limit),
        };
        return history::print(&database.path, &query, format, &mut std::io::stdout().lock());
    }
    let mut common = args.common;
    // Never a device's client id: the broker would disconnect that device.
    let client = if matches!(command, Command::Scenario { .. }) { "mqtt-home-scenario" } else { "mqtt-home-cli" };
    common.id.get_or_insert_with(|| format!("{client}-{}", std::process::id()));
    let config = load::<CliConfig>(&common, toml::Table::new())?.mqtt;
    match command {
        Command::Run { .. } => unreachable!("handled above"),
        Command::Arm { mode, force, code } => {
            let mode = match mode {
                Mode::Away => ArmMode::Away,
                Mode::Home => ArmMode::Home,
                Mode::Night => ArmMode::Night,
            };
            let code = if code { Some(ctl::read_pin()?) } else { std::env::var("MQTT_HOME_PIN").ok() };
            ctl::panel(&config, ctl::arm_action(mode), code, force).await
        }
        Command::Disarm => ctl::panel(&config, PanelAction::Disarm, Some(ctl::read_pin()?), false).await,
        Command::Status { json, database } => status::status(&config, json, &database.path).await,
        Command::History { .. } => unreachable!("handled above"),
        Command::Watch => {
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signals();
            ctl::watch(&config, shutdown).await
        }
        Command::Set { kind, device, state } => {
            let kind = match kind {
                Kind::Door => SensorKind::Door,
                Kind::Window => SensorKind::Window,
                Kind::Motion => SensorKind::Motion,
            };
            let word = state.unwrap_or_else(|| "on".into()).to_ascii_lowercase();
            let state = match (kind, word.as_str()) {
                (SensorKind::Motion, "on" | "motion") => SensorState::Motion,
                (SensorKind::Motion, "off" | "no_motion" | "none") => SensorState::NoMotion,
                (_, "on" | "open") => SensorState::Open,
                (_, "off" | "closed" | "close") => SensorState::Closed,
                _ => {
                    anyhow::bail!("`{word}` is not a {kind} state: use open/closed (doors, windows) or on/off (motion)")
                }
            };
            ctl::set_sensor(&config, kind, &device, state).await
        }
        Command::Light { device, level } => ctl::light(&config, &device, &level).await,
        Command::Forget { device } => ctl::forget(&config, &device).await,
        Command::Notify { action: NotifyAction::Test { config_dir } } => {
            notify_test(&config, ConfigSource::from_flag(config_dir)?).await
        }
        Command::Fleet { devices, houses, rate, duration, ramp, qos, broker_pid, controllers } => {
            let fleet = FleetConfig {
                devices,
                houses,
                rate,
                duration,
                ramp,
                qos: if qos == 0 { rumqttc::QoS::AtMostOnce } else { rumqttc::QoS::AtLeastOnce },
                broker_pid,
                controllers,
                ..FleetConfig::new(&config)
            };
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signals();
            println!("fleet: {devices} devices in {houses} homes against {}, {rate} events/s", fleet.broker);
            let report = fleet::run(fleet, shutdown, |line| println!("{line}")).await?;
            println!("{report}");
            Ok(())
        }
        Command::Scenario { files, with_home: false, .. } => run_scenarios(&files, &config).await,
        Command::Scenario { files, with_home: true, config_dir } => {
            scenarios_with_home(&files, config, common, ConfigSource::from_flag(config_dir)?).await
        }
    }
}

async fn run_scenarios(files: &[PathBuf], config: &MqttConfig) -> anyhow::Result<()> {
    let failed = scenario::run_files(files, config, &mut std::io::stdout(), &mut std::io::stderr()).await;
    match failed {
        0 => Ok(()),
        n => anyhow::bail!("{n} of {} scenarios failed", files.len()),
    }
}

/// Starts a quiet home (see `Command::Scenario`), runs the scenarios against it, stops it.
async fn scenarios_with_home(
    files: &[PathBuf],
    mut config: MqttConfig,
    common: CommonArgs,
    source: ConfigSource,
) -> anyhow::Result<()> {
    config.broker = match &common.broker {
        Some(url) => url.parse()?,
        None => start_embedded_broker("127.0.0.1:0")?.into(),
    };
    let home = QuietHome::start(&source, &config.broker, common, &[], &config, &mut std::io::stdout()).await?;
    home.stop_on_signals();
    let outcome = run_scenarios(files, &config).await;
    home.stop().await;
    outcome
}

async fn run_home(common: CommonArgs, source: ConfigSource, listen: Option<String>) -> anyhow::Result<()> {
    let mut home = HomeConfig::load(&source)?;
    println!("mqtt-home: configuration {}", source.describe());
    if let Some(listen) = listen {
        home.listen = listen;
    }
    let broker: Brokers = match &common.broker {
        Some(url) => {
            let brokers: Brokers = url.parse()?;
            for bad in brokers.set_aside() {
                println!("mqtt-home: {bad}; left out");
            }
            println!("mqtt-home: using the broker at {brokers}");
            brokers
        }
        None => start_embedded_broker(&home.listen)?.into(),
    };
    let topics = Topics::new(common.topic_root.as_deref().unwrap_or(protocol::DEFAULT_TOPIC_ROOT));
    let connection = Connection::new(&broker, common, source, &home);
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    let daemons = Daemons::start(&home, &connection, &shutdown)?;
    println!("mqtt-home: {} daemons running: {}", daemons.names.len(), daemons.names.join(", "));
    let (host, port, everything) = (&broker.first().host, broker.first().port, topics.everything());
    println!(
        "mqtt-home: watch it with `mosquitto_sub -h {host} -p {port} -t '{everything}' -v` or `mqtt-home --broker {broker} watch`"
    );
    if let Some(url) = &daemons.dashboard_url {
        println!("mqtt-home: dashboard at {url} (the demo PIN is 1234)");
    }
    println!("mqtt-home: Ctrl-C stops the home");
    daemons.wait().await;
    println!("mqtt-home: stopped");
    Ok(())
}

#[cfg(feature = "embedded-broker")]
fn start_embedded_broker(listen: &str) -> anyhow::Result<BrokerUrl> {
    use anyhow::Context;
    let addr: std::net::SocketAddr =
        listen.parse().with_context(|| format!("listen address `{listen}` is not IP:PORT (e.g. 127.0.0.1:1883)"))?;
    let broker = embedded_broker::EmbeddedBroker::start(addr)?;
    if let Some(taken) = broker.fell_back_from() {
        println!("mqtt-home: port {} is taken (another broker?); listening on {} instead", taken.port(), broker.addr());
    }
    println!("mqtt-home: embedded broker listening on {}", broker.url());
    Ok(broker.url().parse()?)
}

#[cfg(not(feature = "embedded-broker"))]
fn start_embedded_broker(_listen: &str) -> anyhow::Result<BrokerUrl> {
    anyhow::bail!("this build has no embedded broker (feature `embedded-broker`); pass --broker mqtt://host:port")
}

/// `mqtt-home notify test`: one test message to every channel, one line each; fails if any did.
async fn notify_test(mqtt: &device_runtime::MqttConfig, source: ConfigSource) -> anyhow::Result<()> {
    let config: notifier::Config = source.load("notifier.toml", &notifier::Config::default(), toml::Table::new())?;
    device_runtime::daemon::DaemonConfig::validate(&config)?;
    if config.channels.is_empty() {
        anyhow::bail!("notifier.toml of {} has no [[channel]]", source.describe());
    }
    let session = ctl::Session::open(mqtt, &[]).await?;
    let outcomes = notifier::send_test(&config, session.publisher()).await;
    session.close().await;
    let mut failed = 0;
    for (name, outcome) in &outcomes {
        match outcome {
            Ok(()) => println!("{name}: sent"),
            Err(e) => {
                failed += 1;
                println!("{name}: FAILED: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} channels failed", outcomes.len());
    }
    Ok(())
}
