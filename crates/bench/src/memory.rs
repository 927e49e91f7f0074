//! The panel's resident memory: after arm/disarm cycles, and around a flood of sensor readings.

use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::PanelState;

use crate::load::{self, Sent};
use crate::panel::{Home, PIN, disarm};

/// How long the panel may take to work through the flood.
const FLOOD_PATIENCE: Duration = Duration::from_secs(600);

pub struct Cycles {
    pub count: u32,
    pub elapsed: Duration,
    pub rss_kib: u64,
}

/// `count` times ARM_AWAY then DISARM with the right PIN (one Argon2id check each).
pub async fn arm_disarm_cycles(home: &mut Home, count: u32) -> anyhow::Result<Cycles> {
    let start = Instant::now();
    for i in 0..count {
        let cycle = async {
            home.command(r#"{"action":"ARM_AWAY"}"#, PanelState::ArmedAway).await?;
            home.command(&disarm(PIN), PanelState::Disarmed).await
        };
        cycle.await.with_context(|| format!("arm/disarm cycle {} of {count} failed", i + 1))?;
    }
    let rss_kib = home.panel.rss_kib()?;
    Ok(Cycles { count, elapsed: start.elapsed(), rss_kib })
}

pub struct Flooded {
    pub before_kib: u64,
    pub after_kib: u64,
    /// Two seconds later, with nothing arriving.
    pub settled_kib: u64,
    pub sent: Sent,
    /// From the first reading to the panel's answer to a command sent after the last one.
    pub handled_in: Duration,
}

impl Flooded {
    pub fn growth_percent(&self) -> f64 {
        (self.after_kib as f64 - self.before_kib as f64) * 100.0 / self.before_kib as f64
    }
}

/// Armed home (motion is ignored), `count` motion readings, then an ARM_HOME on the same
/// connection: its answer (a status or an event) means the panel has read them all.
pub async fn sensor_flood(home: &mut Home, count: u64) -> anyhow::Result<Flooded> {
    home.arm_home().await?;
    let before_kib = home.panel.rss_kib()?;
    home.watch.drain();
    let start = Instant::now();
    let marker = (home.names.panel_set.as_str(), r#"{"action":"ARM_HOME"}"#);
    let (sent, pump) = load::flood(home.port, &home.names.topics, count, marker).await?;
    let names = &home.names;
    let answered = home
        .watch
        .until("the panel's answer to the ARM_HOME after the flood", FLOOD_PATIENCE, |m| {
            m.topic == names.events || m.status(names).is_some()
        })
        .await;
    pump.abort();
    let handled_in = answered?.at.duration_since(start);
    let after_kib = home.panel.rss_kib()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled_kib = home.panel.rss_kib()?;
    home.command(&disarm(PIN), PanelState::Disarmed).await?;
    Ok(Flooded { before_kib, after_kib, settled_kib, sent, handled_in })
}
