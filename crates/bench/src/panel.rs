//! The home under test: the real panel and siren binaries, each a process of its own as in a
//! home, a keypad, the door sensor and the watcher, all on one Mosquitto.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use device_runtime::MqttConfig;
use protocol::{PanelState, Power, SensorState};
use rumqttc::{AsyncClient, QoS};
use security_controller::codes;
use security_controller::config::{Area, ModeDelays, PanelConfig, SensorConfig, User, Zone};
use tokio::task::JoinHandle;

use crate::mqtt::{self, DOOR, HEARD_ROOT, Names, WITHIN, Watcher};

pub const PIN: &str = "2580";
/// Wrong codes that lock the keypad, and for how long: short, so the flood phase stays short.
pub const MAX_WRONG_CODES: u32 = 5;
pub const LOCKOUT_S: u64 = 1;

/// Everything the phases drive.
pub struct Home {
    pub port: u16,
    pub names: Names,
    pub watch: Watcher,
    pub keypad: testkit::Probe,
    /// The door sensor's own connection.
    pub sensor: AsyncClient,
    pub panel: Daemon,
    /// The real `alarm-actuator`: a process of its own, not a task beside the watcher, so that
    /// the command it receives costs the watcher's process nothing.
    siren: Daemon,
    /// The minimal controller's siren (see [`Names::heard_siren`]).
    heard_siren: Daemon,
    tasks: Vec<JoinHandle<()>>,
}

impl Home {
    /// Starts the siren and the panel, and waits for both to come up with the door closed.
    pub async fn start(mosquitto: &testkit::Mosquitto, dir: &Path, layout: Layout) -> anyhow::Result<Home> {
        let names = Names::new();
        let filters = [
            &names.status,
            &names.events,
            &names.siren_command,
            &names.siren_state,
            &names.bare,
            &names.minimal_siren,
            &names.minimal_process_siren,
            &names.blocking_siren,
            &names.heard_siren,
            &names.heard_siren_state,
            &names.paho_siren,
            &names.node_red_siren,
        ];
        let mut watch = Watcher::connect(mosquitto.port(), &filters.map(String::as_str)).await?;
        let siren = Daemon::spawn("alarm-actuator", dir, ["--broker".into(), mosquitto.url().into()])?;
        let heard = ["--broker", &mosquitto.url(), "--topic-root", HEARD_ROOT, "--id", "bench-heard-siren"];
        let heard = heard.into_iter().chain(["--ha-discovery", "false"]).map(OsString::from);
        let heard_siren = Daemon::spawn_as("alarm-actuator", "heard-siren", dir, heard)?;
        let panel = spawn_panel(&mosquitto.url(), dir, layout)?;
        wait_for_daemons(&mut watch, &names).await?;
        let keypad = testkit::Probe::connect(&mosquitto.url(), "bench-keypad").await?;
        let (sensor, sensor_task) = mqtt::publisher(mosquitto.port(), "bench-door-sensor");
        let tasks = vec![sensor_task];
        let home = Home { port: mosquitto.port(), names, watch, keypad, sensor, panel, siren, heard_siren, tasks };
        // A door the panel has never seen: its first reading may bring no status; arming checks it.
        home.sense(&home.names.door.clone(), SensorState::Closed).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(home)
    }

    pub async fn stop(mut self) {
        self.panel.stop();
        self.siren.stop();
        self.heard_siren.stop();
        self.tasks.iter().for_each(JoinHandle::abort);
    }

    /// Publishes `payload` on `topic` as the door sensor does (QoS 1, retained); the instant just before.
    pub async fn sense(&self, topic: &str, state: SensorState) -> anyhow::Result<Instant> {
        let payload = mqtt::reading(DOOR, state);
        let before = Instant::now();
        self.sensor.publish(topic, QoS::AtLeastOnce, true, payload).await.context("the door sensor stopped")?;
        Ok(before)
    }

    /// Sends a keypad command (`{"action":…}` JSON) and waits for a status in `state`.
    pub async fn command(&mut self, json: &str, state: PanelState) -> anyhow::Result<()> {
        self.watch.drain();
        self.keypad.publish(&self.names.panel_set, json, false).await?;
        self.await_state(state, WITHIN).await
    }

    pub async fn await_state(&mut self, state: PanelState, within: Duration) -> anyhow::Result<()> {
        let names = &self.names;
        let what = format!("status {}", state.as_str());
        self.watch.until(&what, within, |m| m.status(names).is_some_and(|s| s.state == state)).await?;
        Ok(())
    }

    pub async fn arm_home(&mut self) -> anyhow::Result<()> {
        self.command(r#"{"action":"ARM_HOME"}"#, PanelState::ArmedHome).await
    }

    /// Disarms after an intrusion and waits for the siren to stop too.
    pub async fn disarm_and_silence(&mut self) -> anyhow::Result<()> {
        self.watch.drain();
        self.keypad.publish(&self.names.panel_set, disarm(PIN), false).await?;
        self.await_silence(&mut Silence::default(), WITHIN).await
    }

    /// Waits for `disarmed` and the siren's state OFF, in either order, remembering in `seen`
    /// what has come so far (a caller may try again).
    pub async fn await_silence(&mut self, seen: &mut Silence, within: Duration) -> anyhow::Result<()> {
        let names = &self.names;
        let deadline = Instant::now() + within;
        while !(seen.disarmed && seen.silent) {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.watch.until("disarmed and the siren OFF", left, |_| true).await?;
            seen.disarmed |= m.status(names).is_some_and(|s| s.state == PanelState::Disarmed);
            seen.silent |= m.siren_state(names) == Some(Power::Off);
        }
        Ok(())
    }

    /// Turns the minimal controller's siren off again, as disarming does the panel's, so that
    /// each of its intrusions turns it on (and it says so) as each of the panel's does.
    pub async fn silence_heard(&mut self) -> anyhow::Result<()> {
        self.watch.drain();
        let off = protocol::AlarmCommand::siren(Power::Off, Some("bench".into()));
        self.keypad.publish(&self.names.heard_siren.clone(), protocol::Payload::encode(&off), false).await?;
        let names = &self.names;
        self.watch
            .until("the minimal controller's siren OFF", WITHIN, |m| m.heard_siren_state(names) == Some(Power::Off))
            .await?;
        Ok(())
    }

    /// Closes the door and waits until the panel says it is closed.
    pub async fn close_door(&mut self) -> anyhow::Result<()> {
        self.watch.drain();
        self.sense(&self.names.door.clone(), SensorState::Closed).await?;
        let names = &self.names;
        let closed = |m: &mqtt::Seen| m.status(names).is_some_and(|s| s.open_sensors.is_empty());
        self.watch.until("a status with the door closed", WITHIN, closed).await?;
        Ok(())
    }

    /// After an intrusion: disarmed, silent, door closed, armed home again.
    pub async fn rearm(&mut self) -> anyhow::Result<()> {
        self.disarm_and_silence().await?;
        self.close_door().await?;
        self.arm_home().await
    }
}

/// What has been seen of a disarm after an intrusion.
#[derive(Default)]
pub struct Silence {
    disarmed: bool,
    silent: bool,
}

pub fn disarm(pin: &str) -> String {
    format!(r#"{{"action":"DISARM","code":"{pin}"}}"#)
}

/// The panel's first status and both sirens' first states, in any order.
async fn wait_for_daemons(watch: &mut Watcher, names: &Names) -> anyhow::Result<()> {
    let (mut panel_up, mut siren_up, mut heard_up) = (false, false, false);
    while !(panel_up && siren_up && heard_up) {
        let m =
            watch.until("the panel's first status and the sirens' first states", WITHIN, |_| true).await.with_context(
                || format!("the daemons never came up (panel: {panel_up}, siren: {siren_up}, heard: {heard_up})"),
            )?;
        panel_up |= m.status(names).is_some_and(|s| s.state == PanelState::Disarmed);
        siren_up |= m.siren_state(names) == Some(Power::Off);
        heard_up |= m.heard_siren_state(names) == Some(Power::Off);
    }
    Ok(())
}

/// The real `security-controller` binary with a config of the bench's `layout` and a state file on disk.
fn spawn_panel(url: &str, dir: &Path, layout: Layout) -> anyhow::Result<Daemon> {
    let state_file = dir.join("panel.state.json");
    let config_file = dir.join("panel.toml");
    let config = security_controller::Config {
        mqtt: MqttConfig::with_id("security-controller"),
        state_file: state_file.clone(),
        panel: panel_config(layout)?,
        ..security_controller::Config::default()
    };
    let text = toml::to_string(&config).context("cannot write the panel's config as TOML")?;
    std::fs::write(&config_file, text).with_context(|| format!("cannot write {}", config_file.display()))?;
    let args = [
        "--broker".into(),
        url.into(),
        "--config".into(),
        config_file.into(),
        "--state-file".into(),
        state_file.into(),
    ];
    Daemon::spawn("security-controller", dir, args)
}

/// A workspace daemon's release binary as a child process, its output in `<dir>/<name>.log`;
/// stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, dir: &Path, args: impl IntoIterator<Item = OsString>) -> anyhow::Result<Daemon> {
        Daemon::spawn_as(name, name, dir, args)
    }

    /// The binary `name`, its log in `<dir>/<log_name>.log` (a second siren beside the first).
    fn spawn_as(
        name: &'static str,
        log_name: &str,
        dir: &Path,
        args: impl IntoIterator<Item = OsString>,
    ) -> anyhow::Result<Daemon> {
        let log = dir.join(format!("{log_name}.log"));
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(binary(name)?)
            .args(args)
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start the {name} binary"))?;
        Ok(Daemon { name, child: Some(child), log })
    }

    /// VmRSS from `/proc/<pid>/status`, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.child.as_ref().with_context(|| format!("{} is not running", self.name))?.id())
    }

    /// The last lines the daemon logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if !testkit::terminate(&mut child, Duration::from_secs(10)) {
            eprintln!("intrusion-bench: {} did not stop within 10 s of SIGTERM; killed it", self.name);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the panel is laid out: areas and users beyond the bench's own (issue 21: the intrusion
/// path must cost the same with 3 areas and 20 users).
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub areas: usize,
    pub users: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout { areas: 1, users: 1 }
    }
}

/// Instant arming, the shortest siren, no swinger limit (every intrusion must sound), a short
/// lockout, and users whose PIN hashes have Argon2id's default cost: the expensive path. With
/// areas, the door guards the first; each other area has a window of its own.
fn panel_config(layout: Layout) -> anyhow::Result<PanelConfig> {
    let pin_hash = codes::hash_pin(PIN).context("cannot hash the bench PIN")?;
    let mut users = vec![User::new("bench", pin_hash)];
    for i in 1..layout.users {
        // Other PINs, so that the bench's PIN is found first and a wrong one is tried against all.
        let hash = codes::hash_pin(&format!("{:06}", 100_000 + i)).context("cannot hash a bench user's PIN")?;
        users.push(User::new(format!("user-{i}"), hash));
    }
    let areas = if layout.areas > 1 {
        let mut areas = vec![Area::new("area-0", &[DOOR])];
        areas.extend((1..layout.areas).map(|i| Area::new(format!("area-{i}"), &[format!("window-{i}").as_str()])));
        areas
    } else {
        Vec::new()
    };
    let mut panel = PanelConfig {
        exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
        trigger_time_s: 5,
        allow_demo_timings: true,
        swinger_limit: 0,
        max_wrong_codes: MAX_WRONG_CODES,
        wrong_code_window_s: 60,
        lockout_s: LOCKOUT_S,
        users,
        areas,
        ..PanelConfig::default()
    };
    panel
        .sensors
        .insert(DOOR.to_owned(), SensorConfig { zone: Some(Zone::Perimeter), supervision_s: None, chime: false });
    Ok(panel)
}

/// VmRSS of process `pid` from `/proc/<pid>/status`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    let kib = line.split_whitespace().nth(1).context("an empty VmRSS line")?;
    Ok(kib.parse()?)
}

/// A workspace binary next to this bench's (`target/<profile>/deps/intrusion-…` → `target/<profile>/`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("the bench executable has no target directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!("{} is missing: run `cargo build --release -p {name}` first (`just bench` does)", path.display());
    }
    Ok(path)
}
