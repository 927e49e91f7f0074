//! The notification benchmark of issue #11: from a window opening to the webhook receiving the
//! panel's `triggered`.
//!
//! One run, one Mosquitto (`set_tcp_nodelay true`), the panel and the notifier as tasks, and an
//! HTTP receiver in this process (plain HTTP on 127.0.0.1, answering 200). The panel is armed away
//! with no delays; a perimeter window opens, and the time is taken from its publish to the
//! receiver reading the request. Each intrusion is disarmed before the next.
//!
//! `cargo bench -p bench --bench notify [-- --intrusions N]` (`just bench-notify`)

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use testkit::{Mosquitto, Probe, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::{armed, percentile};

const WARM_UP: usize = 3;

pub fn main() -> std::process::ExitCode {
    match armed::intrusions("notify-bench", 50) {
        Some(intrusions) => device_runtime::daemon::block_on("notify-bench", 2, run(intrusions)),
        None => std::process::ExitCode::from(2),
    }
}

/// Accepts connections and reports the instant each request's body is in, answering 200.
fn receiver(listener: TcpListener) -> mpsc::UnboundedReceiver<Instant> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = socket.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse().ok()))
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    let _ = tx.send(Instant::now());
                    buffer.drain(..end + 4 + length);
                    if socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    rx
}

async fn run(intrusions: usize) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start().context("cannot start Mosquitto")?;
    let url = mosquitto.url();
    let dir = tempfile::tempdir()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/alarm", listener.local_addr()?);
    let mut received = receiver(listener);
    let panel = armed::panel(&url, dir.path())?;
    let notifier = notifier::Config {
        mqtt: armed::mqtt(&url, "notifier")?,
        channels: vec![notifier::ChannelConfig {
            name: "bench".into(),
            to: notifier::Destination::Webhook {
                url: hook,
                preset: notifier::Preset::Json,
                headers: Default::default(),
            },
            events: vec![protocol::PanelEventKind::Triggered],
            max_per_minute: 100_000,
        }],
        share_group: None,
    };
    let topics = armed::BenchTopics::new();
    let window = armed::BenchTopics::window("bench-window");
    let mut probe = Probe::connect(&url, "notify-bench").await?;
    for filter in [&topics.status, &topics.availability] {
        probe.subscribe(filter).await?;
    }
    let panel = Running::spawn(|s| security_controller::run(panel, s));
    let notifier = Running::spawn(|s| notifier::run(notifier, s));
    let within = Duration::from_secs(10);
    armed::online(&mut probe, "notifier", within).await?;
    probe.expect(&topics.status, armed::state("disarmed"), within).await?;

    println!("notify bench (issue #11)");
    println!("  broker:   {url} (set_tcp_nodelay), panel and notifier in one process, one Mosquitto");
    println!("  receiver: plain HTTP on 127.0.0.1 in the same process, answering 200");
    println!("  command:  cargo bench -p bench --bench notify -- --intrusions {intrusions}");
    let mut samples = Vec::new();
    for round in 0..intrusions + WARM_UP {
        probe.publish(&window, "CLOSED", true).await?;
        armed::arm_away(&mut probe, &topics, within).await.with_context(|| format!("round {round}"))?;
        let sent = Instant::now();
        probe.publish(&window, "OPEN", true).await?;
        let got = tokio::time::timeout(within, received.recv())
            .await
            .with_context(|| format!("round {round}: no webhook within {within:?}"))?
            .context("the receiver stopped")?;
        if round >= WARM_UP {
            samples.push(got.saturating_duration_since(sent));
        }
        armed::disarm(&mut probe, &topics, within).await.with_context(|| format!("round {round}"))?;
    }
    notifier.stop().await;
    panel.stop().await;
    if samples.is_empty() {
        bail!("no samples");
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  window OPEN → webhook received: n {}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 90.0)),
        ms(percentile(&samples, 99.0)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
    Ok(())
}
