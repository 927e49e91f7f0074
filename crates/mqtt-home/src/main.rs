//! `mqtt-home`: the whole home in one command, and the CLI to control it.
//!
//! Without a subcommand it starts an embedded MQTT broker (rumqttd, in-process) — or uses
//! `--broker` — and every daemon of the home as a task with its own connection. Ctrl-C or SIGTERM
//! stops everything cleanly: each daemon publishes `offline` and disconnects.

mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use device_runtime::daemon::{DaemonConfig, load};
use device_runtime::{BrokerUrl, Brokers, CommonArgs, MqttConfig, Shutdown};
use fleet::FleetConfig;
use mqtt_home::cli::{Args, Command, Kind, Mode, NotifyAction};
use mqtt_home::config_source::ConfigSource;
use mqtt_home::home::{Connection, Daemons, HomeConfig, QuietHome};
use mqtt_home::{ctl, history, scenario};
use protocol::{ArmMode, PanelAction, SensorKind, SensorState, Topics};
use serde::{Deserialize, Serialize};

/// The control CLI's connection: the common flags, defaults and environment only.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CliConfig {
    mqtt: MqttConfig,
}

impl DaemonConfig for CliConfig {
    const NAME: &'static str = "mqtt-home-cli";
    device_runtime::mqtt_section!(mqtt);
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    // The daemons of the whole home log at info, as each does on its own. A CLI command's output
    // is the point (with `scenario --with-home`, beside daemons in this process): only warnings
    // and errors, unless -v.
    let command = match args.command() {
        Ok(command) => command,
        Err(e) => {
            eprintln!("mqtt-home: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runs_the_home = matches!(command, Command::Run { .. });
    if runs_the_home || args.common.verbose > 0 {
        device_runtime::logging::init(args.common.verbose, args.common.log_format);
    } else {
        device_runtime::logging::init_quiet(args.common.log_format);
    }
    if runs_the_home || matches!(command, Command::Scenario { .. }) {
        // The panel's keypad and the dashboard's login check codes with Argon2.
        device_runtime::process::return_large_blocks_to_the_os();
    }
    if runs_the_home {
        // One process, one table of open files: see `open_files`.
        if let Some(limit) = mqtt_home::open_files::raise() {
            tracing::debug!("open files: the soft limit is {limit}");
        }
    }
    // The whole home runs in this process: two workers, one per core of a small machine.
    device_runtime::daemon::block_on("mqtt-home", 2, dispatch(args.common, command))
}

/// One arm per command. Running the home and reading the history need no MQTT client; every other
/// command connects as the control CLI ([`cli_mqtt`]).
async fn dispatch(common: CommonArgs, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config_dir, listen } => run_home(common, ConfigSource::from_flag(config_dir)?, listen).await,
        Command::History { since, device, kind, limit, json, csv, database } => {
            let format = match (json, csv) {
                (true, _) => history::Format::Json,
                (_, true) => history::Format::Csv,
                _ => history::Format::Table,
            };
            let since = protocol::Timestamp::parse_since(&since, protocol::Timestamp::now())
                .map_err(|e| anyhow::anyhow!("--since {e}"))?;
            let query = store::Query { since, until: None, device, kind, limit: Some(limit) };
            history::print(&database.path, &query, format, &mut std::io::stdout().lock())
        }
        Command::Arm { mode, force, code } => {
            let code = if code { Some(ctl::read_pin()?) } else { std::env::var("MQTT_HOME_PIN").ok() };
            ctl::panel(&cli_mqtt(&common)?, ctl::arm_action(arm_mode(mode)), code, force).await
        }
        Command::Disarm => ctl::panel(&cli_mqtt(&common)?, PanelAction::Disarm, Some(ctl::read_pin()?), false).await,
        Command::Status { json, database } => status::status(&cli_mqtt(&common)?, json, &database.path).await,
        Command::Watch => {
            let shutdown = Shutdown::new();
            shutdown.trigger_on_signals();
            ctl::watch(&cli_mqtt(&common)?, shutdown).await
        }
        Command::Set { kind, device, state } => {
            let (kind, state) = sensor_reading(kind, state.as_deref())?;
            ctl::set_sensor(&cli_mqtt(&common)?, kind, &device, state).await
        }
        Command::Light { device, level } => ctl::light(&cli_mqtt(&common)?, &device, &level).await,
        Command::Forget { device } => ctl::forget(&cli_mqtt(&common)?, &device).await,
        Command::Users { json, config_dir } => users(ConfigSource::from_flag(config_dir)?, common, json),
        Command::Notify { action: NotifyAction::Test { config_dir } } => {
            notify_test(&cli_mqtt(&common)?, ConfigSource::from_flag(config_dir)?).await
        }
        Command::Fleet { devices, houses, rate, duration, ramp, qos, broker_pid, controllers } => {
            let config = cli_mqtt(&common)?;
            let fleet = FleetConfig {
                devices,
                houses,
                rate,
                duration,
                ramp,
                qos: if qos == 0 { fleet::QoS::AtMostOnce } else { fleet::QoS::AtLeastOnce },
                broker_pid,
                controllers,
                ..FleetConfig::new(&config)
            };
            run_fleet(fleet).await
        }
        Command::Scenario { files, with_home: false, .. } => run_scenarios(&files, &scenario_mqtt(&common)?).await,
        Command::Scenario { files, with_home: true, config_dir } => {
            let config = scenario_mqtt(&common)?;
            scenarios_with_home(&files, config, common, ConfigSource::from_flag(config_dir)?).await
        }
    }
}

/// The control CLI's MQTT connection: the common flags over defaults and the environment, as
/// client `mqtt-home-cli-<pid>` unless `--id` says otherwise (never a device's id: the broker would
/// disconnect that device).
fn cli_mqtt(common: &CommonArgs) -> anyhow::Result<MqttConfig> {
    client_mqtt(common, "mqtt-home-cli")
}

/// As [`cli_mqtt`], as client `mqtt-home-scenario-<pid>`.
fn scenario_mqtt(common: &CommonArgs) -> anyhow::Result<MqttConfig> {
    client_mqtt(common, "mqtt-home-scenario")
}

fn client_mqtt(common: &CommonArgs, client: &str) -> anyhow::Result<MqttConfig> {
    let mut common = common.clone();
    common.id.get_or_insert_with(|| format!("{client}-{}", std::process::id()));
    Ok(load::<CliConfig>(&common, toml::Table::new())?.mqtt)
}

fn arm_mode(mode: Mode) -> ArmMode {
    match mode {
        Mode::Away => ArmMode::Away,
        Mode::Home => ArmMode::Home,
        Mode::Night => ArmMode::Night,
    }
}

/// `mqtt-home set KIND DEVICE [STATE]`: the sensor kind and the state the words name.
fn sensor_reading(kind: Kind, state: Option<&str>) -> anyhow::Result<(SensorKind, SensorState)> {
    let kind = match kind {
        Kind::Door => SensorKind::Door,
        Kind::Window => SensorKind::Window,
        Kind::Motion => SensorKind::Motion,
    };
    let word = state.unwrap_or("on").to_ascii_lowercase();
    let state = match (kind, word.as_str()) {
        (SensorKind::Motion, "on" | "motion") => SensorState::Motion,
        (SensorKind::Motion, "off" | "no_motion" | "none") => SensorState::NoMotion,
        (SensorKind::Door | SensorKind::Window, "on" | "open") => SensorState::Open,
        (SensorKind::Door | SensorKind::Window, "off" | "closed" | "close") => SensorState::Closed,
        _ => anyhow::bail!("`{word}` is not a {kind} state: use open/closed (doors, windows) or on/off (motion)"),
    };
    Ok((kind, state))
}

/// `mqtt-home fleet`: until its duration is up or Ctrl-C, then its report.
async fn run_fleet(fleet: FleetConfig) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    println!(
        "fleet: {} devices in {} homes against {}, {} events/s",
        fleet.devices, fleet.houses, fleet.broker, fleet.rate
    );
    let report = fleet::run(fleet, shutdown, |line| println!("{line}")).await?;
    println!("{report}");
    Ok(())
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
    // One endpoint for every daemon of the home (each series says which, by its `daemon` label);
    // an address in use stops the home before anything starts.
    let metrics = common.metrics.map(device_runtime::metrics::bind).transpose().map_err(anyhow::Error::msg)?;
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
    if let Some(listener) = metrics {
        println!("mqtt-home: metrics at http://{}/metrics", listener.local_addr()?);
        tokio::spawn(device_runtime::metrics::serve(listener, shutdown.clone()));
    }
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

/// `mqtt-home users`: the panel's users as the home would run them, as a table or JSON.
fn users(source: ConfigSource, common: CommonArgs, json: bool) -> anyhow::Result<()> {
    let panel = mqtt_home::home::panel_config(&source, common)?.panel;
    if json {
        println!("{}", serde_json::to_string_pretty(&mqtt_home::users::list(&panel))?);
    } else {
        print!("{}", mqtt_home::users::render(&panel, &source.describe()));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reads_the_words_people_use() {
        let table = [
            (Kind::Door, Some("open"), Some((SensorKind::Door, SensorState::Open))),
            (Kind::Door, Some("CLOSED"), Some((SensorKind::Door, SensorState::Closed))),
            (Kind::Window, None, Some((SensorKind::Window, SensorState::Open))),
            (Kind::Window, Some("off"), Some((SensorKind::Window, SensorState::Closed))),
            (Kind::Motion, Some("motion"), Some((SensorKind::Motion, SensorState::Motion))),
            (Kind::Motion, Some("none"), Some((SensorKind::Motion, SensorState::NoMotion))),
            (Kind::Motion, Some("open"), None),
            (Kind::Door, Some("ajar"), None),
        ];
        for (kind, word, want) in table {
            assert_eq!(sensor_reading(kind, word).ok(), want, "{word:?}");
        }
        let e = sensor_reading(Kind::Door, Some("ajar")).unwrap_err().to_string();
        assert!(e.contains("`ajar` is not a door state"), "{e}");
    }
}
