//! The flags every binary takes. Each has an environment variable; a flag beats its variable.

use std::path::PathBuf;

use toml::Table;

use crate::config::set;
use crate::logging::LogFormat;

/// Connection, identity and logging flags, flattened into every daemon's own `clap` parser.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// Broker URL: mqtt://host:port, or mqtts://host:port for TLS; several, comma-separated, are
    /// tried in turn (a cluster's nodes) [default: mqtt://127.0.0.1:1883]
    #[arg(long, env = "MQTT_BROKER_URL", value_name = "URL[,URL...]", global = true)]
    pub broker: Option<String>,

    /// This device's id (one topic level, unique in the home)
    #[arg(long, env = "MQTT_DEVICE_ID", value_name = "ID", global = true)]
    pub id: Option<String>,

    /// Config file [default: config/<daemon>.toml when it exists]
    #[arg(long, env = "MQTT_HOME_CONFIG", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// First level of every topic [default: home]
    #[arg(long, env = "MQTT_TOPIC_ROOT", value_name = "ROOT", global = true)]
    pub topic_root: Option<String>,

    /// MQTT user name
    #[arg(long, env = "MQTT_USERNAME", value_name = "USER", global = true)]
    pub username: Option<String>,

    /// MQTT password (prefer the environment variable: flags show in `ps`)
    #[arg(long, env = "MQTT_PASSWORD", value_name = "PASSWORD", hide_env_values = true, global = true)]
    pub password: Option<String>,

    /// CA certificate (PEM) for mqtts:// [default: the system's CA bundle]
    #[arg(long, env = "MQTT_CA_FILE", value_name = "PEM", global = true)]
    pub ca_file: Option<PathBuf>,

    /// Announce this device to Home Assistant (MQTT discovery); false clears what it announced [default: true]
    #[arg(long, env = "MQTT_HA_DISCOVERY", value_name = "BOOL", action = clap::ArgAction::Set, global = true)]
    pub ha_discovery: Option<bool>,

    /// Home Assistant's discovery prefix [default: homeassistant]
    #[arg(long, env = "MQTT_HA_DISCOVERY_PREFIX", value_name = "PREFIX", global = true)]
    pub ha_discovery_prefix: Option<String>,

    /// A file kept while connected to the broker, for a container healthcheck (`test -f FILE`)
    #[arg(long, env = "MQTT_HEALTH_FILE", value_name = "FILE", global = true)]
    pub health_file: Option<PathBuf>,

    /// Serve Prometheus metrics on this address (http://ADDR/metrics), e.g. 127.0.0.1:9464 [default: off]
    #[arg(long, env = "MQTT_HOME_METRICS", value_name = "ADDR", global = true)]
    pub metrics: Option<std::net::SocketAddr>,

    /// More log output (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log format
    #[arg(long, env = "MQTT_HOME_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Print the effective configuration (secrets redacted) and exit
    #[arg(long, global = true)]
    pub print_config: bool,
}

impl CommonArgs {
    /// The `[mqtt]` keys these flags set, for [`crate::config::layer`].
    pub fn overrides(&self) -> Table {
        let mut t = Table::new();
        let strings = [
            ("mqtt.broker", &self.broker),
            ("mqtt.id", &self.id),
            ("mqtt.topic_root", &self.topic_root),
            ("mqtt.username", &self.username),
            ("mqtt.password", &self.password),
            ("mqtt.ha_discovery_prefix", &self.ha_discovery_prefix),
        ];
        for (key, value) in strings {
            if let Some(v) = value {
                set(&mut t, key, v.as_str());
            }
        }
        if let Some(on) = self.ha_discovery {
            set(&mut t, "mqtt.ha_discovery", on);
        }
        if let Some(path) = &self.ca_file {
            set(&mut t, "mqtt.ca_file", path.display().to_string());
        }
        if let Some(path) = &self.health_file {
            set(&mut t, "mqtt.health_file", path.display().to_string());
        }
        t
    }
}
