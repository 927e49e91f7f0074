//! `notifier`: the panel's alarms to people. See the library for what it does.

use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;

/// Sends the panel's events (triggered, duress, trouble, ...) to webhooks (ntfy, Gotify, JSON)
/// and MQTT topics, as config/notifier.toml says
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    device_runtime::daemon::main::<notifier::Config, _, _>(args.common, toml::Table::new(), notifier::run)
}
