//! `mqtt-home fleet` (this crate, which the CLI calls): simulated devices at scale from one process, against any broker. Each device
//! is its own MQTT connection with its own client id, Last Will and retained state, as real devices
//! are: door, window and motion sensors that report changes at QoS 1 (retained), and bulbs that
//! take commands and report their state. It measures what a broker and the controllers hold; it
//! does not run a home.
//!
//! Why not rumqttc per device: each of its clients allocates, before sending a byte, a bit set of
//! 65 536 incoming packet ids (8 KiB), an event queue for 100 events, an in-flight table and the
//! framed codec's buffers — tens of KiB per client, past this tool's goal of 16 KiB a device. A
//! fleet device needs little of MQTT (CONNECT with a will, PUBLISH at QoS 0/1, PUBACK, SUBSCRIBE,
//! PINGREQ), so each is one task over one socket, encoding and decoding with rumqttc's own packet
//! codec (`mqttbytes::v4`), with buffers of a few hundred bytes.
//!
//! Connections are opened at a bounded rate (`--ramp`), so a broker is not stampeded; a device
//! whose connection drops connects again after 1–3 s. With `--houses H` the devices are spread
//! over H homes, each under its own topic root (`<root>-1`, `<root>-2`, ...), so each house's
//! controllers see only their own devices.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use device_runtime::{BrokerUrl, MqttConfig, Shutdown};
use protocol::{
    Availability, LightSource, LightState, Payload, Power, SensorKind, SensorReading, SensorState, Timestamp, Topic,
    Topics,
};
pub use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, LastWill, Login, Packet, PubAck, Publish, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest packet a fleet device reads (commands and acks are small).
const MAX_PACKET: usize = 4096;
/// Seconds between keep-alive pings when a device has nothing to say.
const KEEP_ALIVE_S: u16 = 60;

/// What the fleet is asked to do.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub broker: BrokerUrl,
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic_root: String,
    pub devices: usize,
    pub houses: usize,
    /// Events per second over the whole fleet.
    pub rate: f64,
    pub duration: Duration,
    /// Connections opened per second.
    pub ramp: f64,
    pub qos: QoS,
    /// A process to report the memory of too (the broker's pid).
    pub broker_pid: Option<u32>,
    /// Run each house's own panel and light controller in this process (each on its own
    /// connection, under the house's topic root), so the fleet's readings have someone to read them.
    pub controllers: bool,
}

impl FleetConfig {
    pub fn new(mqtt: &MqttConfig) -> FleetConfig {
        FleetConfig {
            // The first broker of a list: a fleet measures one broker (or one node).
            broker: mqtt.broker.first().clone(),
            username: mqtt.username.clone(),
            password: mqtt.password.as_ref().map(|p| p.expose().to_owned()),
            topic_root: mqtt.topic_root.clone(),
            devices: 100,
            houses: 1,
            rate: 100.0,
            duration: Duration::from_secs(60),
            ramp: 1000.0,
            qos: QoS::AtLeastOnce,
            broker_pid: None,
            controllers: false,
        }
    }
}

/// One simulated device: which home, what it is, its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    pub root: String,
    pub id: String,
    pub kind: FleetKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetKind {
    Sensor(SensorKind),
    Bulb,
}

/// The fleet's devices: per house, doors, windows, motion sensors and bulbs in turn. Pure.
pub fn plan(root: &str, devices: usize, houses: usize) -> Vec<DevicePlan> {
    let houses = houses.max(1);
    let kinds = [
        FleetKind::Sensor(SensorKind::Door),
        FleetKind::Sensor(SensorKind::Window),
        FleetKind::Sensor(SensorKind::Motion),
        FleetKind::Bulb,
    ];
    (0..devices)
        .map(|n| {
            let house = n % houses;
            let nth = n / houses;
            let kind = kinds[nth % kinds.len()];
            let root = if houses == 1 { root.to_owned() } else { format!("{root}-{}", house + 1) };
            let name = match kind {
                FleetKind::Sensor(k) => k.to_string(),
                FleetKind::Bulb => "bulb".to_owned(),
            };
            DevicePlan { root, id: format!("fleet-{name}-{nth}"), kind }
        })
        .collect()
}

/// The PIN of every house panel `--controllers` runs.
pub const HOUSE_PIN: &str = "1234";

/// Each house's panel and light controller: the panel with the shipped defaults and one user, the
/// light controller with one room holding the house's bulbs and motion sensors.
fn controllers(
    config: &FleetConfig,
    devices: &[DevicePlan],
    state_dir: &std::path::Path,
) -> anyhow::Result<Vec<(security_controller::Config, light_controller::Config)>> {
    let pin_hash = security_controller::codes::hash_pin(HOUSE_PIN).context("cannot hash the house PIN")?;
    let mut roots: Vec<&str> = devices.iter().map(|d| d.root.as_str()).collect();
    roots.sort_unstable();
    roots.dedup();
    let mqtt = |root: &str, id: &str| MqttConfig {
        broker: config.broker.clone().into(),
        username: config.username.clone(),
        password: config.password.clone().map(device_runtime::Secret::new),
        topic_root: root.to_owned(),
        ..MqttConfig::with_id(id)
    };
    let ids = |root: &str, want: fn(FleetKind) -> bool| -> Vec<String> {
        devices.iter().filter(|d| d.root == root && want(d.kind)).map(|d| d.id.clone()).collect()
    };
    Ok(roots
        .into_iter()
        .map(|root| {
            let user = security_controller::config::User::new("fleet", pin_hash.clone());
            let panel = security_controller::Config {
                mqtt: mqtt(root, "security-controller"),
                state_file: state_dir.join(format!("{root}.json")),
                panel: security_controller::config::PanelConfig { users: vec![user], ..Default::default() },
                ..security_controller::Config::default()
            };
            let room = light_controller::config::Room {
                name: "fleet".into(),
                bulbs: ids(root, |k| k == FleetKind::Bulb),
                motion_sensors: ids(root, |k| k == FleetKind::Sensor(SensorKind::Motion)),
                simulate_presence: false,
            };
            let lights = light_controller::Config {
                mqtt: mqtt(root, "light-controller"),
                rooms: vec![room],
                ..light_controller::Config::default()
            };
            (panel, lights)
        })
        .collect())
}

/// Counters shared by every device task.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub connects: AtomicU64,
    pub failures: AtomicU64,
    /// Messages sent (availability and reports), and acknowledged (QoS 1).
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub commands: AtomicU64,
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub devices: usize,
    /// Connections up when the ramp ended and at the end.
    pub connected_after_ramp: u64,
    pub connected_at_end: u64,
    pub failures: u64,
    pub sent: u64,
    pub acked: u64,
    pub commands: u64,
    pub ramp: Duration,
    pub steady: Duration,
    pub rss_before: u64,
    pub rss_connected: u64,
    pub rss_end: u64,
    pub broker_rss: Option<(u64, u64)>,
}

impl Report {
    /// The process's memory growth per connected device, in bytes.
    pub fn per_device(&self) -> u64 {
        self.rss_connected.saturating_sub(self.rss_before) / self.connected_after_ramp.max(1)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let steady = self.steady.as_secs_f64().max(0.001);
        writeln!(
            f,
            "fleet: {} of {} devices connected after the ramp ({:.1} s), {} at the end, {} failed connection attempts",
            self.connected_after_ramp,
            self.devices,
            self.ramp.as_secs_f64(),
            self.connected_at_end,
            self.failures
        )?;
        writeln!(
            f,
            "fleet: {} events sent, {} acknowledged, {:.0} events/s over {:.1} s; {} bulb commands received",
            self.sent,
            self.acked,
            self.sent as f64 / steady,
            steady,
            self.commands
        )?;
        write!(
            f,
            "fleet: RSS {:.1} MiB before, {:.1} MiB connected, {:.1} MiB at the end: {:.1} KiB per device",
            mib(self.rss_before),
            mib(self.rss_connected),
            mib(self.rss_end),
            self.per_device() as f64 / 1024.0
        )?;
        if let Some((before, after)) = self.broker_rss {
            write!(f, "\nfleet: broker RSS {:.1} MiB before, {:.1} MiB with the fleet", mib(before), mib(after))?;
        }
        Ok(())
    }
}

/// A process's resident memory in bytes (`/proc/<pid>/statm`), 0 where it cannot be read.
pub fn rss_of(pid: Option<u32>) -> u64 {
    let path = pid.map_or_else(|| "/proc/self/statm".to_owned(), |p| format!("/proc/{p}/statm"));
    let pages = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
        .unwrap_or(0);
    pages * 4096
}

/// Runs the fleet until `duration` after the ramp, or shutdown; prints a progress line a second
/// through `progress`.
pub async fn run(config: FleetConfig, shutdown: Shutdown, mut progress: impl FnMut(String)) -> anyhow::Result<Report> {
    anyhow::ensure!(config.devices > 0, "--devices must be at least 1");
    // Its devices speak plain MQTT only: a password must not go in clear to a TLS port.
    anyhow::ensure!(
        !config.broker.tls,
        "the fleet's devices speak plain MQTT only: give an mqtt:// broker, not {}",
        config.broker
    );
    anyhow::ensure!(config.rate >= 0.0 && config.ramp > 0.0, "--rate must be 0 or more and --ramp more than 0");
    let devices = plan(&config.topic_root, config.devices, config.houses);
    let counters = Arc::new(Counters::default());
    // Each device reports every devices/rate seconds, so that the fleet makes `rate` events a second.
    let period =
        if config.rate > 0.0 { Some(Duration::from_secs_f64(config.devices as f64 / config.rate)) } else { None };
    let shared = Arc::new(Shared { config: config.clone(), counters: counters.clone(), period });

    let mut tasks = tokio::task::JoinSet::new();
    let state_dir = tempfile::Builder::new().prefix("mqtt-home-fleet-").tempdir()?;
    if config.controllers {
        let houses = controllers(&config, &devices, state_dir.path())?;
        progress(format!(
            "fleet: {} houses, each with its panel and light controller (panel PIN {HOUSE_PIN})",
            houses.len()
        ));
        for (panel, lights) in houses {
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let (a, b) = tokio::join!(
                    security_controller::run(panel, shutdown.clone()),
                    light_controller::run(lights, shutdown)
                );
                for outcome in [a, b] {
                    if let Err(e) = outcome {
                        tracing::error!("a house controller stopped: {e:#}");
                    }
                }
            });
        }
    }
    // Measured after the controllers' start (which hashes a PIN, 19 MiB for a moment), so the
    // growth is the devices' (and, with --controllers, what the controllers learn of them).
    let broker_before = config.broker_pid.map(|p| rss_of(Some(p)));
    let rss_before = rss_of(None);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / config.ramp));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut last_print = Instant::now();
    for device in devices {
        tokio::select! {
            () = shutdown.wait() => break,
            _ = ticker.tick() => {}
        }
        tasks.spawn(device_task(device, shared.clone(), shutdown.clone()));
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            progress(line(&counters, config.devices, "ramping"));
        }
    }
    // Wait for the last connections of the ramp (or 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters.connected.load(Ordering::Relaxed) < config.devices as u64 && Instant::now() < deadline {
        if shutdown.is_triggered() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp = started.elapsed();
    let connected_after_ramp = counters.connected.load(Ordering::Relaxed);
    let rss_connected = rss_of(None);
    progress(line(&counters, config.devices, "connected"));

    let steady_start = Instant::now();
    let (sent0, acked0) = (counters.sent.load(Ordering::Relaxed), counters.acked.load(Ordering::Relaxed));
    let end = tokio::time::Instant::now() + config.duration;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    let (mut prev_sent, mut prev_acked) = (sent0, acked0);
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep_until(end) => break,
            _ = every.tick() => {
                let (sent, acked) = (counters.sent.load(Ordering::Relaxed), counters.acked.load(Ordering::Relaxed));
                progress(format!(
                    "{}; {} events/s sent, {} acknowledged",
                    line(&counters, config.devices, "running"),
                    sent - prev_sent,
                    acked - prev_acked
                ));
                (prev_sent, prev_acked) = (sent, acked);
            }
        }
    }
    let steady = steady_start.elapsed();
    let report = Report {
        devices: config.devices,
        connected_after_ramp,
        connected_at_end: counters.connected.load(Ordering::Relaxed),
        failures: counters.failures.load(Ordering::Relaxed),
        sent: counters.sent.load(Ordering::Relaxed) - sent0,
        acked: counters.acked.load(Ordering::Relaxed) - acked0,
        commands: counters.commands.load(Ordering::Relaxed),
        ramp,
        steady,
        rss_before,
        rss_connected,
        rss_end: rss_of(None),
        broker_rss: broker_before.map(|before| (before, rss_of(config.broker_pid))),
    };
    // Goodbye: each device publishes `offline` and disconnects, as a device switched off cleanly
    // does (the broker publishes its will only for a device that is lost).
    shutdown.trigger();
    let goodbye = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), goodbye).await.is_err() {
        tracing::warn!("some fleet devices did not say goodbye within 30 s");
    }
    Ok(report)
}

fn line(counters: &Counters, devices: usize, phase: &str) -> String {
    format!(
        "fleet {phase}: {}/{devices} connected, {} failed attempts",
        counters.connected.load(Ordering::Relaxed),
        counters.failures.load(Ordering::Relaxed)
    )
}

struct Shared {
    config: FleetConfig,
    counters: Arc<Counters>,
    period: Option<Duration>,
}

/// One device for the whole run: connects, reports, and connects again when it loses the broker.
async fn device_task(device: DevicePlan, shared: Arc<Shared>, shutdown: Shutdown) {
    let mut state = false;
    while !shutdown.is_triggered() {
        let outcome = session(&device, &shared, &shutdown, &mut state).await;
        if shutdown.is_triggered() {
            break;
        }
        if let Err(e) = outcome {
            shared.counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("fleet device {}: {e:#}", device.id);
        }
        let pause = Duration::from_millis(1000 + fastrand::u64(0..2000));
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One connection of one device, until it drops or the fleet stops.
async fn session(device: &DevicePlan, shared: &Shared, shutdown: &Shutdown, state: &mut bool) -> anyhow::Result<()> {
    let config = &shared.config;
    let counters = &shared.counters;
    let topics = Topics::new(&device.root);
    let availability = topics.name(&Topic::Availability(device.id.clone()));
    let mut socket = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((config.broker.host.as_str(), config.broker.port)),
    )
    .await
    .context("no TCP connection within 10 s")?
    .context("cannot connect")?;
    socket.set_nodelay(true)?;
    let mut out = BytesMut::with_capacity(256);
    let mut connect = Connect::new(format!("{}-{}", device.root.replace('/', "-"), device.id));
    connect.keep_alive = KEEP_ALIVE_S;
    connect.clean_session = true;
    connect.last_will = Some(LastWill::new(&availability, Availability::Offline.encode(), QoS::AtLeastOnce, true));
    if let Some(user) = &config.username {
        connect.login = Some(Login::new(user.clone(), config.password.clone().unwrap_or_default()));
    }
    Packet::Connect(connect).write(&mut out, MAX_PACKET)?;
    socket.write_all(&out).await?;
    let mut input = BytesMut::with_capacity(64);
    match tokio::time::timeout(Duration::from_secs(10), read_packet(&mut socket, &mut input)).await {
        Ok(Ok(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => {}
        Ok(Ok(other)) => anyhow::bail!("the broker answered CONNECT with {other:?}"),
        Ok(Err(e)) => return Err(e),
        Err(_) => anyhow::bail!("no CONNACK within 10 s"),
    }
    counters.connects.fetch_add(1, Ordering::Relaxed);
    counters.connected.fetch_add(1, Ordering::Relaxed);
    let outcome = connected(device, shared, shutdown, state, &mut socket, &mut out, &mut input).await;
    counters.connected.fetch_sub(1, Ordering::Relaxed);
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn connected(
    device: &DevicePlan,
    shared: &Shared,
    shutdown: &Shutdown,
    state: &mut bool,
    socket: &mut TcpStream,
    out: &mut BytesMut,
    input: &mut BytesMut,
) -> anyhow::Result<()> {
    let (config, counters) = (&shared.config, &shared.counters);
    let topics = Topics::new(&device.root);
    let availability = topics.name(&Topic::Availability(device.id.clone()));
    let mut pkid: u16 = 0;
    let mut next_pkid = move || {
        pkid = pkid % u16::MAX + 1;
        pkid
    };
    out.clear();
    let mut online = Publish::new(&availability, QoS::AtLeastOnce, Availability::Online.encode());
    online.retain = true;
    online.pkid = next_pkid();
    Packet::Publish(online).write(out, MAX_PACKET)?;
    counters.sent.fetch_add(1, Ordering::Relaxed);
    let state_topic = match device.kind {
        FleetKind::Sensor(kind) => topics.name(&Topic::Sensor { kind, id: device.id.clone() }),
        FleetKind::Bulb => {
            let set = topics.name(&Topic::LightSet(device.id.clone()));
            let mut subscribe = Subscribe::new(set, QoS::AtLeastOnce);
            subscribe.pkid = next_pkid();
            Packet::Subscribe(subscribe).write(out, MAX_PACKET)?;
            topics.name(&Topic::LightState(device.id.clone()))
        }
    };
    // The retained state a real device publishes on connect.
    report(device, *state, &state_topic, config.qos, next_pkid(), out)?;
    counters.sent.fetch_add(1, Ordering::Relaxed);
    socket.write_all(out).await?;

    // The first report at a random point of the period, so the fleet's events are spread evenly.
    let period = shared.period;
    let mut next_event = period.map(|p| tokio::time::Instant::now() + p.mul_f64(fastrand::f64()));
    let keep_alive = Duration::from_secs(u64::from(KEEP_ALIVE_S));
    let mut last_write = tokio::time::Instant::now();
    loop {
        let ping_at = last_write + keep_alive;
        let wake = next_event.map_or(ping_at, |e| e.min(ping_at));
        tokio::select! {
            () = shutdown.wait() => {
                // A clean goodbye: offline, retained, then DISCONNECT (the will is not needed).
                out.clear();
                let mut offline = Publish::new(&availability, QoS::AtMostOnce, Availability::Offline.encode());
                offline.retain = true;
                Packet::Publish(offline).write(out, MAX_PACKET)?;
                Packet::Disconnect.write(out, MAX_PACKET)?;
                let _ = tokio::time::timeout(Duration::from_secs(2), socket.write_all(out)).await;
                return Ok(());
            }
            packet = read_packet(socket, input) => {
                match packet? {
                    Packet::PubAck(_) => {
                        counters.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Packet::Publish(command) => {
                        // A bulb's command: acknowledged, then its new state reported.
                        out.clear();
                        if command.qos == QoS::AtLeastOnce {
                            Packet::PubAck(PubAck::new(command.pkid)).write(out, MAX_PACKET)?;
                        }
                        counters.commands.fetch_add(1, Ordering::Relaxed);
                        // As a bulb reads it: OFF, or a brightness of 0, turns it off; anything
                        // else it can read turns it on; what it cannot read changes nothing.
                        if let Ok(command) = protocol::LightCommand::decode(&command.payload) {
                            *state = match (command.state, command.brightness) {
                                (Some(Power::Off), _) | (_, Some(0)) => false,
                                (Some(Power::On), _) | (_, Some(_)) => true,
                                (None, None) => *state,
                            };
                        }
                        report(device, *state, &state_topic, config.qos, next_pkid(), out)?;
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                        socket.write_all(out).await?;
                        last_write = tokio::time::Instant::now();
                    }
                    _ => {}
                }
            }
            () = tokio::time::sleep_until(wake) => {
                out.clear();
                if next_event.is_some_and(|e| e <= tokio::time::Instant::now()) {
                    // A sensor's state changes; a bulb reports its state again (a power report)
                    // and changes only when told.
                    if device.kind != FleetKind::Bulb {
                        *state = !*state;
                    }
                    report(device, *state, &state_topic, config.qos, next_pkid(), out)?;
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    next_event = next_event.zip(period).map(|(e, p)| e + p);
                } else {
                    Packet::PingReq.write(out, MAX_PACKET)?;
                }
                socket.write_all(out).await?;
                last_write = tokio::time::Instant::now();
            }
        }
    }
}

/// The device's state as the home's payload, written to `out`.
fn report(device: &DevicePlan, on: bool, topic: &str, qos: QoS, pkid: u16, out: &mut BytesMut) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let payload = match device.kind {
        FleetKind::Sensor(kind) => {
            let state: SensorState = if on { kind.active() } else { kind.idle() };
            SensorReading { state, device_id: device.id.clone(), ts: now }.encode()
        }
        FleetKind::Bulb => LightState {
            state: if on { Power::On } else { Power::Off },
            brightness: if on { 100 } else { 0 },
            color_temp_k: None,
            color_mode: None,
            color_temp: None,
            effect: None,
            source: LightSource::Manual,
            device_id: device.id.clone(),
            ts: now,
        }
        .encode(),
    };
    let mut publish = Publish::new(topic, qos, payload);
    publish.retain = true;
    if qos != QoS::AtMostOnce {
        publish.pkid = pkid;
    }
    Packet::Publish(publish).write(out, MAX_PACKET)?;
    Ok(())
}

/// Reads one packet, keeping what follows it in `input`.
async fn read_packet(socket: &mut TcpStream, input: &mut BytesMut) -> anyhow::Result<Packet> {
    loop {
        match Packet::read(input, MAX_PACKET) {
            Ok(packet) => return Ok(packet),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => anyhow::bail!("unreadable packet from the broker: {e:?}"),
        }
        input.reserve(64);
        if socket.read_buf(input).await? == 0 {
            anyhow::bail!("the broker closed the connection");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_spreads_kinds_and_houses() {
        let one = plan("home", 8, 1);
        assert_eq!(one.len(), 8);
        assert_eq!(
            one[0],
            DevicePlan { root: "home".into(), id: "fleet-door-0".into(), kind: FleetKind::Sensor(SensorKind::Door) }
        );
        assert_eq!(one[3].kind, FleetKind::Bulb);
        assert_eq!(one[4].id, "fleet-door-4");
        let ids: std::collections::HashSet<_> = one.iter().map(|d| (&d.root, &d.id)).collect();
        assert_eq!(ids.len(), 8, "ids repeat");

        let two = plan("home", 8, 2);
        assert_eq!((two[0].root.as_str(), two[1].root.as_str()), ("home-1", "home-2"));
        assert_eq!(two.iter().filter(|d| d.root == "home-2").count(), 4);
        let ids: std::collections::HashSet<_> = two.iter().map(|d| (&d.root, &d.id)).collect();
        assert_eq!(ids.len(), 8, "ids repeat within a house");
    }
}
