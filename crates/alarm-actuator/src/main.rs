//! `alarm-actuator`: the siren. See the library for what it does.

use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;
use device_runtime::config::set;

/// The siren: applies <root>/control/alarm, reports <root>/security/alarm (retained)
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// After how long the siren turns itself off without an OFF: 15m, 90s, or seconds [default: 15m]
    #[arg(long, env = "SIREN_MAX_ON", value_name = "DURATION", value_parser = device_runtime::duration::secs_arg)]
    max_on: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut overrides = toml::Table::new();
    if let Some(v) = args.max_on {
        set(&mut overrides, "max_on_s", v as i64);
    }
    device_runtime::daemon::main::<alarm_actuator::Config, _, _>(args.common, overrides, alarm_actuator::run)
}
