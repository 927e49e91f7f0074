//! The shipped home's config directory, copied for a test or a bench, with some files replaced.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// `config/` of this repository copied to `dir/config`, the panel reading
/// `security-controller.toml` (not the demo's file), and each `(name, text)` of `files` written
/// over the copy. The directory, for `mqtt-home run --config-dir`.
pub fn shipped_home_config(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<PathBuf> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).with_context(|| format!("cannot create {}", config_dir.display()))?;
    for entry in std::fs::read_dir(&shipped).with_context(|| format!("cannot read {}", shipped.display()))? {
        let entry = entry?;
        std::fs::copy(entry.path(), config_dir.join(entry.file_name()))?;
    }
    let home = std::fs::read_to_string(config_dir.join("home.toml"))?;
    std::fs::write(
        config_dir.join("home.toml"),
        home.replace("security-controller.demo.toml", "security-controller.toml"),
    )?;
    for (name, text) in files {
        std::fs::write(config_dir.join(name), text).with_context(|| format!("cannot write {name}"))?;
    }
    Ok(config_dir)
}
