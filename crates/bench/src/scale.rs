//! The panel at scale (issue #12): with 10, 1 000 and 10 000 sensors it knows (each with a
//! retained reading, as in a home that has run for a while), how long the real panel binary takes
//! to answer an arm command, and how much CPU it spends per reading.
//!
//! `cargo build --release -p security-controller && cargo bench -p bench --bench scale`
//! (`-- --sensors 10,1000,10000 --rounds 15`). Each size gets a fresh Mosquitto.
//!
//! - Arm: ARM_AWAY published → `armed_away` seen (no exit delay), `--rounds` times, each followed
//!   by a disarm; p50 and the slowest.
//! - CPU per reading: the panel process's user + system time (`/proc/<pid>/stat`, 10 ms ticks)
//!   over a burst of readings and the arm command queued behind them, divided by the readings:
//!   2 000 that change a sensor (open, close: each a new status) and heartbeats that repeat what
//!   is known (twice the sensors, at least 20 000).

use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::{Payload, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::armed;
use crate::panel::{binary, rss_kib};

/// What one size measured.
struct Row {
    sensors: usize,
    arm: Vec<Duration>,
    /// Readings that repeat what the panel knows, and the CPU they took.
    readings: u64,
    cpu: Duration,
    /// Readings that change a sensor (open, close), and the CPU they took.
    changes: usize,
    cpu_change: Duration,
    rss_kib: u64,
}

pub fn main() -> ExitCode {
    let (mut sizes, mut rounds) = (vec![10, 1_000, 10_000], 15);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sensors" => match args.next().map(|v| v.split(',').map(str::parse).collect::<Result<Vec<usize>, _>>()) {
                Some(Ok(v)) if !v.is_empty() && v.iter().all(|n| *n > 0) => sizes = v,
                _ => return usage("--sensors takes a list of numbers above 0, e.g. 10,1000,10000"),
            },
            "--rounds" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => rounds = n,
                _ => return usage("--rounds takes a number above 0"),
            },
            "--bench" => {}
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let outcome = runtime.map_err(anyhow::Error::from).and_then(|rt| {
        rt.block_on(async {
            let mut rows = Vec::new();
            for sensors in sizes {
                rows.push(measure(sensors, rounds).await.with_context(|| format!("with {sensors} sensors"))?);
            }
            anyhow::Ok(rows)
        })
    });
    match outcome {
        Ok(rows) => {
            print(&rows);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scale-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage(error: &str) -> ExitCode {
    eprintln!("scale-bench: error: {error} (use --sensors 10,1000,10000 --rounds 15)");
    ExitCode::from(2)
}

fn print(rows: &[Row]) {
    println!("\npanel at scale (the security-controller binary, one Mosquitto, loopback)");
    println!(
        "{:>8} {:>11} {:>11} {:>18} {:>18} {:>8}",
        "sensors", "arm p50 ms", "arm max ms", "CPU µs/heartbeat", "CPU µs/change", "RSS MiB"
    );
    for row in rows {
        let mut arm = row.arm.clone();
        arm.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:>8} {:>11.2} {:>11.2} {:>18.1} {:>18.1} {:>8.1}",
            row.sensors,
            ms(arm[arm.len() / 2]),
            ms(arm[arm.len() - 1]),
            row.cpu.as_secs_f64() * 1e6 / row.readings as f64,
            row.cpu_change.as_secs_f64() * 1e6 / row.changes as f64,
            row.rss_kib as f64 / 1024.0
        );
    }
    println!("(arm: ARM_AWAY published → armed_away seen; CPU: the panel's user + system time over a burst)");
}

async fn measure(sensors: usize, rounds: usize) -> anyhow::Result<Row> {
    let mosquitto = testkit::Mosquitto::start()?;
    let url = mosquitto.url();
    let topics = Topics::new("home");
    let reading = |i: usize, n: u64| {
        let id = format!("scale-window-{i}");
        let topic = topics.name(&Topic::Sensor { kind: SensorKind::Window, id: id.clone() });
        (topic, SensorReading { state: SensorState::Closed, device_id: id, ts: Timestamp(n) }.encode())
    };
    // The home as it stands: every sensor's last reading retained.
    let (client, mut eventloop) = connect(mosquitto.port(), "scale-sensors");
    let retained: Vec<_> = (0..sensors).map(|i| reading(i, 1)).collect();
    publish_all(&client, &mut eventloop, retained, true).await?;

    let mut probe = testkit::Probe::connect(&url, "scale-watch").await?;
    probe.subscribe(&topics.name(&Topic::PanelStatus)).await?;
    let dir = tempfile::tempdir()?;
    let mut panel = spawn_panel(&url, dir.path())?;
    let up = async {
        probe.expect(&topics.name(&Topic::PanelStatus), armed::state("disarmed"), Duration::from_secs(300)).await
    };
    if let Err(e) = up.await {
        bail!("the panel never came up: {e:#}\n{}", log_tail(dir.path()));
    }

    let set = topics.name(&Topic::PanelSet);
    let status = topics.name(&Topic::PanelStatus);
    let mut arm = Vec::new();
    for _ in 0..rounds {
        let before = probe.count(&status);
        let sent = Instant::now();
        probe.publish(&set, r#"{"action":"ARM_AWAY"}"#, false).await?;
        probe.expect_after(before, &status, armed::state("armed_away"), Duration::from_secs(300)).await?;
        arm.push(sent.elapsed());
        let before = probe.count(&status);
        probe.publish(&set, format!(r#"{{"action":"DISARM","code":"{}"}}"#, armed::PIN), false).await?;
        probe.expect_after(before, &status, armed::state("disarmed"), Duration::from_secs(300)).await?;
    }

    // CPU per reading: a burst, then an arm command queued behind it on the same connection.
    // First readings that change something (a window opens, then closes: each a new status),
    // then readings that repeat what is known (the sensors' heartbeats, by far the most).
    let pid = panel.id();
    let changes = 2_000;
    let cpu_before = cpu_time(pid)?;
    let burst: Vec<_> = (0..changes)
        .map(|i| {
            let (topic, _) = reading(i / 2 % sensors, 0);
            let state = if i % 2 == 0 { SensorState::Open } else { SensorState::Closed };
            let id = format!("scale-window-{}", i / 2 % sensors);
            (topic, SensorReading { state, device_id: id, ts: Timestamp(2 + i as u64) }.encode())
        })
        .collect();
    publish_all(&client, &mut eventloop, burst, true).await?;
    arm_behind(&client, &mut eventloop, &mut probe, &set, &status).await?;
    let cpu_change = cpu_time(pid)? - cpu_before;
    let before = probe.count(&status);
    probe.publish(&set, format!(r#"{{"action":"DISARM","code":"{}"}}"#, armed::PIN), false).await?;
    probe.expect_after(before, &status, armed::state("disarmed"), Duration::from_secs(300)).await?;

    let readings = (sensors * 2).max(20_000);
    let cpu_before = cpu_time(pid)?;
    let burst: Vec<_> = (0..readings).map(|i| reading(i % sensors, 10_000 + i as u64)).collect();
    publish_all(&client, &mut eventloop, burst, true).await?;
    arm_behind(&client, &mut eventloop, &mut probe, &set, &status).await?;
    let cpu = cpu_time(pid)? - cpu_before;
    let rss_kib = rss_kib(pid)?;
    if !testkit::terminate(&mut panel, Duration::from_secs(10)) {
        eprintln!("scale-bench: the panel did not stop within 10 s of SIGTERM; killed it");
    }
    Ok(Row { sensors, arm, readings: readings as u64, cpu, changes, cpu_change, rss_kib })
}

/// ARM_AWAY on the sensors' own connection, behind what they sent: `armed_away` says the panel
/// has taken everything before it.
async fn arm_behind(
    client: &AsyncClient,
    eventloop: &mut rumqttc::EventLoop,
    probe: &mut testkit::Probe,
    set: &str,
    status: &str,
) -> anyhow::Result<()> {
    let before = probe.count(status);
    client.publish(set, QoS::AtLeastOnce, false, r#"{"action":"ARM_AWAY"}"#).await?;
    let (_, ()) = tokio::try_join!(
        probe.expect_after(before, status, armed::state("armed_away"), Duration::from_secs(300)),
        drive_until_acked(eventloop, 1),
    )?;
    Ok(())
}

fn connect(port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30)).set_inflight(200);
    AsyncClient::new(options, 1000)
}

/// Publishes every message at QoS 1 and returns once the broker has acknowledged them all.
async fn publish_all(
    client: &AsyncClient,
    eventloop: &mut rumqttc::EventLoop,
    messages: Vec<(String, Vec<u8>)>,
    retain: bool,
) -> anyhow::Result<()> {
    let count = messages.len();
    let client = client.clone();
    let (sent, driven) = tokio::join!(
        async move {
            for (topic, payload) in messages {
                client.publish(topic, QoS::AtLeastOnce, retain, payload).await?;
            }
            anyhow::Ok(())
        },
        drive_until_acked(eventloop, count),
    );
    sent?;
    driven
}

/// Polls the event loop until `count` PUBACKs have come.
async fn drive_until_acked(eventloop: &mut rumqttc::EventLoop, count: usize) -> anyhow::Result<()> {
    let mut acked = 0;
    while acked < count {
        match tokio::time::timeout(Duration::from_secs(60), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("the sensors' connection failed: {e}"),
            Err(_) => bail!("only {acked} of {count} readings acknowledged within 60 s"),
        }
    }
    Ok(())
}

/// The real panel, instant arming, its PIN cheap to check.
fn spawn_panel(url: &str, dir: &Path) -> anyhow::Result<Child> {
    let config = armed::panel(url, dir)?;
    let file = dir.join("panel.toml");
    std::fs::write(&file, toml::to_string(&config)?)?;
    let log = std::fs::File::create(dir.join("panel.log"))?;
    Command::new(binary("security-controller")?)
        .args(["--broker", url, "--config"])
        .arg(&file)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start the security-controller binary")
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("panel.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// User + system time of process `pid`, all its threads (`/proc/<pid>/stat`, in 10 ms ticks).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("an unreadable /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields.get(11).context("no utime")?.parse::<u64>()? + fields.get(12).context("no stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}
