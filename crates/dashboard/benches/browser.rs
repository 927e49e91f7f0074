//! The dashboard's figures of issue #9, measured in a real browser through a real Mosquitto:
//! MQTT-to-browser latency (goal p50 ≤ 50 ms) and the dashboard's resident memory idle and after
//! 1 M messages (goal ≤ 16 MiB).
//!
//! One run: Mosquitto with the settings of `mosquitto/mosquitto.conf` (anonymous here), the
//! release `dashboard` binary as its own process (so that its RSS is its own), and headless
//! Chromium driven through a local chromedriver (as in `tests/browser.rs`) on the page.
//!
//! - Latency: a hook installed in the page (a `MutationObserver` on the sensor list; `app.js` is
//!   not changed) notes `Date.now()` when the probe door's new reading is in the DOM, and again at
//!   the next animation frame. The bench publishes retained readings, OPEN and CLOSED in turn,
//!   each stamped with the wall-clock time read just before publishing; that stamp is the reading's
//!   `ts`, which the hook reads from the page's model to tell the readings apart. Latency = the DOM
//!   time − the publish time, both on this machine's wall clock (1 ms resolution in the browser).
//! - Memory: VmRSS of the dashboard idle (the page connected), then after N readings (100 door
//!   sensors, pipelined retained QoS 1 from one client, up to 1 000 in flight) once the dashboard
//!   has applied the last of them, and 2 s later; the page stays open and receives the stream.
//!
//! A missed goal is printed as MISSED, not a failure; the bench fails only when it measured nothing.
//!
//! `cargo build --release -p dashboard && cargo bench -p dashboard --bench browser [-- --samples N] [--messages N]`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use protocol::{SensorKind, Timestamp, Topic, Topics};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Goal of the issue: the median time from a publish to the page showing it.
const LATENCY_GOAL_MS: f64 = 50.0;
/// Goal of the issue: the dashboard's resident memory after 1 M messages.
const RSS_GOAL_MIB: f64 = 16.0;
/// The sensors the flood of readings is spread over.
const SENSORS: usize = 100;
/// The sensor whose readings are timed.
const PROBE_SENSOR: &str = "bench-door";
/// Time between two timed readings.
const SPACING: Duration = Duration::from_millis(50);
/// Timed readings sent first and not counted (the page's first renders, the JIT).
const WARM_UP: usize = 10;
/// Mosquitto's count of messages it dropped (queue limits), published every `sys_interval`.
const DROPPED: &str = "$SYS/broker/publish/messages/dropped";
/// How long the dashboard gets to apply the whole flood.
const FLOOD_WITHIN: Duration = Duration::from_secs(600);
/// How long the page gets to show the flood's last reading after the dashboard applied it.
const PAGE_WITHIN: Duration = Duration::from_secs(180);
const COMMAND: &str = "cargo bench -p dashboard --bench browser";

/// Installs the latency hook: one entry `{ts, word, dom, frame}` per new reading of the sensor
/// `arguments[0]`, in `window.__bench`. Reading the page's `home` (a global of app.js) tells
/// readings apart by their `ts`; the state word is read from the DOM itself.
const HOOK: &str = r#"
const id = arguments[0];
const list = document.getElementById("sensors");
window.__bench = [];
let last = null;
new MutationObserver(() => {
  const dom = Date.now();
  const s = home.sensors[id];
  const li = list.querySelector('li[data-sensor="' + id + '"]');
  if (!s || !li || s.ts === last) return;
  last = s.ts;
  const entry = { ts: Date.parse(s.ts), word: li.querySelector(".state-word").textContent, dom, frame: null };
  window.__bench.push(entry);
  requestAnimationFrame(() => { entry.frame = Date.now(); });
}).observe(list, { childList: true });
return true;
"#;

struct Options {
    samples: usize,
    messages: usize,
}

fn main() -> ExitCode {
    let mut options = Options { samples: 200, messages: 1_000_000 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let target = match arg.as_str() {
            "--samples" => &mut options.samples,
            "--messages" => &mut options.messages,
            "--bench" => continue,
            other => {
                eprintln!("dashboard-bench: error: unknown argument `{other}` (use --samples N, --messages N)");
                return ExitCode::from(2);
            }
        };
        match args.next().and_then(|n| n.parse().ok()) {
            Some(n) if n > 0 => *target = n,
            _ => {
                eprintln!("dashboard-bench: error: {arg} takes a positive number");
                return ExitCode::from(2);
            }
        }
    }
    let binary = match release_binary() {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!("dashboard-bench: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser")).or_else(|| on_path("google-chrome"));
    let (Some(chromium), Some(chromedriver)) = (chromium, on_path("chromedriver")) else {
        eprintln!(
            "dashboard-bench: error: chromium or chromedriver is not installed (apt-get install -y chromium chromium-driver)"
        );
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dashboard-bench: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut measured = false;
    let outcome = runtime.block_on(run(&options, &binary, &chromium, &chromedriver, &mut measured));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if measured => {
            eprintln!("dashboard-bench: error (the figures above stand): {e:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dashboard-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn release_binary() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().context("no target directory")?;
    let binary = dir.join("release").join("dashboard");
    if !binary.is_file() {
        bail!("{} is missing: run `cargo build --release -p dashboard` first", binary.display());
    }
    Ok(binary)
}

/// The first line a program prints for `flag`, or `unknown`.
fn version(program: &Path, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .and_then(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The wall clock in milliseconds, as the browser's `Date.now()` reads it (with the fraction).
fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

fn reading(state: &str, id: &str, ts: Timestamp) -> String {
    format!(r#"{{"state":"{state}","device_id":"{id}","ts":"{ts}"}}"#)
}

async fn run(
    options: &Options,
    binary: &Path,
    chromium: &Path,
    chromedriver: &Path,
    measured: &mut bool,
) -> anyhow::Result<()> {
    let mosquitto = testkit::Mosquitto::start_with_config(|port, dir| {
        let d = dir.display();
        format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {d}/\n\
             autosave_interval 10\n\
             autosave_on_changes false\n\
             max_queued_messages 100000\n\
             max_inflight_messages 1000\n\
             message_size_limit 262144\n\
             set_tcp_nodelay true\n\
             sys_interval 1\n\
             log_dest file {d}/mosquitto.log\n\
             log_type error\n\
             log_type warning\n\
             log_type notice\n"
        )
    })
    .context("cannot start Mosquitto (apt-get install mosquitto)")?;
    let url = mosquitto.url();
    let mosquitto_binary = on_path("mosquitto").unwrap_or_else(|| PathBuf::from("/usr/sbin/mosquitto"));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!("dashboard bench (issue #9)");
    println!("  machine:   {cores} cores, {cpu}");
    println!(
        "  broker:    {} at {url} (settings of mosquitto/mosquitto.conf, anonymous)",
        version(&mosquitto_binary, "-h")
    );
    println!("  dashboard: {} (cargo build --release -p dashboard), its own process", binary.display());
    println!(
        "  browser:   {}, headless, through {}",
        version(chromium, "--version"),
        version(chromedriver, "--version")
    );
    println!("  command:   {COMMAND} -- --samples {} --messages {}", options.samples, options.messages);

    let dir = tempfile::Builder::new().prefix("dashboard-bench-").tempdir().context("cannot make a temp dir")?;
    let topics = Topics::default();
    let probe_topic = topics.name(&Topic::Sensor { kind: SensorKind::Door, id: PROBE_SENSOR.into() });
    let mut probe = testkit::Probe::connect(&url, "dashboard-bench-probe").await?;
    probe.subscribe(DROPPED).await?;
    probe.publish(&probe_topic, reading("CLOSED", PROBE_SENSOR, Timestamp::now()), true).await?;

    let mut dashboard = Dashboard::start(binary, &url, dir.path())?;
    dashboard.wait_healthy().await?;
    let driver = Driver::start(chromedriver).await?;
    let client = browser(chromium, driver.port).await?;
    let outcome = measure(options, &mut probe, &probe_topic, &dashboard, &client, &mosquitto, measured).await;
    let _ = client.close().await;
    drop(driver);
    drop(dashboard);
    outcome
}

async fn measure(
    options: &Options,
    probe: &mut testkit::Probe,
    probe_topic: &str,
    dashboard: &Dashboard,
    client: &Client,
    mosquitto: &testkit::Mosquitto,
    measured: &mut bool,
) -> anyhow::Result<()> {
    client.goto(&format!("http://{}/", dashboard.listen)).await.context("cannot open the page")?;
    wait_text(client, "#live", "live").await?;
    wait_text(client, &format!(r#"#sensors li[data-sensor="{PROBE_SENSOR}"]"#), "CLOSED").await?;
    client.execute(HOOK, vec![Value::from(PROBE_SENSOR)]).await.context("cannot install the latency hook")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = dashboard.memory()?;
    println!("\ndashboard memory, idle (the page connected, 2 s after it opened)");
    println!("  RSS {:.1} MiB (peak so far {:.1} MiB)", idle.rss, idle.peak);
    *measured = true;

    // Latency: one timed reading every SPACING, OPEN and CLOSED in turn.
    let total = WARM_UP + options.samples;
    let mut sent = Vec::with_capacity(options.samples);
    let start = tokio::time::Instant::now();
    for k in 0..total {
        let state = if k % 2 == 0 { "OPEN" } else { "CLOSED" };
        let at = wall_ms();
        let ts = Timestamp(at as u64);
        probe.publish(probe_topic, reading(state, PROBE_SENSOR, ts), true).await?;
        if k >= WARM_UP {
            sent.push((ts.as_millis(), at, state));
        }
        tokio::time::sleep_until(start + SPACING * (k as u32 + 1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = hooked(client).await?;
    let (mut dom, mut frame, mut wrong) = (Vec::new(), Vec::new(), 0);
    for (ts, at, state) in &sent {
        let Some(entry) = seen.iter().find(|e| e["ts"].as_f64() == Some(*ts as f64)) else { continue };
        if entry["word"].as_str() != Some(*state) {
            wrong += 1;
            continue;
        }
        if let Some(shown) = entry["dom"].as_f64() {
            dom.push(shown - at);
        }
        if let Some(painted) = entry["frame"].as_f64() {
            frame.push(painted - at);
        }
    }
    println!(
        "\nMQTT → browser latency ({} readings {} ms apart after {WARM_UP} not counted; publish → the page)",
        options.samples,
        SPACING.as_millis()
    );
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    match percentiles(&mut dom) {
        Some(p) => {
            println!("  in the DOM:      {p} (goal p50 ≤ {LATENCY_GOAL_MS} ms: {})", verdict(p.p50 <= LATENCY_GOAL_MS))
        }
        None => println!("  in the DOM:      no reading was seen (goal p50 ≤ {LATENCY_GOAL_MS} ms: MISSED)"),
    }
    if let Some(p) = percentiles(&mut frame) {
        println!("  next frame:      {p}");
    }
    let lost = options.samples - dom.len() - wrong;
    if lost + wrong > 0 {
        println!("  not seen: {lost}, seen with the wrong state: {wrong}");
    }

    // Memory: the flood.
    let dropped_before = dropped(probe);
    let flood_start = wall_ms();
    let started = Instant::now();
    let end = flood(mosquitto.port(), options.messages).await?;
    let acked = started.elapsed();
    wait_applied(dashboard, end, FLOOD_WITHIN).await?;
    let applied = started.elapsed();
    let after = dashboard.memory()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = dashboard.memory()?;
    let dropped_after = dropped(probe);
    println!(
        "\ndashboard memory, {} readings over {SENSORS} sensors (retained QoS 1, pipelined), the page open",
        options.messages
    );
    println!(
        "  handed over: the broker acknowledged all in {:.1} s ({:.0} messages/s); the dashboard had applied all after {:.1} s ({:.0} messages/s)",
        acked.as_secs_f64(),
        options.messages as f64 / acked.as_secs_f64(),
        applied.as_secs_f64(),
        options.messages as f64 / applied.as_secs_f64()
    );
    match (dropped_before, dropped_after) {
        (Some(before), Some(after)) => println!(
            "  messages Mosquitto dropped (its per-client queue of 100 000 full): {}",
            after.saturating_sub(before)
        ),
        _ => println!("  messages Mosquitto dropped: unknown ({DROPPED} not seen)"),
    }
    println!(
        "  RSS after {} messages {:.1} MiB (goal ≤ {RSS_GOAL_MIB} MiB: {}); 2 s later {:.1} MiB; peak {:.1} MiB",
        options.messages,
        after.rss,
        verdict(after.rss <= RSS_GOAL_MIB),
        later.rss,
        later.peak
    );
    // The page may be far behind (it redraws the sensor list on every change): it is waited for last.
    match wait_hooked(client, end, PAGE_WITHIN).await {
        Some(dom) => println!(
            "  the page showed the last reading {:.1} s after the first was sent",
            (dom - flood_start) / 1000.0
        ),
        None => println!(
            "  the page did not show the last reading within {} s of the dashboard applying it",
            PAGE_WITHIN.as_secs()
        ),
    }
    Ok(())
}

/// n and the percentiles of a set of milliseconds.
struct Percentiles {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n {}, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.n, self.p50, self.p90, self.p99, self.max
        )
    }
}

/// Nearest-rank percentiles, or `None` for no values.
fn percentiles(values: &mut [f64]) -> Option<Percentiles> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let at = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    (n > 0).then(|| Percentiles { n, p50: at(0.50), p90: at(0.90), p99: at(0.99), max: values[n - 1] })
}

/// What the hook noted so far.
async fn hooked(client: &Client) -> anyhow::Result<Vec<Value>> {
    let seen = client.execute("return window.__bench || [];", Vec::new()).await.context("cannot read the hook")?;
    Ok(seen.as_array().cloned().unwrap_or_default())
}

/// When (the browser's `Date.now()`) the page showed the reading stamped `ts`, waiting up to
/// `within`. A page too busy to answer (a script timeout) is asked again.
async fn wait_hooked(client: &Client, ts: Timestamp, within: Duration) -> Option<f64> {
    let deadline = Instant::now() + within;
    loop {
        let seen = hooked(client).await.unwrap_or_default();
        if let Some(entry) = seen.iter().find(|e| e["ts"].as_f64() == Some(ts.as_millis() as f64)) {
            return entry["dom"].as_f64();
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mosquitto's count of dropped messages, as last published.
fn dropped(probe: &testkit::Probe) -> Option<u64> {
    probe.seen(DROPPED).last().and_then(|p| String::from_utf8_lossy(p).trim().parse().ok())
}

/// Publishes `n` retained QoS 1 readings over [`SENSORS`] doors, pipelined, then one reading of
/// the probe sensor from the same client (so it comes after all of them); returns once the
/// broker acknowledged all, with the last reading's stamp.
async fn flood(port: u16, n: usize) -> anyhow::Result<Timestamp> {
    let mut options = MqttOptions::new("dashboard-bench-flood", "127.0.0.1", port);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let topics = Topics::default();
    let names: Vec<String> =
        (0..SENSORS).map(|i| topics.name(&Topic::Sensor { kind: SensorKind::Door, id: format!("door-{i}") })).collect();
    let last = topics.name(&Topic::Sensor { kind: SensorKind::Door, id: PROBE_SENSOR.into() });
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            let state = if (i / SENSORS).is_multiple_of(2) { "OPEN" } else { "CLOSED" };
            let payload = reading(state, &format!("door-{}", i % SENSORS), Timestamp(i as u64));
            client.publish(names[i % SENSORS].clone(), QoS::AtLeastOnce, true, payload).await?;
        }
        let end = Timestamp::now();
        client.publish(last, QoS::AtLeastOnce, true, reading("OPEN", PROBE_SENSOR, end)).await?;
        Ok::<_, rumqttc::ClientError>((client, end))
    });
    let mut acked = 0;
    while acked < n + 1 {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("the publisher's connection failed after {acked} acks: {e}"),
            Err(_) => bail!("the broker stopped acknowledging after {acked} of {}", n + 1),
        }
    }
    let (client, end) = publisher.await??;
    drop(client);
    Ok(end)
}

/// Waits until the dashboard's model holds the probe sensor's reading stamped `end`.
async fn wait_applied(dashboard: &Dashboard, end: Timestamp, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let want = end.to_string();
    loop {
        let (_, home) = get(dashboard.listen, "/api/home").await?;
        if home["sensors"][PROBE_SENSOR]["ts"].as_str() == Some(want.as_str()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the dashboard did not apply the last reading within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET path` over a fresh connection: the status and the body as JSON (null when it is not).
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .with_context(|| format!("no answer to GET {path} within 10 s"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

async fn wait_text(client: &Client, css: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + testkit::WITHIN;
    loop {
        let shown = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.ok(),
            Err(_) => None,
        };
        if shown.as_deref().is_some_and(|t| t.contains(what)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("`{css}` never showed `{what}`; it shows {shown:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The dashboard's resident memory, in MiB.
struct Memory {
    rss: f64,
    peak: f64,
}

/// The release dashboard as its own process, in a temp dir (so no `config/dashboard.toml` is
/// read), stopped on drop.
struct Dashboard {
    child: Child,
    listen: SocketAddr,
}

impl Dashboard {
    fn start(binary: &Path, url: &str, dir: &Path) -> anyhow::Result<Dashboard> {
        let listen = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let child = Command::new(binary)
            .args(["--broker", url, "--id", "dashboard", "--listen", &listen.to_string(), "--database"])
            .arg(dir.join("none.db"))
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .env_remove("MQTT_HOME_CONFIG")
            .env_remove("MQTT_TOPIC_ROOT")
            .env_remove("MQTT_USERNAME")
            .env_remove("MQTT_PASSWORD")
            .env_remove("DASHBOARD_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        Ok(Dashboard { child, listen })
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + testkit::WITHIN;
        loop {
            if let Ok((200, _)) = get(self.listen, "/healthz").await {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the dashboard exited before it was healthy: {status}");
            }
            if Instant::now() > deadline {
                bail!("the dashboard did not become healthy on {} within {:?}", self.listen, testkit::WITHIN);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn memory(&self) -> anyhow::Result<Memory> {
        let path = format!("/proc/{}/status", self.child.id());
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line =
                text.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name} line in {path}"))?;
            let kib: f64 = line.split_whitespace().nth(1).context("an empty line")?.parse()?;
            Ok(kib / 1024.0)
        };
        Ok(Memory { rss: field("VmRSS:")?, peak: field("VmHWM:")? })
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        testkit::terminate(&mut self.child, Duration::from_secs(10));
    }
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start(binary: &Path) -> anyhow::Result<Driver> {
        let port = testkit::free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let driver = Driver { child, port };
        let deadline = Instant::now() + testkit::WITHIN;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not listen on {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session.
async fn browser(chromium: &Path, port: u16) -> anyhow::Result<Client> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1500"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("cannot start a Chromium session")
}
