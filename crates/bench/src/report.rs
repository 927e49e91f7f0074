//! What the bench prints.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::latency::{CodeFlood, PACE, PacedCodes, Row, Samples, Table, WRONG_CODES};
use crate::memory::{Cycles, Flooded};
use crate::options::Options;
use crate::panel;

/// Goals of issue #8.
/// Issue 20's goals: the panel at the minimal controller's floor, and ahead of paho.
const P50_GOAL: f64 = 1.1;
const P99_GOAL: f64 = 1.5;
const RSS_GOAL_KIB: u64 = 8 * 1024;
const GROWTH_GOAL_PERCENT: f64 = 10.0;
const FLOOD_GOAL: f64 = 2.0;

/// The machine, the broker, where the state file lives, and the command.
pub fn header(options: &Options, state_dir: &Path) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("intrusion bench (issue #8)");
    println!("  machine:    {cores} cores, Linux {}", kernel.trim());
    println!("  broker:     {} (set_tcp_nodelay true), one for the whole run", first_line("mosquitto", &["-h"]));
    println!(
        "  state file: {} ({})",
        state_dir.display(),
        first_line("stat", &["-f", "-c", "%T", &state_dir.display().to_string()])
    );
    let binary = panel::binary("security-controller").map_or_else(|e| e.to_string(), |p| p.display().to_string());
    println!("  panel:      {binary}");
    println!("  command:    {}", options.command());
    println!();
}

/// The first line a program prints (stdout or stderr), or why not.
fn first_line(program: &str, args: &[&str]) -> String {
    let program = if program == "mosquitto" && !on_path("mosquitto") { "/usr/sbin/mosquitto" } else { program };
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text).lines().next().unwrap_or("?").trim().to_owned()
        }
        Err(e) => format!("{program}: {e}"),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn verdict(held: bool) -> &'static str {
    if held { "met" } else { "MISSED" }
}

fn label(row: Row) -> &'static str {
    match row {
        Row::Bare => "bare two hops (floor)",
        Row::Minimal => "minimal, a task of the bench",
        Row::MinimalProcess => "minimal rumqttc controller",
        Row::Blocking => "minimal, blocking read",
        Row::MinimalSiren => "minimal controller + a siren",
        Row::Paho => "Python paho-mqtt controller",
        Row::NodeRed => "Node-RED flow (defaults)",
        Row::Panel => "security-controller panel",
    }
}

/// The minimal controller and the panel are always measured.
fn row_of<'t>(table: &Table, load: &'t [Samples], row: Row) -> &'t Samples {
    table.of(load, row).expect("the minimal controller and the panel are in every table")
}

pub fn latency(table: &Table) {
    let bg = &table.background;
    println!("1. door OPEN → siren command at a separate subscriber");
    println!(
        "   background: {} readings in {:.1} s ({:.0}/s, open-loop, QoS 1; schedule lag at most {})",
        bg.published,
        bg.elapsed.as_secs_f64(),
        bg.per_second(),
        ms(bg.max_lag)
    );
    println!(
        "   {:<28} {:>5} {:>10} {:>10} | {:>5} {:>10} {:>10}",
        "", "n", "idle p50", "p99", "n", "loaded p50", "p99"
    );
    for (i, row) in table.rows.iter().enumerate() {
        let (a, b) = (&table.idle[i], &table.loaded[i]);
        println!(
            "   {:<28} {:>5} {:>10} {:>10} | {:>5} {:>10} {:>10}",
            label(*row),
            a.n(),
            ms(a.p50()),
            ms(a.p99()),
            b.n(),
            ms(b.p50()),
            ms(b.p99())
        );
    }
    for (load, samples) in [("idle", &table.idle), ("loaded", &table.loaded)] {
        ratios(table, load, samples);
    }
    println!();
}

/// The ratios of one load (`idle` or `loaded`): issue 20's goals, then the rows without a goal.
fn ratios(table: &Table, load: &str, samples: &[Samples]) {
    let (minimal, panel) = (row_of(table, samples, Row::MinimalSiren), row_of(table, samples, Row::Panel));
    let (p50, p99) = (ratio(panel.p50(), minimal.p50()), ratio(panel.p99(), minimal.p99()));
    println!(
        "   panel / minimal, {load:<6}: p50 {p50:.2}× (goal ≤ {P50_GOAL}×: {}), p99 {p99:.2}× (goal ≤ {P99_GOAL}×: {})",
        verdict(p50 <= P50_GOAL),
        verdict(p99 <= P99_GOAL)
    );
    let alone = row_of(table, samples, Row::MinimalProcess);
    println!(
        "   panel / minimal without a siren, {load}: p50 {:.2}×, p99 {:.2}× (no goal: one subscriber fewer)",
        ratio(panel.p50(), alone.p50()),
        ratio(panel.p99(), alone.p99())
    );
    let blocking = row_of(table, samples, Row::Blocking);
    println!(
        "   minimal blocking read / rumqttc, {load}: p50 {:.2}×, p99 {:.2}× (no goal: what a runtime costs)",
        ratio(blocking.p50(), alone.p50()),
        ratio(blocking.p99(), alone.p99())
    );
    let task = row_of(table, samples, Row::Minimal);
    println!(
        "   panel / minimal as a task of the bench, {load}: p50 {:.2}×, p99 {:.2}× (no goal: a hot runtime)",
        ratio(panel.p50(), task.p50()),
        ratio(panel.p99(), task.p99())
    );
    if table.rows.contains(&Row::Paho) {
        let paho = row_of(table, samples, Row::Paho);
        let faster = panel.p50() < paho.p50() && panel.p99() < paho.p99();
        println!(
            "   panel / paho,    {load:<6}: p50 {:.2}×, p99 {:.2}× (goal: faster in both: {})",
            ratio(panel.p50(), paho.p50()),
            ratio(panel.p99(), paho.p99()),
            verdict(faster)
        );
    }
}

pub fn wrong_codes(flooded: &CodeFlood, paced: &PacedCodes, table: &Table) {
    let idle = row_of(table, &table.idle, Row::Panel).p50();
    println!(
        "3. intrusion latency and {WRONG_CODES} wrong codes on the keypad topic (goal ≤ {FLOOD_GOAL}× the panel's idle p50)"
    );
    let x = ratio(paced.panel.p50(), idle);
    println!(
        "   while they arrive, one every {} ms over {:.1} s (open-loop, schedule lag at most {}), {} intrusions spread over that second:",
        PACE.as_millis(),
        (PACE * WRONG_CODES as u32).as_secs_f64(),
        ms(paced.max_lag),
        paced.panel.n()
    );
    println!(
        "     panel: p50 {} (p99 {}) vs its idle p50 {}: {x:.2}× (goal ≤ {FLOOD_GOAL}×: {})",
        ms(paced.panel.p50()),
        ms(paced.panel.p99()),
        ms(idle),
        verdict(x <= FLOOD_GOAL)
    );
    let x = ratio(flooded.panel.p50(), idle);
    println!(
        "   worst case, right after all {WRONG_CODES} sent at once (all queued ahead of the door), {} rounds each:",
        flooded.panel.n()
    );
    println!(
        "     panel, behind {WRONG_CODES} wrong codes on its keypad topic: p50 {} (p99 {}) vs its idle p50 {}: {x:.2}× (goal ≤ {FLOOD_GOAL}×: {})",
        ms(flooded.panel.p50()),
        ms(flooded.panel.p99()),
        ms(idle),
        verdict(x <= FLOOD_GOAL)
    );
    let floor = ratio(flooded.minimal.p50(), row_of(table, &table.idle, Row::Minimal).p50());
    println!(
        "     minimal controller, behind {WRONG_CODES} messages on its input topic: p50 {} (p99 {}), {floor:.2}× its idle; panel / minimal {:.2}×",
        ms(flooded.minimal.p50()),
        ms(flooded.minimal.p99()),
        ratio(flooded.panel.p50(), flooded.minimal.p50())
    );
    println!();
}

pub fn memory(started_kib: u64, cycles: &Cycles, flooded: &Flooded) {
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    println!("2. panel memory (VmRSS of the security-controller process)");
    println!("   after start: {}", mib(started_kib));
    println!(
        "   after {} arm/disarm cycles: {} (goal ≤ 8 MiB: {}; {:.1} s, Argon2id default cost)",
        cycles.count,
        mib(cycles.rss_kib),
        verdict(cycles.rss_kib <= RSS_GOAL_KIB),
        cycles.elapsed.as_secs_f64()
    );
    let growth = flooded.growth_percent();
    println!(
        "   {} sensor readings (100 motion sensors, QoS 0, retained, armed home): {} → {}, {growth:+.1} % (goal ≤ {GROWTH_GOAL_PERCENT} %: {})",
        flooded.sent.published,
        mib(flooded.before_kib),
        mib(flooded.after_kib),
        verdict(growth <= GROWTH_GOAL_PERCENT)
    );
    println!("   2 s after the last reading: {}", mib(flooded.settled_kib));
    println!(
        "   in batches of 50 000, each answered before the next: handed over at {:.0}/s; read by the panel in {:.1} s: {:.0} events/s",
        flooded.sent.per_second(),
        flooded.handled_in.as_secs_f64(),
        flooded.sent.published as f64 / flooded.handled_in.as_secs_f64().max(1e-9)
    );
    println!();
}

/// Which peers were measured, and how to install those that were not.
pub fn optional_rows(table: &Table) {
    let node_red = match &table.node_red {
        Some(at) => format!("{at}, measured above"),
        None => "not installed (npm install node-red@4 in $NODE_RED_DIR, or npm install -g node-red@4)".to_owned(),
    };
    let paho = if table.rows.contains(&Row::Paho) { "measured above" } else { "not installed (pip install paho-mqtt)" };
    println!("node-red (npm): {node_red}; paho-mqtt (pip): {paho}");
}

/// What the broker says it dropped: messages beyond `max_queued_messages` for a client that
/// reads slower than they come. A drop is a result to show, not hide.
pub fn broker_drops(log: &str) {
    let drops = log.lines().filter(|l| l.contains("dropped")).count();
    match drops {
        0 => println!("broker: no message dropped (its log has no \"dropped\" line)"),
        n => {
            println!("broker: {n} log lines about dropped messages, the first:");
            for line in log.lines().filter(|l| l.contains("dropped")).take(3) {
                println!("   {line}");
            }
        }
    }
}
