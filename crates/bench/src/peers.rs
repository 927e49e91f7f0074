//! Controllers other than ours on the same intrusion path, where they are installed: a Python
//! paho-mqtt controller (`peers/paho_controller.py`). Node-RED has no row yet.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use crate::mqtt::{Names, WITHIN};

/// A peer's process, killed when dropped.
pub struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether `python3` can import paho-mqtt.
pub fn paho_installed() -> bool {
    Command::new("python3").args(["-c", "import paho.mqtt"]).output().is_ok_and(|o| o.status.success())
}

/// Starts the paho controller on `names.paho_door` → `names.paho_siren` and waits until it has
/// subscribed (it prints `ready`).
pub async fn paho(port: u16, names: &Names) -> anyhow::Result<Peer> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/paho_controller.py");
    let mut child = Command::new("python3")
        .args([script, &port.to_string(), &names.paho_door, &names.paho_siren])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run python3")?;
    let stdout = child.stdout.take().context("no stdout from the paho controller")?;
    let peer = Peer(child);
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    match tokio::time::timeout(WITHIN, ready).await {
        Ok(Ok(Ok(line))) if line.trim() == "ready" => Ok(peer),
        _ => bail!("the paho controller did not subscribe within {WITHIN:?}"),
    }
}
