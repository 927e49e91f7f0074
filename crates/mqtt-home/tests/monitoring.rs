//! The shipped scenarios with a monitoring centre listening: the one-command home (the demo panel,
//! `sia_transmitter = true`, the shipped `sia-transmitter.toml` pointed at the receiver) plays
//! `scenarios/intrusion.toml` and `scenarios/duress.toml`, and pysiaalarm, the receiver of Home
//! Assistant's `sia`, gets the burglary of the kitchen window (zone 3), its restore, and the
//! duress of alice's duress code (user 2), each once.

use std::path::Path;
use std::time::{Duration, Instant};

use testkit::{SiaReceiver, SiaTransport};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `config/` copied, the transmitter on and pointed at `receiver`, its queue in `dir`.
fn config_dir(dir: &Path, receiver: &SiaReceiver) -> std::path::PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    for entry in std::fs::read_dir(repo().join("config")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), config.join(entry.file_name())).unwrap();
    }
    let home = std::fs::read_to_string(config.join("home.toml")).unwrap();
    assert!(home.contains("sia_transmitter = false"), "home.toml changed: update this test");
    std::fs::write(config.join("home.toml"), home.replace("sia_transmitter = false", "sia_transmitter = true"))
        .unwrap();
    let sia = std::fs::read_to_string(config.join("sia-transmitter.toml")).unwrap();
    assert!(sia.contains("127.0.0.1:12128"), "sia-transmitter.toml changed: update this test");
    let queue = dir.join("sia.queue.json");
    let sia = sia
        .replace("127.0.0.1:12128", &receiver.address())
        .replace("queue_file = \"sia-transmitter.queue.json\"", &format!("queue_file = {queue:?}"));
    std::fs::write(config.join("sia-transmitter.toml"), sia).unwrap();
    config
}

#[test]
fn the_shipped_intrusion_and_duress_scenarios_reach_the_centre() {
    if !testkit::pysiaalarm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = SiaReceiver::start(SiaTransport::Tcp, "1234", None).unwrap();
    let config = config_dir(dir.path(), &receiver);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
        .current_dir(dir.path())
        .args(["scenario", "--with-home", "--config-dir"])
        .arg(&config)
        .arg(repo().join("scenarios/intrusion.toml"))
        .arg(repo().join("scenarios/duress.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The home stops when the scenarios end; what it took is at the receiver by then, or soon.
    let deadline = Instant::now() + Duration::from_secs(10);
    let codes = || -> Vec<String> {
        receiver
            .events()
            .iter()
            .map(|e| format!("{}{}", e.code.as_deref().unwrap_or("?"), e.message.as_deref().unwrap_or("")))
            .collect()
    };
    while !codes().iter().any(|c| c == "HA02") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let codes = codes();
    let alarms: Vec<&str> =
        codes.iter().map(String::as_str).filter(|c| ["BA", "BR", "HA", "TA"].contains(&&c[..2])).collect();
    assert_eq!(alarms, ["BA03", "BR03", "HA02"], "every report: {codes:?}");
    let sequences: Vec<String> = receiver.events().iter().filter_map(|e| e.sequence.clone()).collect();
    let mut unique = sequences.clone();
    unique.dedup();
    assert_eq!(unique, sequences, "each report once");
}
