//! The recorder benchmark of issue #9: how many messages a second the recorder commits, and how
//! much memory it holds, through a real Mosquitto.
//!
//! One run: Mosquitto (`set_tcp_nodelay true`, `max_inflight_messages 1000` as in
//! `mosquitto/mosquitto.conf`: the recorder acknowledges only after a commit, so the window bounds
//! a group), the release `recorder` binary with its database on the normal disk. The recorder
//! connects once (so the broker keeps its session) and stops; N retained QoS 1 sensor readings,
//! each a change of state (100 sensors alternating), are queued for it in the broker; then it
//! starts again and drains them. Ingest = N / (recorder start → the database holds all N): the
//! recorder's own rate, not the publisher's or the broker's (on two cores they share the machine
//! when all run at once; the recorder keeps pace with one pipelined publisher, ~14–17 k/s here).
//! Both `durability = full` (an fsync per commit, the default) and `normal`. RSS of the recorder
//! connected and idle, and after the N messages.
//!
//! `cargo build --release -p recorder && cargo bench -p bench --bench recorder [-- --messages N]`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::{SensorKind, Timestamp, Topic, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Goal of the issue: messages committed per second on a 2-core machine.
const INGEST_GOAL: f64 = 20_000.0;
/// Goal of the issue: the recorder's resident memory after 1 M messages.
const RSS_GOAL_MIB: f64 = 20.0;
const SENSORS: usize = 100;

/// Runs the benchmark; `scratch` is a directory on the normal disk for the databases.
pub fn main(scratch: &Path) -> std::process::ExitCode {
    let mut messages = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--messages" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => messages = n,
                None => {
                    eprintln!("recorder-bench: error: --messages takes a number");
                    return std::process::ExitCode::from(2);
                }
            },
            "--bench" => {}
            other => {
                eprintln!("recorder-bench: error: unknown argument `{other}` (use --messages N)");
                return std::process::ExitCode::from(2);
            }
        }
    }
    device_runtime::daemon::block_on("recorder-bench", 2, run(messages, scratch))
}

async fn run(messages: usize, scratch: &Path) -> anyhow::Result<()> {
    let binary = release_binary(scratch)?;
    let mosquitto = testkit::Mosquitto::start_with(
        "allow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 0\nautosave_interval 0\n",
    )
    .context("cannot start Mosquitto")?;
    let dir = tempfile::Builder::new().prefix("recorder-bench-").tempdir_in(scratch)?;
    println!("recorder bench (issue #9)");
    println!("  broker:   {} (max_inflight_messages 1000, no queue limit)", mosquitto.url());
    println!("  recorder: {}", binary.display());
    println!("  database: {} (normal disk)", dir.path().display());
    println!("  command:  cargo bench -p bench --bench recorder -- --messages {messages}");
    for durability in ["full", "normal"] {
        let database = dir.path().join(format!("{durability}.db"));
        let id = format!("recorder-{durability}");
        let url = mosquitto.url();
        // Connect once so that the broker keeps a session that queues what comes next.
        let recorder = Recorder::start(&binary, &url, &id, &database, durability)?;
        wait_for_online(mosquitto.port(), &id).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = recorder.rss_mib()?;
        drop(recorder);
        let published = Instant::now();
        publish(mosquitto.port(), messages).await?;
        let published = published.elapsed();
        let started = Instant::now();
        let recorder = Recorder::start(&binary, &url, &id, &database, durability)?;
        let stored = wait_until_stored(&database, messages, Duration::from_secs(600)).await?;
        let elapsed = started.elapsed();
        let after = recorder.rss_mib()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let later = recorder.rss_mib()?;
        println!("  ({})", recorder.rss_parts());
        let rate = stored as f64 / elapsed.as_secs_f64();
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        println!("\ndurability = {durability}");
        println!(
            "  {stored} readings queued in the broker (published in {:.1} s), drained and committed in {:.1} s: \
             {rate:.0} messages/s (goal ≥ {INGEST_GOAL:.0}: {})",
            published.as_secs_f64(),
            elapsed.as_secs_f64(),
            verdict(rate >= INGEST_GOAL),
        );
        println!(
            "  recorder RSS: idle {idle:.1} MiB, after {messages} messages {after:.1} MiB, 2 s later {later:.1} MiB \
             (goal ≤ {RSS_GOAL_MIB} MiB: {})",
            verdict(after.max(later) <= RSS_GOAL_MIB)
        );
        let size = std::fs::metadata(&database).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(database.with_extension("db-wal")).map(|m| m.len()).unwrap_or(0);
        println!(
            "  database size: {:.1} MiB ({:.0} bytes a record)",
            size as f64 / 1048576.0,
            size as f64 / stored as f64
        );
    }
    Ok(())
}

/// The release recorder beside `scratch` (the target directory's `tmp`).
fn release_binary(scratch: &Path) -> anyhow::Result<PathBuf> {
    let dir = scratch.parent().context("no target directory")?;
    let binary = dir.join("release").join("recorder");
    if !binary.is_file() {
        bail!("{} is missing: run `cargo build --release -p recorder` first", binary.display());
    }
    Ok(binary)
}

/// The recorder's process, stopped when dropped (a failed run leaves nothing behind).
struct Recorder(Child);

impl Drop for Recorder {
    fn drop(&mut self) {
        testkit::terminate(&mut self.0, Duration::from_secs(10));
    }
}

impl Recorder {
    fn start(binary: &Path, url: &str, id: &str, database: &Path, durability: &str) -> anyhow::Result<Recorder> {
        let child = Command::new(binary)
            .args(["--broker", url, "--id", id, "--database"])
            .arg(database)
            .env("RUST_LOG", "warn")
            .env("RECORDER_DURABILITY", durability)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        Ok(Recorder(child))
    }

    /// Anonymous (heap), file-backed and shared memory, from /proc.
    fn rss_parts(&self) -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        let parts: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("RssAnon:") || l.starts_with("RssFile:") || l.starts_with("RssShmem:"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        parts.join(", ")
    }

    fn rss_mib(&self) -> anyhow::Result<f64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))?;
        let line = text.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
        let kib: f64 = line.split_whitespace().nth(1).context("an empty VmRSS line")?.parse()?;
        Ok(kib / 1024.0)
    }
}

async fn wait_for_online(port: u16, id: &str) -> anyhow::Result<()> {
    let mut probe = testkit::Probe::connect(&format!("mqtt://127.0.0.1:{port}"), "recorder-bench-watch").await?;
    let topic = Topics::default().name(&Topic::Availability(id.to_owned()));
    probe.subscribe(&topic).await?;
    probe.expect(&topic, |p| p == b"online", Duration::from_secs(10)).await?;
    Ok(())
}

/// Publishes `n` retained QoS 1 readings, pipelined, and returns once the broker acknowledged all.
async fn publish(port: u16, n: usize) -> anyhow::Result<()> {
    let mut options = MqttOptions::new("recorder-bench-flood", "127.0.0.1", port);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let topics = Topics::default();
    let names: Vec<String> =
        (0..SENSORS).map(|i| topics.name(&Topic::Sensor { kind: SensorKind::Door, id: format!("door-{i}") })).collect();
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            let state = if (i / SENSORS).is_multiple_of(2) { "OPEN" } else { "CLOSED" };
            let payload =
                format!(r#"{{"state":"{state}","device_id":"door-{}","ts":"{}"}}"#, i % SENSORS, Timestamp(i as u64));
            client.publish(names[i % SENSORS].clone(), QoS::AtLeastOnce, true, payload).await?;
        }
        Ok::<_, rumqttc::ClientError>(client)
    });
    let mut acked = 0;
    while acked < n {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("the publisher's connection failed after {acked} acks: {e}"),
            Err(_) => bail!("the broker stopped acknowledging after {acked} of {n}"),
        }
    }
    drop(publisher.await??);
    Ok(())
}

/// Waits until the database holds `n` sensor records; returns how many it holds.
async fn wait_until_stored(database: &Path, n: usize, within: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let stored = store::Store::open_read_only(database)
            .and_then(|s| s.count(store::classify::Kind::Sensor))
            .unwrap_or(0) as usize;
        if stored >= n {
            return Ok(stored);
        }
        if Instant::now() > deadline {
            bail!("only {stored} of {n} readings stored within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
