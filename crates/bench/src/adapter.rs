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
use protocol::{PanelStatus, Payload};
use security_controller::codes;
use security_controller::config::{ModeDelays, PanelConfig, User};
use testkit::{Mosquitto, Probe, Running};

use crate::percentile;

const WARM_UP: usize = 5;
const PIN: &str = "1234";
const SIREN: &str = "home/control/alarm";
const STATUS: &str = "home/security/status";

pub fn main() -> std::process::ExitCode {
    let mut intrusions = 100;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--intrusions" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => intrusions = n,
                _ => {
                    eprintln!("adapter-bench: error: --intrusions takes a number above 0");
                    return std::process::ExitCode::from(2);
                }
            },
            "--bench" => {}
            other => {
                eprintln!("adapter-bench: error: unknown argument `{other}` (use --intrusions N)");
                return std::process::ExitCode::from(2);
            }
        }
    }
    device_runtime::daemon::block_on("adapter-bench", 2, run(intrusions))
}

fn mqtt(url: &str, id: &str) -> anyhow::Result<device_runtime::MqttConfig> {
    Ok(device_runtime::MqttConfig { broker: url.parse()?, ..device_runtime::MqttConfig::with_id(id) })
}

async fn run(intrusions: usize) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start().context("cannot start Mosquitto")?;
    let url = mosquitto.url();
    let dir = tempfile::tempdir()?;
    let user = User {
        name: "bench".into(),
        pin_hash: codes::hash_pin_with(PIN, codes::test_params())?,
        duress: false,
        shows_as: None,
    };
    let panel = security_controller::Config {
        mqtt: mqtt(&url, "security-controller")?,
        state_file: dir.path().join("panel.json"),
        panel: PanelConfig {
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            entry_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            allow_demo_timings: true,
            users: vec![user],
            ..PanelConfig::default()
        },
    };
    let bridge = bridge::Config {
        mqtt: mqtt(&url, "bridge")?,
        devices: vec![bridge::Mapping {
            id: "adapted".into(),
            kind: bridge::Kind::Window,
            profile: bridge::Profile::Zigbee2mqtt,
            source: "zigbee_window".into(),
            topic: None,
            pointer: None,
            on: None,
            off: None,
        }],
    };
    let mut probe = Probe::connect(&url, "adapter-bench").await?;
    for filter in [SIREN, STATUS, "home/devices/+/availability"] {
        probe.subscribe(filter).await?;
    }
    let panel = Running::spawn(|s| security_controller::run(panel, s));
    let bridge = Running::spawn(|s| bridge::run(bridge, s));
    let within = Duration::from_secs(10);
    probe.expect("home/devices/bridge/availability", |p| p == b"online", within).await?;
    probe.expect(STATUS, state("disarmed"), within).await?;

    println!("adapter bench (issue #11)");
    println!("  broker:  {url} (set_tcp_nodelay), panel and bridge in one process, one Mosquitto");
    println!("  command: cargo bench -p bench --bench adapter -- --intrusions {intrusions}");
    let paths: [(&str, &str, &[u8], &[u8]); 2] = [
        ("native  (home/security/window/native)", "home/security/window/native", b"OPEN", b"CLOSED"),
        (
            "adapter (zigbee2mqtt/zigbee_window → bridge)",
            "zigbee2mqtt/zigbee_window",
            br#"{"contact":false}"#,
            br#"{"contact":true}"#,
        ),
    ];
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..intrusions + WARM_UP {
        for (i, (_, topic, open, closed)) in paths.iter().enumerate() {
            probe.publish(topic, closed.to_vec(), true).await?;
            let n = probe.count(STATUS);
            probe.publish("home/security/panel/set", "ARM_AWAY", false).await?;
            probe
                .expect_after(n, STATUS, state("armed_away"), within)
                .await
                .with_context(|| format!("round {round}, {}: arming", paths[i].0))?;
            let sirens = probe.count(SIREN);
            let sent = Instant::now();
            probe.publish(topic, open.to_vec(), true).await?;
            probe.expect_after(sirens, SIREN, |p| String::from_utf8_lossy(p).contains("\"ON\""), within).await?;
            let took = sent.elapsed();
            if round >= WARM_UP {
                samples[i].push(took);
            }
            let n = probe.count(STATUS);
            probe.publish("home/security/panel/set", format!(r#"{{"action":"DISARM","code":"{PIN}"}}"#), false).await?;
            probe
                .expect_after(n, STATUS, state("disarmed"), within)
                .await
                .with_context(|| format!("round {round}, {}: disarming", paths[i].0))?;
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

fn state(want: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == want)
}
