//! `recorder`: the home's event log. See the library for what it does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;
use device_runtime::config::set;

/// The home's event log: every state change, panel event, siren command and availability in SQLite
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The SQLite file [default: mqtt-home.db]
    #[arg(long, env = "RECORDER_DATABASE", value_name = "PATH")]
    database: Option<PathBuf>,
    /// full: each commit on the disk before its messages are acknowledged; normal: in the OS only
    #[arg(long, env = "RECORDER_DURABILITY", value_parser = ["full", "normal"])]
    durability: Option<String>,
    /// Records older than this are pruned, the panel's events excepted: 30d, 12h [default: 30d]
    #[arg(long, value_name = "DURATION", value_parser = device_runtime::duration::secs_arg)]
    max_age: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut overrides = toml::Table::new();
    if let Some(path) = &args.database {
        set(&mut overrides, "database", path.display().to_string());
    }
    if let Some(durability) = &args.durability {
        set(&mut overrides, "durability", durability.as_str());
    }
    if let Some(v) = args.max_age {
        set(&mut overrides, "max_age_s", v as i64);
    }
    device_runtime::daemon::main::<recorder::Config, _, _>(args.common, overrides, recorder::run)
}
