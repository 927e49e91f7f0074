//! Controllers other than ours on the same intrusion path, where they are installed: a Python
//! paho-mqtt controller (`peers/paho_controller.py`) and a Node-RED flow (`peers/node-red-flows.json`).
//!
//! Node-RED is found at `$NODE_RED_DIR/node_modules/node-red` (a directory where
//! `npm install node-red@4` was run), else in `npm root -g` (`npm install -g node-red@4`), and run
//! as people run it: `node red.js -u <temporary dir> -p <free port> flows.json`, its default
//! settings, no TCP_NODELAY. Its flow is `mqtt in` (door, QoS 1) → `function` (OPEN → siren ON) →
//! `mqtt out` (siren, QoS 1).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::SensorState;

use crate::mqtt::{Names, WITHIN};
use crate::panel::Home;

/// A peer's process, killed when dropped, and its files (Node-RED's user directory).
pub struct Peer {
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let peer = Peer { child, _dir: None };
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    match tokio::time::timeout(WITHIN, ready).await {
        Ok(Ok(Ok(line))) if line.trim() == "ready" => Ok(peer),
        _ => bail!("the paho controller did not subscribe within {WITHIN:?}"),
    }
}

/// An installed Node-RED: its `red.js` and its version.
pub struct NodeRed {
    pub red_js: PathBuf,
    pub version: String,
}

impl NodeRed {
    /// `$NODE_RED_DIR/node_modules/node-red`, else `node-red` in `npm root -g`; none without `node`.
    pub fn find() -> Option<NodeRed> {
        let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
        if !node {
            return None;
        }
        let local = std::env::var_os("NODE_RED_DIR").map(|d| PathBuf::from(d).join("node_modules"));
        let global = || {
            let out = Command::new("npm").args(["root", "-g"]).output().ok().filter(|o| o.status.success())?;
            Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        };
        let package = match local {
            Some(modules) => modules.join("node-red"),
            None => global()?.join("node-red"),
        };
        let red_js = package.join("red.js");
        red_js.is_file().then(|| NodeRed { version: version(&package.join("package.json")), red_js })
    }

    /// Where it is installed, for the report.
    pub fn describe(&self) -> String {
        let package = self.red_js.parent().unwrap_or(&self.red_js);
        format!("{} at {}", self.version, package.display())
    }
}

/// The `"version"` of a `package.json`, or `?`.
fn version(package_json: &Path) -> String {
    let text = std::fs::read_to_string(package_json).unwrap_or_default();
    let value = text.split_once("\"version\"").and_then(|(_, rest)| rest.split('"').nth(1));
    value.unwrap_or("?").to_owned()
}

/// Starts Node-RED with the bench's flow on `names.node_red_door` → `names.node_red_siren` and
/// waits until the flow answers: a door OPEN, again every half second, until a siren command comes.
pub async fn node_red(node_red: &NodeRed, home: &mut Home) -> anyhow::Result<Peer> {
    let dir = tempfile::Builder::new()
        .prefix("intrusion-bench-node-red-")
        .tempdir()
        .context("cannot make Node-RED's user directory")?;
    let template = include_str!("../peers/node-red-flows.json");
    let flows = template
        .replace("__PORT__", &home.port.to_string())
        .replace("__DOOR__", &home.names.node_red_door)
        .replace("__SIREN__", &home.names.node_red_siren);
    let flows_file = dir.path().join("flows.json");
    std::fs::write(&flows_file, flows).with_context(|| format!("cannot write {}", flows_file.display()))?;
    let log = dir.path().join("node-red.log");
    let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let child = Command::new("node")
        .arg(&node_red.red_js)
        .arg("-u")
        .arg(dir.path())
        .args(["-p", &testkit::free_port().to_string(), "flows.json"])
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("cannot run node")?;
    let mut peer = Peer { child, _dir: Some(dir) };
    let deadline = Instant::now() + WITHIN;
    let names = home.names.clone();
    while Instant::now() < deadline {
        if let Some(status) = peer.child.try_wait()? {
            bail!("Node-RED ended ({status}) before its flow answered; its log:\n{}", tail(&log));
        }
        home.watch.drain();
        home.sense(&names.node_red_door, SensorState::Open).await?;
        let answer = |m: &crate::mqtt::Seen| m.topic == names.node_red_siren;
        if home.watch.until("Node-RED's siren command", Duration::from_millis(500), answer).await.is_ok() {
            return Ok(peer);
        }
    }
    bail!("Node-RED's flow did not answer within {WITHIN:?}; its log:\n{}", tail(&log))
}

/// The last lines of a log file, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
