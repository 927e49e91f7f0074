//! The Home Assistant benchmark of issue #10: how long from a door opening to Home Assistant's
//! state API showing it.
//!
//! One run: Mosquitto (`set_tcp_nodelay true`), a real Home Assistant Core (testkit's harness, the
//! venv of `ha/install.sh`), and the real `door-sensor` daemon code (as a task) that announces the
//! door through discovery. Then the door's reading is published as the sensor publishes it,
//! alternately `OPEN` and `CLOSED`, one change at a time; each is timed from the publish to the
//! first answer of `GET /api/states/binary_sensor.<door>` that shows it (the API is asked again as
//! soon as it answers, ~1–2 ms a round trip, which is part of the figure). The first changes warm
//! up and are not counted.
//!
//! `cargo bench -p bench --bench home_assistant [-- --openings N]` (`just bench-ha`)

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::{Payload, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics};
use testkit::{HomeAssistant, Mosquitto, Probe, Running};

use crate::percentile;

/// Changes measured first and thrown away (Home Assistant's caches warming up).
const WARM_UP: usize = 5;
const DOOR: &str = "bench-door";
const ENTITY: &str = "binary_sensor.bench_door";

pub fn main() -> std::process::ExitCode {
    let mut openings = 100;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--openings" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => openings = n,
                _ => {
                    eprintln!("home-assistant-bench: error: --openings takes a number above 0");
                    return std::process::ExitCode::from(2);
                }
            },
            "--bench" => {}
            other => {
                eprintln!("home-assistant-bench: error: unknown argument `{other}` (use --openings N)");
                return std::process::ExitCode::from(2);
            }
        }
    }
    device_runtime::daemon::block_on("home-assistant-bench", 2, run(openings))
}

async fn run(openings: usize) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start().context("cannot start Mosquitto")?;
    let ha = HomeAssistant::start(mosquitto.port()).await?;
    println!("Home Assistant bench (issue #10)");
    println!("  broker:         {} (set_tcp_nodelay)", mosquitto.url());
    println!(
        "  Home Assistant: {} {} (started in {:.1?})",
        testkit::home_assistant::VERSION,
        ha.url(),
        ha.started_in()
    );
    println!("  command:        cargo bench -p bench --bench home_assistant -- --openings {openings}");

    let config = binary_sensor::Config {
        mqtt: device_runtime::MqttConfig {
            broker: mosquitto.url().parse()?,
            ..device_runtime::MqttConfig::with_id(DOOR)
        },
        ..binary_sensor::Config::default()
    };
    let sensor = Running::spawn(|s| binary_sensor::run(SensorKind::Door, config, s));
    ha.wait_for_state(ENTITY, |s| s["state"] == "off", Duration::from_secs(30)).await?;

    let topic = Topics::default().name(&Topic::Sensor { kind: SensorKind::Door, id: DOOR.into() });
    let mut probe = Probe::connect(&mosquitto.url(), "ha-bench-door").await?;
    let (mut opened, mut closed) = (Vec::new(), Vec::new());
    for i in 0..(openings + WARM_UP) * 2 {
        let (state, shown) = if i % 2 == 0 { (SensorState::Open, "on") } else { (SensorState::Closed, "off") };
        let reading = SensorReading { state, device_id: DOOR.into(), ts: Timestamp::now() };
        let sent = Instant::now();
        probe.publish(&topic, reading.encode(), true).await?;
        loop {
            let now = ha.state(ENTITY).await?.context("the door left Home Assistant")?;
            if now["state"] == shown {
                break;
            }
            if sent.elapsed() > Duration::from_secs(10) {
                bail!("Home Assistant did not show {ENTITY} {shown} within 10 s (it shows {})", now["state"]);
            }
        }
        let took = sent.elapsed();
        if i >= WARM_UP * 2 {
            if state == SensorState::Open { opened.push(took) } else { closed.push(took) }
        }
    }
    sensor.stop().await;
    let problems = ha.problems("homeassistant.components.mqtt");
    print_row("door opened → HA state", &mut opened);
    print_row("door closed → HA state", &mut closed);
    if !problems.is_empty() {
        println!("  Home Assistant's MQTT integration complained: {problems:#?}");
    }
    Ok(())
}

fn print_row(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {what}: n {}, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 90.0)),
        ms(percentile(samples, 99.0)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
}
