//! [`SmtpServer`]: a real SMTP server for the notifier's email tests — aiosmtpd (Python, from the
//! cached venv `.ci/run` builds) on a free port of 127.0.0.1. It offers STARTTLS with the
//! certificate the test gives and refuses mail until the client has started TLS, so a message that
//! arrives went over TLS. aiosmtpd's `Debugging` handler prints each message it accepts; a thread
//! collects them from its output.
//!
//! The venv: `$MQTT_HOME_AIOSMTPD_VENV`, else `~/.cache/mqtt-home/aiosmtpd-1.4.6`. Make it with
//! `python3 -m venv DIR && DIR/bin/pip install aiosmtpd==1.4.6`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The Python interpreter of the aiosmtpd venv, when it is there.
pub fn aiosmtpd_python() -> Option<PathBuf> {
    let venv = std::env::var_os("MQTT_HOME_AIOSMTPD_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/mqtt-home/aiosmtpd-1.4.6")))?;
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

/// A STARTTLS SMTP server, or `None` (with a loud line) when aiosmtpd is not installed; under
/// `CI=true` a missing aiosmtpd fails the test instead, so CI never skips it in silence.
pub fn smtp_or_skip(cert: &Path, key: &Path) -> Option<SmtpServer> {
    let how = "python3 -m venv DIR && DIR/bin/pip install aiosmtpd==1.4.6, see crates/testkit/src/smtp.rs";
    if !crate::installed_or_skip(aiosmtpd_python().is_some(), "aiosmtpd", how) {
        return None;
    }
    Some(SmtpServer::start_starttls(cert, key).expect("cannot start aiosmtpd"))
}

/// aiosmtpd, killed on drop.
pub struct SmtpServer {
    child: Child,
    port: u16,
    messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpServer {
    /// Listens on a free port, STARTTLS with `cert` and `key` (PEM), TLS required before MAIL.
    pub fn start_starttls(cert: &Path, key: &Path) -> anyhow::Result<SmtpServer> {
        let python = aiosmtpd_python().context("aiosmtpd is not installed")?;
        let port = crate::free_port();
        let mut child = Command::new(&python)
            .args(["-u", "-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "--tlscert"])
            .arg(cert)
            .arg("--tlskey")
            .arg(key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = child.stdout.take().context("no stdout")?;
        let seen = messages.clone();
        std::thread::spawn(move || {
            let mut current: Option<String> = None;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("---------- MESSAGE FOLLOWS") {
                    current = Some(String::new());
                } else if line.starts_with("------------ END MESSAGE") {
                    if let Some(message) = current.take() {
                        seen.lock().unwrap().push(message);
                    }
                } else if let Some(message) = current.as_mut() {
                    message.push_str(&line);
                    message.push('\n');
                }
            }
        });
        let server = SmtpServer { child, port, messages };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "aiosmtpd did not listen on {port} within 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages received so far, each as printed (headers, a blank line, the body).
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until `n` messages have arrived or `within` has passed; returns what arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        while self.messages.lock().unwrap().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.messages()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
