//! Sensor traffic: the open-loop background of the loaded phase, and the flood of the memory phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::{SensorKind, SensorState, Topic, Topics};
use rumqttc::{AsyncClient, QoS};
use tokio::task::JoinHandle;

use crate::mqtt::{self, reading};

/// Motion sensors toggling in the background (interior zone: ignored while armed home).
const MOTION_SENSORS: usize = 8;
/// Windows sending CLOSED heartbeats in the background (perimeter, but never opening).
const WINDOW_SENSORS: usize = 4;
/// Motion sensors of the memory phase's flood.
const FLOOD_SENSORS: usize = 100;

/// What a load did.
pub struct Sent {
    pub published: u64,
    pub elapsed: Duration,
    /// How far the open-loop schedule ever fell behind (zero for the flood, which has none).
    pub max_lag: Duration,
}

impl Sent {
    pub fn per_second(&self) -> f64 {
        self.published as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Background readings at `rate` a second, at absolute deadlines, until stopped.
pub struct Background {
    stop: Arc<AtomicBool>,
    task: JoinHandle<anyhow::Result<Sent>>,
    pump: JoinHandle<()>,
}

impl Background {
    pub fn start(port: u16, topics: &Topics, rate: u32) -> Background {
        let (client, pump) = mqtt::publisher(port, "bench-background");
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(background(client, sensors(topics), rate, stop.clone()));
        Background { stop, task, pump }
    }

    pub async fn stop(self) -> anyhow::Result<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.task.await.context("the background load panicked")?;
        // Let the last readings leave before the connection goes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.pump.abort();
        sent
    }
}

/// (topic, device id, kind) of every background sensor: motion first, then windows.
fn sensors(topics: &Topics) -> Vec<(String, String, SensorKind)> {
    let named = |kind, prefix: &'static str, count| {
        (1..=count).map(move |i| {
            let id = format!("{prefix}-{i}");
            (topics.name(&Topic::Sensor { kind, id: id.clone() }), id, kind)
        })
    };
    named(SensorKind::Motion, "bench-motion", MOTION_SENSORS)
        .chain(named(SensorKind::Window, "bench-window", WINDOW_SENSORS))
        .collect()
}

async fn background(
    client: AsyncClient,
    sensors: Vec<(String, String, SensorKind)>,
    rate: u32,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Sent> {
    let period = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now();
    let mut max_lag = Duration::ZERO;
    let mut i: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + period * i;
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(tokio::time::Instant::now() - due);
        let (topic, id, kind) = &sensors[i as usize % sensors.len()];
        let state = match kind {
            SensorKind::Motion if (i as usize / sensors.len()).is_multiple_of(2) => SensorState::Motion,
            SensorKind::Motion => SensorState::NoMotion,
            _ => SensorState::Closed,
        };
        client.publish(topic, QoS::AtLeastOnce, true, reading(id, state)).await?;
        i += 1;
    }
    let elapsed = start.elapsed();
    for (topic, id, _) in sensors.iter().filter(|(_, _, k)| *k == SensorKind::Motion) {
        client.publish(topic, QoS::AtLeastOnce, true, reading(id, SensorState::NoMotion)).await?;
    }
    Ok(Sent { published: u64::from(i), elapsed, max_lag })
}

/// Motion readings over [`FLOOD_SENSORS`] sensors, QoS 0, as fast as the broker takes them, in
/// batches: after each, `marker` on `marker_topic` on the same connection reaches the panel after
/// the batch, and the caller waits for its answer. Batches keep the backlog below the broker's
/// `max_queued_messages`: past it the broker drops (and says so), which measures the broker.
pub struct Flood {
    client: rumqttc::AsyncClient,
    pump: JoinHandle<()>,
    ids: Vec<(String, String)>,
    sent: u64,
}

impl Flood {
    pub fn connect(port: u16, topics: &Topics) -> Flood {
        let (client, pump) = mqtt::publisher(port, "bench-flood");
        let ids = (1..=FLOOD_SENSORS)
            .map(|i| {
                let id = format!("bench-flood-{i}");
                (topics.name(&Topic::Sensor { kind: SensorKind::Motion, id: id.clone() }), id)
            })
            .collect();
        Flood { client, pump, ids, sent: 0 }
    }

    /// Sends `count` readings and then the marker; returns how long the readings took to hand over.
    pub async fn batch(&mut self, count: u64, (marker_topic, marker): (&str, &str)) -> anyhow::Result<Duration> {
        let start = Instant::now();
        for _ in 0..count {
            let i = self.sent;
            let (topic, id) = &self.ids[i as usize % FLOOD_SENSORS];
            let state =
                if (i / FLOOD_SENSORS as u64).is_multiple_of(2) { SensorState::Motion } else { SensorState::NoMotion };
            self.client.publish(topic, QoS::AtMostOnce, true, reading(id, state)).await?;
            self.sent += 1;
        }
        let elapsed = start.elapsed();
        self.client.publish(marker_topic, QoS::AtLeastOnce, false, marker.as_bytes().to_vec()).await?;
        Ok(elapsed)
    }

    pub fn stop(self) {
        self.pump.abort();
    }
}
