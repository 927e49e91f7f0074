//! The panel's state file: written atomically (temp file, fsync, rename, fsync of the directory),
//! so that a crash or `kill -9` at any moment leaves either the old state or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::sync::oneshot;

use crate::house::Saved;

/// Reads the saved panel (or areas); `None` when there is no file yet. A file that cannot be read
/// is an error: starting disarmed instead would be a security hole.
pub fn load(path: &Path) -> anyhow::Result<Option<Saved>> {
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
pub fn save(path: &Path, panel: &Saved) -> anyhow::Result<()> {
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

/// A save and where its outcome goes.
type SaveJob = (Saved, oneshot::Sender<Result<(), String>>);

/// The thread that writes the state file, one save at a time, at nice 10.
///
/// A save is a few syscalls and two fsyncs right after the siren command (the one action that
/// never waits for the disk). On a two-core machine it would otherwise take a core from the broker
/// and the siren, which are still carrying that command; at nice 10 it yields to them and still
/// runs as soon as a core is free (it is never starved, as a `SCHED_IDLE` thread could be). Its own
/// thread, not tokio's blocking pool: a thread's priority can be lowered but not raised back, and
/// the pool's threads serve the rest of the process (every daemon of `mqtt-home run`).
pub struct Writer {
    jobs: std::sync::mpsc::Sender<SaveJob>,
}

/// The nice value of the writer thread.
const WRITER_NICE: i32 = 10;

impl Writer {
    /// Starts the thread; it ends when the writer is dropped.
    pub fn start(path: PathBuf) -> std::io::Result<Writer> {
        let (jobs, inbox) = std::sync::mpsc::channel::<SaveJob>();
        std::thread::Builder::new().name("state-file".into()).spawn(move || {
            device_runtime::process::lower_this_thread(WRITER_NICE);
            while let Ok((panel, done)) = inbox.recv() {
                let _ = done.send(save(&path, &panel).map_err(|e| format!("{e:#}")));
            }
        })?;
        Ok(Writer { jobs })
    }

    /// Saves `panel` on the writer's thread; the outcome, or why there is none.
    pub async fn save(&self, panel: Saved) -> Result<(), String> {
        let (done, outcome) = oneshot::channel();
        self.jobs.send((panel, done)).map_err(|_| "the state-file thread has stopped".to_owned())?;
        outcome.await.unwrap_or_else(|_| Err("the state-file thread stopped during a save".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::{Arm, Panel};

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panel.json");
        assert!(load(&path).unwrap().is_none());
        let mut panel = Panel::new();
        panel.arm = Arm::Armed { mode: protocol::ArmMode::Night };
        let one = Saved::One(Box::new(panel.clone()));
        save(&path, &one).unwrap();
        assert_eq!(load(&path).unwrap(), Some(one));
        let areas = Saved::Areas { areas: [("garage".to_owned(), panel), ("house".to_owned(), Panel::new())].into() };
        save(&path, &areas).unwrap();
        assert_eq!(load(&path).unwrap(), Some(areas), "a panel with areas keeps each by name");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["panel.json"]);
    }

    #[tokio::test]
    async fn the_writer_thread_saves_and_says_why_it_could_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panel.json");
        let writer = Writer::start(path.clone()).unwrap();
        let mut panel = Panel::new();
        panel.arm = Arm::Armed { mode: protocol::ArmMode::Away };
        assert_eq!(writer.save(Saved::One(Box::new(panel.clone()))).await, Ok(()));
        assert_eq!(load(&path).unwrap(), Some(Saved::One(Box::new(panel))));
        let nowhere = Writer::start(dir.path().join("missing").join("panel.json")).unwrap();
        let error = nowhere.save(Saved::One(Box::default())).await.unwrap_err();
        assert!(error.contains("is the directory writable"), "{error}");
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
