//! The security controller: an alarm panel people can trust.
//!
//! - [`panel`]: the decisions, a pure state machine on a fake-able clock.
//! - [`house`]: several areas, each a panel, sharing a siren, a lockout and a house status.
//! - [`config`]: zones, delays, users, bounds (EN 50131).
//! - [`codes`]: PIN hashing (Argon2id).
//! - [`keypad`]: commands in order, their codes checked on a thread of their own.
//! - [`run`]: the MQTT edge — sensors, availability and commands in; status, events and siren
//!   commands out; the panel persisted atomically to its state file before anything is published.
//! - [`pair`]: two panels as one (`standby = true`): a lease the broker arbitrates, a standby
//!   that takes over from the active panel's snapshot, terms that silence a deposed panel.

pub mod codes;
pub mod config;
pub mod house;
pub mod keypad;
pub mod pair;
pub mod panel;
pub mod people;
pub mod schedule;
pub mod sounds;

mod edge;
mod reflex;
mod state_file;

use std::path::PathBuf;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{ConfigError, MqttConfig};
use serde::{Deserialize, Serialize};

pub use edge::run;

/// `config/security-controller.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// Where the panel's state is kept (written atomically on every change). Losing it means
    /// restarting disarmed, so put it on persistent storage.
    pub state_file: PathBuf,
    pub panel: config::PanelConfig,
    /// One of a pair of panels, one active and one standby, the broker arbitrating ([`pair`]).
    /// Each of the two needs its own MQTT id (`--id panel-a`) and its own state file.
    pub standby: bool,
    /// How long the active panel of a pair may go unheard before its standby takes over.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub lease_s: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mqtt: MqttConfig::with_id("security-controller"),
            state_file: PathBuf::from("security-controller.state.json"),
            panel: config::PanelConfig::default(),
            standby: false,
            lease_s: 1.5,
        }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "security-controller";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        if !(0.3..=30.0).contains(&self.lease_s) {
            return Err(ConfigError::Invalid(format!(
                "lease_s = {} must be between 0.3 and 30 seconds (how long a standby waits for a silent active panel)",
                self.lease_s
            )));
        }
        self.panel.validate().map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}
