//! `sia-transmitter`: the panel's alarms to a monitoring centre over SIA DC-09. See the library
//! for what it does.

use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;

/// Reports the panel's alarms, openings and closings, troubles and tampers to a monitoring
/// centre's alarm receiver over SIA DC-09 (SIA DCS or Contact ID, TCP or UDP, AES when keyed), as
/// config/sia-transmitter.toml says
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The AES key (16, 24 or 32 hex characters); better from the environment than the command
    /// line. Empty: unencrypted
    #[arg(long, env = "SIA_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Where the reports waiting for the centre are kept [default: sia-transmitter.queue.json]
    #[arg(long, env = "SIA_QUEUE_FILE", value_name = "FILE")]
    queue_file: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut overrides = toml::Table::new();
    if let Some(key) = args.key.filter(|k| !k.is_empty()) {
        overrides.insert("key".into(), key.into());
    }
    if let Some(file) = args.queue_file {
        overrides.insert("queue_file".into(), file.display().to_string().into());
    }
    device_runtime::daemon::main::<sia_transmitter::Config, _, _>(args.common, overrides, sia_transmitter::run)
}
