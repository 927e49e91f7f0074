//! TLS is one switch away: the certificates `mosquitto/make-certs.sh` makes, the TLS block of
//! `mosquitto/mosquitto.conf` uncommented, and a daemon given `mqtts://` and `--ca-file`.
//!
//! The test runs the script (into a temp dir), takes the commented TLS lines from the shipped
//! config as they are, and checks that a bulb connects over TLS and is driven from a plain-TCP
//! client, and that a bulb without the local CA is refused rather than connected.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{WITHIN, light, text};
use device_runtime::MqttConfig;
use protocol::LightSource;
use testkit::{Mosquitto, Probe, Running};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped config's commented TLS block, uncommented, on `port`, with certificates in `certs`.
fn tls_block(port: u16, certs: &Path) -> String {
    let conf = std::fs::read_to_string(repo().join("mosquitto/mosquitto.conf")).unwrap();
    let block: Vec<String> = conf
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| ["listener 8883", "cafile ", "certfile ", "keyfile "].iter().any(|k| l.starts_with(k)))
        .map(|l| {
            l.replace("listener 8883", &format!("listener {port} 127.0.0.1"))
                .replace("/mosquitto/config/certs", &certs.display().to_string())
        })
        .collect();
    assert_eq!(block.len(), 4, "mosquitto.conf should carry the four commented TLS lines: {block:?}");
    block.join("\n") + "\n"
}

fn bulb_over_tls(url: &str, ca_file: Option<PathBuf>, id: &str) -> Running {
    let mqtt = MqttConfig { broker: url.parse().unwrap(), ca_file, ..MqttConfig::with_id(id) };
    let config = light_bulb::Config { mqtt, ..light_bulb::Config::default() };
    Running::spawn(|s| light_bulb::run(config, s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_connects_over_tls_with_the_local_ca() {
    if testkit::mosquitto_or_skip().is_none() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let made = Command::new(repo().join("mosquitto/make-certs.sh"))
        .args(["localhost", "127.0.0.1"])
        .env("CERTS_DIR", certs.path())
        .output()
        .expect("cannot run mosquitto/make-certs.sh");
    assert!(made.status.success(), "make-certs.sh failed: {}", String::from_utf8_lossy(&made.stderr));
    // Mosquitto drops to its own user: let it read the key and enter the dir (in compose: chown).
    for name in ["", "server.key"] {
        let path = certs.path().join(name);
        let mode = if name.is_empty() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let tls_port = testkit::free_port();
    let mosquitto = Mosquitto::start_with_config(|port, dir| {
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest file {}/mosquitto.log\nlog_type all\n{}",
            dir.display(),
            tls_block(tls_port, certs.path())
        )
    })
    .expect("mosquitto with the TLS listener did not start");

    let mut probe = Probe::connect(&mosquitto.url(), "probe-tls").await.unwrap();
    probe.subscribe("home/#").await.unwrap();
    let ca = certs.path().join("ca.crt");
    let tls_url = format!("mqtts://localhost:{tls_port}");
    let bulb = bulb_over_tls(&tls_url, Some(ca), "tls-bulb");
    probe.expect("home/devices/tls-bulb/availability", text("online"), WITHIN).await.unwrap();
    probe
        .publish("home/lights/tls-bulb/set", r#"{"state":"ON","brightness":40,"source":"manual"}"#, false)
        .await
        .unwrap();
    probe.expect("home/lights/tls-bulb/state", light(40, LightSource::Manual), WITHIN).await.unwrap();

    // Without the local CA (the system bundle), the broker's certificate is not trusted.
    let stranger = bulb_over_tls(&tls_url, None, "untrusting-bulb");
    probe
        .expect_none("home/devices/untrusting-bulb/availability", text("online"), Duration::from_secs(2))
        .await
        .unwrap();
    stranger.stop().await;
    bulb.stop().await;
    probe.expect("home/devices/tls-bulb/availability", text("offline"), WITHIN).await.unwrap();
}
