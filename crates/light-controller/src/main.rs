//! `light-controller`: commands each bulb from the sun's phase, motion and the alarm. See the library.

use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;
use device_runtime::config::set;

/// Decides each bulb's light from the circadian phase, motion, manual commands and the alarm
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Time without motion before a room returns to its circadian level: 30s, 2m, or seconds [default: 60s]
    #[arg(long, env = "LIGHTS_MOTION_TIMEOUT", value_name = "DURATION", value_parser = device_runtime::duration::secs_arg)]
    motion_timeout: Option<u64>,
    /// How long a manual command pauses automation for its bulb: 30m, 2h, or minutes [default: 30m]
    #[arg(long, env = "LIGHTS_MANUAL_OVERRIDE", value_name = "DURATION", value_parser = device_runtime::duration::minutes_arg)]
    manual_override: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut overrides = toml::Table::new();
    if let Some(v) = args.motion_timeout {
        set(&mut overrides, "motion_timeout_s", v as i64);
    }
    if let Some(v) = args.manual_override {
        set(&mut overrides, "manual_override_min", v as i64);
    }
    device_runtime::daemon::main::<light_controller::Config, _, _>(args.common, overrides, light_controller::run)
}
