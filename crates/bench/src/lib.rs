//! The intrusion benchmark of issue #8: how long after a door or window opens the siren is
//! commanded, and how much memory the panel holds, through a real Mosquitto.
//!
//! What it measures, in one run on one Mosquitto it starts itself (`set_tcp_nodelay true`):
//!
//! 1. Door OPEN → siren command, as seen by a separate subscriber, p50 and p99, idle (one intrusion
//!    at a time) and under ~1 000 background sensor readings a second (open-loop: a schedule of
//!    absolute deadlines, never paced by the answers). The rows: the bare two hops (sensor →
//!    broker → subscriber, the floor); a minimal rumqttc controller ([`minimal`], the same four
//!    hops as the panel: sensor → broker → controller → broker → watcher), as a task of the bench,
//!    as a process of its own, and as a process commanding a real siren of its own (a second
//!    `alarm-actuator`, so that its command has two subscribers as the panel's has); the same
//!    answer from a process with no runtime, one thread blocking in `read` ([`blocking`]); and the real
//!    panel, the `security-controller` binary with its state file on the normal disk, plus the real
//!    siren. The panel / minimal ratio (against the process with a siren) is checked against issue
//!    20's goals (p50 ≤ 1.1×, p99 ≤ 1.5×, and faster than paho). `--latency-only` stops here. Where they
//!    are installed, two more controllers get a row ([`peers`]): Python paho-mqtt
//!    (`pip install paho-mqtt`) and a Node-RED flow with Node-RED's default settings, found at
//!    `$NODE_RED_DIR/node_modules/node-red` (`cd $NODE_RED_DIR && npm install node-red@4`), else
//!    in `npm root -g` (`npm install -g node-red@4`). Without them the report says "not installed".
//! 2. The panel's resident memory after start, after 1 000 arm/disarm cycles with an Argon2id PIN
//!    of default cost (goal ≤ 8 MiB), and before and after 1 M sensor readings (goal: ≤ 10 % growth).
//! 3. Intrusion latency while 200 wrong codes arrive on the keypad topic (goal ≤ 2× idle): one
//!    every 5 ms (open-loop), one intrusion per round, the rounds' intrusions spread over that second
//!    (the first codes being checked, then the lockout they cause). Then the worst case: right after
//!    all 200 sent at once, queued ahead of the door, next to the minimal controller's right after
//!    200 messages on its own input topic: the broker forwards as many either way, and that floor is
//!    most of the figure.
//!
//! Why it is built this way: a latency on its own says nothing; next to the floor of the broker
//! and to the least a controller can do, it says what the panel itself costs. Everything the
//! panel does for real (its own process, fsync'd state, Argon2id) stays in the measurement.
//!
//! It exits non-zero when anything it measures is not observed: a benchmark that measured nothing
//! must not look green. A goal that is missed is a result, printed as `MISSED`, not a failure.

pub mod adapter;
mod armed;
pub mod attack;
pub mod blocking;
pub mod home_assistant;
pub mod ingest;
mod latency;
mod load;
mod memory;
pub mod minimal;
mod mqtt;
pub mod notify;
mod options;
mod panel;
mod peers;
mod report;
pub mod scale;
pub mod sia;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

pub use options::Options;

/// Runs the whole benchmark; `scratch` is a directory on the normal disk for the panel's files.
pub fn main(scratch: &Path) -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("intrusion-bench: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    device_runtime::daemon::block_on("intrusion-bench", 2, run(&options, scratch))
}

/// One Mosquitto, one panel, one siren; every phase in turn, then the report.
async fn run(options: &Options, scratch: &Path) -> anyhow::Result<()> {
    let mosquitto = testkit::Mosquitto::start().context("cannot start Mosquitto")?;
    let dir = tempfile::Builder::new()
        .prefix("intrusion-bench-")
        .tempdir_in(scratch)
        .with_context(|| format!("cannot make a temporary directory in {}", scratch.display()))?;
    report::header(options, dir.path());
    let layout = panel::Layout { areas: options.areas, users: options.users };
    let mut home = panel::Home::start(&mosquitto, dir.path(), layout).await?;
    let outcome = phases(options, &mut home).await;
    if outcome.is_err() {
        eprintln!("intrusion-bench: the panel's last log lines:\n{}", home.panel.log_tail());
    }
    home.stop().await;
    report::broker_drops(&mosquitto.log());
    outcome
}

async fn phases(options: &Options, home: &mut panel::Home) -> anyhow::Result<()> {
    if options.latency_only {
        let table = latency::table(options, home).await?;
        report::latency(&table);
        report::optional_rows(&table);
        return Ok(());
    }
    let started_rss = home.panel.rss_kib().context("cannot read the panel's VmRSS")?;
    let cycles = memory::arm_disarm_cycles(home, options.cycles).await?;
    let table = latency::table(options, home).await?;
    let flooded = latency::under_wrong_codes(options, home).await?;
    let paced = latency::while_wrong_codes(options, home).await?;
    let events = memory::sensor_flood(home, options.events).await?;
    report::latency(&table);
    report::memory(started_rss, &cycles, &events);
    report::wrong_codes(&flooded, &paced, &table);
    report::optional_rows(&table);
    Ok(())
}

/// Nearest-rank percentile `p` (0–100) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
