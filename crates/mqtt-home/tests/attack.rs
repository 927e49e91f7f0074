//! The attack suite: each finding of issue 19, reproduced as it was reported, over a real broker,
//! against the real daemons. Each test failed on the code the finding was made on.
//!
//! 1. An alarm that reached nobody: anyone who can publish on one sensor topic (or one flaky
//!    sensor) made troubles until the notifier's budget was spent, and the break-in that followed
//!    was "over 10 a minute, not sent". Ten bare `ARM_HOME` commands while armed did the same.

mod common;

use std::time::{Duration, Instant};

use common::{Running, WITHIN, mqtt};
use notifier::{ChannelConfig, Destination, Preset};
use protocol::{PanelStatus, Payload};
use security_controller::config::{ModeDelays, PanelConfig};
use testkit::{Probe, wait_for, webhook_receiver};
use tokio::net::TcpListener;

/// The panel, armed away, and the notifier with one webhook (its defaults: 10 a minute), on a
/// Mosquitto of their own; `flood` is what the attacker publishes before the window opens.
async fn the_break_in_is_told_after(flood: &[(String, &'static str)]) {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let dir = tempfile::tempdir().unwrap();
    let panel_config = security_controller::Config {
        mqtt: mqtt(&url, "security-controller"),
        state_file: dir.path().join("panel.json"),
        panel: PanelConfig {
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            entry_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            allow_demo_timings: true,
            ..PanelConfig::default()
        },
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/alarm", listener.local_addr().unwrap());
    let received = webhook_receiver(listener, vec![200]);
    let notifier_config = notifier::Config {
        mqtt: mqtt(&url, "notifier"),
        channels: vec![ChannelConfig {
            name: "phone".into(),
            to: Destination::Webhook { url: hook, preset: Preset::Json, headers: Default::default() },
            events: Vec::new(),
            max_per_minute: 10,
        }],
        share_group: None,
    };
    let mut probe = Probe::connect(&url, "probe-attack").await.unwrap();
    probe.subscribe("home/security/#").await.unwrap();
    probe.subscribe("home/devices/+/availability").await.unwrap();
    let panel = Running::spawn(|s| security_controller::run(panel_config, s));
    let notifier = Running::spawn(|s| notifier::run(notifier_config, s));
    let state = |want: &'static str| move |p: &[u8]| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == want);
    probe.expect("home/devices/notifier/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe.expect("home/security/status", state("disarmed"), WITHIN).await.unwrap();
    probe.publish("home/security/window/kitchen-window", "CLOSED", true).await.unwrap();
    probe.publish("home/security/panel/set", "ARM_AWAY", false).await.unwrap();
    probe.expect("home/security/status", state("armed_away"), WITHIN).await.unwrap();

    let events_before = probe.count("home/security/events");
    for (topic, payload) in flood {
        probe.publish(topic, *payload, false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The flood made its events (a trouble a junk reading, a `failed_to_arm` a command), each
    // one the notifier sends by default, before the window opens a second later.
    let last = events_before + flood.len() - 1;
    probe.expect_after(last, "home/security/events", |_| true, WITHIN).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let told_before = received.lock().unwrap().len();
    let opened = Instant::now();
    probe.publish("home/security/window/kitchen-window", "OPEN", true).await.unwrap();
    probe.expect("home/security/status", state("triggered"), WITHIN).await.unwrap();
    let triggered = |got: &[(String, String)]| got.iter().any(|(_, body)| body.contains("\"event\":\"triggered\""));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = wait_for(&received, told_before + 1, Duration::from_millis(50)).await;
        if triggered(&got) {
            break;
        }
    }
    let took = opened.elapsed();
    assert!(triggered(&got), "the break-in reached nobody after {} flood messages: {got:#?}", flood.len());
    assert!(took < Duration::from_secs(1), "the break-in took {took:?} to reach the phone");
    println!(
        "after {} flood messages ({} notifications before it), the break-in reached the phone in {took:?}",
        flood.len(),
        told_before
    );
    notifier.stop().await;
    panel.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_junk_readings_do_not_silence_the_alarm() {
    let flood: Vec<_> = (0..12).map(|n| (format!("home/security/door/junk{n}"), "{\"garbage\":")).collect();
    the_break_in_is_told_after(&flood).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_arming_commands_do_not_silence_the_alarm() {
    let flood: Vec<_> = (0..10).map(|_| ("home/security/panel/set".to_string(), "ARM_HOME")).collect();
    the_break_in_is_told_after(&flood).await;
}
