//! [`SiaReceiver`]: a real SIA DC-09 alarm receiver for the transmitter's tests — pysiaalarm
//! (Python, the library behind Home Assistant's `sia` integration, from the cached venv
//! `scripts/test.sh` builds) on a port of 127.0.0.1, TCP or UDP, one account, with or without an
//! AES key. It prints each event it accepted (and acknowledged) as a JSON line; a thread collects
//! them. It can be stopped and started again on the same port (a centre that was down).
//!
//! The venv: `$MQTT_HOME_PYSIAALARM_VENV`, else `~/.cache/mqtt-home/pysiaalarm-3.1.1` (the version
//! Home Assistant 2024.1.6 pins). Make it with `python3 -m venv DIR && DIR/bin/pip install
//! pysiaalarm==3.1.1`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The receiver (`just sia-receiver` runs the same file): pysiaalarm's own client (a server, in
/// its words), one account, each accepted event a JSON line.
const RECEIVER: &str = include_str!("../../../scripts/sia-receiver.py");

/// The Python interpreter of the pysiaalarm venv, when it is there.
pub fn pysiaalarm_python() -> Option<PathBuf> {
    let venv = std::env::var_os("MQTT_HOME_PYSIAALARM_VENV").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/mqtt-home/pysiaalarm-3.1.1"))
    })?;
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

/// Whether pysiaalarm is there; under `CI=true` a missing one fails the test instead.
pub fn pysiaalarm_or_skip() -> bool {
    let how = "python3 -m venv DIR && DIR/bin/pip install pysiaalarm==3.1.1, see crates/testkit/src/sia.rs";
    crate::installed_or_skip(pysiaalarm_python().is_some(), "pysiaalarm", how)
}

/// One event pysiaalarm accepted, as it decoded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SiaEvent {
    pub code: Option<String>,
    /// The zone as pysiaalarm reads it (SIA DCS: `ri`, the area; Contact ID: the zone).
    pub ri: Option<String>,
    /// What follows the code (SIA DCS: the zone or user number).
    pub message: Option<String>,
    pub account: Option<String>,
    pub sequence: Option<String>,
    pub encrypted: bool,
    pub message_type: Option<String>,
    pub partition: Option<String>,
    pub timestamp: String,
}

/// TCP or UDP, as pysiaalarm names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiaTransport {
    Tcp,
    Udp,
}

/// pysiaalarm on a port, killed on drop.
pub struct SiaReceiver {
    child: Option<Child>,
    port: u16,
    transport: SiaTransport,
    account: String,
    key: Option<String>,
    events: Arc<Mutex<Vec<(Instant, SiaEvent)>>>,
}

impl SiaReceiver {
    /// Listens on a free port for `account`, encrypted with `key` when given.
    pub fn start(transport: SiaTransport, account: &str, key: Option<&str>) -> anyhow::Result<SiaReceiver> {
        let port = match transport {
            SiaTransport::Tcp => crate::free_port(),
            SiaTransport::Udp => std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let mut receiver = SiaReceiver {
            child: None,
            port,
            transport,
            account: account.to_owned(),
            key: key.map(str::to_owned),
            events: Arc::default(),
        };
        receiver.resume()?;
        Ok(receiver)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, for the transmitter's config.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the receiver (SIGKILL): the port refuses connections until [`SiaReceiver::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port; the events seen so far are kept.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let python = pysiaalarm_python().context("pysiaalarm is not installed")?;
        let transport = match self.transport {
            SiaTransport::Tcp => "TCP",
            SiaTransport::Udp => "UDP",
        };
        // `-O` for UDP: pysiaalarm 3.1.1's UDP server asserts that its transport is an
        // `asyncio.DatagramTransport`, which Python 3.11's selector transport is not, and then
        // never answers (it does not in Home Assistant either). Without asserts it works.
        let optimize = if self.transport == SiaTransport::Udp { "-O" } else { "-u" };
        let mut child = Command::new(&python)
            .args([optimize, "-u", "-c", RECEIVER, &self.port.to_string(), transport, &self.account])
            .arg(self.key.as_deref().unwrap_or(""))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let seen = self.events.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line == "ready" {
                    let _ = ready_tx.send(());
                } else if let Ok(event) = serde_json::from_str::<SiaEvent>(&line) {
                    seen.lock().unwrap().push((Instant::now(), event));
                } else {
                    eprintln!("pysiaalarm: {line}");
                }
            }
        });
        self.child = Some(child);
        ready.recv_timeout(Duration::from_secs(20)).context("pysiaalarm did not start listening within 20 s")?;
        Ok(())
    }

    /// The events accepted so far, in order.
    pub fn events(&self) -> Vec<SiaEvent> {
        self.events.lock().unwrap().iter().map(|(_, e)| e.clone()).collect()
    }

    /// The events accepted so far with the instant this process read each from the receiver.
    pub fn arrivals(&self) -> Vec<(Instant, SiaEvent)> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until an accepted event satisfies `pred`, up to `within`; returns it.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&SiaEvent) -> bool,
    ) -> anyhow::Result<SiaEvent> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.events().into_iter().find(&pred) {
                return Ok(e);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "pysiaalarm received no {what} within {within:?}; it received {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SiaReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}
