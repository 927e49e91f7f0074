//! The panel's state file: written atomically (temp file, fsync, rename, fsync of the directory),
//! so that a crash or `kill -9` at any moment leaves either the old state or the new one.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::panel::Panel;

/// Reads the saved panel; `None` when there is no file yet. A file that cannot be read is an
/// error: starting disarmed instead would be a security hole.
pub fn load(path: &Path) -> anyhow::Result<Option<Panel>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the panel state file {}", path.display())),
    };
    let panel = serde_json::from_str(&text).with_context(|| {
        format!(
            "the panel state file {} is corrupt; refusing to start disarmed. Inspect it, then move it aside to start fresh",
            path.display()
        )
    })?;
    Ok(Some(panel))
}

/// Saves `panel` atomically.
pub fn save(path: &Path, panel: &Panel) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("security-controller.state.json")
    ));
    let json = serde_json::to_vec_pretty(panel).context("cannot serialize the panel")?;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself must reach the disk too.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write()
        .with_context(|| format!("cannot write the panel state file {} (is the directory writable?)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::Arm;

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panel.json");
        assert!(load(&path).unwrap().is_none());
        let mut panel = Panel::new();
        panel.arm = Arm::Armed { mode: protocol::ArmMode::Night };
        save(&path, &panel).unwrap();
        assert_eq!(load(&path).unwrap(), Some(panel));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["panel.json"]);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panel.json");
        std::fs::write(&path, "{\"arm\":").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("corrupt") && err.contains("panel.json"), "{err}");
    }
}
