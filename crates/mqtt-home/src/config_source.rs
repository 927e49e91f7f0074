//! Where the home's configuration comes from: a directory of TOML files (`--config-dir`), or the
//! demo built into the binary — the repository's `config/` as it was at build time — so that the
//! installed binary, started anywhere, runs the same demo as a checkout (users who can disarm, short
//! delays) instead of falling back on built-in defaults in silence.

use std::path::{Path, PathBuf};

use device_runtime::ConfigError;
use device_runtime::config::layer_text;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The repository's `config/`, built in. `cargo` rebuilds when one of these files changes.
const BUILT_IN: &[(&str, &str)] = &[
    ("home.toml", include_str!("../../../config/home.toml")),
    ("alarm-actuator.toml", include_str!("../../../config/alarm-actuator.toml")),
    ("bridge.toml", include_str!("../../../config/bridge.toml")),
    ("dashboard.toml", include_str!("../../../config/dashboard.toml")),
    ("circadian-sensor.toml", include_str!("../../../config/circadian-sensor.toml")),
    ("door-sensor.toml", include_str!("../../../config/door-sensor.toml")),
    ("light-bulb.toml", include_str!("../../../config/light-bulb.toml")),
    ("light-controller.toml", include_str!("../../../config/light-controller.toml")),
    ("motion-sensor.toml", include_str!("../../../config/motion-sensor.toml")),
    ("notifier.toml", include_str!("../../../config/notifier.toml")),
    ("recorder.toml", include_str!("../../../config/recorder.toml")),
    ("security-controller.toml", include_str!("../../../config/security-controller.toml")),
    ("security-controller.demo.toml", include_str!("../../../config/security-controller.demo.toml")),
    ("security-controller.areas.toml", include_str!("../../../config/security-controller.areas.toml")),
    ("sia-transmitter.toml", include_str!("../../../config/sia-transmitter.toml")),
    ("window-sensor.toml", include_str!("../../../config/window-sensor.toml")),
];

/// A directory of config files, or the demo built into the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Dir(PathBuf),
    BuiltIn,
}

impl ConfigSource {
    /// `--config-dir DIR` if given (it must be a directory), else the built-in demo.
    pub fn from_flag(dir: Option<PathBuf>) -> Result<ConfigSource, ConfigError> {
        match dir {
            None => Ok(ConfigSource::BuiltIn),
            Some(dir) if dir.is_dir() => Ok(ConfigSource::Dir(dir)),
            Some(dir) => Err(ConfigError::Read {
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory (given by --config-dir)"),
            }),
        }
    }

    /// For people: where the configuration was read.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::Dir(dir) => format!("from {}", dir.display()),
            ConfigSource::BuiltIn => "the built-in demo (--config-dir DIR to use your own)".to_owned(),
        }
    }

    /// The text of file `name` and the path that names it in messages; `None` when it is absent.
    pub fn read(&self, name: &str) -> Result<Option<(PathBuf, String)>, ConfigError> {
        match self {
            ConfigSource::Dir(dir) => {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Ok(Some((path, text))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(ConfigError::Read { path, source }),
                }
            }
            ConfigSource::BuiltIn => Ok(BUILT_IN
                .iter()
                .find(|(file, _)| *file == name)
                .map(|(file, text)| (Path::new("<built-in config>").join(file), (*text).to_owned()))),
        }
    }

    /// Layers `defaults` < file `name` (if present) < `overrides`.
    pub fn load<T: Serialize + DeserializeOwned>(
        &self,
        name: &str,
        defaults: &T,
        overrides: toml::Table,
    ) -> Result<T, ConfigError> {
        let file = self.read(name)?;
        layer_text(defaults, file.as_ref().map(|(path, text)| (path.as_path(), text.as_str())), overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_demo_is_the_repository_config_dir() {
        let dir = ConfigSource::Dir(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config")));
        for (name, text) in BUILT_IN {
            let (_, on_disk) = dir.read(name).unwrap().unwrap();
            assert_eq!(&on_disk, text, "{name}");
        }
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config")).unwrap().count();
        assert_eq!(files, BUILT_IN.len(), "a file in config/ is not built in");
        assert_eq!(ConfigSource::BuiltIn.read("nothing.toml").unwrap(), None);
    }

    #[test]
    fn a_config_dir_that_is_not_there_is_an_error() {
        let err = ConfigSource::from_flag(Some("/nonexistent/mqtt-home".into())).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/mqtt-home") && err.contains("--config-dir"), "{err}");
        assert_eq!(ConfigSource::from_flag(None).unwrap(), ConfigSource::BuiltIn);
    }
}
