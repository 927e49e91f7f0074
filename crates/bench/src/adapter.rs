//! The adapter benchmark of issue #11: what the bridge's extra hop costs on the intrusion path.
//!
//! One run, one Mosquitto (`set_tcp_nodelay true`), the panel and the bridge as tasks. The panel
//! is armed away with no delays; a perimeter window opens, and the time is taken from the
//! opening's publish to the panel's siren command as a separate subscriber sees it. Two windows:
//! one publishes the home's own reading (`home/security/window/native`, the native path), the
//! other is a Zigbee2MQTT contact (`zigbee2mqtt/zigbee_window`, `{"contact":false}`) that the
//! bridge republishes (the adapter path). They take turns, each intrusion disarmed before the
//! next, so both rows see the same machine at the same moments.
//!
//! `cargo bench -p bench --bench adapter [-- --intrusions N]` (`just bench-adapter`)

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use testkit::{Mosquitto, Probe, Running};

use crate::{armed, percentile};

const WARM_UP: usize = 5;

pub fn main() -> std::process::ExitCode {
    match armed::intrusions("adapter-bench", 100) {
        Some(intrusions) => device_runtime::daemon::block_on("adapter-bench", 2, run(intrusions)),
        None => std::process::ExitCode::from(2),
    }
}

async fn run(intrusions: usize) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start().context("cannot start Mosquitto")?;
    let url = mosquitto.url();
    let dir = tempfile::tempdir()?;
    let panel = armed::panel(&url, dir.path())?;
    let bridge = bridge::Config {
        mqtt: armed::mqtt(&url, "bridge")?,
        devices: vec![bridge::Mapping {
            id: "adapted".into(),
            kind: bridge::Kind::Window,
            profile: bridge::Profile::Zigbee2mqtt,
            source: "zigbee_window".into(),
            topic: None,
            pointer: None,
            on: None,
            off: None,
            area: None,
            action: None,
        }],
    };
    let topics = armed::BenchTopics::new();
    let mut probe = Probe::connect(&url, "adapter-bench").await?;
    for filter in [&topics.siren, &topics.status, &topics.availability] {
        probe.subscribe(filter).await?;
    }
    let panel = Running::spawn(|s| security_controller::run(panel, s));
    let bridge = Running::spawn(|s| bridge::run(bridge, s));
    let within = Duration::from_secs(10);
    armed::online(&mut probe, "bridge", within).await?;
    probe.expect(&topics.status, armed::state("disarmed"), within).await?;

    println!("adapter bench (issue #11)");
    println!("  broker:  {url} (set_tcp_nodelay), panel and bridge in one process, one Mosquitto");
    println!("  command: cargo bench -p bench --bench adapter -- --intrusions {intrusions}");
    let native = armed::BenchTopics::window("native");
    let paths: [(String, &str, &[u8], &[u8]); 2] = [
        (format!("native  ({native})"), &native, b"OPEN", b"CLOSED"),
        (
            "adapter (zigbee2mqtt/zigbee_window → bridge)".to_owned(),
            "zigbee2mqtt/zigbee_window",
            br#"{"contact":false}"#,
            br#"{"contact":true}"#,
        ),
    ];
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..intrusions + WARM_UP {
        for (i, (_, topic, open, closed)) in paths.iter().enumerate() {
            probe.publish(topic, closed.to_vec(), true).await?;
            armed::arm_away(&mut probe, &topics, within)
                .await
                .with_context(|| format!("round {round}, {}", paths[i].0))?;
            let sirens = probe.count(&topics.siren);
            let sent = Instant::now();
            probe.publish(topic, open.to_vec(), true).await?;
            probe
                .expect_after(sirens, &topics.siren, |p| String::from_utf8_lossy(p).contains("\"ON\""), within)
                .await?;
            let took = sent.elapsed();
            if round >= WARM_UP {
                samples[i].push(took);
            }
            armed::disarm(&mut probe, &topics, within)
                .await
                .with_context(|| format!("round {round}, {}", paths[i].0))?;
            probe.publish(topic, closed.to_vec(), true).await?;
        }
    }
    bridge.stop().await;
    panel.stop().await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut p50 = [0.0; 2];
    for (i, (name, ..)) in paths.iter().enumerate() {
        samples[i].sort();
        if samples[i].is_empty() {
            bail!("no samples for {name}");
        }
        p50[i] = ms(percentile(&samples[i], 50.0));
        println!(
            "  window OPEN → siren command, {name}: n {}, p50 {:.2} ms, p99 {:.2} ms",
            samples[i].len(),
            p50[i],
            ms(percentile(&samples[i], 99.0))
        );
    }
    println!("  the bridge's hop adds {:.2} ms at p50 ({:.2}×)", p50[1] - p50[0], p50[1] / p50[0]);
    Ok(())
}
