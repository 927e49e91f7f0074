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
    /// Seconds after which the siren turns itself off without an OFF [default: 900]
    #[arg(long, env = "SIREN_MAX_ON", value_name = "SECONDS")]
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
