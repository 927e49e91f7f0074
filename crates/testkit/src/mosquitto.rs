//! Mosquitto, started by a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A Mosquitto process on a free port, with its config, persistence and log in a temp dir.
pub struct Mosquitto {
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
    child: Option<Child>,
}

/// Where Mosquitto is installed, if it is.
pub fn mosquitto_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("mosquitto")).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates.into_iter().chain([PathBuf::from("/usr/sbin/mosquitto")]).find(|p| p.is_file())
}

/// A fresh Mosquitto, or `None` (with a loud line on stderr) where it is not installed.
/// Under `CI=true` a missing Mosquitto is a failure, not a skip.
pub fn mosquitto_or_skip() -> Option<Mosquitto> {
    if !crate::installed_or_skip(mosquitto_binary().is_some(), "mosquitto", "apt-get install mosquitto") {
        return None;
    }
    Some(Mosquitto::start().expect("cannot start mosquitto"))
}

impl Mosquitto {
    /// Anonymous clients allowed, persistence on, TCP_NODELAY on, a large queue.
    pub fn start() -> anyhow::Result<Mosquitto> {
        Mosquitto::start_with("allow_anonymous true\n")
    }

    /// Like [`Mosquitto::start`], with `extra` appended to the config (e.g. `password_file`, `acl_file`;
    /// add `allow_anonymous` yourself).
    pub fn start_with(extra: &str) -> anyhow::Result<Mosquitto> {
        let binary = mosquitto_binary().context("mosquitto is not installed")?;
        let dir = tempfile::Builder::new().prefix("mqtt-home-mosquitto-").tempdir()?;
        // Started as root, Mosquitto drops to the `mosquitto` user: let it write here.
        set_mode(dir.path(), 0o777)?;
        let port = crate::free_port();
        let d = dir.path().display();
        let config = format!(
            "listener {port} 127.0.0.1\n\
             persistence true\n\
             persistence_location {d}/\n\
             autosave_interval 1\n\
             max_queued_messages 100000\n\
             set_tcp_nodelay true\n\
             log_dest file {d}/mosquitto.log\n\
             log_type all\n\
             {extra}"
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config)?;
        let mut m = Mosquitto { port, dir, binary, child: None };
        m.launch()?;
        Ok(m)
    }

    /// Mosquitto with a whole config of the test's own: `make(port, dir)` returns it, given the
    /// free port to listen on and the temp dir (writable by the `mosquitto` user). For [`Mosquitto::log`]
    /// to work, the config must say `log_dest file <dir>/mosquitto.log`.
    pub fn start_with_config(make: impl FnOnce(u16, &Path) -> String) -> anyhow::Result<Mosquitto> {
        let binary = mosquitto_binary().context("mosquitto is not installed")?;
        let dir = tempfile::Builder::new().prefix("mqtt-home-mosquitto-").tempdir()?;
        set_mode(dir.path(), 0o777)?;
        let port = crate::free_port();
        let config = make(port, dir.path());
        std::fs::write(dir.path().join("mosquitto.conf"), config)?;
        let mut m = Mosquitto { port, dir, binary, child: None };
        m.launch()?;
        Ok(m)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops it as `docker stop` would (SIGTERM), waiting for it to write its persistence and exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// Kills it (SIGKILL): what was not autosaved is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same persistence.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch()
    }

    /// Its log so far (everything: `log_type all`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let conf = self.dir.path().join("mosquitto.conf");
        // The port may linger for a moment after a stop; try a few times.
        for _attempt in 0..20 {
            let child = Command::new(&self.binary)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot run {}", self.binary.display()))?;
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return Ok(());
                }
                if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            self.kill();
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("mosquitto did not start on port {}; its log:\n{}", self.port, self.log())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}
