//! `security-controller`: the alarm panel. `security-controller hash-pin` prints a PIN's hash.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use device_runtime::CommonArgs;
use device_runtime::config::set;

/// The alarm panel: arming, exit and entry delays, zones, codes, supervision, persisted state
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Where the panel's state is kept [default: security-controller.state.json]
    #[arg(long, env = "PANEL_STATE_FILE", value_name = "PATH")]
    state_file: Option<PathBuf>,
    /// One of a pair of panels, one active and one standby (each with its own --id and state file)
    #[arg(long, env = "PANEL_STANDBY", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    standby: Option<bool>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Argon2id hash of a PIN for [[panel.users]] (PIN from MQTT_HOME_PIN or asked twice, without echo)
    HashPin,
    /// Print the Argon2id hash of a tag's id for a user's tag_hash (id from MQTT_HOME_TAG or asked twice)
    HashTag,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(command) = &args.command {
        let hashed = match command {
            Command::HashPin => hash_secret("MQTT_HOME_PIN", "PIN", |p| Ok(security_controller::codes::hash_pin(p)?)),
            Command::HashTag => {
                hash_secret("MQTT_HOME_TAG", "tag id", |t| Ok(security_controller::codes::hash_tag(t)?))
            }
        };
        return match hashed {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("security-controller: error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    // The keypad's Argon2 checks: their memory goes back to the system after each (see there).
    device_runtime::process::return_large_blocks_to_the_os();
    let mut overrides = toml::Table::new();
    if let Some(path) = &args.state_file {
        set(&mut overrides, "state_file", path.display().to_string());
    }
    if let Some(standby) = args.standby {
        set(&mut overrides, "standby", standby);
    }
    device_runtime::daemon::main::<security_controller::Config, _, _>(args.common, overrides, security_controller::run)
}

/// A secret from `var`, or asked twice without echo, hashed by `hash`.
fn hash_secret(var: &str, what: &str, hash: impl Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<String> {
    let secret = match std::env::var(var) {
        Ok(secret) => secret,
        Err(_) => {
            let secret = rpassword::prompt_password(format!("{what}: "))?;
            let again = rpassword::prompt_password(format!("{what} again: "))?;
            anyhow::ensure!(secret == again, "the two entries differ");
            secret
        }
    };
    hash(secret.trim())
}
