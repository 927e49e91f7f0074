//! Door OPEN → siren command at the watcher: the bare floor, the minimal controller and the panel,
//! idle and under background load; and the panel while a flood of wrong codes arrives.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use protocol::{PanelState, Power, SensorState};
use rumqttc::QoS;

use crate::load::{Background, Sent};
use crate::mqtt::{self, WITHIN};
use crate::options::Options;
use crate::panel::{Home, LOCKOUT_S, PIN, Silence, disarm};
use crate::{minimal, peers, percentile};

/// The rows of the table, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Bare,
    Minimal,
    /// The Python paho-mqtt peer, where it is installed.
    Paho,
    Panel,
}
/// The least time between two intrusions.
const EVERY: Duration = Duration::from_millis(50);
/// Intrusions measured first and thrown away (connections and caches warming up).
const WARM_UP: usize = 3;
/// Fewest samples of a row, however short `--seconds`.
const AT_LEAST: usize = 10;
/// Wrong codes sent before each intrusion of the flood phase.
pub const WRONG_CODES: usize = 200;

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
}

/// Every row idle, then every row again under the background load.
pub async fn table(options: &Options, home: &mut Home) -> anyhow::Result<Table> {
    let minimal = minimal::start(home.port, &home.names).await?;
    let paho = if peers::paho_installed() { Some(peers::paho(home.port, &home.names).await?) } else { None };
    let mut rows = vec![Row::Bare, Row::Minimal];
    rows.extend(paho.as_ref().map(|_| Row::Paho));
    rows.push(Row::Panel);
    home.arm_home().await.context("the panel never armed")?;
    let idle = measure_rows(options, home, &rows).await.context("idle")?;
    let background = Background::start(home.port, &home.names.topics, options.rate);
    let loaded = measure_rows(options, home, &rows).await.context("under background load")?;
    let background = background.stop().await?;
    minimal.abort();
    drop(paho);
    home.command(&disarm(PIN), PanelState::Disarmed).await?;
    Ok(Table { rows, idle, loaded, background })
}

impl Table {
    /// The samples of `row` in `load` (`idle` or `loaded`).
    pub fn of<'t>(&self, load: &'t [Samples], row: Row) -> Option<&'t Samples> {
        self.rows.iter().position(|r| *r == row).map(|i| &load[i])
    }
}

async fn measure_rows(options: &Options, home: &mut Home, rows: &[Row]) -> anyhow::Result<Vec<Samples>> {
    let mut all = Vec::new();
    for &row in rows {
        all.push(measure(options, home, row).await.with_context(|| format!("row {row:?}"))?);
    }
    Ok(all)
}

/// Intrusions one at a time for `--seconds` (and at least [`AT_LEAST`]), the first few discarded.
async fn measure(options: &Options, home: &mut Home, row: Row) -> anyhow::Result<Samples> {
    let end = Instant::now() + Duration::from_secs(options.seconds);
    let mut samples = Vec::new();
    for i in 0.. {
        if Instant::now() >= end && samples.len() >= AT_LEAST {
            break;
        }
        let next = Instant::now() + EVERY;
        let took = intrusion(home, row).await.with_context(|| format!("intrusion #{} was not observed", i + 1))?;
        if i >= WARM_UP {
            samples.push(took);
        }
        tokio::time::sleep_until(next.into()).await;
    }
    Ok(Samples::new(samples))
}

/// One door OPEN and the time until its siren command reaches the watcher; the panel is re-armed after.
async fn intrusion(home: &mut Home, row: Row) -> anyhow::Result<Duration> {
    home.watch.drain();
    let names = home.names.clone();
    let (door, answer) = match row {
        Row::Bare => (&names.bare, &names.bare),
        Row::Minimal => (&names.minimal_door, &names.minimal_siren),
        Row::Paho => (&names.paho_door, &names.paho_siren),
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
    Ok(seen.at.duration_since(opened))
}

/// Intrusions right after a flood of [`WRONG_CODES`] messages: the panel's behind wrong DISARMs on
/// its keypad topic, and, for the floor, the minimal controller's behind as many messages on its
/// own input topic (the broker forwards and the controller reads the same number either way).
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
