//! The command line of `mqtt-home`: one typed [`Args`] that `main` dispatches on.
//!
//! It lives in the library so that tests parse the command lines the README shows exactly as
//! `main` does (`tests/readme.rs`), without starting anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use device_runtime::CommonArgs;

/// The whole mqtt-home on one machine (broker, sensors, controllers, actuators), and its control CLI
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Directory with home.toml and each daemon's <daemon>.toml, for the commands that read them
    /// (running the home, `scenario --with-home`, `notify test`); `mqtt-home --config-dir DIR` is
    /// `mqtt-home run --config-dir DIR` [default: the demo built into this binary]
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        #[arg(long, value_parser = crate::history::parse_kind)]
        kind: Option<store::classify::Kind>,
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
    /// Who may use the panel: each user's rights, hours and dates (never a PIN or its hash)
    Users {
        /// Print one JSON array, for tools
        #[arg(long)]
        json: bool,
        /// Directory with home.toml and the panel's config [default: the demo built into this binary]
        #[arg(long, env = "MQTT_HOME_CONFIG_DIR", value_name = "DIR")]
        config_dir: Option<PathBuf>,
    },
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
pub enum NotifyAction {
    /// Send a test message to every channel of notifier.toml now and say how each went
    Test {
        /// The directory with notifier.toml [default: the demo built into this binary]
        #[arg(long, env = "MQTT_HOME_CONFIG_DIR", value_name = "DIR")]
        config_dir: Option<PathBuf>,
    },
}

/// The recorder's database, read by `history` and `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArg {
    /// The recorder's SQLite file (the same default and variable as the recorder's)
    #[arg(long = "database", env = "RECORDER_DATABASE", value_name = "PATH", default_value = store::DEFAULT_DATABASE)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Away,
    Home,
    Night,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Door,
    Window,
    Motion,
}

impl Args {
    /// The command to run, with a top-level `--config-dir` handed to the command that reads it:
    /// no subcommand is `run`. A top-level `--config-dir` beats the subcommand's own (which may
    /// come from `MQTT_HOME_CONFIG_DIR`); on a command that reads no config directory it is an
    /// error naming the commands that do, rather than a flag ignored in silence.
    pub fn command(&mut self) -> anyhow::Result<Command> {
        let top = self.config_dir.take();
        let mut command = self.command.take().unwrap_or(Command::Run { config_dir: None, listen: None });
        let slot = match &mut command {
            Command::Run { config_dir, .. }
            | Command::Scenario { config_dir, .. }
            | Command::Users { config_dir, .. }
            | Command::Notify { action: NotifyAction::Test { config_dir } } => config_dir,
            other if top.is_some() => anyhow::bail!(
                "--config-dir is read when running the home (`mqtt-home --config-dir DIR`), by `scenario --with-home`, \
                 `users` and `notify test`; `{}` reads none: leave it out",
                other.name()
            ),
            _ => return Ok(command),
        };
        if top.is_some() {
            *slot = top;
        }
        Ok(command)
    }
}

impl Command {
    /// The subcommand as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run { .. } => "run",
            Command::Arm { .. } => "arm",
            Command::Disarm => "disarm",
            Command::Status { .. } => "status",
            Command::History { .. } => "history",
            Command::Watch => "watch",
            Command::Users { .. } => "users",
            Command::Set { .. } => "set",
            Command::Forget { .. } => "forget",
            Command::Notify { .. } => "notify",
            Command::Light { .. } => "light",
            Command::Fleet { .. } => "fleet",
            Command::Scenario { .. } => "scenario",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> anyhow::Result<Command> {
        Args::try_parse_from(line.split_whitespace())?.command()
    }

    #[test]
    fn a_top_level_config_dir_goes_to_the_command_that_reads_it() {
        let dir = |c: Command| match c {
            Command::Run { config_dir, .. }
            | Command::Scenario { config_dir, .. }
            | Command::Users { config_dir, .. }
            | Command::Notify { action: NotifyAction::Test { config_dir } } => config_dir,
            other => panic!("{} reads no config dir", other.name()),
        };
        let cases = [
            ("mqtt-home", None),
            ("mqtt-home --config-dir config", Some("config")),
            ("mqtt-home run --config-dir mine", Some("mine")),
            ("mqtt-home --config-dir config run", Some("config")),
            ("mqtt-home --config-dir top run --config-dir sub", Some("top")),
            ("mqtt-home --config-dir config scenario --with-home a.toml", Some("config")),
            ("mqtt-home --config-dir config notify test", Some("config")),
            ("mqtt-home notify test --config-dir config", Some("config")),
            ("mqtt-home --config-dir config users", Some("config")),
        ];
        for (line, want) in cases {
            let got = dir(command(line).unwrap());
            assert_eq!(got, want.map(PathBuf::from), "{line}");
        }
    }

    #[test]
    fn a_top_level_config_dir_on_a_command_that_reads_none_is_refused_by_name() {
        let error = command("mqtt-home --config-dir config arm away").unwrap_err().to_string();
        assert!(error.contains("`arm` reads none"), "{error}");
        assert!(command("mqtt-home arm away").is_ok());
    }
}
