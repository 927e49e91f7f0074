//! `bridge`: foreign devices onto the home's topics. See the library for what it does.

use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;

/// Maps Zigbee2MQTT, Tasmota, ESPHome, Shelly and the original iot/lights devices onto the home's
/// sensor topics, as config/bridge.toml says
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    device_runtime::daemon::main::<bridge::Config, _, _>(args.common, toml::Table::new(), bridge::run)
}
