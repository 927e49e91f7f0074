//! Door OPEN → siren command at the watcher: the bare floor, the minimal controller, the peers that
//! are installed and the panel, idle and under background load; and the panel behind, and while,
//! wrong codes arrive.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use protocol::{PanelState, Power, SensorState};
use rumqttc::QoS;

use crate::load::{Background, Sent};
use crate::minimal::{self, Kind};
use crate::mqtt::{self, WITHIN};
use crate::options::Options;
use crate::panel::{Home, LOCKOUT_S, PIN, Silence, disarm};
use crate::{peers, percentile};

/// The rows of the table, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Bare,
    /// The minimal controller as a task of the bench's own process.
    Minimal,
    /// The minimal controller in a process of its own, as the panel is.
    MinimalProcess,
    /// The same answer from a process with no runtime: one thread blocking in `read`.
    Blocking,
    /// That process commanding a real siren, as the panel does (its command goes to the siren
    /// and the watcher): what the panel is held to.
    MinimalSiren,
    /// The Python paho-mqtt peer, where it is installed.
    Paho,
    /// The Node-RED flow, where Node-RED is installed.
    NodeRed,
    Panel,
}
/// The least time between two intrusions.
const EVERY: Duration = Duration::from_millis(50);
/// Intrusions measured first and thrown away (connections and caches warming up).
const WARM_UP: usize = 3;
/// Fewest samples of a row, however short `--seconds`.
const AT_LEAST: usize = 10;
/// Wrong codes sent before each intrusion of the flood phase, and during each of the paced phase.
pub const WRONG_CODES: usize = 200;
/// One wrong code this often in the paced phase: [`WRONG_CODES`] of them take a second.
pub const PACE: Duration = Duration::from_millis(5);

/// Latencies of one row and load, sorted.
pub struct Samples(Vec<Duration>);

impl Samples {
    fn new(mut v: Vec<Duration>) -> Samples {
        v.sort();
        Samples(v)
    }

    pub fn n(&self) -> usize {
        self.0.len()
    }

    pub fn p50(&self) -> Duration {
        percentile(&self.0, 50.0)
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.0, 99.0)
    }
}

pub struct Table {
    /// The rows measured, in order; `idle` and `loaded` follow it.
    pub rows: Vec<Row>,
    pub idle: Vec<Samples>,
    pub loaded: Vec<Samples>,
    pub background: Sent,
    /// Where Node-RED is installed (version and directory), when it is.
    pub node_red: Option<String>,
}

/// Every row idle, then every row again under the background load.
pub async fn table(options: &Options, home: &mut Home) -> anyhow::Result<Table> {
    let minimal = minimal::start(home.port, &home.names).await?;
    let names = &home.names;
    let minimal_process =
        minimal::Process::spawn(Kind::Runtime, home.port, &names.minimal_process_door, &names.minimal_process_siren)
            .await?;
    let blocking = minimal::Process::spawn(Kind::Blocking, home.port, &names.blocking_door, &names.blocking_siren)
        .await
        .context("the blocking controller")?;
    let heard = minimal::Process::spawn(Kind::Runtime, home.port, &names.heard_door, &names.heard_siren).await?;
    let paho = if peers::paho_installed() { Some(peers::paho(home.port, names).await?) } else { None };
    let installed = peers::NodeRed::find();
    let node_red = match &installed {
        Some(n) => Some(peers::node_red(n, home).await.context("cannot start Node-RED")?),
        None => None,
    };
    let mut rows = vec![Row::Bare, Row::Minimal, Row::MinimalProcess, Row::Blocking, Row::MinimalSiren];
    rows.extend(paho.as_ref().map(|_| Row::Paho));
    rows.extend(node_red.as_ref().map(|_| Row::NodeRed));
    rows.push(Row::Panel);
    home.arm_home().await.context("the panel never armed")?;
    let idle = measure_rows(options, home, &rows).await.context("idle")?;
    let background = Background::start(home.port, &home.names.topics, options.rate);
    let loaded = measure_rows(options, home, &rows).await.context("under background load")?;
    let background = background.stop().await?;
    minimal.abort();
    drop(minimal_process);
    drop(blocking);
    drop(heard);
    drop(paho);
    drop(node_red);
    home.command(&disarm(PIN), PanelState::Disarmed).await?;
    Ok(Table { rows, idle, loaded, background, node_red: installed.map(|n| n.describe()) })
}

impl Table {
    /// The samples of `row` in `load` (`idle` or `loaded`).
    pub fn of<'t>(&self, load: &'t [Samples], row: Row) -> Option<&'t Samples> {
        self.rows.iter().position(|r| *r == row).map(|i| &load[i])
    }
}

/// Every row in turn, one intrusion each per round, for `--seconds` per row (and at least
/// [`AT_LEAST`] samples of each), the first [`WARM_UP`] rounds discarded. Interleaved, not one row
/// after another: whatever else the machine does in those seconds (and it moves a lot between
/// runs) falls on every row alike, so the ratios compare the controllers, not the moments.
async fn measure_rows(options: &Options, home: &mut Home, rows: &[Row]) -> anyhow::Result<Vec<Samples>> {
    let end = Instant::now() + Duration::from_secs(options.seconds) * rows.len() as u32;
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); rows.len()];
    for round in 0.. {
        if Instant::now() >= end && round >= WARM_UP + AT_LEAST {
            break;
        }
        for (&row, samples) in rows.iter().zip(&mut all) {
            let next = Instant::now() + EVERY;
            let took = intrusion(home, row)
                .await
                .with_context(|| format!("row {row:?}: intrusion #{} was not observed", round + 1))?;
            if round >= WARM_UP {
                samples.push(took);
            }
            tokio::time::sleep_until(next.into()).await;
        }
    }
    Ok(all.into_iter().map(Samples::new).collect())
}

/// One door OPEN and the time until its siren command reaches the watcher; the panel is re-armed after.
async fn intrusion(home: &mut Home, row: Row) -> anyhow::Result<Duration> {
    home.watch.drain();
    let names = home.names.clone();
    let (door, answer) = match row {
        Row::Bare => (&names.bare, &names.bare),
        Row::Minimal => (&names.minimal_door, &names.minimal_siren),
        Row::MinimalProcess => (&names.minimal_process_door, &names.minimal_process_siren),
        Row::Blocking => (&names.blocking_door, &names.blocking_siren),
        Row::MinimalSiren => (&names.heard_door, &names.heard_siren),
        Row::Paho => (&names.paho_door, &names.paho_siren),
        Row::NodeRed => (&names.node_red_door, &names.node_red_siren),
        Row::Panel => (&names.door, &names.siren_command),
    };
    let opened = home.sense(door, SensorState::Open).await?;
    let seen = home
        .watch
        .until("the siren command", WITHIN, |m| {
            m.topic == *answer && (row != Row::Panel || m.siren_command(&names) == Some(Power::On))
        })
        .await?;
    if row == Row::Panel {
        home.rearm().await.context("the panel did not re-arm")?;
    }
    if row == Row::MinimalSiren {
        home.silence_heard().await.context("the minimal controller's siren did not stop")?;
    }
    Ok(seen.at.duration_since(opened))
}

/// Intrusions right after a flood of [`WRONG_CODES`] messages, the worst case (all of them queued
/// ahead of the door): the panel's behind wrong DISARMs on its keypad topic, and, for the floor, the
/// minimal controller's behind as many messages on its own input topic (the broker forwards and the
/// controller reads the same number either way).
pub struct CodeFlood {
    pub panel: Samples,
    pub minimal: Samples,
}

pub async fn under_wrong_codes(options: &Options, home: &mut Home) -> anyhow::Result<CodeFlood> {
    let (flooder, pump) = mqtt::publisher(home.port, "bench-wrong-codes");
    let minimal = minimal::start(home.port, &home.names).await?;
    let mut floor = Vec::new();
    for round in 1..=options.floods {
        let took = flooded_minimal(home, &flooder).await.with_context(|| format!("minimal flood round {round}"));
        floor.push(took?);
    }
    minimal.abort();
    home.arm_home().await?;
    let mut samples = Vec::new();
    for round in 1..=options.floods {
        let took = flooded_intrusion(home, &flooder).await.with_context(|| format!("flood round {round}"));
        samples.push(took?);
    }
    pump.abort();
    home.command(&disarm(PIN), PanelState::Disarmed).await?;
    ensure!(!samples.is_empty() && !floor.is_empty(), "no intrusion was measured under wrong codes");
    Ok(CodeFlood { panel: Samples::new(samples), minimal: Samples::new(floor) })
}

async fn flooded_minimal(home: &mut Home, flooder: &rumqttc::AsyncClient) -> anyhow::Result<Duration> {
    home.watch.drain();
    let names = home.names.clone();
    for _ in 0..WRONG_CODES {
        flooder.publish(&names.minimal_door, QoS::AtLeastOnce, false, disarm("0000")).await?;
    }
    let opened = home.sense(&names.minimal_door, SensorState::Open).await?;
    let seen = home.watch.until("the minimal controller's siren", WITHIN, |m| m.topic == names.minimal_siren).await?;
    tokio::time::sleep(EVERY).await;
    Ok(seen.at.duration_since(opened))
}

async fn flooded_intrusion(home: &mut Home, flooder: &rumqttc::AsyncClient) -> anyhow::Result<Duration> {
    home.watch.drain();
    for _ in 0..WRONG_CODES {
        flooder.publish(&home.names.panel_set, QoS::AtLeastOnce, false, disarm("0000")).await?;
    }
    let names = home.names.clone();
    let opened = home.sense(&names.door, SensorState::Open).await?;
    let on = |m: &mqtt::Seen| m.siren_command(&names) == Some(Power::On);
    let seen = home.watch.until("the siren command under wrong codes", WITHIN, on).await?;
    disarm_after_lockout(home).await?;
    home.close_door().await?;
    home.arm_home().await?;
    Ok(seen.at.duration_since(opened))
}

/// The right PIN, again and again until the lockout the wrong codes caused is over.
async fn disarm_after_lockout(home: &mut Home) -> anyhow::Result<()> {
    let mut seen = Silence::default();
    let deadline = Instant::now() + WITHIN + Duration::from_secs(LOCKOUT_S);
    while Instant::now() < deadline {
        home.keypad.publish(&home.names.panel_set, disarm(PIN), false).await?;
        if home.await_silence(&mut seen, Duration::from_millis(500)).await.is_ok() {
            return Ok(());
        }
    }
    anyhow::bail!("the right PIN never disarmed after the lockout")
}

/// Intrusions while [`WRONG_CODES`] wrong codes arrive one every [`PACE`], and how far their
/// open-loop schedule ever fell behind.
pub struct PacedCodes {
    pub panel: Samples,
    pub max_lag: Duration,
}

/// One intrusion per round while the wrong codes arrive, round `k` of `n` opening the door at
/// (k + ½) / n of their second, so that the rounds together sample all of it: the first codes being
/// checked (Argon2id, off the panel's loop), then the lockout they cause.
pub async fn while_wrong_codes(options: &Options, home: &mut Home) -> anyhow::Result<PacedCodes> {
    let (keypad, pump) = mqtt::publisher(home.port, "bench-paced-codes");
    home.arm_home().await?;
    let span = PACE * WRONG_CODES as u32;
    let mut samples = Vec::new();
    let mut max_lag = Duration::ZERO;
    for round in 0..options.floods {
        let at = span * (2 * round + 1) / (2 * options.floods);
        let paced = paced_intrusion(home, &keypad, at).await.with_context(|| format!("paced round {}", round + 1));
        let (took, lag) = paced?;
        samples.push(took);
        max_lag = max_lag.max(lag);
    }
    pump.abort();
    home.command(&disarm(PIN), PanelState::Disarmed).await?;
    ensure!(!samples.is_empty(), "no intrusion was measured while wrong codes arrived");
    Ok(PacedCodes { panel: Samples::new(samples), max_lag })
}

/// The door opens `at` after the first of the paced wrong codes; once they are all sent, the panel
/// is disarmed (after the lockout they caused), the door closed and the panel armed again.
async fn paced_intrusion(
    home: &mut Home,
    keypad: &rumqttc::AsyncClient,
    at: Duration,
) -> anyhow::Result<(Duration, Duration)> {
    home.watch.drain();
    let names = home.names.clone();
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let codes = tokio::spawn(paced_codes(keypad.clone(), names.panel_set.clone(), start));
    tokio::time::sleep_until(start + at).await;
    let opened = home.sense(&names.door, SensorState::Open).await?;
    let on = |m: &mqtt::Seen| m.siren_command(&names) == Some(Power::On);
    let seen = home.watch.until("the siren command while wrong codes arrive", WITHIN, on).await;
    let lag = codes.await.context("the paced wrong codes panicked")?.context("the paced wrong codes stopped")?;
    let seen = seen?;
    disarm_after_lockout(home).await?;
    home.close_door().await?;
    home.arm_home().await?;
    Ok((seen.at.duration_since(opened), lag))
}

/// [`WRONG_CODES`] wrong DISARMs at `start`, `start + PACE`, … (absolute deadlines, never paced by
/// the answers); how far behind its schedule it ever was.
async fn paced_codes(
    keypad: rumqttc::AsyncClient,
    topic: String,
    start: tokio::time::Instant,
) -> anyhow::Result<Duration> {
    let mut max_lag = Duration::ZERO;
    for i in 0..WRONG_CODES as u32 {
        let due = start + PACE * i;
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(tokio::time::Instant::now() - due);
        keypad.publish(&topic, QoS::AtLeastOnce, false, disarm("0000")).await?;
    }
    Ok(max_lag)
}
