//! Door OPEN → alarm ON latency through a real Mosquitto, under 1 000 sensor events per second.
//!
//! What it measures: the time from just before a door sensor's OPEN reading is published to the
//! arrival, at a separate subscriber, of (a) the panel's siren command on `home/control/alarm` and
//! (b) the siren's own state ON on `home/security/alarm`. Both are the latencies a person cares
//! about: how long after the door opens the house starts screaming.
//!
//! Why it is built this way: the panel is the real `security-controller` binary in its own process
//! (its own runtime, its own state file, fsync and all), the siren is the real alarm actuator on
//! its own connection, and the broker is a real Mosquitto on a free port. Sensor traffic is
//! open-loop: a schedule of absolute deadlines at the offered rate, never paced by the panel's
//! answers, so a panel that falls behind shows up as latency instead of silently slowing the load.
//! Most events are background (motion sensors toggling while armed home, where the interior zone
//! is ignored, and window heartbeats) that the panel must read and persist but that trip nothing.
//! Every 50 ms or so one event is a measured intrusion: a perimeter door opening while armed.
//! After each intrusion the bench disarms, waits for the siren to stop, closes the door, re-arms
//! and waits for `armed_home` before the next one.
//!
//! It runs twice: with the panel's state file on the normal disk and on tmpfs (`/dev/shm`). The
//! panel writes and fsyncs its state before every siren command, so the difference between the
//! two runs is the price of durable state.
//!
//! Run: `cargo bench -p security-controller --bench door_to_siren [-- --seconds N] [--rate R]`
//! (or `DOOR_TO_SIREN_SECONDS`, `DOOR_TO_SIREN_RATE`). Unknown arguments, such as the `--bench`
//! that `cargo bench` passes, are ignored. It exits non-zero when the panel never arms or an
//! intrusion is not observed in time: a benchmark that measures nothing must not look green.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use device_runtime::{MqttConfig, Shutdown};
use hdrhistogram::Histogram;
use protocol::{
    AlarmCommand, AlarmState, PanelState, PanelStatus, Payload, Power, SensorKind, SensorReading, SensorState,
    Timestamp, Topic, Topics,
};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use security_controller::codes;
use security_controller::config::{ModeDelays, PanelConfig, SensorConfig, User, Zone};
use tokio::sync::{mpsc, oneshot};

/// The measured door: a perimeter zone, so opening it while armed triggers at once.
const DOOR: &str = "bench-door";
/// Motion sensors toggling in the background (interior zone: ignored while armed home).
const MOTION_SENSORS: usize = 8;
/// Windows sending CLOSED heartbeats in the background (perimeter, but never opening).
const WINDOW_SENSORS: usize = 4;
const PIN: &str = "2580";
/// How long the daemons may take to come up, and the watcher to subscribe.
const WITHIN: Duration = Duration::from_secs(30);

/// What the command line and the environment asked for.
#[derive(Debug, Clone)]
struct Options {
    seconds: u64,
    rate: u32,
    /// The least time between two measured intrusions.
    intrusion_every: Duration,
    /// Which runs: `disk`, `tmpfs` or `both`.
    state_on: String,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let env_number = |name: &str| -> anyhow::Result<Option<u64>> {
            match std::env::var(name) {
                Ok(v) => v.parse().map(Some).with_context(|| format!("{name}={v:?} is not a whole number")),
                Err(_) => Ok(None),
            }
        };
        let mut seconds = env_number("DOOR_TO_SIREN_SECONDS")?.unwrap_or(30);
        let mut rate = env_number("DOOR_TO_SIREN_RATE")?.unwrap_or(1_000);
        let mut state_on = std::env::var("DOOR_TO_SIREN_STATE_ON").unwrap_or_else(|_| "both".to_owned());
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            if name == "--state-on" {
                state_on = inline.or_else(|| args.next()).context("--state-on needs disk, tmpfs or both")?;
                continue;
            }
            let target = match name.as_str() {
                "--seconds" => &mut seconds,
                "--rate" => &mut rate,
                // `cargo bench` passes `--bench`, and perhaps a filter: not ours, ignored.
                _ => continue,
            };
            let value = inline.or_else(|| args.next()).with_context(|| format!("{name} needs a value"))?;
            *target = value.parse().with_context(|| format!("{name} {value:?} is not a whole number"))?;
        }
        ensure!(seconds >= 2, "--seconds must be at least 2 (a warm-up is discarded)");
        ensure!((10..=100_000).contains(&rate), "--rate must be between 10 and 100000 events/s");
        ensure!(["disk", "tmpfs", "both"].contains(&state_on.as_str()), "--state-on must be disk, tmpfs or both");
        Ok(Options { seconds, rate: rate as u32, intrusion_every: Duration::from_millis(50), state_on })
    }

    /// How long one expected message may take before the run is declared broken. A panel that
    /// cannot keep up falls behind by up to the whole run, and that is a result, not a failure.
    fn patience(&self) -> Duration {
        WITHIN + Duration::from_secs(2 * self.seconds)
    }

    /// Intrusions that start before this much time has passed are not recorded.
    fn warm_up(&self) -> Duration {
        Duration::from_secs(self.seconds.div_ceil(10).clamp(1, 3))
    }
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("door_to_siren: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("door_to_siren: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_all(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("door_to_siren: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where a run keeps the panel's state file.
struct StateDir {
    /// What the report calls it.
    label: String,
    base: PathBuf,
}

async fn run_all(options: &Options) -> anyhow::Result<()> {
    let version = mosquitto_version();
    let disk_base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut dirs = Vec::new();
    if options.state_on != "tmpfs" {
        dirs.push(StateDir { label: describe_fs(&disk_base), base: disk_base });
    }
    let shm = PathBuf::from("/dev/shm");
    if options.state_on == "disk" {
    } else if shm.is_dir() {
        dirs.push(StateDir { label: describe_fs(&shm), base: shm });
    } else {
        println!("(no /dev/shm on this machine: the tmpfs run is skipped)\n");
    }
    for dir in &dirs {
        let report = run_once(options, dir)
            .await
            .with_context(|| format!("the run with the state file on {} failed", dir.label))?;
        println!("door OPEN → siren ON through {version} on 127.0.0.1:{}, state file on {}", report.port, dir.label);
        println!("{}", report.render(options));
        std::io::stdout().flush().ok();
    }
    Ok(())
}

/// The first line of `mosquitto -h`, e.g. `mosquitto version 2.0.11`.
fn mosquitto_version() -> String {
    let binary = ["/usr/sbin/mosquitto", "mosquitto"].into_iter().find(|b| !b.contains('/') || Path::new(b).is_file());
    let output = binary.and_then(|b| Command::new(b).arg("-h").stderr(Stdio::null()).output().ok());
    output
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "Mosquitto (version unknown)".to_owned())
}

/// `<path> (<fs type>)`, from the longest matching mount point in `/proc/mounts`.
fn describe_fs(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let fs = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (device, mount, fs) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mount).then(|| (mount.len(), format!("{fs} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown filesystem".to_owned(), |(_, fs)| fs);
    format!("{} ({fs})", path.display())
}

// ---------------------------------------------------------------------------------------------
// One run: broker, siren, panel, load, measurements.

/// What one run measured.
struct Report {
    port: u16,
    offered: u64,
    published: u64,
    acked: u64,
    load_elapsed: Duration,
    /// From the last sensor event published to the panel's answer to a command sent after it.
    backlog: Duration,
    /// How far the load generator ever fell behind its schedule.
    max_schedule_lag: Duration,
    intrusions: u64,
    warm_up_intrusions: u64,
    to_command: Histogram<u64>,
    to_siren: Histogram<u64>,
    /// Time from DISARM to a re-armed panel, per cycle (not a headline figure, but telling).
    rearm: Histogram<u64>,
    panel_cpu: Option<Duration>,
}

impl Report {
    fn render(&self, options: &Options) -> String {
        let mut out = String::new();
        let achieved = self.acked as f64 / self.load_elapsed.as_secs_f64();
        let _ = writeln!(
            out,
            "offered {} events/s for {} s: {} sensor events ({} measured intrusions after {} in the warm-up), \
             achieved {achieved:.0} events/s",
            options.rate, options.seconds, self.offered, self.intrusions, self.warm_up_intrusions
        );
        if self.published != self.offered || self.acked != self.published {
            let _ = writeln!(out, "  (published {}, acknowledged by the broker {})", self.published, self.acked);
        }
        let panel_rate = self.published as f64 / (self.load_elapsed + self.backlog).as_secs_f64();
        if self.backlog > Duration::from_millis(500) {
            let _ = writeln!(
                out,
                "  SATURATED: the panel finished the load {:.1} s after it ended, handling {panel_rate:.0} events/s; \
                 the latencies below include its growing queue",
                self.backlog.as_secs_f64()
            );
        } else {
            let _ = writeln!(
                out,
                "  the panel kept up: it answered a command sent after the last event within {} ms",
                self.backlog.as_millis()
            );
        }
        let _ = writeln!(out, "{}", line("door OPEN → panel's siren command (home/control/alarm):", &self.to_command));
        let _ = writeln!(out, "{}", line("door OPEN → siren reports ON (home/security/alarm):    ", &self.to_siren));
        let _ = write!(
            out,
            "(DISARM → re-armed: p50 {} µs; load generator's worst lag behind schedule {} µs",
            self.rearm.value_at_quantile(0.5),
            self.max_schedule_lag.as_micros()
        );
        if let Some(cpu) = self.panel_cpu {
            let per_event = cpu.as_secs_f64() * 1e6 / self.published.max(1) as f64;
            let _ = write!(
                out,
                "; panel CPU {:.2} s, {per_event:.1} µs per sensor event (intrusion cycles included)",
                cpu.as_secs_f64()
            );
        }
        let _ = writeln!(out, ")");
        out
    }
}

fn line(label: &str, h: &Histogram<u64>) -> String {
    format!(
        "{label}  p50 {:>6} µs  p99 {:>6} µs  max {:>6} µs",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    )
}

async fn run_once(options: &Options, state_dir: &StateDir) -> anyhow::Result<Report> {
    let mosquitto = testkit::Mosquitto::start().context("cannot start Mosquitto")?;
    let url = mosquitto.url();
    let topics = Topics::new("home");
    let dir = tempfile::Builder::new()
        .prefix("door-to-siren-")
        .tempdir_in(&state_dir.base)
        .with_context(|| format!("cannot make a temporary directory in {}", state_dir.base.display()))?;

    // The watcher subscribes before anything starts, so it sees every status and siren message.
    let (mut watch, watch_task) = Watcher::connect(mosquitto.port(), &topics, options.patience()).await?;

    let siren_shutdown = Shutdown::new();
    let siren_config = alarm_actuator::Config {
        mqtt: MqttConfig { broker: url.clone(), ..MqttConfig::with_id("siren") },
        ..alarm_actuator::Config::default()
    };
    let siren = tokio::spawn(alarm_actuator::run(siren_config, siren_shutdown.clone()));

    let mut panel = Panel::spawn(&url, dir.path())?;
    let outcome = drive(options, &mosquitto, &topics, &mut watch).await;
    let panel_cpu = panel.cpu_time();
    panel.stop();
    siren_shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(5), siren).await;
    watch_task.abort();
    if outcome.is_err() {
        eprintln!("door_to_siren: the panel's last log lines:\n{}", panel.log_tail());
    }
    let mut report = outcome?;
    report.panel_cpu = panel_cpu;
    Ok(report)
}

/// The measured part of a run, with everything already started.
async fn drive(
    options: &Options,
    mosquitto: &testkit::Mosquitto,
    topics: &Topics,
    watch: &mut Watcher,
) -> anyhow::Result<Report> {
    // The two arrive in either order: the siren starts first, but its state may be delayed.
    let (mut panel_up, mut siren_up) = (false, false);
    while !(panel_up && siren_up) {
        let m =
            watch.next("the panel's first status (disarmed) and the siren's first state (OFF)").await.with_context(
                || format!("the daemons never came up (panel status seen: {panel_up}, siren state seen: {siren_up})"),
            )?;
        panel_up |= m.status().is_some_and(|s| s.state == PanelState::Disarmed);
        siren_up |= m.siren_state() == Some(Power::Off);
    }

    let mut control = testkit::Probe::connect(&mosquitto.url(), "bench-keypad").await?;
    let door_topic = topics.name(&Topic::Sensor { kind: SensorKind::Door, id: DOOR.to_owned() });
    control.publish(&door_topic, reading(DOOR, SensorState::Closed), true).await?;
    arm_home(&mut control, watch, topics).await.context("the panel never armed")?;

    let (load_client, load_loop) = client(mosquitto.port(), "bench-sensors");
    let acked = Arc::new(AtomicU64::new(0));
    let acks = tokio::spawn(count_acks(load_loop, acked.clone()));
    let (door_tx, door_rx) = mpsc::unbounded_channel();
    let load = tokio::spawn(generate(load_client, topics.clone(), options.clone(), door_rx));

    let max = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("cannot make a histogram");
    let (mut to_command, mut to_siren, mut rearm) = (max()?, max()?, max()?);
    let (mut intrusions, mut warm_up_intrusions) = (0, 0);
    let start = Instant::now();
    let mut next = start;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let Some(opened) = door(&door_tx, SensorState::Open).await else { break };
        next = opened + options.intrusion_every;
        let (mut command_at, mut siren_at) = (None, None);
        while command_at.is_none() || siren_at.is_none() {
            let m = watch.next("the siren command and the siren ON after a door OPEN").await.with_context(|| {
                format!(
                    "intrusion #{} was not observed (siren command seen: {}, siren ON seen: {})",
                    intrusions + warm_up_intrusions + 1,
                    command_at.is_some(),
                    siren_at.is_some()
                )
            })?;
            if m.siren_command() == Some(Power::On) {
                command_at.get_or_insert(m.at);
            }
            if m.siren_state() == Some(Power::On) {
                siren_at.get_or_insert(m.at);
            }
        }
        let (command_at, siren_at) = (command_at.unwrap_or(opened), siren_at.unwrap_or(opened));
        if opened.duration_since(start) < options.warm_up() {
            warm_up_intrusions += 1;
        } else {
            intrusions += 1;
            to_command.saturating_record(micros(command_at - opened));
            to_siren.saturating_record(micros(siren_at - opened));
        }

        // Back to armed for the next intrusion: disarm, siren off, door closed, re-armed.
        let disarm_at = Instant::now();
        let disarm = format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#);
        control.publish(&topics.name(&Topic::PanelSet), disarm, false).await?;
        let (mut disarmed, mut silent) = (false, false);
        while !(disarmed && silent) {
            let m = watch.next("status disarmed and the siren OFF after DISARM").await?;
            disarmed |= m.status().is_some_and(|s| s.state == PanelState::Disarmed);
            silent |= m.siren_state() == Some(Power::Off);
        }
        if door(&door_tx, SensorState::Closed).await.is_none() {
            // The load is over; the door stays open, which does not matter any more.
            break;
        }
        watch
            .until("a disarmed status with the door closed", |m| {
                m.status().is_some_and(|s| s.state == PanelState::Disarmed && s.open_sensors.is_empty())
            })
            .await?;
        arm_home(&mut control, watch, topics).await.context("the panel did not re-arm")?;
        rearm.saturating_record(micros(disarm_at.elapsed()));
    }

    let LoadOutcome { published, elapsed: load_elapsed, ended: load_end, max_lag: max_schedule_lag } =
        load.await.context("the load generator panicked")??;
    // How far behind the panel is: everything reaches it in order, so a command sent now is handled
    // after the last sensor event. ARM_HOME always answers with a status (armed, or failed to arm).
    control.publish(&topics.name(&Topic::PanelSet), r#"{"action":"ARM_HOME"}"#, false).await?;
    let caught_up = watch.until("the panel's answer to the final ARM_HOME", |m| m.status().is_some()).await?.at;
    let backlog = caught_up.saturating_duration_since(load_end);
    // Let the last acknowledgements arrive before counting them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    acks.abort();
    let acked = acked.load(Ordering::Relaxed);
    ensure!(
        intrusions > 0,
        "no intrusion was measured after the {:?} warm-up ({warm_up_intrusions} during it)",
        options.warm_up()
    );
    Ok(Report {
        port: mosquitto.port(),
        offered: u64::from(options.rate) * options.seconds,
        published,
        acked,
        load_elapsed,
        backlog,
        max_schedule_lag,
        intrusions,
        warm_up_intrusions,
        to_command,
        to_siren,
        rearm,
        panel_cpu: None,
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Sends ARM_HOME and waits for `armed_home`.
async fn arm_home(control: &mut testkit::Probe, watch: &mut Watcher, topics: &Topics) -> anyhow::Result<()> {
    control.publish(&topics.name(&Topic::PanelSet), r#"{"action":"ARM_HOME"}"#, false).await?;
    watch.until("status armed_home", |m| m.status().is_some_and(|s| s.state == PanelState::ArmedHome)).await?;
    Ok(())
}

/// Asks the load generator to publish the door's `state` in its next slot; returns the instant
/// just before that publish, or `None` when the load is over.
async fn door(tx: &mpsc::UnboundedSender<DoorRequest>, state: SensorState) -> Option<Instant> {
    let (sent, at) = oneshot::channel();
    tx.send(DoorRequest { state, sent }).ok()?;
    at.await.ok()
}

fn reading(id: &str, state: SensorState) -> Vec<u8> {
    SensorReading { state, device_id: id.to_owned(), ts: Timestamp::now() }.encode()
}

// ---------------------------------------------------------------------------------------------
// The load: an open-loop schedule of sensor readings.

struct DoorRequest {
    state: SensorState,
    sent: oneshot::Sender<Instant>,
}

/// Publishes `rate × seconds` readings at absolute deadlines; a slot carries the door's reading
/// when one was asked for, a background reading otherwise.
async fn generate(
    client: AsyncClient,
    topics: Topics,
    options: Options,
    mut doors: mpsc::UnboundedReceiver<DoorRequest>,
) -> anyhow::Result<LoadOutcome> {
    let total = u64::from(options.rate) * options.seconds;
    let period = Duration::from_secs(1) / options.rate;
    let door_topic = topics.name(&Topic::Sensor { kind: SensorKind::Door, id: DOOR.to_owned() });
    let motion: Vec<(String, String)> = (1..=MOTION_SENSORS)
        .map(|i| {
            let id = format!("bench-motion-{i}");
            (topics.name(&Topic::Sensor { kind: SensorKind::Motion, id: id.clone() }), id)
        })
        .collect();
    let windows: Vec<(String, String)> = (1..=WINDOW_SENSORS)
        .map(|i| {
            let id = format!("bench-window-{i}");
            (topics.name(&Topic::Sensor { kind: SensorKind::Window, id: id.clone() }), id)
        })
        .collect();
    let start = tokio::time::Instant::now();
    let mut max_lag = Duration::ZERO;
    for i in 0..total {
        let due = start + period * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(tokio::time::Instant::now() - due);
        let (topic, payload, door) = match doors.try_recv() {
            Ok(request) => (door_topic.clone(), reading(DOOR, request.state), Some(request.sent)),
            // One event in five is a window heartbeat, the rest motion toggling.
            Err(_) if i % 5 == 4 => {
                let (topic, id) = &windows[(i / 5) as usize % WINDOW_SENSORS];
                (topic.clone(), reading(id, SensorState::Closed), None)
            }
            Err(_) => {
                let (topic, id) = &motion[i as usize % MOTION_SENSORS];
                let state = if (i / MOTION_SENSORS as u64).is_multiple_of(2) {
                    SensorState::Motion
                } else {
                    SensorState::NoMotion
                };
                (topic.clone(), reading(id, state), None)
            }
        };
        let before = Instant::now();
        client.publish(topic, QoS::AtLeastOnce, true, payload).await.context("the load client stopped")?;
        if let Some(sent) = door {
            let _ = sent.send(before);
        }
    }
    Ok(LoadOutcome { published: total, elapsed: start.elapsed(), ended: Instant::now(), max_lag })
}

/// What the load generator did.
struct LoadOutcome {
    published: u64,
    elapsed: Duration,
    /// Just after the last publish.
    ended: Instant,
    /// How far it ever fell behind its schedule.
    max_lag: Duration,
}

/// Drives the load client's event loop, counting the broker's acknowledgements.
async fn count_acks(mut eventloop: EventLoop, acked: Arc<AtomicU64>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("door_to_siren: the load client's connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A rumqttc client with TCP_NODELAY (without it each hop waits for the next packet).
fn client(port: u16, id: &str) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30)).set_inflight(1_000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

// ---------------------------------------------------------------------------------------------
// The watcher: a separate subscriber that timestamps what it receives.

/// One message, stamped on arrival.
struct Seen {
    at: Instant,
    topic: String,
    payload: Vec<u8>,
    kind: SeenKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SeenKind {
    Status,
    SirenCommand,
    SirenState,
}

impl Seen {
    fn status(&self) -> Option<PanelStatus> {
        (self.kind == SeenKind::Status).then(|| PanelStatus::decode(&self.payload).ok()).flatten()
    }

    fn siren_command(&self) -> Option<Power> {
        (self.kind == SeenKind::SirenCommand)
            .then(|| AlarmCommand::decode(&self.payload).ok().map(|c| c.state))
            .flatten()
    }

    fn siren_state(&self) -> Option<Power> {
        (self.kind == SeenKind::SirenState).then(|| AlarmState::decode(&self.payload).ok().map(|s| s.state)).flatten()
    }
}

struct Watcher {
    inbox: mpsc::UnboundedReceiver<Seen>,
    /// How long to wait for any one expected message.
    patience: Duration,
    /// Kept so the event loop's request channel stays open.
    _client: AsyncClient,
}

impl Watcher {
    /// Connects, subscribes to the status, the siren command and the siren state, and waits for the SubAck.
    async fn connect(
        port: u16,
        topics: &Topics,
        patience: Duration,
    ) -> anyhow::Result<(Watcher, tokio::task::JoinHandle<()>)> {
        let (client, mut eventloop) = client(port, "bench-watch");
        let names = [
            (topics.name(&Topic::PanelStatus), SeenKind::Status),
            (topics.name(&Topic::AlarmControl), SeenKind::SirenCommand),
            (topics.name(&Topic::AlarmState), SeenKind::SirenState),
        ];
        let (tx, inbox) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let filters: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let at = Instant::now();
                        let Some(kind) = names.iter().find(|(n, _)| *n == p.topic).map(|(_, k)| *k) else { continue };
                        let _ = tx.send(Seen { at, topic: p.topic.clone(), payload: p.payload.to_vec(), kind });
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("door_to_siren: the watcher's connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let filters = filters.into_iter().map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtLeastOnce));
        client.subscribe_many(filters).await.context("the watcher cannot subscribe")?;
        tokio::time::timeout(WITHIN, subscribed).await.context("the watcher got no SubAck")?.ok();
        Ok((Watcher { inbox, patience, _client: client }, task))
    }

    /// The next message, waiting at most `patience` for `what`.
    async fn next(&mut self, what: &str) -> anyhow::Result<Seen> {
        match tokio::time::timeout(self.patience, self.inbox.recv()).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => bail!("the watcher's connection ended while waiting for {what}"),
            Err(_) => bail!("waited {:?} for {what}", self.patience),
        }
    }

    /// Skips messages until one matches `pred`.
    async fn until(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> anyhow::Result<Seen> {
        let deadline = Instant::now() + self.patience;
        let mut last = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.inbox.recv()).await {
                Ok(Some(m)) if pred(&m) => return Ok(m),
                Ok(Some(m)) => last = format!("{}: {}", m.topic, String::from_utf8_lossy(&m.payload)),
                Ok(None) => bail!("the watcher's connection ended while waiting for {what}"),
                Err(_) => bail!("waited {:?} for {what}; the last other message was {last:?}", self.patience),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The panel: the real binary, as a child process.

struct Panel {
    child: Option<Child>,
    log: PathBuf,
}

impl Panel {
    fn spawn(url: &str, dir: &Path) -> anyhow::Result<Panel> {
        let pin_hash = codes::hash_pin_with(PIN, codes::test_params()).context("cannot hash the bench PIN")?;
        let mut panel = PanelConfig {
            // Arming home is instant; leaving the house is not what is measured.
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            trigger_time_s: 120,
            allow_demo_timings: true,
            users: vec![User { name: "bench".into(), pin_hash, duress: false, shows_as: None }],
            ..PanelConfig::default()
        };
        panel.sensors.insert(DOOR.to_owned(), SensorConfig { zone: Some(Zone::Perimeter), supervision_s: None });
        let state_file = dir.join("panel.state.json");
        let config = security_controller::Config {
            mqtt: MqttConfig::with_id("security-controller"),
            state_file: state_file.clone(),
            panel,
        };
        let config_file = dir.join("panel.toml");
        let text = toml::to_string(&config).context("cannot write the panel's config as TOML")?;
        std::fs::write(&config_file, text).with_context(|| format!("cannot write {}", config_file.display()))?;
        let log = dir.join("panel.log");
        let log_file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_security-controller"))
            .arg("--broker")
            .arg(url)
            .arg("--config")
            .arg(&config_file)
            .arg("--state-file")
            .arg(&state_file)
            .stdout(log_file.try_clone().context("cannot share the panel's log file")?)
            .stderr(log_file)
            .spawn()
            .context("cannot start the security-controller binary")?;
        Ok(Panel { child: Some(child), log })
    }

    /// CPU time the panel used so far (`/proc/<pid>/schedstat`, nanoseconds on a CPU).
    fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.as_ref()?.id();
        let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
        text.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
    }

    /// The last lines the panel logged, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then a wait for a clean exit; SIGKILL if it does not come.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if !testkit::terminate(&mut child, Duration::from_secs(10)) {
            eprintln!("door_to_siren: the panel did not stop within 10 s of SIGTERM; killed it");
        }
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.stop();
    }
}
