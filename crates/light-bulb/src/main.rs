//! `light-bulb`: a simulated smart bulb. See the library for what it does.

use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;
use device_runtime::config::set;

/// A simulated smart bulb: applies <root>/lights/<id>/set, reports <root>/lights/<id>/state
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// This bulb cannot flash (alarm flashing becomes steady light)
    #[arg(long, env = "BULB_NO_FLASH")]
    no_flash: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut overrides = toml::Table::new();
    if args.no_flash {
        set(&mut overrides, "supports_flash", false);
    }
    device_runtime::daemon::main::<light_bulb::Config, _, _>(args.common, overrides, light_bulb::run)
}
