//! Layered configuration: built-in defaults < `config/<daemon>.toml` < environment < CLI flags.
//!
//! Each daemon describes its whole configuration as one serde struct whose `Default` is the
//! built-in layer. [`layer`] serializes the defaults to a TOML table, merges the file over it and
//! then the overrides that came from the environment or the command line (clap reads both, and a
//! flag beats its environment variable), and deserializes the result. Unknown keys in the file
//! are an error that names the key and the file: a typo must not silently fall back to a default.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::broker::{BrokerUrl, Brokers};
use toml::{Table, Value};

/// A configuration that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A password: serialized as `"<redacted>"` by `--print-config`, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it (the MQTT CONNECT packet).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Only `--print-config` serializes a config for people; layering never needs the secret
        // serialized because secrets have no built-in default.
        serializer.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// How a daemon reaches the broker; the `[mqtt]` section of every config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port`, or `mqtts://host:port` for TLS; several, comma-separated, are tried in
    /// turn (the nodes of a cluster). Parsed when the config is read.
    pub broker: Brokers,
    /// This device's id: one topic level, unique in the home.
    pub id: String,
    /// The first level of every topic.
    pub topic_root: String,
    pub username: Option<String>,
    /// Better given by environment (`MQTT_PASSWORD`) than in a file.
    pub password: Option<Secret>,
    /// PEM file of the CA that signed the broker's certificate (`mqtts://` only).
    pub ca_file: Option<PathBuf>,
    /// Seconds between keep-alive pings; a dead broker is noticed after 1–2 of these.
    #[serde(deserialize_with = "crate::duration::secs")]
    pub keep_alive_s: u64,
    /// Payloads larger than this are refused before sending and ignored when received.
    pub max_payload_bytes: usize,
    /// Announce this device to Home Assistant (MQTT discovery); off clears what it announced.
    pub ha_discovery: bool,
    /// Home Assistant's discovery prefix: a topic level or path, never a filter.
    pub ha_discovery_prefix: String,
    /// A file that exists exactly while this daemon is connected to the broker, for a container
    /// healthcheck (`test -f`); none by default.
    pub health_file: Option<PathBuf>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: BrokerUrl::local().into(),
            id: String::new(),
            topic_root: protocol::DEFAULT_TOPIC_ROOT.to_owned(),
            username: None,
            password: None,
            ca_file: None,
            keep_alive_s: 30,
            max_payload_bytes: 64 * 1024,
            ha_discovery: true,
            ha_discovery_prefix: protocol::discovery::DEFAULT_PREFIX.to_owned(),
            health_file: None,
        }
    }
}

impl MqttConfig {
    /// The defaults, with this device id.
    pub fn with_id(id: &str) -> MqttConfig {
        MqttConfig { id: id.to_owned(), ..MqttConfig::default() }
    }

    /// Checks what serde cannot: the id is a valid topic level, the numbers are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        protocol::validate_id(&self.id).map_err(|e| ConfigError::Invalid(format!("mqtt.id: {e}")))?;
        if self.topic_root.is_empty() || self.topic_root.contains(['+', '#']) {
            return Err(ConfigError::Invalid(format!(
                "mqtt.topic_root `{}` must be non-empty and free of `+` and `#`",
                self.topic_root
            )));
        }
        if self.keep_alive_s < 1 {
            return Err(ConfigError::Invalid("mqtt.keep_alive_s must be at least 1".into()));
        }
        if self.max_payload_bytes < 256 {
            return Err(ConfigError::Invalid("mqtt.max_payload_bytes must be at least 256".into()));
        }
        protocol::discovery::validate_prefix(&self.ha_discovery_prefix)
            .map_err(|e| ConfigError::Invalid(format!("mqtt.ha_discovery_prefix: {e}")))?;
        Ok(())
    }
}

/// Merges `defaults`, the file at `file` (if any) and `overrides` (dotted keys already nested),
/// and deserializes the result.
pub fn layer<T: Serialize + DeserializeOwned>(
    defaults: &T,
    file: Option<&Path>,
    overrides: Table,
) -> Result<T, ConfigError> {
    let text = match file {
        Some(path) => Some((
            path,
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?,
        )),
        None => None,
    };
    layer_text(defaults, text.as_ref().map(|(path, text)| (*path, text.as_str())), overrides)
}

/// [`layer`] with the file's text already read; `path` names it in messages (a file built into
/// the binary has a path of its own making).
pub fn layer_text<T: Serialize + DeserializeOwned>(
    defaults: &T,
    file: Option<(&Path, &str)>,
    overrides: Table,
) -> Result<T, ConfigError> {
    let mut merged = match Value::try_from(defaults) {
        Ok(Value::Table(t)) => t,
        Ok(_) | Err(_) => Table::new(),
    };
    if let Some((path, text)) = file {
        // Parsing the file alone first gives messages with the line, the column and the key.
        toml::from_str::<T>(text).map_err(|e| ConfigError::File { path: path.to_owned(), message: one_line(&e) })?;
        let table: Table =
            toml::from_str(text).map_err(|e| ConfigError::File { path: path.to_owned(), message: one_line(&e) })?;
        merge(&mut merged, table);
    }
    merge(&mut merged, overrides);
    Value::Table(merged).try_into().map_err(|e: toml::de::Error| ConfigError::Invalid(one_line(&e)))
}

/// Deep-merges `top` over `base`: tables merge key by key, anything else replaces.
pub fn merge(base: &mut Table, top: Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Checks a `share_group` (see [`crate::DeviceSpec::share_group`]): one topic level, no wildcards.
pub fn validate_share_group(group: &Option<String>) -> Result<(), ConfigError> {
    match group {
        Some(g) if g.is_empty() || g.contains(['/', '+', '#']) => Err(ConfigError::Invalid(format!(
            "share_group `{g}` must be one topic level without / + or #, e.g. \"recorders\""
        ))),
        _ => Ok(()),
    }
}

/// Sets `value` at a dotted `key` (e.g. `mqtt.broker`) in `table`, creating sub-tables.
pub fn set(table: &mut Table, key: &str, value: impl Into<Value>) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut t = table;
    for part in parts {
        let entry = t.entry(part.to_owned()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { unreachable!("just made it a table") };
        t = next;
    }
    t.insert(last.to_owned(), value.into());
}

/// The config file to read: `--config` if given (it must exist), else `config/<daemon>.toml` if present.
pub fn find_file(explicit: Option<&Path>, daemon: &str) -> Result<Option<PathBuf>, ConfigError> {
    match explicit {
        Some(path) if path.exists() => Ok(Some(path.to_owned())),
        Some(path) => Err(ConfigError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file (given by --config)"),
        }),
        None => {
            let default = PathBuf::from("config").join(format!("{daemon}.toml"));
            Ok(default.exists().then_some(default))
        }
    }
}

/// The effective configuration as TOML, secrets redacted.
pub fn to_toml<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

fn one_line(e: &toml::de::Error) -> String {
    let mut s = e.to_string().lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join(" | ");
    while s.ends_with('.') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        mqtt: MqttConfig,
        level: u8,
        rooms: Vec<String>,
        nested: Nested,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Nested {
        a: u32,
        b: u32,
    }

    impl Default for Demo {
        fn default() -> Self {
            Demo {
                mqtt: MqttConfig::with_id("demo"),
                level: 5,
                rooms: vec!["hall".into()],
                nested: Nested { a: 1, b: 2 },
            }
        }
    }
    impl Default for Nested {
        fn default() -> Self {
            Nested { a: 1, b: 2 }
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn each_layer_beats_the_one_below() {
        let f = file("level = 7\n[nested]\na = 10\n[mqtt]\nbroker = \"mqtt://file:1883\"\ntopic_root = \"lab\"\n");
        let mut overrides = Table::new();
        set(&mut overrides, "mqtt.broker", "mqtt://cli:1883");
        let c: Demo = layer(&Demo::default(), Some(f.path()), overrides).unwrap();
        assert_eq!(c.level, 7, "file beats default");
        assert_eq!(c.nested, Nested { a: 10, b: 2 }, "tables merge key by key");
        assert_eq!(c.mqtt.broker.to_string(), "mqtt://cli:1883", "override beats file");
        assert_eq!(c.mqtt.topic_root, "lab");
        assert_eq!(c.mqtt.id, "demo", "default survives");
        assert_eq!(c.rooms, ["hall"]);
    }

    #[test]
    fn no_file_and_no_overrides_gives_the_defaults() {
        let c: Demo = layer(&Demo::default(), None, Table::new()).unwrap();
        assert_eq!(c, Demo::default());
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        let f = file("[nested]\nc = 1\n");
        let err = layer(&Demo::default(), Some(f.path()), Table::new()).unwrap_err().to_string();
        assert!(err.contains("unknown field `c`"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
        let f = file("[mqtt]\npasword = \"x\"\n");
        let err = layer(&Demo::default(), Some(f.path()), Table::new()).unwrap_err().to_string();
        assert!(err.contains("unknown field `pasword`"), "{err}");
    }

    #[test]
    fn wrong_types_and_syntax_are_errors() {
        let f = file("level = \"high\"\n");
        assert!(layer(&Demo::default(), Some(f.path()), Table::new()).unwrap_err().to_string().contains("level"));
        let f = file("level = \n");
        assert!(layer(&Demo::default(), Some(f.path()), Table::new()).is_err());
        let missing = Path::new("/nonexistent/x.toml");
        assert!(matches!(layer(&Demo::default(), Some(missing), Table::new()), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn passwords_are_never_printed() {
        let mut overrides = Table::new();
        set(&mut overrides, "mqtt.password", "hunter2");
        let c: Demo = layer(&Demo::default(), None, overrides).unwrap();
        assert_eq!(c.mqtt.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!to_toml(&c).contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn mqtt_config_validation_names_the_key() {
        let mut c = MqttConfig::with_id("a/b");
        assert!(c.validate().unwrap_err().to_string().contains("mqtt.id"));
        c.id = "ok".into();
        assert!(c.validate().is_ok());
        c.ha_discovery_prefix = "homeassistant/#".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("mqtt.ha_discovery_prefix") && err.contains("`homeassistant/#`"), "{err}");
        let mut overrides = Table::new();
        set(&mut overrides, "mqtt.broker", "http://x");
        let err = layer(&Demo::default(), None, overrides).unwrap_err().to_string();
        assert!(err.contains("broker") && err.contains("http://x"), "{err}");
    }
}
