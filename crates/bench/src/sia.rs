//! The monitoring-centre benchmark of issue 22: from a window opening to the alarm receiver
//! holding the burglary report, and how many reports a second the transmitter gets taken.
//!
//! One run, one Mosquitto, the panel and the SIA DC-09 transmitter as tasks of this process, and
//! pysiaalarm (the receiver of Home Assistant's `sia`) as the centre on 127.0.0.1, TCP, SIA DCS,
//! unencrypted and with AES-128. Latency: the panel armed away with no delays (its closing report
//! taken), a perimeter window opens, the time is taken from its publish to this process reading
//! the receiver's line for the `BA` report (the receiver prints each event after it ACKed it). Throughput: `--events N` burglary events
//! published at once on the panel's event topic, from the first publish to the last report read.
//!
//! `cargo bench -p bench --bench sia [-- --intrusions N]` (`just bench-sia`)

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::{PanelEvent, PanelEventKind, Payload, Timestamp, Topic, Topics};
use testkit::{Mosquitto, Probe, Running, SiaReceiver, SiaTransport};

use crate::{armed, percentile};

const WARM_UP: usize = 3;
const ACCOUNT: &str = "BE7C4";
const KEY: &str = "0123456789ABCDEF";
/// Events of the throughput phase.
const BURST: usize = 500;

pub fn main() -> std::process::ExitCode {
    if !testkit::pysiaalarm_or_skip() {
        eprintln!("sia-bench: pysiaalarm is not installed (scripts/test.sh --parts-only installs it)");
        return std::process::ExitCode::from(2);
    }
    match armed::intrusions("sia-bench", 50) {
        Some(intrusions) => device_runtime::daemon::block_on("sia-bench", 2, run(intrusions)),
        None => std::process::ExitCode::from(2),
    }
}

async fn run(intrusions: usize) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start().context("cannot start Mosquitto")?;
    println!("sia bench (issue 22)");
    println!("  broker:   {} (set_tcp_nodelay), panel and transmitter in one process, one Mosquitto", mosquitto.url());
    println!("  receiver: pysiaalarm 3.1.1 on 127.0.0.1, TCP, SIA DCS, a connection per report");
    println!("  command:  cargo bench -p bench --bench sia -- --intrusions {intrusions}");
    for key in [None, Some(KEY)] {
        let what = if key.is_some() { "AES-128" } else { "plain" };
        let samples = latency(&mosquitto.url(), key, intrusions).await.with_context(|| what.to_owned())?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "  {what:7} window OPEN → BA at the receiver: n {}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            samples.len(),
            ms(percentile(&samples, 50.0)),
            ms(percentile(&samples, 90.0)),
            ms(percentile(&samples, 99.0)),
            ms(*samples.last().unwrap_or(&Duration::ZERO)),
        );
        let (n, took) = throughput(&mosquitto.url(), key).await.with_context(|| format!("{what} throughput"))?;
        println!(
            "  {what:7} {n} events published at once → all taken in {:.2} s: {:.0} reports/s",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}

fn transmitter(
    url: &str,
    dir: &std::path::Path,
    receiver: &SiaReceiver,
    key: Option<&str>,
) -> anyhow::Result<sia_transmitter::Config> {
    Ok(sia_transmitter::Config {
        mqtt: armed::mqtt(url, "sia-transmitter")?,
        account: ACCOUNT.into(),
        key: key.map(device_runtime::Secret::new),
        receivers: vec![sia_transmitter::send::Receiver {
            address: receiver.address(),
            transport: sia_transmitter::send::Transport::Tcp,
        }],
        queue_file: dir.join("sia.queue.json"),
        queue_max: 10 * BURST,
        retry_max_s: 1.0,
        ..sia_transmitter::Config::default()
    })
}

/// Window OPEN → the receiver's line for its burglary report, `intrusions` times.
async fn latency(url: &str, key: Option<&str>, intrusions: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let receiver = SiaReceiver::start(SiaTransport::Tcp, ACCOUNT, key)?;
    let panel = armed::panel(url, dir.path())?;
    let sia = transmitter(url, dir.path(), &receiver, key)?;
    let topics = armed::BenchTopics::new();
    let window = armed::BenchTopics::window("bench-window");
    let mut probe = Probe::connect(url, "sia-bench").await?;
    for filter in [&topics.status, &topics.availability] {
        probe.subscribe(filter).await?;
    }
    let panel = Running::spawn(|s| security_controller::run(panel, s));
    let sia = Running::spawn(|s| sia_transmitter::run(sia, s));
    let within = Duration::from_secs(10);
    armed::online(&mut probe, "sia-transmitter", within).await?;
    probe.expect(&topics.status, armed::state("disarmed"), within).await?;
    let mut samples = Vec::new();
    for round in 0..intrusions + WARM_UP {
        probe.publish(&window, "CLOSED", true).await?;
        let before = receiver.arrivals().len();
        armed::arm_away(&mut probe, &topics, within).await.with_context(|| format!("round {round}"))?;
        // The closing report taken first: the burglary has the line to itself.
        report_after(&receiver, before, "CL", within).await.with_context(|| format!("round {round}: closing"))?;
        let seen = receiver.arrivals().len();
        let sent = Instant::now();
        probe.publish(&window, "OPEN", true).await?;
        let got = report_after(&receiver, seen, "BA", within).await.with_context(|| format!("round {round}"))?;
        if round >= WARM_UP {
            samples.push(got.saturating_duration_since(sent));
        }
        armed::disarm(&mut probe, &topics, within).await.with_context(|| format!("round {round}"))?;
    }
    sia.stop().await;
    panel.stop().await;
    if samples.is_empty() {
        bail!("no samples");
    }
    samples.sort();
    Ok(samples)
}

/// When the first report with `code` after the first `seen` events was read.
async fn report_after(receiver: &SiaReceiver, seen: usize, code: &str, within: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    loop {
        let arrivals = receiver.arrivals();
        if let Some((at, _)) = arrivals.iter().skip(seen).find(|(_, e)| e.code.as_deref() == Some(code)) {
            return Ok(*at);
        }
        if Instant::now() > deadline {
            bail!("no {code} at the receiver within {within:?}");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// [`BURST`] burglary events at once; the time until the receiver has taken them all.
async fn throughput(url: &str, key: Option<&str>) -> anyhow::Result<(usize, Duration)> {
    let dir = tempfile::tempdir()?;
    let receiver = SiaReceiver::start(SiaTransport::Tcp, ACCOUNT, key)?;
    let sia = transmitter(url, dir.path(), &receiver, key)?;
    let mut probe = Probe::connect(url, "sia-bench-burst").await?;
    probe.subscribe(&armed::BenchTopics::new().availability).await?;
    let sia = Running::spawn(|s| sia_transmitter::run(sia, s));
    armed::online(&mut probe, "sia-transmitter", Duration::from_secs(10)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let topic = Topics::default().name(&Topic::PanelEvents);
    let start = Instant::now();
    for n in 0..BURST {
        let event = PanelEvent {
            event: PanelEventKind::Triggered,
            id: Some(format!("bench-{n}")),
            mode: None,
            user: None,
            sensors: vec!["bench-window".into()],
            reason: None,
            cause: None,
            message: "bench".into(),
            area: None,
            device_id: "security-controller".into(),
            ts: Timestamp::now(),
        };
        probe.publish(&topic, event.encode(), false).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.arrivals().len() < BURST {
        if Instant::now() > deadline {
            bail!("{} of {BURST} reports taken within 120 s", receiver.arrivals().len());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = receiver.arrivals().last().map(|(at, _)| *at).context("no arrivals")?;
    sia.stop().await;
    Ok((BURST, last.saturating_duration_since(start)))
}
