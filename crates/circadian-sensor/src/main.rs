//! `circadian-sensor`: publishes the sun's phase. See the library for what it does.

use std::process::ExitCode;

use circadian_sensor::{Config, Mode};
use clap::Parser;
use device_runtime::CommonArgs;
use device_runtime::config::set;

/// Publishes the sun's phase (sunrise, morning, sunset, night) on <root>/lights/circadian_rhythm
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// cycle: step through the phases every --phase-interval; sun: follow the real sun
    #[arg(long, env = "CIRCADIAN_MODE", value_enum)]
    mode: Option<Mode>,
    /// Time per phase in cycle mode: 1s, 500ms, 2m, or seconds [default: 5s]
    #[arg(long, env = "CIRCADIAN_PHASE_INTERVAL", value_name = "DURATION", value_parser = device_runtime::duration::secs_f64_arg)]
    phase_interval: Option<f64>,
    /// Latitude in degrees north, for sun mode
    #[arg(long, env = "CIRCADIAN_LATITUDE", allow_hyphen_values = true)]
    latitude: Option<f64>,
    /// Longitude in degrees east, for sun mode
    #[arg(long, env = "CIRCADIAN_LONGITUDE", allow_hyphen_values = true)]
    longitude: Option<f64>,
    /// Run the sun-mode clock N times faster (720 = a day in two minutes)
    #[arg(long, env = "CIRCADIAN_TIME_SCALE", value_name = "N")]
    time_scale: Option<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut overrides = toml::Table::new();
    if let Some(mode) = args.mode {
        set(&mut overrides, "mode", if mode == Mode::Cycle { "cycle" } else { "sun" });
    }
    for (key, value) in [
        ("phase_interval_s", args.phase_interval),
        ("latitude", args.latitude),
        ("longitude", args.longitude),
        ("time_scale", args.time_scale),
    ] {
        if let Some(v) = value {
            set(&mut overrides, key, v);
        }
    }
    device_runtime::daemon::main::<Config, _, _>(args.common, overrides, circadian_sensor::run)
}
