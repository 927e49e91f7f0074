//! The panel's resident memory: after arm/disarm cycles, and around a flood of sensor readings.

use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::PanelState;

use crate::load::{self, Sent};
use crate::panel::{Home, PIN, disarm};

/// How long the panel may take to work through the flood.
const FLOOD_PATIENCE: Duration = Duration::from_secs(60);

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

/// Readings per batch of the flood: well below the broker's `max_queued_messages`.
const BATCH: u64 = 50_000;

/// Armed home (motion is ignored), `count` motion readings in batches, each followed by an
/// ARM_HOME on the same connection: its answer (a `failed_to_arm` event: already armed) means the
/// panel has read the batch.
pub async fn sensor_flood(home: &mut Home, count: u64) -> anyhow::Result<Flooded> {
    home.arm_home().await?;
    let before_kib = home.panel.rss_kib()?;
    let mut flood = load::Flood::connect(home.port, &home.names.topics);
    let start = Instant::now();
    let mut handing_over = Duration::ZERO;
    let mut sent = 0;
    while sent < count {
        let n = BATCH.min(count - sent);
        home.watch.drain();
        let marker = (home.names.panel_set.as_str(), r#"{"action":"ARM_HOME"}"#);
        handing_over += flood.batch(n, marker).await?;
        let names = &home.names;
        home.watch
            .until("the panel's answer to the ARM_HOME after a batch", FLOOD_PATIENCE, |m| {
                m.topic == names.events || m.status(names).is_some()
            })
            .await?;
        sent += n;
    }
    let handled_in = start.elapsed();
    flood.stop();
    let after_kib = home.panel.rss_kib()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled_kib = home.panel.rss_kib()?;
    home.command(&disarm(PIN), PanelState::Disarmed).await?;
    let sent = Sent { published: count, elapsed: handing_over, max_lag: Duration::ZERO };
    Ok(Flooded { before_kib, after_kib, settled_kib, sent, handled_in })
}
