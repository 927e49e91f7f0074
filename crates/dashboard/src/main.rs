//! `dashboard`: the home's web page. See the library for what it does.

use std::process::ExitCode;

use clap::Parser;
use device_runtime::CommonArgs;
use device_runtime::config::set;

/// The home's web dashboard: live state, history, the keypad and the lights, on http://127.0.0.1:8080
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The address and port to serve on; anything but loopback needs a login [default: 127.0.0.1:8080]
    #[arg(long, env = "DASHBOARD_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// The recorder's SQLite file, read for history [default: mqtt-home.db]
    #[arg(long, env = "DASHBOARD_DATABASE", value_name = "FILE")]
    database: Option<std::path::PathBuf>,
    /// A login token (at least 16 characters); better by environment than on the command line
    #[arg(long, env = "DASHBOARD_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut overrides = toml::Table::new();
    if let Some(v) = args.listen {
        set(&mut overrides, "listen", v.to_string());
    }
    if let Some(v) = args.database {
        set(&mut overrides, "database", v.display().to_string());
    }
    if let Some(v) = args.token {
        set(&mut overrides, "token", v);
    }
    // The login's Argon2 checks: their memory goes back to the system after each.
    device_runtime::process::return_large_blocks_to_the_os();
    device_runtime::daemon::main::<dashboard::Config, _, _>(args.common, overrides, dashboard::run)
}
