//! Availability as the broker sees it when the real `light-bulb` process dies or is stopped.

use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::Probe;

const WITHIN: Duration = Duration::from_secs(10);
const AVAILABILITY: &str = "home/devices/lwt-bulb/availability";

fn start_bulb(url: &str) -> testkit::Spawned {
    Command::new(env!("CARGO_BIN_EXE_light-bulb"))
        .args(["--broker", url, "--id", "lwt-bulb"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(testkit::Spawned)
        .expect("cannot start light-bulb")
}

async fn killed_goes_offline_and_restarted_comes_online(url: &str) {
    let mut probe = Probe::connect(url, "probe-lwt").await.unwrap();
    probe.subscribe(AVAILABILITY).await.unwrap();
    let mut bulb = start_bulb(url);
    probe.expect(AVAILABILITY, |p| p == b"online", WITHIN).await.unwrap();

    // kill -9: no goodbye, the broker publishes the Last Will.
    let before = probe.count(AVAILABILITY);
    bulb.kill().unwrap();
    bulb.wait().unwrap();
    probe.expect_after(before, AVAILABILITY, |p| p == b"offline", WITHIN).await.unwrap();

    let mut bulb = start_bulb(url);
    let before = probe.count(AVAILABILITY);
    probe.expect_after(before, AVAILABILITY, |p| p == b"online", WITHIN).await.unwrap();

    // SIGTERM (docker stop): a clean goodbye, exit code 0.
    let before = probe.count(AVAILABILITY);
    Command::new("kill").args(["-TERM", &bulb.id().to_string()]).status().unwrap();
    let status = bulb.wait().unwrap();
    assert!(status.success(), "light-bulb exited with {status} on SIGTERM");
    probe.expect_after(before, AVAILABILITY, |p| p == b"offline", WITHIN).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_on_the_embedded_broker() {
    let broker = testkit::embedded();
    killed_goes_offline_and_restarted_comes_online(&broker.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_on_mosquitto() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    killed_goes_offline_and_restarted_comes_online(&mosquitto.url()).await;
    assert!(mosquitto.log().contains("lwt-bulb"), "the broker saw the bulb");
}
