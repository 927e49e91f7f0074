//! Two panels, one active, on a real broker: the real `security-controller` binary twice, each
//! with `standby = true`, its own id and its own state file, and a probe for the sensors, the
//! keypad and the watching. On Mosquitto:
//!
//! - `kill -9` of the active panel while armed: the standby holds the next term within 3 s, a
//!   window opened during the take-over sounds the siren (its command carries the new term), and
//!   the old panel, restarted, follows;
//! - a take-over during an entry delay keeps what was left of the delay;
//! - the active panel paused (SIGSTOP) past its lease and resumed: the standby took over and the
//!   paused one never sends a siren command again (none with the old term after the new one);
//! - each of the three on the three-node NATS cluster too;
//! - a panel outside the pair (`standby = false`) keeps a member from taking the term.
//!
//! Each test prints its take-over time (docs/operations.md has ten runs of them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use protocol::{
    AlarmCommand, PanelLeader, PanelStatus, Payload, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics,
};
use security_controller::codes;
use testkit::{Probe, WITHIN};

const PIN: &str = "1234";
/// The lease: a standby takes over after this long without a renewal.
const LEASE_S: f64 = 1.0;
/// The issue's bound on a take-over.
const TAKE_OVER: Duration = Duration::from_secs(3);

fn topics() -> Topics {
    Topics::new("home")
}

/// One panel of the pair: the binary, its config and state file in `dir`, its log there too.
struct Member {
    id: String,
    dir: PathBuf,
    url: String,
    child: Option<Child>,
}

impl Member {
    fn new(url: &str, parent: &Path, id: &str, entry_delay_s: u64) -> Member {
        Member::with(url, parent, id, entry_delay_s, true)
    }

    /// With `standby = false`: a panel outside any pair.
    fn with(url: &str, parent: &Path, id: &str, entry_delay_s: u64, standby: bool) -> Member {
        let dir = parent.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let hash = codes::hash_pin_with(PIN, codes::test_params()).unwrap();
        let file = format!(
            "standby = {standby}\nlease_s = {LEASE_S}\n\
             [panel]\nexit_delay_s = {{ away = 0, home = 0, night = 0 }}\n\
             entry_delay_s = {{ away = {entry_delay_s}, home = {entry_delay_s}, night = 0 }}\n\
             trigger_time_s = 120\nallow_demo_timings = true\n\
             [panel.sensors.front-door]\nzone = \"entry\"\n\
             [panel.sensors.kitchen-window]\nzone = \"perimeter\"\n\
             [[panel.users]]\nname = \"alice\"\npin_hash = \"{hash}\"\n"
        );
        std::fs::write(dir.join("security-controller.toml"), file).unwrap();
        Member { id: id.to_owned(), dir, url: url.to_owned(), child: None }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("panel.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_security-controller"))
            .args(["--broker", &self.url, "--id", &self.id, "--config"])
            .arg(self.dir.join("security-controller.toml"))
            .arg("--state-file")
            .arg(self.dir.join("panel.state.json"))
            .args(["-v", "--log-format", "text"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot run security-controller");
        self.child = Some(child);
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("panel.log")).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.kill_9();
    }
}

/// The pair, and the probe that plays the house.
struct Pair {
    members: Vec<Member>,
    probe: Probe,
    _dir: tempfile::TempDir,
}

const LEADER: &str = "home/security/leader";
const STATUS: &str = "home/security/status";
const SIREN_COMMAND: &str = "home/control/alarm";

impl Pair {
    /// Starts panel-a, waits until it holds term 1, then starts panel-b; all on `url`.
    async fn start(url: &str, entry_delay_s: u64) -> Pair {
        Pair::start_on(url, [url, url], entry_delay_s).await
    }

    /// The probe on `probe`, panel-a and panel-b on their broker lists.
    async fn start_on(probe: &str, members: [&str; 2], entry_delay_s: u64) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let mut probe = Probe::connect(probe, "probe-standby").await.unwrap();
        for filter in ["home/security/#", SIREN_COMMAND, "home/devices/+/availability"] {
            probe.subscribe(filter).await.unwrap();
        }
        let mut a = Member::new(members[0], dir.path(), "panel-a", entry_delay_s);
        let b = Member::new(members[1], dir.path(), "panel-b", entry_delay_s);
        a.start();
        let mut pair = Pair { members: vec![a, b], probe, _dir: dir };
        pair.probe
            .expect(LEADER, |p| PanelLeader::decode(p).is_ok_and(|l| l.holder == "panel-a"), WITHIN)
            .await
            .unwrap();
        pair.probe.expect(STATUS, |p| PanelStatus::decode(p).is_ok(), WITHIN).await.unwrap();
        pair.members[1].start();
        pair.probe.expect("home/devices/panel-b/availability", |p| p == b"online", WITHIN).await.unwrap();
        pair.sense("kitchen-window", SensorKind::Window, SensorState::Closed).await;
        pair.sense("front-door", SensorKind::Door, SensorState::Closed).await;
        pair
    }

    async fn sense(&mut self, id: &str, kind: SensorKind, state: SensorState) {
        let topic = topics().name(&Topic::Sensor { kind, id: id.into() });
        let reading = SensorReading { state, device_id: id.into(), ts: Timestamp::now() };
        self.probe.publish(&topic, reading.encode(), true).await.unwrap();
    }

    async fn arm_away(&mut self) {
        let n = self.probe.count(STATUS);
        self.probe.publish("home/security/panel/set", r#"{"action":"ARM_AWAY"}"#, false).await.unwrap();
        let armed = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "armed_away");
        self.probe.expect_after(n, STATUS, armed, WITHIN).await.unwrap();
    }

    /// The first claim after the first `skip` of a term above `term`: (holder, term).
    async fn next_holder(&mut self, skip: usize, term: u64, within: Duration) -> PanelLeader {
        let higher = move |p: &[u8]| PanelLeader::decode(p).is_ok_and(|l| l.term > term);
        let claim = self.probe.expect_after(skip, LEADER, higher, within).await;
        let claim = claim.unwrap_or_else(|e| {
            panic!("no take-over: {e}\npanel-a:\n{}\npanel-b:\n{}", self.members[0].log(), self.members[1].log())
        });
        PanelLeader::decode(&claim).unwrap()
    }

    /// The siren commands seen so far, in order.
    fn siren_commands(&self) -> Vec<AlarmCommand> {
        self.probe.seen(SIREN_COMMAND).iter().filter_map(|p| AlarmCommand::decode(p).ok()).collect()
    }
}

fn siren_on_of_term(term: u64) -> impl Fn(&[u8]) -> bool {
    move |p| AlarmCommand::decode(p).is_ok_and(|c| c.state == protocol::Power::On && c.term == Some(term))
}

async fn kill_9_of_the_active_panel_while_armed(url: String) {
    let pair = Pair::start(&url, 0).await;
    kill_9_of_the_active_panel_of(pair).await;
}

async fn kill_9_of_the_active_panel_of(mut pair: Pair) {
    pair.arm_away().await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the snapshot of the armed panel is out
    let (leaders, statuses) = (pair.probe.count(LEADER), pair.probe.count(STATUS));
    let sirens = pair.probe.count(SIREN_COMMAND);
    let killed = Instant::now();
    pair.members[0].kill_9();
    // The window opens while the standby takes over.
    pair.sense("kitchen-window", SensorKind::Window, SensorState::Open).await;
    let claim = pair.next_holder(leaders, 1, TAKE_OVER).await;
    let claimed = killed.elapsed();
    assert_eq!((claim.holder.as_str(), claim.term), ("panel-b", 2));
    // Active: panel-b's first status, published as the panel it now is.
    let from_b = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.device_id == "panel-b");
    pair.probe.expect_after(statuses, STATUS, from_b, TAKE_OVER).await.unwrap();
    let active = killed.elapsed();
    pair.probe.expect_after(sirens, SIREN_COMMAND, siren_on_of_term(2), TAKE_OVER).await.unwrap();
    let siren = killed.elapsed();
    println!(
        "take-over after kill -9: claimed {} ms, active {} ms, siren for the window opened meanwhile {} ms",
        claimed.as_millis(),
        active.as_millis(),
        siren.as_millis()
    );
    assert!(siren < TAKE_OVER, "the siren came {siren:?} after the kill");
    let triggered = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "triggered");
    pair.probe.expect(STATUS, triggered, WITHIN).await.unwrap();

    // The old active panel, restarted, follows: nobody claims a term above 2 while b renews.
    let leaders = pair.probe.count(LEADER);
    pair.members[0].start();
    pair.probe.expect("home/devices/panel-a/availability", |p| p == b"online", WITHIN).await.unwrap();
    tokio::time::sleep(Duration::from_secs_f64(LEASE_S * 3.0)).await;
    let claims: Vec<PanelLeader> =
        pair.probe.seen(LEADER)[leaders..].iter().filter_map(|p| PanelLeader::decode(p).ok()).collect();
    assert!(!claims.is_empty(), "panel-b renews its lease");
    assert!(claims.iter().all(|c| c.holder == "panel-b" && c.term == 2), "{claims:?}\n{}", pair.members[0].log());
}
testkit::on_both_brokers!(kill_9_of_the_active_panel, super::kill_9_of_the_active_panel_while_armed);

/// The same on the three-node NATS cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_active_panel_on_the_nats_cluster() {
    let Some((_cluster, pair)) = pair_on_nats(0).await else { return };
    kill_9_of_the_active_panel_of(pair).await;
}

/// The entry delay of these tests: long enough to take over in, short enough to wait for.
const DELAY_S: u64 = 6;

/// A pair on the three-node NATS cluster (kept with it): panel-a on node 1 first, panel-b on
/// node 2, the probe on node 3, so every claim and reading crosses the cluster.
async fn pair_on_nats(entry_delay_s: u64) -> Option<(testkit::NatsCluster, Pair)> {
    let cluster = testkit::nats_or_skip()?;
    let urls = cluster.urls();
    let a = urls.join(",");
    let b = [&urls[1], &urls[2], &urls[0]].map(String::as_str).join(",");
    let pair = Pair::start_on(&cluster.url(2), [&a, &b], entry_delay_s).await;
    Some((cluster, pair))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_over_during_the_entry_delay_keeps_what_was_left_of_it() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    entry_delay_kept(Pair::start(&mosquitto.url(), DELAY_S).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_over_during_the_entry_delay_keeps_it_on_the_nats_cluster() {
    let Some((_cluster, pair)) = pair_on_nats(DELAY_S).await else { return };
    entry_delay_kept(pair).await;
}

async fn entry_delay_kept(mut pair: Pair) {
    pair.arm_away().await;
    let sirens = pair.probe.count(SIREN_COMMAND);
    let opened = Instant::now();
    pair.sense("front-door", SensorKind::Door, SensorState::Open).await;
    let pending = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "pending");
    pair.probe.expect(STATUS, pending, WITHIN).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let leaders = pair.probe.count(LEADER);
    pair.members[0].kill_9();
    pair.next_holder(leaders, 1, TAKE_OVER).await;
    pair.probe.expect_after(sirens, SIREN_COMMAND, siren_on_of_term(2), WITHIN).await.unwrap();
    let after = opened.elapsed();
    // Kept: the siren at the delay's end (6 s). Started again at the take-over: ~2.5 + 6 s.
    assert!(after >= Duration::from_secs(DELAY_S) - Duration::from_millis(300), "too soon: {after:?}");
    assert!(after < Duration::from_secs(DELAY_S + 2), "the delay started again: {after:?}");
    println!("entry delay of {DELAY_S} s with a take-over at 2.5 s: siren after {} ms", after.as_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_active_panel_is_deposed_and_never_acts_again() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    paused_and_deposed(Pair::start(&mosquitto.url(), 0).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_active_panel_is_deposed_on_the_nats_cluster() {
    let Some((_cluster, pair)) = pair_on_nats(0).await else { return };
    paused_and_deposed(pair).await;
}

async fn paused_and_deposed(mut pair: Pair) {
    pair.arm_away().await;
    let (leaders, statuses) = (pair.probe.count(LEADER), pair.probe.count(STATUS));
    let paused = Instant::now();
    pair.members[0].signal("-STOP");
    let claim = pair.next_holder(leaders, 1, TAKE_OVER).await;
    let claimed = paused.elapsed();
    assert_eq!(claim.holder, "panel-b");
    let from_b = |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.device_id == "panel-b");
    pair.probe.expect_after(statuses, STATUS, from_b, TAKE_OVER).await.unwrap();
    println!("take-over after SIGSTOP: claimed {} ms, active {} ms", claimed.as_millis(), paused.elapsed().as_millis());
    assert!(paused.elapsed() < TAKE_OVER, "active {:?} after the pause", paused.elapsed());
    // While a is paused, the window opens: b sounds the siren.
    pair.sense("kitchen-window", SensorKind::Window, SensorState::Open).await;
    pair.probe.expect(SIREN_COMMAND, siren_on_of_term(2), WITHIN).await.unwrap();
    // a wakes up with the reading and the claim waiting for it.
    pair.members[0].signal("-CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let commands = pair.siren_commands();
    let first_new = commands.iter().position(|c| c.term == Some(2)).expect("b's command");
    let late: Vec<&AlarmCommand> = commands[first_new..].iter().filter(|c| c.term != Some(2)).collect();
    assert!(late.is_empty(), "a deposed panel sent {late:?}\npanel-a:\n{}", pair.members[0].log());
    assert!(pair.members[0].log().contains("deposed"), "panel-a:\n{}", pair.members[0].log());
    let claims: Vec<PanelLeader> = pair.probe.seen(LEADER).iter().filter_map(|p| PanelLeader::decode(p).ok()).collect();
    let last = claims.last().unwrap();
    assert_eq!((last.holder.as_str(), last.term), ("panel-b", 2), "b stays active");
}

/// A panel left with `standby = false` beside a pair member: the member never takes the term (two
/// panels would both act) and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_outside_the_pair_keeps_the_member_from_acting_and_is_named() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    let mut probe = Probe::connect(&url, "probe-outsider").await.unwrap();
    for filter in [LEADER, STATUS, "home/devices/+/availability"] {
        probe.subscribe(filter).await.unwrap();
    }
    let mut outsider = Member::with(&url, dir.path(), "panel-x", 0, false);
    outsider.start();
    probe.expect(STATUS, |p| PanelStatus::decode(p).is_ok(), WITHIN).await.unwrap();
    let mut member = Member::new(&url, dir.path(), "panel-a", 0);
    member.start();
    probe.expect("home/devices/panel-a/availability", |p| p == b"online", WITHIN).await.unwrap();
    tokio::time::sleep(Duration::from_secs_f64(LEASE_S * 4.0)).await;
    assert_eq!(probe.count(LEADER), 0, "the member claimed beside panel-x:\n{}", member.log());
    assert!(
        member.log().contains("panel-x publishes the panel's status and is not one of the pair"),
        "{}",
        member.log()
    );
    // panel-x gone: the member takes over.
    outsider.kill_9();
    probe.expect(LEADER, |p| PanelLeader::decode(p).is_ok_and(|l| l.holder == "panel-a"), TAKE_OVER).await.unwrap();
}
