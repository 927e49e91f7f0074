//! `mqtt-home notify test` against a real broker and an HTTP receiver started by the test: every
//! channel of notifier.toml gets one test message, and a channel that cannot be reached is named.

use std::process::Command;
use std::time::Duration;

use testkit::{Probe, WITHIN, on_both_brokers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers one request with 200 and hands over what it read.
async fn one_request(listener: TcpListener) -> String {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("this channel works") {
        let n = socket.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

async fn every_channel_gets_a_test_message(url: String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let request = tokio::spawn(one_request(listener));
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}/nobody", testkit::free_port());
    std::fs::write(
        dir.path().join("notifier.toml"),
        format!(
            "[[channel]]\nname = \"phone\"\nkind = \"webhook\"\nurl = \"{hook}\"\n\n\
             [[channel]]\nname = \"automations\"\nkind = \"mqtt\"\ntopic = \"home/notifications\"\n\n\
             [[channel]]\nname = \"gone\"\nkind = \"webhook\"\nurl = \"{dead}\"\n"
        ),
    )
    .unwrap();
    let mut probe = Probe::connect(&url, "probe-notify-test").await.unwrap();
    probe.subscribe("home/notifications").await.unwrap();
    let out = tokio::task::spawn_blocking({
        let (url, dir) = (url.clone(), dir.path().to_owned());
        move || {
            Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
                .args(["--broker", &url, "notify", "test", "--config-dir"])
                .arg(dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("phone: sent") && stdout.contains("automations: sent"), "{stdout}{stderr}");
    assert!(stdout.contains("gone: FAILED: http://127.0.0.1 unreachable"), "{stdout}");
    assert!(!out.status.success() && stderr.contains("1 of 3 channels failed"), "{stderr}");
    let got = tokio::time::timeout(Duration::from_secs(5), request).await.unwrap().unwrap();
    assert!(got.starts_with("POST /hook") && got.contains("mqtt-home: test notification"), "{got}");
    let test = |p: &[u8]| String::from_utf8_lossy(p).contains("test notification");
    probe.expect("home/notifications", test, WITHIN).await.unwrap();
}
on_both_brokers!(notify_test, super::every_channel_gets_a_test_message);
